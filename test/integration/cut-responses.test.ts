/**
 * A response the app cannot finish once its head has gone out (test/fixtures/cut-responses.mjs), under each
 * worker class, to a client that sent a request body the app never read and reads only later:
 * - the client keeps what was sent and sees it end short (a chunked body without its last chunk, fewer bytes
 *   than its Content-Length): the connection is half-closed and drained, not reset. A reset made the client's
 *   kernel drop what it had received: the client saw ECONNRESET and nothing of the response
 * - a throw right after res.write() is cut as one after an await is: the part written is sent
 * - the 500 for a throw before the head reaches that client too
 * - a client that never reads holds its connection about a second, and the worker serves on
 * - one error-log line per failure, naming the method and path; the access log has the status and the bytes
 * - an error after res.end() leaves the response whole (a large one still being sent included) and the
 *   connection open for the next request
 * - a Fetch body stream that fails mid-way, and request_deadline once a response has begun, cut the same way
 * - a refused request (400) whose body was not read: its answer reaches a late reader the same way
 * - HTTP/2 (h2c): the stream is reset with INTERNAL_ERROR after the part sent; the session serves on
 * - a whole response to a request whose body was not read, on a connection that closes after it (-k sync,
 *   `Connection: close`, HTTP/1.0, keepalive 0): it reaches a client that reads only once the server has let
 *   go of the connection, where the close reset the connection and the client got nothing
 * - the same for a body_timeout (its 408, or the part of a response sent), a request body that fails to parse
 *   once the response has begun, a refused upgrade request with a body (on Node 26 its close threw, out of
 *   the worker), and the gate's 400 for a bad first line (whose client could hold a sync worker for as long
 *   as it kept its side open)
 * - HTTP/2: an app's own res.destroy() of an unfinished response resets the stream with INTERNAL_ERROR
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { exchange } from '../helpers/raw.js';
import { FIXTURES, request, Server, stopAll, until, within } from '../helpers/server.js';

after(stopAll);

const APP = path.join(FIXTURES, 'cut-responses.mjs');
/** Larger than what the server's socket buffers and Node's request stream take in before they stop reading. */
const BODY = 4 * 1024 * 1024;

async function start(cls: string, app = APP, more: string[] = []): Promise<{ s: Server; port: number }> {
  const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', cls, '--access-logfile', '-', ...more, app]);
  const port = await s.port();
  await s.waitFor(/Ready: 1 worker/);
  return { s, port };
}

/**
 * A chunked body cut short: the bytes of its whole chunks, and what follows them (nothing, when the last
 * chunk never came).
 */
function chunksOf(data: string): { body: string; rest: string } {
  let p = data.indexOf('\r\n\r\n') + 4;
  let body = '';
  for (;;) {
    const le = data.indexOf('\r\n', p);
    const size = le < 0 ? NaN : parseInt(data.slice(p, le), 16);
    if (!(size > 0) || data.length < le + size + 4) break;
    body += data.slice(le + 2, le + 2 + size);
    p = le + size + 4;
  }
  return { body, rest: data.slice(p) };
}

const accessLine = (target: string) => new RegExp(`"POST ${target} HTTP/1\\.1" (\\d+) (\\d+)`);

/**
 * POSTs a body the app does not read, and reads the answer only once the server is done with the connection
 * (its access-log line is written as the response closes): all it then gets is what its kernel kept.
 */
async function postReadLate(s: Server, port: number, target: string): Promise<{ data: string; error: string | null; line: RegExpMatchArray }> {
  const from = s.stdout.length;
  const socket = net.connect(port, '127.0.0.1');
  socket.pause();
  const closed = new Promise((resolve) => socket.once('close', resolve));
  let error: string | null = null;
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  socket.write(`POST ${target} HTTP/1.1\r\nHost: t\r\nContent-Length: ${BODY}\r\n\r\n`);
  socket.write(Buffer.alloc(BODY, 0x61));
  await until(() => accessLine(target).test(s.stdout.slice(from)), 10000, `the access-log line of ${target}`);
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  socket.resume();
  await within(closed, 5000, 'the connection to close');
  return { data, error, line: s.stdout.slice(from).match(accessLine(target))! };
}

/**
 * Whether the server's process has let go of its side of the connection from `clientPort` to `serverPort`: the
 * kernel has no socket for it any more (closed with a reset), or keeps it for no process (closed, waiting for
 * the peer's FIN). Linux's /proc/net/tcp: local and remote address as hex ADDR:PORT, the inode tenth.
 */
