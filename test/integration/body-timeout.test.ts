/**
 * body_timeout times the client, not the app (the real CLI, -k async, --body-timeout 1):
 * - a request whose whole body has come, answered by the app after more than body_timeout without reading
 *   it, is answered (HTTP/1.1: Node destroyed the socket, nothing sent or logged; HTTP/2: 408)
 * - a client that sends its body at once to an app that pauses longer than body_timeout between two reads
 *   gets the app's answer, the body whole, not 408
 * - a client that stops sending while the app waits for its body still gets 408, also while the app waits in a
 *   `for await` over the request (a request read so reports isPaused() all along)
 * - a stalled body pipelined behind a request whose answer takes longer than body_timeout gets its 408 after
 *   that answer, which comes whole (HTTP/1.1: the stalled request's answer waits its turn)
 * HTTP/1.1 and HTTP/2 (h2c, which 127.0.0.1 may speak).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exchange } from '../helpers/raw.js';
import { FIXTURES, Server, stopAll, until, within } from '../helpers/server.js';

after(stopAll);

const REASON = '408 Request Timeout: the request body stalled for longer than body_timeout (1 s)\n';
/** More than Node's buffers and the socket's take at once: the client is still sending when the app pauses. */
const BIG = Buffer.alloc(8 * 1024 * 1024, 0x61);

interface Answer {
  status: number | null;
  body: string;
  /** How the exchange failed, if it did (a reset, a connection closed with no answer). */
  error: string | null;
}

/** POSTs `parts` over HTTP/1.1 on a new connection; with `stall`, the body is never ended. */
function post1(port: number, target: string, parts: Buffer[], stall = false): Promise<Answer> {
  return new Promise((resolve) => {
    const length = parts.reduce((n, p) => n + p.length, 0) + (stall ? 1 : 0);
    const req = http.request({ host: '127.0.0.1', port, path: target, method: 'POST', agent: false, headers: { 'content-length': length } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, error: null }));
      res.on('error', (err) => resolve({ status: res.statusCode!, body, error: err.message }));
    });
    req.on('error', (err) => resolve({ status: null, body: '', error: err.message }));
    for (const p of parts) req.write(p);
    if (!stall) req.end();
  });
}

/** The same over HTTP/2 on `session`. */
function post2(session: http2.ClientHttp2Session, target: string, parts: Buffer[], stall = false): Promise<Answer> {
  return new Promise((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': target });
    let status: number | null = null;
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d: string) => (body += d));
    req.on('error', () => {});
    req.on('close', () => resolve({ status, body, error: req.rstCode ? `RST_STREAM ${req.rstCode}` : null }));
    for (const p of parts) req.write(p);
    if (!stall) req.end();
  });
}

describe('body_timeout counts the client\'s silence, not the app\'s', () => {
  let s: Server;
  let port = 0;
  before(async () => {
    s = new Server(['-b', '127.0.0.1:0', '--body-timeout', '1', '--access-logfile', '-', path.join(FIXTURES, 'slow-reader.mjs')]);
    port = await s.port();
    await s.workersBooted(1);
  });

  it('HTTP/1.1: a body all sent, answered 2.5 s later unread, gets the answer', async () => {
    const r = await within(post1(port, '/late?ms=2500', [Buffer.from('small body')]), 15000, 'the answer');
    assert.deepEqual(r, { status: 200, body: 'late\n', error: null });
  });

  it('HTTP/1.1: an app that pauses 2.5 s between two reads of a body sent at once reads it whole', async () => {
    const r = await within(post1(port, '/slow-read?pause=2500', [BIG]), 20000, 'the answer');
    assert.deepEqual(r, { status: 200, body: `read ${BIG.length}\n`, error: null });
  });

  it('HTTP/1.1: a client that stops sending while the app reads gets 408', async () => {
    const r = await within(post1(port, '/slow-read', [Buffer.from('part')], true), 15000, 'the 408');
    assert.equal(r.status, 408);
    assert.equal(r.body, REASON);
  });

  it('HTTP/1.1: a stalled body pipelined behind a slower answer gets its 408 after that answer', async () => {
    const started = performance.now();
    const r = await exchange(
      port,
      [{ send: 'GET /late?ms=2500 HTTP/1.1\r\nHost: x\r\n\r\nPOST /slow-read HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello' }],
      { want: 2, waitClose: true, ms: 15000 },
    );
    assert.deepEqual(
      r.responses.map((x) => [x.status, x.body]),
      [
        [200, 'late\n'],
        [408, REASON],
      ],
    );
    assert.equal(r.closed, true);
    assert.equal(r.rest, '');
    // Not before the first answer, which took 2.5 s.
    assert.ok(r.lastDataAt - started >= 2400, `answered after ${Math.round(r.lastDataAt - started)} ms`);
  });

  describe('HTTP/2 (h2c)', () => {
    let session: http2.ClientHttp2Session;
    before(() => {
      session = http2.connect(`http://127.0.0.1:${port}`);
      session.on('error', () => {});
    });
    after(() => session.destroy());

    it('a body all sent, answered 2.5 s later unread, gets the answer', async () => {
      const r = await within(post2(session, '/late?ms=2500', [Buffer.from('small body')]), 15000, 'the answer');
      assert.deepEqual(r, { status: 200, body: 'late\n', error: null });
    });

    it('an app that pauses 2.5 s between two reads of a body sent at once reads it whole', async () => {
      const r = await within(post2(session, '/slow-read?pause=2500', [BIG]), 20000, 'the answer');
      assert.deepEqual(r, { status: 200, body: `read ${BIG.length}\n`, error: null });
    });

    it('a client that stops sending while the app reads gets 408', async () => {
      const r = await within(post2(session, '/slow-read', [Buffer.from('part')], true), 15000, 'the 408');
      assert.equal(r.status, 408);
      assert.equal(r.body, REASON);
    });
  });

  it('logs each request with the status sent', async () => {
    const lines = (re: RegExp) => (s.stdout.match(new RegExp(re.source, 'g')) ?? []).length;
    // Two stalled POSTs over HTTP/1.1 (one pipelined), one over HTTP/2; the GET before the pipelined one.
    await until(() => lines(/"POST \/slow-read HTTP\/(1\.1|2\.0)" 408 /) === 3, 10000, 'the access log lines');
    assert.equal(lines(/"POST \/late\?ms=2500 HTTP\/(1\.1|2\.0)" 200 /), 2);
    assert.equal(lines(/"GET \/late\?ms=2500 HTTP\/1\.1" 200 /), 1);
    assert.equal(lines(/"POST \/slow-read\?pause=2500 HTTP\/(1\.1|2\.0)" 200 /), 2);
  });
});

