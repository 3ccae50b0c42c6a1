/**
 * The connection gate over real loopback sockets, both ways it sees a connection's first bytes: read at accept
 * with native/peek.c (a valid first chunk goes to Node's parser at once), and read through JavaScript (no
 * module, nothing had arrived yet, or the first line is not whole). Each way must serve a valid request and
 * refuse a bad request line with a 400. The module is what `npm run build` compiles where a C compiler is found
 * (CI installs one). Its look that leaves the bytes in place (peek) serves a gthread worker's hand-over.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { resolveConfig } from '../../src/config/resolve.js';
import type { Config } from '../../src/config/registry.js';
// From dist: the native module is found next to the compiled code (dist/native/peek.node).
import { ConnectionGate } from '../../dist/http/connection.js';
import { holdsRequestBytes, openPeek, openRead, type Peek } from '../../dist/http/peek.js';
import { ErrorLog } from '../../dist/logging/error-log.js';
import { until } from '../helpers/server.js';

const EAGAIN = 11;
const REQUEST = 'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n';

const fdOf = (s: net.Socket): number => (s as net.Socket & { _handle: { fd: number } })._handle.fd;

/** A client and the server's end of its connection, accepted paused (as tunicorn's acceptors do). */
class Pair {
  readonly sockets: net.Socket[] = [];
  readonly #server = net.createServer({ pauseOnConnect: true, noDelay: true }, (s) => this.#accepted.push(s));
  readonly #accepted: net.Socket[] = [];

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Connects, writes `first` (unless empty), and returns both ends once the server accepted. */
  async connect(port: number, first: string): Promise<{ client: net.Socket; server: net.Socket; answer: Promise<string> }> {
    const client = net.connect(port, '127.0.0.1');
    this.sockets.push(client);
    let text = '';
    client.setEncoding('latin1');
    client.on('data', (c: string) => (text += c));
    client.on('error', () => {});
    const answer = new Promise<string>((r) => client.on('close', () => r(text)));
    await new Promise<void>((r) => client.once('connect', r));
    if (first) client.write(first);
    await until(() => this.#accepted.length > 0, 3000, 'the accept');
    const server = this.#accepted.shift()!;
    this.sockets.push(server);
    return { client, server, answer };
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.#server.close();
  }
}

describe('the connection gate', () => {
  let config: Config;
  let port = 0;
  const pair = new Pair();
  const log = new ErrorLog('-', 'critical');
  const app = http.createServer({ requireHostHeader: true }, (req, res) => {
    const body = `seen ${req.url}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, connection: 'close' });
    res.end(body);
  });

  before(async () => {
    ({ config } = await resolveConfig({ argv: ['app.ts'], env: {}, cwd: process.cwd() }));
    port = await pair.listen();
  });
  after(() => pair.close());

  /**
   * Runs `first` through a gate once it has arrived (for the read at accept to find it); returns the answer and
   * how many bytes the socket's stream had read when the gate passed it on (null: never passed on).
   */
  async function through(gate: ConnectionGate, first: string): Promise<{ readAtPass: number | null; answer: string }> {
    const { server, answer } = await pair.connect(port, first);
    await until(() => (peek as Peek)(fdOf(server)) >= first.length, 3000, 'the request bytes');
    let readAtPass: number | null = null;
    gate.accept(
      server,
      (s) => {
        readAtPass = s.bytesRead;
        app.emit('connection', s);
      },
      () => assert.fail('no h2c here'),
    );
    const text = await answer;
    return { readAtPass, answer: text };
  }

  const peek = openPeek();

  it('native/peek.c is built, and looks without reading', async () => {
    assert.equal(typeof peek, 'function', `dist/native/peek.node is built and loads (needs a C compiler at build time): ${String(peek)}`);
    const p = peek as Peek;
    const { client, server } = await pair.connect(port, '');
    assert.equal(p(fdOf(server)), -EAGAIN, 'nothing sent yet');
    client.write(REQUEST);
    await until(() => p(fdOf(server)) === REQUEST.length, 3000, 'the request bytes');
    assert.equal(Buffer.from(p.buffer, 0, REQUEST.length).toString('latin1'), REQUEST);
    assert.equal(p(fdOf(server)), REQUEST.length, 'a second look finds the same bytes');
    const read = await new Promise<string>((r) => {
      server.once('data', (c: Buffer) => r(c.toString('latin1')));
      server.resume();
    });
    assert.equal(read, REQUEST, 'the bytes are still there to read');
    assert.throws(() => p(-1), /fd must be an open descriptor/);
  });

  it('native/peek.c reads: the bytes are taken, and the next read finds none', async () => {
    const read = openRead();
    assert.equal(typeof read, 'function', `dist/native/peek.node has openRead(): ${String(read)}`);
    const r = read as Peek;
    const { client, server } = await pair.connect(port, '');
    assert.equal(r(fdOf(server)), -EAGAIN, 'nothing sent yet');
    client.write(REQUEST);
    await until(() => (peek as Peek)(fdOf(server)) === REQUEST.length, 3000, 'the request bytes');
    assert.equal(r(fdOf(server)), REQUEST.length);
    assert.equal(Buffer.from(r.buffer, 0, REQUEST.length).toString('latin1'), REQUEST);
    assert.equal(r(fdOf(server)), -EAGAIN, 'taken: nothing left to read');
    client.end();
    await until(() => (peek as Peek)(fdOf(server)) === 0, 3000, 'the FIN');
    assert.equal(r(fdOf(server)), 0, 'the peer closed');
    assert.throws(() => r(-1), /fd must be an open descriptor/);
  });

  it('holdsRequestBytes: unread bytes may be a request unless they are empty lines (CR, LF) alone', async () => {
    // What decides whether an idle connection may be closed (keep-alive sweep, a stop): empty lines start no
    // request (llhttp skips them), so a client sending them without pause must not keep its connection.
    const p = peek as Peek;
    const { client, server } = await pair.connect(port, '');
    const fd = fdOf(server);
    assert.equal(holdsRequestBytes(p, fd), false, 'nothing sent yet');
    client.write('\r\n\n\r');
    await until(() => p(fd) === 4, 3000, 'the empty lines');
    assert.equal(holdsRequestBytes(p, fd), false, 'empty lines alone');
    client.write('G');
    await until(() => p(fd) === 5, 3000, 'the first byte of a request');
    assert.equal(holdsRequestBytes(p, fd), true, 'empty lines, then a request begins');
    assert.equal(holdsRequestBytes(p, -1), false, 'no descriptor of its own (TLS)');
  });

  it('with the PROXY protocol on, the header is read first: no look, and no buffer for one', async () => {
    const { config: proxied } = await resolveConfig({ argv: ['--proxy-protocol', 'v1', 'app.ts'], env: {}, cwd: process.cwd() });
    assert.equal(new ConnectionGate(proxied, log).how, 'reading them in JavaScript (proxy_protocol v1)');
  });

  it('with the module, a valid first line already there: read at accept, handed to the parser, and served', async () => {
    const gate = new ConnectionGate(config, log, openRead());
    assert.match(gate.how, /native read/);
    let answered = false;
    const { server, answer } = await pair.connect(port, REQUEST);
    await until(() => (peek as Peek)(fdOf(server)) >= REQUEST.length, 3000, 'the request bytes');
    let readAtPass: number | null = null;
    const served = http.createServer((req, res) => {
      answered = true;
      app.emit('request', req, res);
    });
    gate.accept(server, (s) => {
      readAtPass = s.bytesRead;
      served.emit('connection', s);
    }, () => assert.fail('no h2c here'));
    assert.equal(readAtPass, 0, 'the stream had read nothing');
    assert.equal(answered, true, 'the request ran during the accept, with no wait for the socket to be readable');
    assert.match(await answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*seen \/hello$/);
  });

  it('with the module, a first line cut short: handed on as it is (the parser waits for the rest), and served', async () => {
    const { client, server, answer } = await pair.connect(port, 'GET /hel');
    await until(() => (peek as Peek)(fdOf(server)) === 8, 3000, 'the first bytes');
    let readAtPass: number | null = null;
    new ConnectionGate(config, log, openRead()).accept(server, (s) => {
      readAtPass = s.bytesRead;
      app.emit('connection', s);
    }, () => assert.fail('no h2c here'));
    // As when those bytes come through JavaScript: the line is checked when its end is in the first chunk.
    assert.equal(readAtPass, 0, 'passed on with the bytes read at accept');
    client.write('lo HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(await answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*seen \/hello$/);
  });

  it('with the module, a peer that closed before sending anything: closed at accept', async () => {
    const { client, server } = await pair.connect(port, '');
    client.end();
    await until(() => (peek as Peek)(fdOf(server)) === 0, 3000, 'the FIN');
    new ConnectionGate(config, log, openRead()).accept(server, () => assert.fail('nothing to serve'), () => assert.fail('no h2c here'));
    assert.equal(server.destroyed, true);
  });

  it('with the module and h2c offered (the default): a POST goes the fast way, an h2c preface the JavaScript way', async () => {
    assert.deepEqual(config.httpProtocols, ['h2', 'h1']);
    const post = await through(new ConnectionGate(config, log, openRead()), 'POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
    assert.equal(post.readAtPass, 0);
    assert.match(post.answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*seen \/hello$/);
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
    const { client, server } = await pair.connect(port, preface);
    await until(() => (peek as Peek)(fdOf(server)) === preface.length, 3000, 'the preface');
    let h2c: Duplex | null = null;
    new ConnectionGate(config, log, openRead()).accept(server, () => assert.fail('not HTTP/1'), (stream) => (h2c = stream));
    await until(() => h2c !== null, 3000, 'the h2c hand-over');
    const head = await new Promise<Buffer>((r) => h2c!.once('data', r));
    assert.equal(head.toString('latin1'), preface, 'the stream starts with the bytes read at accept');
    client.destroy();
  });

  it('with the module, a bad first line: read, refused with a 400, and closed', async () => {
    const { server, answer } = await pair.connect(port, 'GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => (peek as Peek)(fdOf(server)) > 0, 3000, 'the request bytes');
    new ConnectionGate(config, log, openRead()).accept(server, () => assert.fail('never passed on'), () => assert.fail('no h2c here'));
    assert.match(await answer, /^HTTP\/1\.1 400 Bad Request\r\n[^]*\r\nContent-Length: 38\r\n[^]*\r\n\r\n400 Bad Request: invalid request line\n$/);
    // The client closes on the server's FIN; the server's end must see the client's in turn (a sync worker
    // waits for that close before it serves the next connection).
    await until(() => server.destroyed, 3000, "the server's end closed");
  });

  it('empty lines before the first request line, CR and LF in any mix: skipped as the parser skips them, both ways', async () => {
    for (const [how, read] of [['with the module', openRead()], ['without it', 'TUNICORN_NATIVE=0']] as const) {
      for (const before of ['\n', '\r', '\r\r\n', '\n\r\n']) {
        const ok = await through(new ConnectionGate(config, log, read), `${before}${REQUEST}`);
        assert.match(ok.answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*seen \/hello$/, `${how}, after ${JSON.stringify(before)}`);
      }
      const bad = await through(new ConnectionGate(config, log, read), '\n\rGET /hello\r\n\r\n');
      assert.equal(bad.readAtPass, null, `${how}: the line after them is checked`);
      assert.match(bad.answer, /^HTTP\/1\.1 400 Bad Request\r\n[^]*400 Bad Request: invalid request line\n$/);
    }
  });

  it('with the module, nothing there yet: read through JavaScript, and served', async () => {
    const gate = new ConnectionGate(config, log, openRead());
    const { client, server, answer } = await pair.connect(port, '');
    let readAtPass: number | null = null;
    gate.accept(server, (s) => {
      readAtPass = s.bytesRead;
      app.emit('connection', s);
    }, () => assert.fail('no h2c here'));
    assert.equal(readAtPass, null, 'waits for the first bytes');
    client.write(REQUEST);
    assert.match(await answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*seen \/hello$/);
    assert.equal(readAtPass, REQUEST.length);
  });

  it('without the module (TUNICORN_NATIVE=0): read through JavaScript, served, and a bad line refused', async () => {
    const gate = new ConnectionGate(config, log, 'TUNICORN_NATIVE=0');
    assert.match(gate.how, /reading them in JavaScript \(TUNICORN_NATIVE=0\)/);
    const ok = await through(gate, REQUEST);
    assert.equal(ok.readAtPass, REQUEST.length);
    assert.match(ok.answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*seen \/hello$/);
    const bad = await through(gate, 'GET /hello\r\n\r\n');
    assert.equal(bad.readAtPass, null);
    assert.match(bad.answer, /^HTTP\/1\.1 400 Bad Request\r\n[^]*\r\n\r\n400 Bad Request: invalid request line\n$/);
  });
});