function serverLetGo(serverPort: number, clientPort: number): boolean {
  const hex = (p: number) => p.toString(16).toUpperCase().padStart(4, '0');
  const local = `0100007F:${hex(serverPort)}`;
  const remote = `0100007F:${hex(clientPort)}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[2] === remote) return f[9] === '0';
  }
  return true;
}

/**
 * Sends `head` and `body` on a new connection and reads nothing until the server's process has let go of it
 * (serverLetGo): the client then gets only what its kernel kept. `halfOpen`: the client keeps its side open
 * after the server's FIN.
 */
async function sendReadLate(port: number, head: string, body: Buffer, halfOpen = false): Promise<{ data: string; error: string | null }> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: halfOpen });
  socket.pause();
  await within(new Promise((resolve) => socket.once('connect', resolve)), 5000, 'the connection');
  const clientPort = socket.localPort!;
  const closed = new Promise((resolve) => socket.once('close', resolve));
  let error: string | null = null;
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  socket.write(head);
  if (body.length > 0) socket.write(body);
  await until(() => serverLetGo(port, clientPort), 10000, 'the server to let go of the connection');
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  socket.on('end', () => socket.destroy());
  socket.resume();
  await within(closed, 5000, 'the connection to close');
  return { data, error };
}

const unreadBody = Buffer.alloc(BODY, 0x61);

describe('a whole response to a request whose body was not read, on a connection that closes after it', () => {
  const post = (version = '1.1', more = '') => `POST / HTTP/${version}\r\nHost: t\r\n${more}Content-Length: ${BODY}\r\n\r\n`;
  for (const [what, cls, more, head] of [
    ['-k sync', 'sync', [], post()],
    ["-k async, the client's Connection: close", 'async', [], post('1.1', 'Connection: close\r\n')],
    ['-k async, HTTP/1.0', 'async', [], post('1.0')],
    ['-k gthread, --keep-alive 0', 'gthread', ['--keep-alive', '0'], post()],
  ] as const) {
    it(`${what}: reaches a client that reads only after the server let go of the connection`, async () => {
      const { s, port } = await start(cls, APP, [...more]);
      // Once the response is sent, Node reads the unread body as fast as it comes, and may have read it all
      // before its close (no reset then): a few rounds, so that the old close fails the test nearly always.
      for (let round = 1; round <= 3; round++) {
        const r = await sendReadLate(port, head, unreadBody);
        assert.equal(r.error, null, `round ${round}`);
        assert.match(r.data, /^HTTP\/1\.1 200 OK\r\n(.+\r\n)*Connection: close\r\n(.+\r\n)*\r\nok$/, JSON.stringify(r.data));
      }
      // The worker serves on.
      assert.equal((await request(port, '/', { timeout: 5000 })).body, 'ok');
      await s.kill();
    });
  }
});

describe('-k async: other closes of a connection whose request body is unread', () => {
  it('body_timeout: its 408, and the part of a response begun, reach a client that reads late', async () => {
    const { s, port } = await start('async', APP, ['--body-timeout', '1']);
    const head = (target: string) => `POST ${target} HTTP/1.1\r\nHost: t\r\nContent-Length: ${BODY}\r\n\r\n`;
    const answered = await sendReadLate(port, head('/hang'), unreadBody);
    assert.equal(answered.error, null);
    assert.match(answered.data, /^HTTP\/1\.1 408 Request Timeout\r\n/, JSON.stringify(answered.data));
    const cut = await sendReadLate(port, head('/part-then-hang'), unreadBody);
    assert.equal(cut.error, null);
    assert.ok(cut.data.endsWith('\r\n\r\n4\r\npart\r\n'), JSON.stringify(cut.data));
    await s.kill();
  });

  it('a request body that fails to parse once the response has begun: the part sent reaches a client that reads late', async () => {
    const { s, port } = await start('async');
    // A chunk size that is not hex, then more of the body, unread.
    const head = 'POST /part-then-hang HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n';
    const r = await sendReadLate(port, head, unreadBody);
    assert.equal(r.error, null);
    assert.ok(r.data.endsWith('\r\n\r\n4\r\npart\r\n'), JSON.stringify(r.data));
    await s.kill();
  });

  it('a refused upgrade request with a body: its 400 reaches a client that reads late, and the worker lives on', async () => {
    // The app has an 'upgrade' listener; two Host fields are refused before it sees the request.
    const { s, port } = await start('async', path.join(FIXTURES, 'ws-whoami.ts'));
    const head =
      'GET /ws HTTP/1.1\r\nHost: h\r\nHost: i\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: ${BODY}\r\n\r\n`;
    const r = await sendReadLate(port, head, unreadBody);
    assert.equal(r.error, null);
    assert.match(r.data, /^HTTP\/1\.1 400 Bad Request\r\n/, JSON.stringify(r.data));
    // Node 26 hands such a request over as a stream of its own, without destroySoon: the close threw, out of the worker.
    assert.doesNotMatch(s.log, /Uncaught exception/);
    await s.kill();
  });
});

