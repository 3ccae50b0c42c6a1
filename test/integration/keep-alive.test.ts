/**
 * The keep-alive timeout, kept by a sweep per worker rather than a timer per request (src/http/keep-alive.ts):
 * - each response advertises it (`Keep-Alive: timeout=N`), and an idle connection is closed no sooner than
 *   N + 1 s after its last response, and not long after;
 * - requests keep a connection open, however long it lives;
 * - a client reading a large response slowly is not cut off while the response is still being written;
 * - a request that came in while the worker's loop was busy past the timeout is answered, not reset, whether
 *   the turn's read saw it or it came after that read (the loop busy in it: a look at the kernel's bytes);
 * - a connection that is to close (the client's `Connection: close`, HTTP/1.0, the sync class, a worker
 *   stopping) says so and closes, whatever `Connection` the app set;
 * - empty lines (CR, LF) sent before a request line are ignored, and buy no time: a client trickling them after
 *   a response (or from the connection's start) has the connection closed as an idle one, on every worker
 *   class, plain and over TLS; a single one between two requests leaves both answered.
 * The pauses below are the clients' idle time, the input under test; every wait for the server is bounded.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { exchange, KeptConnection, parseResponses } from '../helpers/raw.js';
import { FIXTURES, Server, stopAll, within } from '../helpers/server.js';
import { selfSigned } from '../helpers/tls.js';

const KEEPALIVE_S = 1;
/** header_timeout for the empty-line clients: a fresh connection is closed at it, or idle keepalive + 1 s, whichever comes first. */
const EMPTY_LINES_HEADER_S = 3;
/** What the server may take past keepalive + 1 s: one sweep interval, and a loaded machine. */
const LATE_MS = 6000;
const GET = (target: string) => `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(`keep-alive timeout (--keep-alive ${KEEPALIVE_S})`, { concurrency: true }, () => {
  let port = 0;
  const open: net.Socket[] = [];

  before(async () => {
    const server = new Server(['-b', '127.0.0.1:0', '-w', '1', '--keep-alive', String(KEEPALIVE_S), path.join(FIXTURES, 'listener.ts')]);
    port = await server.port();
    await server.workersBooted(1);
  });
  after(async () => {
    for (const s of open) s.destroy();
    await stopAll();
  });

  it('advertises the timeout, and closes an idle connection no sooner than 1 s after it', async () => {
    const limit = (KEEPALIVE_S + 1) * 1000;
    const r = await exchange(port, [{ send: GET('/') }], { want: 1, waitClose: true, ms: limit + LATE_MS });
    const closedAt = performance.now();
    assert.equal(r.responses[0]?.status, 200);
    assert.equal(r.responses[0]?.headers['keep-alive'], `timeout=${KEEPALIVE_S}`);
    assert.ok(r.closed, `the idle connection was still open ${limit + LATE_MS} ms after its request`);
    const idle = closedAt - r.lastDataAt;
    assert.ok(idle >= limit - 50, `closed after ${idle.toFixed(0)} ms idle, before keepalive + 1 s (${limit} ms)`);
  });

  it('keeps a connection open while requests come, longer than the timeout', async () => {
    // Six requests 800 ms apart: the connection lives 4 s, twice keepalive + 1 s, never idle that long.
    const steps = Array.from({ length: 6 }, (_, i) => ({ send: GET('/pid'), pauseMs: i > 0 ? 800 : 0 }));
    const r = await exchange(port, steps, { want: 6, waitClose: false, ms: 15000 });
    assert.deepEqual(r.responses.map((x) => x.status), [200, 200, 200, 200, 200, 200]);
  });

  it('does not cut a response a slow client is still reading', async () => {
    // 32 MB fills the socket buffers on both sides: the rest waits in the worker while the client reads
    // nothing for 3.5 s, past keepalive + 1 s and a sweep.
    const socket = net.connect({ port, host: '127.0.0.1' });
    open.push(socket);
    socket.on('error', () => {});
    socket.pause();
    socket.write(GET('/big?mb=32'));
    await pause((KEEPALIVE_S + 1) * 1000 + 1500);
    assert.equal(socket.destroyed, false, 'the connection was closed while its response was being written');
    let got = 0;
    const total = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${got} bytes arrived within 20 s`)), 20000);
      const done = () => {
        clearTimeout(t);
        resolve(got);
      };
      socket.on('data', (d: Buffer) => {
        got += d.length;
        if (got > 32 * 1024 * 1024) done();
      });
      socket.once('close', done);
      socket.resume();
    });
    assert.ok(total > 32 * 1024 * 1024, `read ${total} bytes of a 32 MB response and its head`);
  });
});


