/**
 * Long-lived connections through a graceful stop, on the real CLI with real clients (ws, node:http, node:http2):
 * - an event stream (text/event-stream) does not hold back the app's SIGTERM listener, as a WebSocket does
 *   not: once only event streams and WebSockets are left (async, each gthread thread), the listener runs at
 *   once, its last event and its close frame (1001) reach the clients, and the worker exits long before 80 %
 *   of graceful_timeout; a plain request still running is waited for first (async)
 * - the same for an event stream over HTTP/2 (TLS)
 * - the access log has the line of an event stream that is still running when the worker exits (sync, whose
 *   stream holds the worker until the cut at 80 % of graceful_timeout), with the bytes sent
 * - a gthread thread serving an event stream (on a new or a kept-alive connection) accepts no connection
 *   meanwhile: they go to the idle thread, during a TERM drain too (the connections waiting in the backlog go
 *   to the thread that frees up)
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { FIXTURES, request, Server, stopAll, within } from '../helpers/server.js';
import { selfSigned } from '../helpers/tls.js';

after(stopAll);

const app = path.join(FIXTURES, 'apps', 'event-stream-term.ts');

interface Stream {
  /** Resolves with the first event received: the stream is under way. */
  started: Promise<void>;
  /** Whether the request went on a connection the agent had kept alive. */
  reused: Promise<boolean>;
  /** Resolves when the response ends: what it carried, whether it ended whole, when. */
  ended: Promise<{ body: string; complete: boolean; at: number }>;
}

/** An event stream read with node:http, as an EventSource reads it; on `agent`'s connections if given. */
function eventStream(port: number, agent: http.Agent | false = false): Stream {
  let started!: () => void;
  let reused!: (r: boolean) => void;
  const s: Stream = { started: new Promise((r) => (started = r)), reused: new Promise((r) => (reused = r)), ended: null as never };
  s.ended = new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/events', agent }, (res) => {
      reused(req.reusedSocket);
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => ((body += d), started()));
      res.on('close', () => resolve({ body, complete: res.complete, at: Date.now() }));
    });
    req.on('error', reject);
  });
  return s;
}

/** A WebSocket that has had the app's greeting. */
async function greeted(port: number): Promise<{ closed: Promise<{ code: number; at: number }> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  const closed = new Promise<{ code: number; at: number }>((resolve) => ws.once('close', (code: number) => resolve({ code, at: Date.now() })));
  await within(new Promise((resolve, reject) => (ws.once('message', resolve), ws.once('error', reject))), 10000, 'the greeting');
  return { closed };
}

describe('event streams in a graceful stop', () => {
  // Before, the app's listener ran only once every request had ended, and an event stream never does: it ran
  // at 80 % of graceful_timeout (24 s here), after tunicorn had cut the WebSockets open beside the stream.
  for (const args of [[], ['-k', 'gthread', '--threads', '2']]) {
    const name = args.length ? args.join(' ') : 'async';
    it(`${name}: the app's SIGTERM listener ends its event streams and WebSockets at once${args.length ? '' : ', after the requests still running'}`, async () => {
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--graceful-timeout', '30', '--access-logfile', '-', ...args, app]);
      const port = await s.port();
      const gthread = args.length > 0;
      // Under gthread each thread runs its own copy of the app, and so its own SIGTERM listener: the thread
      // serving the stream ends it without waiting for a request running on the other.
      const { closed } = await greeted(port);
      const stream = eventStream(port);
      await within(stream.started, 10000, 'the first event');
      // A plain request still running is waited for (async).
      const slow = gthread ? null : request(port, '/?ms=1500');
      if (slow) await s.waitFor(/fixture: request for 1500 ms/);
      const termAt = Date.now();
      s.signal('SIGTERM');
      const ended = await within(stream.ended, 10000, 'the event stream to end');
      assert.match(ended.body, /^data: 0\n\n/);
      assert.ok(ended.body.endsWith('event: bye\ndata: server stopping\n\n'), `the app's last event, then the end: ${JSON.stringify(ended.body.slice(-60))}`);
      assert.equal(ended.complete, true, 'ended by the app, not cut');
      assert.equal((await within(closed, 10000, 'the WebSocket to close')).code, 1001, "the app's close frame, not a cut");
      if (slow) {
        assert.equal((await slow).body, 'slept 1500');
        assert.ok(ended.at - termAt >= 1000, `the listener waited for the request (${ended.at - termAt} ms)`);
      }
      assert.equal((await within(s.exited, 10000, 'the server to exit')).code, 0);
      assert.ok(Date.now() - termAt < 10000, `exited ${Date.now() - termAt} ms after TERM`);
      await within(s.drained, 10000, 'the log to end');
      assert.doesNotMatch(s.log, /Graceful stop: (closing|cutting)/);
      assert.match(s.stdout, /"GET \/events HTTP\/1\.1" 200 \d+/);
    });
  }

  it('HTTP/2 (TLS): an event stream ends with the app\'s last event at once', async () => {
    const c = selfSigned();
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--graceful-timeout', '30', '--certfile', c.cert, '--keyfile', c.key, app]);
    const port = await s.port();
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    try {
      const stream = session.request({ ':path': '/events' });
      let body = '';
      stream.setEncoding('utf8');
      const started = new Promise<void>((resolve) => stream.on('data', (d: string) => ((body += d), resolve())));
      const ended = new Promise<void>((resolve) => stream.on('end', resolve));
      await within(started, 10000, 'the first event');
      const termAt = Date.now();
      s.signal('SIGTERM');
      await within(ended, 10000, 'the stream to end');
      assert.ok(body.endsWith('event: bye\ndata: server stopping\n\n'), JSON.stringify(body.slice(-60)));
      assert.equal((await within(s.exited, 10000, 'the server to exit')).code, 0);
      assert.ok(Date.now() - termAt < 10000, `exited ${Date.now() - termAt} ms after TERM`);
    } finally {
      session.destroy();
    }
  });

  // A sync worker serves its event stream until the cut: the worker exits right after the app's listener ended
  // the stream, before the response's 'close', which made the line. Before, the line was lost.
  it('sync: the access log has the line of the event stream cut at 80 % of graceful_timeout', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', 'sync', '--graceful-timeout', '3', '--access-logfile', '-', app]);
    const port = await s.port();
    const stream = eventStream(port);
    await within(stream.started, 10000, 'the first event');
    s.signal('SIGTERM');
    const ended = await within(stream.ended, 10000, 'the event stream to end');
    assert.equal((await within(s.exited, 10000, 'the server to exit')).code, 0);
    await within(s.drained, 10000, 'the log to end');
    assert.match(s.log, /Graceful stop: cutting the requests still running at 80 % of graceful_timeout.*GET \/events/);
    const line = s.stdout.match(/"GET \/events HTTP\/1\.1" (\d+) (\d+)/);
    assert.ok(line, `the stream's access log line; stdout:\n${s.stdout}`);
    assert.equal(line[1], '200');
    assert.equal(Number(line[2]), Buffer.byteLength(ended.body), 'the bytes the client got');
  });
});