describe("-k sync: the gate's 400 for a bad first line", () => {
  it('reaches a client that reads late, and a client that keeps its side open does not hold the worker', async () => {
    const { s, port } = await start('sync', APP, ['--log-level', 'debug']);
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    socket.pause();
    await within(new Promise((resolve) => socket.once('connect', resolve)), 5000, 'the connection');
    const clientPort = socket.localPort!;
    socket.write('NOT A REQUEST LINE\r\n');
    socket.write(unreadBody);
    await s.waitFor(/Bad request from 127\.0\.0\.1: answered 400 Bad Request: invalid request line/);
    // -k sync serves one connection at a time: the next one is served though the first never closes.
    assert.equal((await request(port, '/', { timeout: 5000 })).body, 'ok');
    await until(() => serverLetGo(port, clientPort), 10000, 'the server to let go of the connection');
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    const ended = new Promise((resolve) => socket.once('end', resolve));
    socket.resume();
    await within(ended, 5000, "the server's FIN");
    assert.match(data, /^HTTP\/1\.1 400 Bad Request\r\n/);
    socket.destroy();
    await s.kill();
  });
});

for (const cls of ['async', 'sync', 'gthread']) {
  describe(`-k ${cls}: a response cut after its head went out`, () => {
    it('reaches a client that reads late, with its unread body: the part sent, then the end short of the body', async () => {
      const { s, port } = await start(cls);
      for (const target of ['/sync-throw', '/async-throw']) {
        const r = await postReadLate(s, port, target);
        assert.equal(r.error, null, `${target}: no reset`);
        assert.match(r.data, /^HTTP\/1\.1 200 OK\r\n/, target);
        // Chunked: the chunk written, and never the last chunk (0 CRLF CRLF) that would say the body is whole.
        assert.ok(r.data.endsWith('\r\n\r\n4\r\npart\r\n'), `${target}: ${JSON.stringify(r.data)}`);
        assert.deepEqual([r.line[1], r.line[2]], ['200', '4'], `${target}: the access log's status and bytes`);
      }
      const r = await postReadLate(s, port, '/async-throw-length');
      assert.equal(r.error, null);
      assert.match(r.data, /content-length: 100\r\n/);
      assert.ok(r.data.endsWith('\r\n\r\npart'), JSON.stringify(r.data));
      // A throw before the head: the 500, which the client reads even after the close.
      const first = await postReadLate(s, port, '/throw-first');
      assert.equal(first.error, null);
      assert.match(first.data, /^HTTP\/1\.1 500 Internal Server Error\r\n[\s\S]*\r\n\r\nInternal Server Error\n$/);
      for (const [target, message] of [
        ['/sync-throw', 'sync boom'],
        ['/async-throw', 'async boom'],
        ['/async-throw-length', 'async boom with a length'],
        ['/throw-first', 'boom before the head'],
      ])
        assert.equal(s.count(new RegExp(`\\[ERROR\\] Error handling request POST ${target}\\nError: ${message}\\n`)), 1, `one error line for ${target}`);
      assert.equal(s.count(/Error handling request/), 4);
      // The worker serves on.
      assert.equal((await request(port, '/')).body, 'ok');
      await s.kill();
    });

    it('holds a client that never reads for a bounded time, and serves the next one', async () => {
      const { s, port } = await start(cls);
      const socket = net.connect(port, '127.0.0.1');
      socket.pause();
      socket.on('error', () => {});
      socket.write(`POST /async-throw HTTP/1.1\r\nHost: t\r\nContent-Length: ${BODY}\r\n\r\n`);
      socket.write(Buffer.alloc(BODY, 0x61));
      const sent = Date.now();
      await until(() => accessLine('/async-throw').test(s.stdout), 10000, 'the access-log line');
      // The linger is a second; the bound leaves room for a loaded machine.
      assert.ok(Date.now() - sent < 5000, `closed after ${Date.now() - sent} ms`);
      // -k sync serves one connection at a time: the next one is served though the first client never read.
      assert.equal((await request(port, '/', { timeout: 5000 })).body, 'ok');
      socket.destroy();
      await s.kill();
    });
  });
}

describe('-k sync: a refused request whose body is still coming', () => {
  it('its answer reaches a client that reads only after the server is done with the connection', async () => {
    const { s, port } = await start('sync', APP, ['--log-level', 'debug']);
    // A close with the body unread loses the answer only when the reset beats the reads of Node's request
    // dump: a few rounds, so that the old close fails the test nearly always.
    for (let round = 1; round <= 5; round++) {
      const socket = net.connect(port, '127.0.0.1');
      socket.pause();
      const closed = new Promise((resolve) => socket.once('close', resolve));
      let error: string | null = null;
      socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
      // No Host: refused with a 400 before the app sees it, and its body is not read.
      socket.write(`POST / HTTP/1.1\r\nContent-Length: ${BODY}\r\n\r\n`);
      socket.write(Buffer.alloc(BODY, 0x61));
      await until(() => s.count(/Refused a request from 127\.0\.0\.1: 400 /) === round, 10000, `refusal ${round}`);
      // -k sync takes the next connection once that one has closed.
      assert.equal((await request(port, '/', { timeout: 5000 })).body, 'ok');
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
      socket.resume();
      await within(closed, 5000, 'the connection to close');
      assert.equal(error, null, `round ${round}`);
      assert.match(data, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*connection: close\r\n/, `round ${round}`);
    }
    await s.kill();
  });
});