describe('keep-alive timeout: a request that came while the loop was busy', () => {
  after(() => stopAll());

  it('is answered, not reset, when the sweep runs after the busy spell', async () => {
    // keepalive 2 s: B's block must begin before A's limit (3 s after a sweep first saw it idle), a margin for
    // a loaded machine, and last past it.
    const server = new Server(['-b', '127.0.0.1:0', '-w', '1', '--keep-alive', '2', path.join(FIXTURES, 'listener.ts')]);
    const port = await server.port();
    await server.workersBooted(1);
    const [a, b] = await Promise.all([KeptConnection.open(port), KeptConnection.open(port)]);
    try {
      assert.match((await a.ask('/pid')).raw, /^HTTP\/1\.1 200 /);
      // A is idle long enough for a sweep to mark it (the client's idle time, the input); then B blocks the
      // loop 4 s, past keepalive + 1 s, and A's next request reaches the worker meanwhile. The first sweep
      // after the block used to close A with that request unread: a reset.
      await pause(1000);
      const spun = b.ask('/spin?ms=4000&note');
      await server.waitFor(/app: spinning 4000 ms/);
      const got = await a.ask('/pid');
      assert.match(got.raw, /^HTTP\/1\.1 200 /, `A's request on its kept-alive connection got: ${JSON.stringify(got.raw)}`);
      assert.match((await spun).raw, /^HTTP\/1\.1 200 /);
    } finally {
      a.socket.destroy();
      b.socket.destroy();
    }
  });

  it('is answered, not reset, when it came after the last read before the sweep (the loop busy in that read)', async () => {
    // keepalive 1 s: A is closed once idle 2 s after a sweep first saw it so. C blocks the loop 1 s before A's
    // limit, B's request coming in meanwhile; the turn after, the sweep is queued (its timer late), then the
    // poll reads B, which blocks 1.5 s, past A's limit, while A's next request comes in; the sweep then finds
    // A idle with its byte count unchanged. Only a look at what the kernel holds tells it from an idle one.
    const server = new Server(['-b', '127.0.0.1:0', '-w', '1', '--keep-alive', '1', path.join(FIXTURES, 'listener.ts')]);
    const port = await server.port();
    await server.workersBooted(1);
    const [a, b, c] = await Promise.all([KeptConnection.open(port), KeptConnection.open(port), KeptConnection.open(port)]);
    try {
      assert.match((await a.ask('/pid')).raw, /^HTTP\/1\.1 200 /);
      // A idle long enough for a sweep to mark it (the client's idle time, the input).
      await pause(700);
      const cSpun = c.ask('/spin?ms=1000&note');
      await server.waitFor(/app: spinning 1000 ms/);
      const bSpun = b.ask('/spin?ms=1500&note');
      await server.waitFor(/app: spinning 1500 ms/);
      const got = await within(a.ask('/pid'), 20000, "A's answer");
      assert.match(got.raw, /^HTTP\/1\.1 200 /, `A's request on its kept-alive connection got: ${JSON.stringify(got.raw)}`);
      assert.match((await within(cSpun, 20000, "C's answer")).raw, /^HTTP\/1\.1 200 /);
      assert.match((await within(bSpun, 20000, "B's answer")).raw, /^HTTP\/1\.1 200 /);
    } finally {
      for (const k of [a, b, c]) k.socket.destroy();
    }
  });
});

