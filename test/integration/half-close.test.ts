/**
 * A client that half-closes its side after its request (shutdown(SHUT_WR): `nc -N`, some health checks) and
 * reads the answer only later, under each worker class (test/fixtures/half-close.mjs):
 * - a large response written under backpressure (32 MiB, 64 KiB writes waiting for 'drain') arrives whole, and
 *   the connection closes after it. Node's own reading of the FIN ended the connection, and the client got
 *   what the socket buffers held then (3.75 MiB) and a close
 * - the same with a second request pipelined behind it (sync and keepalive 0: one request per connection, the
 *   first whole)
 * - HEAD requests, pipelined: both heads, then the close
 * - a stream with nothing queued for its client (an idle event stream) is still closed at the FIN: the app
 *   learns at once that its client may be gone
 * - request_deadline still cuts a response to a half-closed client that never reads
 * - HTTP/1.1 over TLS (the client's close_notify and FIN), on an https server and on an h2 one's HTTP/1.1
 *   fallback: the large response whole. The TLS socket ended itself at the FIN: 128 KiB came
 * - an upgraded connection (a raw upgrade, a CONNECT tunnel) is the app's: its client's FIN does not end the
 *   server's side under the app, which still sends after it (test/fixtures/half-close-upgrade.mjs)
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import tls from 'node:tls';
import { FIXTURES, Server, stopAll, within } from '../helpers/server.js';
import { selfSigned } from '../helpers/tls.js';

after(stopAll);

const APP = path.join(FIXTURES, 'half-close.mjs');
/** Far more than the socket buffers of both ends hold: most of it is written after the FIN. */
const BIG = 32 * 1024 * 1024;

async function start(args: string[]): Promise<{ s: Server; port: number }> {
  const s = new Server(['-b', '127.0.0.1:0', '-w', '1', ...args, APP]);
  const port = await s.port();
  await s.waitFor(/Ready: 1 worker/);
  return { s, port };
}

interface Answer {
  status: number;
  length: number;
  /** The body bytes that came (none for HEAD). */
  got: number;
}

/** The responses in `data`, read by their Content-Length (a HEAD response has no body). */
function answersOf(data: Buffer, head: boolean): Answer[] {
  const out: Answer[] = [];
  let at = 0;
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const fields = data.subarray(at, end).toString('latin1');
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(fields)?.[1] ?? 0);
    const want = head ? 0 : length;
    const got = Math.min(want, data.length - end - 4);
    out.push({ status: Number(fields.slice(9, 12)), length, got });
    at = end + 4 + got;
  }
  return out;
}

/**
 * Sends `requests`, half-closes, and starts reading only once the server's log matches `ready` (from now):
 * everything the client then reads, until the server closes the connection.
 */
async function halfCloseAndReadLate(s: Server, port: number, requests: string, ready: RegExp, secure = false): Promise<Buffer> {
  const from = s.log.length;
  const socket = secure
    ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
    : net.connect(port, '127.0.0.1');
  socket.pause();
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve());
    socket.once('error', reject);
  });
  socket.end(requests);
  await s.waitFor(ready, 10000, from);
  socket.resume();
  await within(closed, 20000, 'the server to close the connection');
  return Buffer.concat(chunks);
}

const get = (target: string, method = 'GET') => `${method} ${target} HTTP/1.1\r\nHost: t\r\n\r\n`;

/** Each class, and whether it serves one request per connection (the pipelined one is not answered). */
const classes: [string, string[], boolean][] = [
  ['async', ['-k', 'async'], false],
  ['async, keepalive 0', ['-k', 'async', '--keep-alive', '0'], true],
  ['sync', ['-k', 'sync'], true],
  ['gthread', ['-k', 'gthread', '--threads', '2'], false],
];

