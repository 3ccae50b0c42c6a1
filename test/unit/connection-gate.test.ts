/**
 * The connection gate over real loopback sockets, both ways it sees a connection's first bytes: looked at in
 * place with native/peek.c (the socket reaches Node's parser unread), and read through JavaScript (no module,
 * or nothing had arrived yet). Each way must serve a valid request and refuse a bad request line with a 400.
 * The module is what `npm run build` compiles where a C compiler is found (CI installs one).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { resolveConfig } from '../../src/config/resolve.js';
import type { Config } from '../../src/config/registry.js';
// From dist: the native module is found next to the compiled code (dist/native/peek.node).
import { ConnectionGate } from '../../dist/http/connection.js';
import { openPeek, type Peek } from '../../dist/http/peek.js';
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
   * Runs `first` through a gate once it has arrived (for the in-place look to find it); returns the answer and
   * how many bytes the socket had read when the gate passed it on (null: never passed on).
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

  it('with the PROXY protocol on, the header is read first: no look, and no buffer for one', async () => {
    const { config: proxied } = await resolveConfig({ argv: ['--proxy-protocol', 'v1', 'app.ts'], env: {}, cwd: process.cwd() });
    assert.equal(new ConnectionGate(proxied, log).how, 'reading them in JavaScript (proxy_protocol v1)');
  });

  it('with the module, a valid first line already there: the socket reaches the parser unread, and is served', async () => {
    const gate = new ConnectionGate(config, log, peek);
    assert.match(gate.how, /native peek/);
    const r = await through(gate, REQUEST);
    assert.equal(r.readAtPass, 0);
    assert.match(r.answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*seen \/hello$/);
  });

  it('with the module and h2c offered (the default): a POST goes the fast way, an h2c preface the JavaScript way', async () => {
    assert.deepEqual(config.httpProtocols, ['h1', 'h2']);
    const post = await through(new ConnectionGate(config, log, peek), 'POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
    assert.equal(post.readAtPass, 0);
    assert.match(post.answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*seen \/hello$/);
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
    const { client, server } = await pair.connect(port, preface);
    await until(() => (peek as Peek)(fdOf(server)) === preface.length, 3000, 'the preface');
    let h2c: object | null = null;
    new ConnectionGate(config, log, peek).accept(server, () => assert.fail('not HTTP/1'), (stream) => (h2c = stream));
    assert.equal(h2c, null, 'decided on bytes read, not on bytes looked at');
    await until(() => h2c !== null, 3000, 'the h2c hand-over');
    client.destroy();
  });

  it('with the module, a bad first line: read and refused with a 400', async () => {
    const r = await through(new ConnectionGate(config, log, peek), 'GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(r.readAtPass, null, 'never passed on');
    assert.match(r.answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
  });

  it('with the module, nothing there yet: read through JavaScript, and served', async () => {
    const gate = new ConnectionGate(config, log, peek);
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
    assert.match(bad.answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
  });
});
