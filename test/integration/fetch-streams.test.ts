/**
 * How a Fetch handler's Response reaches the wire, against what the same handler means under the Fetch
 * standard (one server, 1 async worker, shared by the checks):
 * - a streamed body whose client went away is cancelled at once (its cancel() runs), not at its next chunk,
 *   which an event stream may never produce; over HTTP/2 too, where the client resets the stream only
 * - a long stream to a client that reads it leaves no listener per backpressure wait on the response
 * - a Response whose body was read already is a 500, not a connection cut with nothing sent
 * - a Content-Length the app got wrong never frames the connection wrongly: a 500 for a plain body, a cut for
 *   a stream; a HEAD answer may carry the GET's length
 * - a stream that fails mid-way cuts its connection and says why in the error log, in one line
 * - Response.error() is a 500 and one line in the error log, not a RangeError with tunicorn's stack
 * - the fields of the connection a Response came over (a proxy's fetch()) are not sent: over HTTP/2 they
 *   killed the worker, over HTTP/1.1 they framed the body twice and kept a connection the client closed
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exchange } from '../helpers/raw.js';
import { FIXTURES, request, Server, stopAll, within } from '../helpers/server.js';

after(stopAll);

let s: Server;
let port: number;
/** The upstream of /proxy: Node's server, whose responses advertise its own keep-alive timeout. */
const upstream = http.createServer((_req, res) => {
  res.write('hello ');
  res.end('world');
});
upstream.keepAliveTimeout = 999_000;
after(() => {
  upstream.closeAllConnections();
  upstream.close();
});
before(async () => {
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
  s = new Server(['-b', '127.0.0.1:0', '-w', '1', path.join(FIXTURES, 'fetch-streams.ts')], { env: { UPSTREAM_URL: upstreamUrl } });
  port = await s.port();
  await s.waitFor(/Ready: 1 worker/);
});

const get = (target: string, method = 'GET') => `${method} ${target} HTTP/1.1\r\nHost: t\r\n\r\n`;