describe("body_timeout's 408 and an app that answers the abort", () => {
  it('is logged as the 408 the client got, not the status the app set after it', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '--body-timeout', '1', '--access-logfile', '-', path.join(FIXTURES, 'answers-abort.mjs')]);
    const port = await s.port();
    const r = await within(post1(port, '/stalls', [Buffer.from('part')], true), 15000, 'the 408');
    assert.equal(r.status, 408);
    await until(() => /"POST \/stalls HTTP\/1\.1" \d+ /.test(s.stdout), 10000, 'the access log line');
    assert.match(s.stdout, /"POST \/stalls HTTP\/1\.1" 408 /);
    await s.kill();
  });

  it('a client that closes its side mid-body left: no 400 is sent, and the log has no status', async () => {
    // Before: tunicorn answered `400 Bad Request: malformed request` (Node's parser: HPE_INVALID_EOF_STATE),
    // logged 400, and the app's own answer to the abort was dropped for it.
    const s = new Server(['-b', '127.0.0.1:0', '--access-logfile', '-', path.join(FIXTURES, 'answers-abort.mjs')]);
    const port = await s.port();
    const r = await exchange(port, [{ send: 'POST /left HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart' }], { want: 0, waitClose: true, halfClose: true, ms: 10000 });
    assert.ok(r.closed, 'the server closed the connection');
    assert.deepEqual([r.responses, r.rest], [[], '']);
    await until(() => /"POST \/left HTTP\/1\.1" \S+ /.test(s.stdout), 10000, 'the access log line');
    assert.match(s.stdout, /"POST \/left HTTP\/1\.1" - - /);
    await s.kill();
  });
});

describe('body_timeout and an app that reads its body with for await', () => {
  let s: Server;
  let port = 0;
  before(async () => {
    s = new Server(['-b', '127.0.0.1:0', '--body-timeout', '1', path.join(FIXTURES, 'for-await-reader.mjs')]);
    port = await s.port();
    await s.workersBooted(1);
  });

  it('HTTP/1.1: a client that stops sending gets 408', async () => {
    const r = await within(post1(port, '/', [Buffer.from('part')], true), 8000, 'the 408');
    assert.equal(r.status, 408);
    assert.equal(r.body, REASON);
  });

  it('HTTP/2: a client that stops sending gets 408', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      const r = await within(post2(session, '/', [Buffer.from('part')], true), 8000, 'the 408');
      assert.equal(r.status, 408);
      assert.equal(r.body, REASON);
    } finally {
      session.destroy();
    }
  });

  it('a body sent whole is read whole', async () => {
    const r = await within(post1(port, '/', [BIG]), 20000, 'the answer');
    assert.deepEqual(r, { status: 200, body: `read ${BIG.length}\n`, error: null });
  });
});