/** Ten new connections, one after the other, each answered within 3 s; then TERM ends the stream and the server. */
async function tenAnsweredThenStop(s: Server, port: number, stream: Stream): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const reply = await request(port, '/', { timeout: 3000 }).catch((err: Error) => err);
    assert.ok(!(reply instanceof Error), `request ${i + 1} of 10 answered: ${reply instanceof Error ? reply.message : ''}`);
    assert.equal(reply.body, 'slept 0');
  }
  s.signal('SIGTERM');
  await within(stream.ended, 10000, 'the event stream to end');
  assert.equal((await within(s.exited, 10000, 'the server to exit')).code, 0);
}

describe('gthread: a thread serving a long request accepts no connection meanwhile', () => {
  // Before, a thread went on accepting while it served the event stream, and each connection it took waited
  // behind the stream, unread, though the other thread was idle: 7 of 10 requests timed out.
  it('every new connection goes to the idle thread while the other serves an event stream', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', 'gthread', '--threads', '2', app]);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker\(s\) serving/);
    const stream = eventStream(port);
    await within(stream.started, 10000, 'the first event');
    await tenAnsweredThenStop(s, port, stream);
  });

  // The same when the stream is the second request of a kept-alive connection: its thread admitted nothing then.
  it('and while the other serves an event stream on a kept-alive connection', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', 'gthread', '--threads', '2', app]);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker\(s\) serving/);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await request(port, '/', { agent })).body, 'slept 0');
      const stream = eventStream(port, agent);
      await within(stream.started, 10000, 'the first event');
      assert.equal((await stream.reused).valueOf(), true, 'the stream came on the kept-alive connection');
      await tenAnsweredThenStop(s, port, stream);
    } finally {
      agent.destroy();
    }
  });

  // Before, each thread accepted again at the stop: the one serving the stream took about half of the
  // connections waiting in the backlog, queued them behind it, unread, and they were reset at the cut (80 % of
  // graceful_timeout), the stream with them. Now it stays paused and drains nothing; the other thread drains
  // the backlog once its slow request is over, and the app's SIGTERM listener ends the stream at once.
  it('TERM: connections waiting in the backlog go to the thread that frees up, not behind an event stream', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', 'gthread', '--threads', '2', '--graceful-timeout', '10', app]);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker\(s\) serving/);
    const stream = eventStream(port);
    await within(stream.started, 10000, 'the first event');
    // The other thread is busy too: what comes now waits in the backlog, for whichever thread accepts it.
    const slow = request(port, '/?ms=1500', { timeout: 10000 });
    await s.waitFor(/fixture: request for 1500 ms/);
    const termAt = Date.now();
    s.signal('SIGTERM');
    const replies = await Promise.all(
      Array.from({ length: 10 }, () => request(port, '/', { timeout: 9000 }).then((r) => r.body, (err: Error) => err.message)),
    );
    assert.deepEqual(replies, Array(10).fill('slept 0'), 'every connection made during the drain is answered');
    assert.equal((await slow).body, 'slept 1500');
    const ended = await within(stream.ended, 10000, 'the event stream to end');
    assert.ok(ended.body.endsWith('event: bye\ndata: server stopping\n\n'), `the app's last event: ${JSON.stringify(ended.body.slice(-60))}`);
    assert.ok(ended.at - termAt < 5000, `the stream ended ${ended.at - termAt} ms after TERM, before the cut at 8 s`);
    assert.equal((await within(s.exited, 10000, 'the server to exit')).code, 0);
    await within(s.drained, 10000, 'the log to end');
    assert.doesNotMatch(s.log, /Graceful stop: cutting/);
  });
});