for (const [name, args, oneRequest] of classes) {
  describe(`a client that half-closes after its request (${name})`, () => {
    it('gets a large response written under backpressure whole, then the close', async () => {
      const { s, port } = await start(args);
      const data = await halfCloseAndReadLate(s, port, get(`/stream?size=${BIG}`), /fixture: FIN on \/stream\S* with (\d+) bytes queued/);
      // The case at hand: bytes were still queued for the client when its FIN came.
      assert.ok(Number(/fixture: FIN on \/stream\S* with (\d+) bytes queued/.exec(s.log)![1]) > 0, s.log);
      assert.deepEqual(answersOf(data, false), [{ status: 200, length: BIG, got: BIG }]);
      await s.kill();
    });

    it('gets the responses to the requests it pipelined before its FIN', async () => {
      const { s, port } = await start(args);
      // Node stops reading a connection while a response on it waits for 'drain': the FIN is read once the
      // client reads, with most of the first response still to write.
      const data = await halfCloseAndReadLate(s, port, get(`/stream?size=${BIG}`) + get('/stream?size=1000'), /fixture: \/stream\S* waits for drain/);
      assert.deepEqual(
        answersOf(data, false),
        [{ status: 200, length: BIG, got: BIG }, ...(oneRequest ? [] : [{ status: 200, length: 1000, got: 1000 }])],
      );
      await s.kill();
    });

    it('gets the heads of pipelined HEAD requests', async () => {
      const { s, port } = await start(args);
      const head = get(`/stream?size=${BIG}`, 'HEAD');
      const data = await halfCloseAndReadLate(s, port, head + head, /fixture: HEAD \/stream\S* begins/);
      assert.deepEqual(answersOf(data, true), [{ status: 200, length: BIG, got: 0 }, ...(oneRequest ? [] : [{ status: 200, length: BIG, got: 0 }])]);
      await s.kill();
    });
  });
}

describe('a half-closed client, bounded', () => {
  it('an idle stream with nothing queued for its client is closed at the FIN', async () => {
    const { s, port } = await start(['-k', 'async']);
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.end(get('/idle'));
    await s.waitFor(/fixture: \/idle closed/, 5000);
    socket.destroy();
    await s.kill();
  });

  it('request_deadline cuts a response to a half-closed client that does not read', async () => {
    const { s, port } = await start(['-k', 'async', '--request-deadline', '1']);
    const data = await halfCloseAndReadLate(s, port, get(`/stream?size=${BIG}`), /Request deadline exceeded: GET \/stream after [\d.]+ s \(request_deadline 1 s\); connection cut/);
    const [answer] = answersOf(data, false);
    assert.equal(answer?.status, 200);
    assert.ok(answer.got < BIG, `got ${answer.got} of ${BIG}`);
    await s.kill();
  });
});

describe('an upgraded connection whose client half-closes is the app\'s', () => {
  // The app's upgrade and connect listeners answer the FIN with their last words: the FIN must not end the
  // server's side under them (it did, with the FIN read as above: the app's write was refused).
  const UPGRADE = path.join(FIXTURES, 'half-close-upgrade.mjs');
  const requests: [string, string][] = [
    ['an upgrade', 'GET /t HTTP/1.1\r\nHost: t\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n'],
    ['a CONNECT tunnel', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'],
  ];
  for (const [name, request] of requests) {
    for (const cls of ['async', 'gthread']) {
      it(`${name} (${cls}) still sends after the FIN`, async () => {
        const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', cls, UPGRADE]);
        const port = await s.port();
        await s.waitFor(/Ready: 1 worker/);
        const socket = net.connect(port, '127.0.0.1');
        const chunks: Buffer[] = [];
        socket.on('data', (c: Buffer) => chunks.push(c));
        const closed = new Promise<void>((resolve, reject) => {
          socket.once('close', () => resolve());
          socket.once('error', reject);
        });
        socket.write(request);
        // The FIN once the head has come: the connection is upgraded by then.
        await within(new Promise((resolve) => socket.once('data', resolve)), 10000, 'the upgrade');
        socket.end();
        await within(closed, 10000, 'the app to end the connection');
        assert.match(Buffer.concat(chunks).toString('latin1'), /\r\n\r\nbye, writable true\n$/);
        await s.kill();
      });
    }
  }
});

describe('a client that half-closes after its request, over TLS', () => {
  const certs = selfSigned();
  for (const [name, more] of [['https', []], ['h2 server, HTTP/1.1', ['--http-protocols', 'h2,h1']]] as const) {
    it(`gets a large response written under backpressure whole (${name})`, async () => {
      const { s, port } = await start(['--certfile', certs.cert, '--keyfile', certs.key, ...more]);
      const data = await halfCloseAndReadLate(s, port, get(`/stream?size=${BIG}`), /fixture: FIN on \/stream\S* with (\d+) bytes queued/, true);
      assert.deepEqual(answersOf(data, false), [{ status: 200, length: BIG, got: BIG }]);
      await s.kill();
    });
  }
});