describe("a connection that is to close closes, whatever Connection the app set", () => {
  // Node took an app's `Connection: keep-alive` as an order: the response said keep-alive and the connection
  // stayed open, against the client's close (RFC 9112 section 9.6) and the server's own decision (a stopping
  // worker's client could send its next request on a connection about to close).
  after(stopAll);
  const targets = ['/connection-keep-alive', '/connection-keep-alive?head'];

  it("the client's Connection: close, and HTTP/1.0 without keep-alive (async)", async () => {
    const server = new Server(['-b', '127.0.0.1:0', '-w', '1', path.join(FIXTURES, 'listener.ts')]);
    const port = await server.port();
    await server.workersBooted(1);
    for (const target of targets) {
      for (const send of [`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, `GET ${target} HTTP/1.0\r\n\r\n`]) {
        const r = await exchange(port, [{ send }], { want: 1, waitClose: true, ms: 3000 });
        assert.equal(r.responses[0]?.status, 200, send);
        assert.equal(r.responses[0]?.headers.connection, 'close', send);
        assert.ok(r.closed, `${send}: still open`);
      }
      // A client that keeps the connection gets the app's keep-alive.
      const kept = await exchange(port, [{ send: GET(target) }], { want: 1, waitClose: false, ms: 3000 });
      assert.equal(kept.responses[0]?.headers.connection, 'keep-alive');
    }
    await server.kill();
  });

  it('the sync class, and a worker stopping (TERM while the app answers)', async () => {
    const sync = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', 'sync', path.join(FIXTURES, 'listener.ts')]);
    const syncPort = await sync.port();
    await sync.workersBooted(1);
    for (const target of targets) {
      const r = await exchange(syncPort, [{ send: GET(target) }], { want: 1, waitClose: true, ms: 3000 });
      assert.equal(r.responses[0]?.headers.connection, 'close', target);
      assert.ok(r.closed, `${target}: still open`);
    }
    await sync.kill();
    const server = new Server(['-b', '127.0.0.1:0', '-w', '1', path.join(FIXTURES, 'listener.ts')]);
    const port = await server.port();
    await server.workersBooted(1);
    const answer = exchange(port, [{ send: GET('/connection-keep-alive?ms=800&note') }], { want: 1, waitClose: true, ms: 5000 });
    await server.waitFor(/app: answering keep-alive in 800 ms/);
    server.signal('SIGTERM');
    const r = await answer;
    assert.equal(r.responses[0]?.status, 200);
    assert.equal(r.responses[0]?.headers.connection, 'close');
    assert.equal((await server.exited).code, 0);
  });
});

/** How often the clients below send their empty lines. */
const EVERY_MS = 250;

interface Trickled {
  /** The server closed (or reset) the connection within the client's bound. */
  closed: boolean;
  /** From the first response (or, with no request, the connection's start) to the close, or to the bound. */
  idleMs: number;
  /** The status of each response, in order. */
  statuses: number[];
  /** How many times the bytes were sent. */
  sent: number;
}

/**
 * Opens a connection (`tls`: HTTP/1.1 by ALPN), sends `first` and waits for its answer (or, with null, starts at
 * once), then sends `bytes` every EVERY_MS until the server closes the connection or `maxMs` passes: a bounded
 * loop that ends by itself.
 */
function trickle(port: number, opts: { tls: boolean; first: string | null; bytes: string; maxMs: number }): Promise<Trickled> {
  return new Promise((resolve, reject) => {
    const to = { port, host: '127.0.0.1' };
    const socket = opts.tls ? tls.connect({ ...to, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }) : net.connect(to);
    let data = '';
    let from = 0;
    let sent = 0;
    let ticker: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearInterval(ticker);
      clearTimeout(bound);
      clearTimeout(noAnswer);
      socket.destroy();
      resolve({ closed, idleMs: performance.now() - from, statuses: parseResponses(data).responses.map((r) => r.status), sent });
    };
    let bound: NodeJS.Timeout | undefined;
    const start = () => {
      from = performance.now();
      bound = setTimeout(() => finish(false), opts.maxMs);
      ticker = setInterval(() => {
        if (!socket.writable) return;
        socket.write(opts.bytes);
        sent++;
      }, EVERY_MS);
    };
    const noAnswer = setTimeout(() => {
      if (from > 0 || settled) return;
      settled = true;
      socket.destroy();
      reject(new Error(`no answer to the first request within 15 s; got ${JSON.stringify(data)}`));
    }, 15000);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      data += d;
      if (from === 0 && parseResponses(data).responses.length > 0) start();
    });
    socket.on('close', () => finish(true));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') finish(true);
      else if (!settled) reject(err);
    });
    socket.once(opts.tls ? 'secureConnect' : 'connect', () => (opts.first === null ? start() : void socket.write(opts.first)));
  });
}

/**
 * Bytes that never start a request must not hold a connection open. llhttp skips CR and LF before a request line
 * (RFC 9112 section 2.2: a server SHOULD ignore at least one empty line there) without starting a message, so
 * neither header_timeout nor a request began; the keep-alive timeout counted every byte read as activity (Node's
 * own timer, on a TLS server that also speaks HTTP/2, did the same), and a client sending a bare CRLF every few
 * hundred ms kept a kept-alive connection open for good: a few hundred such clients held every
 * worker_connections place. Now such a connection closes keepalive + 1 s after its last response, as a silent one
 * does; one that has sent no request yet at header_timeout (or idle as long); and a single empty line between two
 * requests (a client library's stray CRLF after a POST body) is still ignored, both requests answered.
 */
describe(`empty lines before a request line (--keep-alive ${KEEPALIVE_S}, --header-timeout ${EMPTY_LINES_HEADER_S})`, { concurrency: true }, () => {
  const certs = selfSigned();
  const tlsArgs = ['--certfile', certs.cert, '--keyfile', certs.key];
  const kinds = [
    { name: 'async', args: [], tls: false, keeps: true },
    { name: 'gthread', args: ['-k', 'gthread', '--threads', '2'], tls: false, keeps: true },
    { name: 'sync', args: ['-k', 'sync'], tls: false, keeps: false },
    { name: 'async, TLS (h2,h1)', args: tlsArgs, tls: true, keeps: true },
    { name: 'async, TLS (h1)', args: [...tlsArgs, '--http-protocols', 'h1'], tls: true, keeps: true },
  ];
  const ports = new Map<string, number>();
  const limit = (KEEPALIVE_S + 1) * 1000;

  before(async () => {
    await Promise.all(
      kinds.map(async (k) => {
        const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--keep-alive', String(KEEPALIVE_S), '--header-timeout', String(EMPTY_LINES_HEADER_S), ...k.args, path.join(FIXTURES, 'listener.ts')]);
        ports.set(k.name, await s.port());
        await s.workersBooted(1);
      }),
    );
  });
  after(stopAll);

  for (const k of kinds) {
    for (const bytes of k.tls ? ['\r\n'] : ['\r\n', '\r', '\n']) {
      it(`${k.name}: ${JSON.stringify(bytes)} every ${EVERY_MS} ms after a response does not keep the connection open`, async () => {
        const r = await trickle(ports.get(k.name)!, { tls: k.tls, first: GET('/'), bytes, maxMs: limit + LATE_MS });
        assert.ok(r.closed, `still open ${r.idleMs.toFixed(0)} ms after its response, ${r.sent} empty lines later`);
        // Ignored: none is answered (a 400 would mean they were refused, not ignored).
        assert.deepEqual(r.statuses, [200]);
        if (k.keeps) {
          assert.ok(r.idleMs >= limit - 100, `closed ${r.idleMs.toFixed(0)} ms after its response, before keepalive + 1 s (${limit} ms)`);
          assert.ok(r.sent > 0);
        }
      });
    }

    it(`${k.name}: "\\r\\n" every ${EVERY_MS} ms from the connection's start: closed, no request having come`, async () => {
      // Idle that long (keepalive + 1 s, under async and gthread) or header_timeout, whichever comes first.
      const bound = Math.min(EMPTY_LINES_HEADER_S * 1000, limit + 500) + LATE_MS;
      const r = await trickle(ports.get(k.name)!, { tls: k.tls, first: null, bytes: '\r\n', maxMs: bound });
      assert.ok(r.closed, `still open ${r.idleMs.toFixed(0)} ms after it was made, ${r.sent} empty lines later`);
      assert.ok(r.statuses.every((s) => s === 408), `answered ${r.statuses.join(', ')}`);
    });

    it(`${k.name}: a connection's first request after empty lines of CR and LF in any mix is served, a bad line after them refused`, async () => {
      // As Node's parser takes them before every later request: the gate, which reads the first request line
      // before the parser does, refused a lone LF or CR there with a 400 until 2026-12-06.
      const port = ports.get(k.name)!;
      for (const before of ['\n', '\r', '\r\r\n', '\n\r\n\n', '\r\n\r\n']) {
        const r = await exchange(port, [{ send: `${before}${GET('/')}` }], { want: 1, waitClose: false, ms: 10000, tls: k.tls });
        assert.deepEqual(r.responses.map((x) => x.status), [200], `after ${JSON.stringify(before)}: ${r.rest}`);
      }
      const bad = await exchange(port, [{ send: '\n\rGET  / HTTP/1.1\r\nHost: x\r\n\r\n' }], { want: 1, waitClose: true, ms: 10000, tls: k.tls });
      assert.deepEqual(bad.responses.map((x) => x.status), [400], bad.rest);
    });

    const POST = 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello';
    if (k.keeps) {
      it(`${k.name}: a request, an empty line, another request: both answered`, async () => {
        const port = ports.get(k.name)!;
        const apart = await exchange(port, [{ send: GET('/') }, { send: '\r\n', pauseMs: 300 }, { send: GET('/pid'), pauseMs: 300 }], { want: 2, waitClose: false, ms: 10000, tls: k.tls });
        assert.deepEqual(apart.responses.map((x) => x.status), [200, 200], `apart: ${apart.rest}`);
        // A client library's CRLF after a POST body, the next request in the same write.
        const together = await exchange(port, [{ send: `${POST}\r\n${GET('/pid')}` }], { want: 2, waitClose: false, ms: 10000, tls: k.tls });
        assert.deepEqual(together.responses.map((x) => x.status), [200, 200], `together: ${together.rest}`);
      });
    } else {
      it(`${k.name}: a POST body followed by an empty line is answered, not refused`, async () => {
        const r = await exchange(ports.get(k.name)!, [{ send: `${POST}\r\n` }], { want: 1, waitClose: true, ms: 10000 });
        assert.deepEqual(r.responses.map((x) => x.status), [200]);
        assert.ok(r.closed);
      });
    }
  }
});