describe('a Fetch Response on the wire', () => {
  it('cancels a streamed body as soon as its client goes away, with no chunk to come', async () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.write(get('/idle'));
    let got = '';
    await within(
      new Promise<void>((resolve) => socket.on('data', (d: Buffer) => (got += d.toString()).includes('data: first') && resolve())),
      5000,
      'the first event',
    );
    socket.destroy();
    let seen: string[] = [];
    // Polled through the server itself: the stream and /seen share the worker.
    for (let i = 0; i < 30 && !seen.includes('idle: cancel'); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      seen = JSON.parse((await request(port, '/seen')).body) as string[];
    }
    assert.deepEqual(seen.sort(), ['idle: abort', 'idle: cancel']);
  });

  it('cancels a streamed body whose client left before the handler returned it', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await within(new Promise((resolve) => socket.once('connect', resolve)), 5000, 'the connection');
    socket.write(get('/late-idle'));
    // Gone while the handler still waits (300 ms): the response is closed before the stream exists.
    await s.waitFor(/fixture: late-idle is taking its time/);
    socket.destroy();
    let seen: string[] = [];
    for (let i = 0; i < 30 && !seen.includes('late: cancel'); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      seen = JSON.parse((await request(port, '/seen')).body) as string[];
    }
    assert.ok(seen.includes('late: cancel'), `seen: ${JSON.stringify(seen)}`);
  });

  // Over HTTP/2 the client resets the stream (RST_STREAM CANCEL, as a browser closing an EventSource does)
  // and keeps its connection. Node's HTTP/2 response has no `destroyed` and reports the reset stream as
  // `writableFinished`: the stream was never cancelled nor the signal aborted, and the write loop waited for
  // a 'drain' that never comes.
  it('cancels a streamed body and aborts the signal when an HTTP/2 client resets the stream', async () => {
    const count = (list: string[], what: string) => list.filter((x) => x === what).length;
    const before = JSON.parse((await request(port, '/seen')).body) as string[];
    // h2c: the test's peer, 127.0.0.1, is in forwarded_allow_ips by default.
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      for (const [target, marks] of [['/idle', ['idle: abort', 'idle: cancel']], ['/late-idle', ['late: cancel']]] as const) {
        const from = s.log.length;
        const stream = session.request({ ':path': target });
        stream.on('error', () => {});
        if (target === '/idle') {
          await within(new Promise<void>((resolve) => stream.once('data', () => resolve())), 5000, 'the first event');
        } else {
          await s.waitFor(/fixture: late-idle is taking its time/, 5000, from);
        }
        stream.close(http2.constants.NGHTTP2_CANCEL);
        let seen: string[] = [];
        const done = () => marks.every((m) => count(seen, m) > count(before, m));
        for (let i = 0; i < 30 && !done(); i++) {
          if (i > 0) await new Promise((r) => setTimeout(r, 100));
          seen = JSON.parse((await request(port, '/seen')).body) as string[];
        }
        assert.ok(done(), `${target}: expected ${marks.join(', ')} once more; seen: ${JSON.stringify(seen)}`);
      }
    } finally {
      session.destroy();
    }
  });

  it('streams 8 MB through hundreds of backpressure waits and leaves no listener behind', async () => {
    const r = await request(port, '/big', { timeout: 20000 });
    assert.equal(r.body.length, 8 * 1024 * 1024);
    // The next request is served (the stream ended cleanly), and Node warned of no listener pile-up.
    assert.equal((await request(port, '/')).body, 'hello');
    assert.doesNotMatch(s.log, /MaxListenersExceededWarning/);
  });

  it('answers 500 to a Response whose body was read already', async () => {
    const r = await exchange(port, [{ send: get('/used') }], { want: 1, waitClose: true, ms: 5000 });
    assert.deepEqual(r.responses.map((x) => x.status), [500]);
  });

  it('a Content-Length that is not the body\'s is a 500 (plain body) or a cut (stream), never a second response', async () => {
    for (const target of ['/length-short', '/length-long']) {
      const from = s.log.length;
      // A keep-alive client with the next request pipelined: the bytes past a short length would be read as
      // its response, and a long one would swallow it.
      const r = await exchange(port, [{ send: get(target) + get('/') }], { want: 1, waitClose: true, ms: 5000 });
      assert.deepEqual(r.responses.map((x) => x.status), [500], target);
      assert.equal(r.rest, '', target);
      await s.waitFor(/Response says Content-Length: \d+, but its body is \d+ byte\(s\)/, 5000, from);
    }
    const r = await exchange(port, [{ send: get('/length-stream') + get('/') }], { want: 1, waitClose: true, ms: 5000 });
    assert.equal(r.closed, true);
    assert.deepEqual(r.responses, []);
    assert.equal(r.rest, '');
    await s.waitFor(/body does not match its Content-Length/);
  });

  it('a stream that fails mid-way cuts the connection and logs one line with the cause', async () => {
    const from = s.log.length;
    const r = await exchange(port, [{ send: get('/broken') }], { want: 1, waitClose: true, ms: 5000 });
    assert.equal(r.closed, true);
    // No whole response: at most the head and some chunks, never the chunked body's end.
    assert.deepEqual(r.responses, []);
    await s.waitFor(
      /\[ERROR\] Error handling request GET \/broken: the Fetch handler's Response body failed while it was being sent \(Error: broke\); the connection was cut\n/,
      5000,
      from,
    );
    assert.doesNotMatch(s.log.slice(from), /\n\s+at /, 'no stack of tunicorn frames');
    // The worker serves on.
    assert.equal((await request(port, '/')).body, 'hello');
    assert.equal(s.count(/Booting worker/), 1);
  });

  it('answers 500 to Response.error(), with one line in the log and no stack', async () => {
    const from = s.log.length;
    assert.equal((await request(port, '/network-error')).status, 500);
    await s.waitFor(/\[ERROR\] Error handling request GET \/network-error: the Fetch handler returned Response\.error\(\) \(a network error\), which has no HTTP status; .*\n/, 5000, from);
    assert.doesNotMatch(s.log.slice(from), /\n\s+at /, 'no stack of tunicorn frames');
  });

  it('a HEAD answer keeps the length the app gave, and the GET its body', async () => {
    const head = await request(port, '/length-head', { method: 'HEAD' });
    assert.deepEqual([head.status, head.headers['content-length'], head.body], [200, '12', '']);
    const r = await request(port, '/length-head');
    assert.deepEqual([r.status, r.headers['content-length'], r.body], [200, '12', 'twelve bytes']);
  });
});