describe('-k async: errors around a response', () => {
  it('an error after res.end() leaves the response whole and the connection open; one error line', async () => {
    const { s, port } = await start('async');
    const get = (t: string) => `GET ${t} HTTP/1.1\r\nHost: t\r\n\r\n`;
    const r = await exchange(port, [{ send: get('/after-end') }, { send: get('/'), pauseMs: 100 }], { want: 2, waitClose: false, ms: 5000 });
    assert.deepEqual(
      r.responses.map((x) => [x.status, x.body]),
      [
        [200, 'whole'],
        [200, 'ok'],
      ],
    );
    await s.waitFor(/\[ERROR\] Error handling request GET \/after-end\nError: boom after the end\n/);
    assert.equal(s.count(/Error handling request/), 1);
    await s.kill();
  });

  it('an error right after res.end() of a body still being sent does not cut it', async () => {
    const { s, port } = await start('async');
    const socket = net.connect(port, '127.0.0.1');
    socket.pause();
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('GET /after-end-big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    await s.waitFor(/\[ERROR\] Error handling request GET \/after-end-big\nError: boom after a big end\n/);
    let data = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => (data = Buffer.concat([data, d])));
    socket.resume();
    await within(closed, 10000, 'the response');
    const head = data.indexOf('\r\n\r\n');
    assert.match(data.subarray(0, head).toString('latin1'), /Content-Length: 8388608/);
    assert.equal(data.length - head - 4, 8 * 1024 * 1024, 'the whole body');
    await s.kill();
  });

  it('request_deadline cuts a response begun the same way', async () => {
    const { s, port } = await start('async', APP, ['--request-deadline', '1']);
    const r = await postReadLate(s, port, '/part-then-hang');
    assert.equal(r.error, null);
    assert.ok(r.data.endsWith('\r\n\r\n4\r\npart\r\n'), JSON.stringify(r.data));
    assert.match(s.log, /\[ERROR\] Request deadline exceeded: POST \/part-then-hang after 1\.\d s \(request_deadline 1 s\); connection cut\n/);
    await s.kill();
  });

  it('a Fetch Response body stream that fails mid-way: the chunks sent reach a client that reads late', async () => {
    const { s, port } = await start('async', path.join(FIXTURES, 'fetch-streams.ts'));
    const r = await postReadLate(s, port, '/broken');
    assert.equal(r.error, null);
    // Three chunks on Node 20; one on Node 26, which sends the writes of one tick together. No last chunk.
    assert.deepEqual(chunksOf(r.data), { body: 'xxx', rest: '' }, JSON.stringify(r.data));
    assert.equal(s.count(/\[ERROR\] Error handling request POST \/broken: the Fetch handler's Response body failed while it was being sent \(Error: broke\); the connection was cut\n/), 1);
    await s.kill();
  });

  it('HTTP/2: the stream is reset with INTERNAL_ERROR after the part sent, and the session serves on', async () => {
    const { s, port } = await start('async');
    // h2c: the test's peer, 127.0.0.1, is in forwarded_allow_ips by default.
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const get = (target: string) =>
      new Promise<{ status: unknown; body: string; rstCode: number | undefined }>((resolve) => {
        const req = session.request({ ':path': target });
        let body = '';
        let status: unknown;
        req.on('response', (h) => (status = h[':status']));
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('error', () => {});
        req.on('close', () => resolve({ status, body, rstCode: req.rstCode }));
        req.end();
      });
    const cut = await within(Promise.all([get('/sync-throw'), get('/async-throw'), get('/destroy-mid')]), 5000, 'the cut streams');
    // The app's own res.destroy() of an unfinished response too: Node's NO_ERROR read as a whole response.
    for (const r of cut) assert.deepEqual(r, { status: 200, body: 'part', rstCode: http2.constants.NGHTTP2_INTERNAL_ERROR });
    assert.deepEqual(await within(get('/'), 5000, 'a stream after them'), { status: 200, body: 'ok', rstCode: http2.constants.NGHTTP2_NO_ERROR });
    session.close();
    assert.equal(s.count(/Error handling request GET \/sync-throw\n/), 1);
    assert.equal(s.count(/Error handling request GET \/async-throw\n/), 1);
    await s.kill();
  });
});
