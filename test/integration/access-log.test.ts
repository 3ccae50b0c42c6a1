/**
 * The access log and StatsD against what went on the wire, over raw sockets (net.connect), for each worker
 * class:
 * - every answer tunicorn gives without the app has its line and its StatsD count: a request Node's parser
 *   rejects (400), a header section over the limits (431), too many fields (431), a first request line the
 *   gate refuses (400), header_timeout (408), a missing Host (400); over TLS an HTTP/2 stream refused (431) and
 *   a malformed first line of HTTP/1.1 (400); a request
 *   never parsed has `-` for its request line and version, and its body bytes are those sent
 * - request_deadline's 503 and body_timeout's 408, written past the app's response, log the body bytes sent
 * - a client that leaves before the answer: `-` for the status and `%(b)s` (not nginx's 499), no StatsD status
 * - a request body its client cut short after the answer gets nothing more on the wire and no second line
 * - a HEAD response logs 0 body bytes, the bytes the client got, whatever its Content-Length says
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { exchange, type RawResult } from '../helpers/raw.js';
import { FIXTURES, Server, stopAll, until } from '../helpers/server.js';
import { selfSigned } from '../helpers/tls.js';

after(stopAll);

// Answers `ok` at `/`, five bytes with their Content-Length at `/length`; `/hang` is never answered, its body
// never read.
const APP = path.join(FIXTURES, 'cut-responses.mjs');
const FORMAT = 'ACCESS "%(r)s" %(s)s %(b)s %(B)s %(H)s %(m)s %(U)s';
const LIMITS = ['--limit-request-fields', '10', '--limit-request-field_size', '200', '--limit-request-line', '500'];

/** A StatsD server on 127.0.0.1, port 0, keeping every line. */
async function statsdSink(): Promise<{ socket: dgram.Socket; lines: string[]; port: number }> {
  const socket = dgram.createSocket('udp4');
  const lines: string[] = [];
  socket.on('message', (m) => lines.push(...m.toString('latin1').split('\n')));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, lines, port: socket.address().port };
}

/** The sum of a StatsD counter's lines. */
function counted(lines: string[], name: string): number {
  let n = 0;
  for (const l of lines) if (l.startsWith(`${name}:`) && l.includes('|c')) n += Number(l.slice(name.length + 1, l.indexOf('|')));
  return n;
}

/** Sends `bytes` on a new connection and reads until the server closes (or one answer came, `keep`). */
function send(port: number, bytes: string, keep = false): Promise<RawResult> {
  return exchange(port, [{ send: bytes }], { want: 1, waitClose: !keep, ms: 8000 });
}

/** The next access-log line of the server's stdout from `from` that matches. */
async function lineAfter(s: Server, from: number, re: RegExp): Promise<RegExpMatchArray> {
  let m: RegExpMatchArray | null = null;
  await until(() => (m = s.stdout.slice(from).match(re)) !== null, 10000, `an access-log line matching ${re}; stdout:\n${s.stdout}`);
  return m!;
}