describe('the client of an HTTP/2 request', () => {
  // A stream loses its session when it closes: clientAddress() after the response was undefined over HTTP/2.
  it('is still its own after the response, as over HTTP/1.1 (h2c)', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      await within(
        new Promise<void>((resolve, reject) => {
          const stream = session.request({ ':path': '/late-address' });
          stream.resume();
          stream.on('end', resolve);
          stream.on('error', reject);
        }),
        5000,
        'the answer',
      );
    } finally {
      session.close();
    }
    let seen: string[] = [];
    for (let i = 0; i < 30 && !seen.some((x) => x.startsWith('late address')); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      seen = JSON.parse((await request(port, '/seen')).body) as string[];
    }
    assert.ok(seen.includes('late address: 127.0.0.1 http:'), JSON.stringify(seen));
  });
});

describe("the fields of a Response's own connection", () => {
  // RFC 9113 section 8.2.2, RFC 9112 sections 6.3 and 9.6: Transfer-Encoding, Connection, Keep-Alive belong to
  // the connection, which tunicorn frames and keeps. A proxy's `return fetch(upstream)` passes the upstream's.
  const cases = [
    ['/proxy', 'hello world'],
    ['/connection-fields', 'hello'],
    ['/connection-fields?headers', 'hello'],
  ] as const;

  it("over HTTP/1.1 are not sent: one framing, the server's keep-alive, and the client's Connection: close kept", async () => {
    for (const [target, body] of cases) {
      const r = await exchange(port, [{ send: `GET ${target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n` }], {
        want: 1,
        waitClose: true,
        ms: 3000,
      });
      assert.equal(r.responses.length, 1, target);
      const { status, headers, body: got } = r.responses[0]!;
      assert.equal(status, 200, target);
      assert.equal(got, body, target);
      // Both would let a proxy frame the body either way (RFC 9112 section 6.3).
      assert.ok(headers['transfer-encoding'] === undefined || headers['content-length'] === undefined, `${target}: ${JSON.stringify(headers)}`);
      assert.equal(headers['keep-alive'], undefined, target);
      assert.equal(headers['proxy-connection'], undefined, target);
      assert.equal(headers.connection, 'close', target);
      assert.ok(r.closed, `${target}: the connection the client asked to close is closed`);
    }
  });

  it('over HTTP/2 are not sent: the response is served, and the worker lives', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      for (const [target, body] of cases) {
        const r = await within(
          new Promise<{ status: number; body: string }>((resolve, reject) => {
            const stream = session.request({ ':path': target });
            let status = 0;
            let got = '';
            stream.on('response', (h) => (status = Number(h[':status'])));
            stream.setEncoding('utf8');
            stream.on('data', (d: string) => (got += d));
            stream.on('end', () => resolve({ status, body: got }));
            stream.on('error', reject);
          }),
          5000,
          `the answer to ${target}`,
        );
        assert.deepEqual(r, { status: 200, body }, target);
      }
    } finally {
      session.destroy();
    }
    assert.doesNotMatch(s.log, /Uncaught exception|ERR_HTTP2_INVALID_CONNECTION_HEADERS/);
    assert.equal(s.count(/Booting worker/), 1);
  });
});