for (const cls of ['async', 'sync', 'gthread']) {
  describe(`access log and StatsD of the answers tunicorn gives itself (${cls})`, () => {
    let s: Server;
    let port: number;
    let sink: Awaited<ReturnType<typeof statsdSink>>;
    before(async () => {
      sink = await statsdSink();
      s = new Server([
        // Sweeps every 0.5 s see both: a stalled body's 408 comes 1 to 1.5 s after its last byte, the deadline's
        // 503 3 to 3.5 s after the request. With the deadline at 2 s, a loop starved for a second on a busy host
        // answered the stalled body with the 503.
        '-b', '127.0.0.1:0', '-w', '1', '-k', cls, '--header-timeout', '1', '--body-timeout', '1', '--request-deadline', '3',
        '--access-logfile', '-', '--access-logformat', FORMAT, '--statsd-host', `127.0.0.1:${sink.port}`, ...LIMITS, APP,
      ]);
      port = await s.port();
      await s.waitFor(/Ready: 1 worker/);
    });
    after(async () => {
      sink.socket.close();
      await s.kill();
    });

    it('logs and counts each refusal with its status and the body bytes sent', async () => {
      const cases: { what: string; bytes: string; line: RegExp; status: number }[] = [
        { what: 'a header Node parser rejects', bytes: 'GET /p HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n', status: 400, line: /ACCESS "-" 400 (\d+) (\d+) - - -\n/ },
        {
          what: 'a field far over limit_request_field_size (the header section over its bound)',
          bytes: `GET /big HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(6000)}\r\n\r\n`,
          status: 431,
          line: /ACCESS "(?:-|GET \/big HTTP\/1\.1)" 431 (\d+) (\d+) /,
        },
        {
          what: 'more fields than limit_request_fields',
          bytes: `GET /fields HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 12 }, (_, i) => `X-${i}: v\r\n`).join('')}\r\n`,
          status: 431,
          line: /ACCESS "(?:-|GET \/fields HTTP\/1\.1)" 431 (\d+) (\d+) /,
        },
        { what: 'a malformed first request line (the gate)', bytes: 'get / HTTP/1.1\r\nHost: x\r\n\r\n', status: 400, line: /ACCESS "-" 400 (\d+) (\d+) - - -\n/ },
        { what: 'no Host', bytes: 'GET /nohost HTTP/1.1\r\n\r\n', status: 400, line: /ACCESS "GET \/nohost HTTP\/1\.1" 400 (\d+) (\d+) HTTP\/1\.1 GET \/nohost\n/ },
        { what: 'a header section not complete within header_timeout', bytes: 'GET /slow HTTP/1.1\r\nHost: x\r\n', status: 408, line: /ACCESS "-" 408 (\d+) (\d+) - - -\n/ },
      ];
      const already = counted(sink.lines, 'gunicorn.requests');
      for (const c of cases) {
        const from = s.stdout.length;
        const got = await send(port, c.bytes);
        assert.equal(got.responses.length, 1, `${c.what}: one answer; got ${JSON.stringify(got)}`);
        const answer = got.responses[0]!;
        assert.equal(answer.status, c.status, c.what);
        const m = await lineAfter(s, from, c.line);
        // %(b)s and %(B)s: the body bytes the client got.
        assert.equal(Number(m[1]), Buffer.byteLength(answer.body, 'latin1'), `${c.what}: ${m[0]}`);
        assert.equal(m[2], m[1]);
      }
      // StatsD counts what the access log has: each refusal, by its status.
      const want = already + cases.length;
      await until(() => counted(sink.lines, 'gunicorn.requests') >= want, 5000, `StatsD counts; lines: ${sink.lines.join(' ')}`);
      assert.equal(counted(sink.lines, 'gunicorn.requests'), want);
      assert.equal(counted(sink.lines, 'gunicorn.request.status.400'), 3);
      assert.equal(counted(sink.lines, 'gunicorn.request.status.431'), 2);
      assert.equal(counted(sink.lines, 'gunicorn.request.status.408'), 1);
    });

    it('logs the body bytes of request_deadline\'s 503 and body_timeout\'s 408, which it writes past the app', async () => {
      for (const c of [
        { bytes: 'GET /hang HTTP/1.1\r\nHost: x\r\n\r\n', status: 503, line: /ACCESS "GET \/hang HTTP\/1\.1" 503 (\d+) (\d+) / },
        { bytes: 'POST /hang HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab', status: 408, line: /ACCESS "POST \/hang HTTP\/1\.1" 408 (\d+) (\d+) / },
      ]) {
        const from = s.stdout.length;
        const got = await send(port, c.bytes);
        assert.equal(got.responses[0]?.status, c.status, JSON.stringify(got));
        const m = await lineAfter(s, from, c.line);
        assert.ok(got.responses[0]!.body.length > 0);
        assert.equal(Number(m[1]), Buffer.byteLength(got.responses[0]!.body, 'latin1'), m[0]);
        assert.equal(m[2], m[1]);
      }
    });

    it('logs `-` for the status and the bytes of a request whose client left before the answer (no 499: none was sent)', async () => {
      const from = s.stdout.length;
      const logFrom = s.log.length;
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write('GET /hang?note HTTP/1.1\r\nHost: x\r\n\r\n');
      await s.waitFor(/app: hanging/, 10000, logFrom);
      // Gone (a reset): a client that only half-closes still gets its answer.
      socket.resetAndDestroy();
      const m = await lineAfter(s, from, /ACCESS "GET \/hang\?note HTTP\/1\.1" (\S+) (\S+) (\S+) /);
      assert.deepEqual([m[1], m[2], m[3]], ['-', '-', '0'], m[0]);
      // StatsD counts the request, and no status for it: every other request of this server has one.
      const statusSum = () => sink.lines.filter((l) => l.startsWith('gunicorn.request.status.')).reduce((n, l) => n + Number(l.slice(l.indexOf(':') + 1, l.indexOf('|'))), 0);
      await until(() => counted(sink.lines, 'gunicorn.requests') === statusSum() + 1, 5000, `one request without a status; lines: ${sink.lines.join(' ')}`);
    });

    it('writes nothing more and no line of its own for a body its client cut short after the answer (the request has its line)', async () => {
      const from = s.stdout.length;
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (data += d));
      const closed = new Promise((resolve) => socket.once('close', resolve));
      // Answered at once, its body never read; then the client ends its side 8 bytes short of that body.
      socket.write('POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab');
      await until(() => data.includes('\r\n\r\nwhole'), 5000, 'the answer');
      socket.end();
      await closed;
      // The answer and nothing after it: Node's parser fails on the short body (HPE_INVALID_EOF_STATE), and a
      // second status line for a request already answered would be read as the answer to a request never sent.
      assert.match(data, /^HTTP\/1\.1 200 [^]*\r\n\r\nwhole$/, JSON.stringify(data));
      // One worker, one thread: its lines come in order, so the next request's line follows any line of this one.
      const next = await send(port, 'GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.equal(next.responses[0]?.status, 200);
      await lineAfter(s, from, /ACCESS "GET \/after HTTP\/1\.1" 200 /);
      const lines = s.stdout.slice(from).split('\n').filter((l) => l.startsWith('ACCESS '));
      assert.deepEqual(lines.map((l) => l.split(' ').slice(1, 6).join(' ')), ['"POST /length HTTP/1.1" 200 5', '"GET /after HTTP/1.1" 200 2']);
    });

    it('logs 0 body bytes for a HEAD response, whatever its Content-Length', async () => {
      for (const [target, status] of [['/length', 200], ['/hang', 503]] as const) {
        const from = s.stdout.length;
        const head = await send(port, `HEAD ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        // Headers only (the helper's parser waits for the body a Content-Length announces: the answer is its `rest`).
        assert.match(head.rest, new RegExp(`^HTTP/1\\.1 ${status} [^]*\\r\\nContent-Length: [1-9]\\d*\\r\\n[^]*\\r\\n\\r\\n$`, 'i'));
        await lineAfter(s, from, new RegExp(`ACCESS "HEAD ${target.replace('/', '\\/')} HTTP/1\\.1" ${status} 0 0 HTTP/1\\.1 HEAD `));
      }
    });
  });
}

describe('access log of the requests tunicorn refuses over TLS', () => {
  it('logs an HTTP/2 stream answered 431 with its request line, and a malformed HTTP/1.1 first line', async () => {
    const certs = selfSigned();
    const s = new Server([
      '-b', '127.0.0.1:0', '-w', '1', '--certfile', certs.cert, '--keyfile', certs.key, '--http-protocols', 'h2,h1',
      '--access-logfile', '-', '--access-logformat', FORMAT, ...LIMITS, APP,
    ]);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    const client = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    after(() => client.destroy());
    const req = client.request({ ':path': '/h2big', 'x-big': 'a'.repeat(400) });
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (d: string) => (body += d));
    const [headers] = (await new Promise((resolve) => req.once('response', (h) => resolve([h])))) as [http2.IncomingHttpHeaders];
    await new Promise((resolve) => req.once('end', resolve));
    assert.equal(headers[':status'], 431);
    const m = await lineAfter(s, 0, /ACCESS "GET \/h2big HTTP\/2\.0" 431 (\d+) (\d+) HTTP\/2\.0 GET \/h2big\n/);
    assert.equal(Number(m[1]), Buffer.byteLength(body, 'latin1'));
    client.close();

    const from = s.stdout.length;
    const h1 = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    after(() => h1.destroy());
    let data = '';
    h1.setEncoding('latin1');
    h1.on('data', (d: string) => (data += d));
    h1.on('error', () => {});
    h1.write('get / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => h1.once('close', resolve));
    assert.match(data, /^HTTP\/1\.1 400 /);
    const sent = Buffer.byteLength(data.slice(data.indexOf('\r\n\r\n') + 4), 'latin1');
    const line = await lineAfter(s, from, /ACCESS "-" 400 (\d+) (\d+) - - -\n/);
    assert.equal(Number(line[1]), sent);
    await s.kill();
  });
});
