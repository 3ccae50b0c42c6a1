/**
 * App shapes on the real CLI, each with its real framework (one server per fixture, 1 worker, all started
 * at once and shared by the checks):
 * - a CommonJS (req, res) listener, compiled ESM's double default, a Fetch handler object, Express 4 (TS)
 *   and 5 (ESM JS), Koa (module.exports from .cts), an async factory resolving to Koa, Fastify (ready() before serving), Hono, NestJS with
 *   constructor injection (decorator metadata), a tsconfig `paths` import
 * - the detected shape is logged (and printed by --check-config); an unservable factory result stops the
 *   server with its type
 * - an http.Server the module made is served as it is: a ws WebSocketServer on it echoes through tunicorn
 * - a module that listen()s at import (Express), awaits its listen() at the top level (Fastify), or listens
 *   later (Nest bootstrap()): served on the bind address; its own port is never opened
 * - lifespan: startup() before the first request; shutdown() on max-requests recycling and on TERM;
 *   startup() under sync and gthread too (in each gthread thread); one that throws stops the server;
 *   Fastify's onClose and Nest's shutdown hooks run on TERM, once, also from a main.ts's enableShutdownHooks()
 * - a Fetch handler's AbortSignal fires when the client goes away; clientAddress() gives the client
 * - behind a proxy on loopback, Express `trust proxy` (also set on a Nest app) and Fastify `trustProxy` ('loopback') see what they
 *   see under their own listen(): the client, https from X-Forwarded-Proto, the host from X-Forwarded-Host
 * - an Express Router, express or Fastify themselves exported are refused at load in one line (a Router next to
 *   the module's own listen() is not: that server is served)
 * - a second server the module listens on itself that cannot listen (its port in use) ends the worker with a
 *   line naming it as the app's own server and where its listen() was called; one with the app's own 'error'
 *   listener is left to it
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { FIXTURES, request, Server, stopAll, until, within, type Reply } from '../helpers/server.js';
import { selfSigned } from '../helpers/tls.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const tmp = scratchDir('tunicorn-apps-');
const fx = (name: string) => path.join(FIXTURES, 'apps', name);

/**
 * A port the test itself holds open for the whole file: a module told to listen there would fail with
 * EADDRINUSE if tunicorn let its listen() through, and a connection reaching it would be counted. Holding the
 * port (rather than closing it and checking it stays closed) keeps another server from taking it meanwhile.
 */
interface HeldPort {
  port: number;
  connections: number;
}
const held: net.Server[] = [];
after(() => Promise.all(held.map((s) => new Promise((r) => s.close(r)))));
async function holdPort(): Promise<HeldPort> {
  const s = net.createServer();
  const h: HeldPort = { port: 0, connections: 0 };
  s.on('connection', (c) => {
    h.connections++;
    c.destroy();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  h.port = (s.address() as net.AddressInfo).port;
  held.push(s);
  return h;
}

interface Running {
  s: Server;
  port: number;
  lifespan: string;
}

const servers = new Map<string, Promise<Running>>();

/** One server per fixture (and argument list), started on first use and shared. */
function serve(fixture: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const key = [fixture, ...args].join(' ');
  let p = servers.get(key);
  if (!p) {
    const lifespan = path.join(tmp, `${key.replace(/\W+/g, '_')}.log`);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--log-level', 'debug', ...args, fixture], {
      env: { LIFESPAN_FILE: lifespan, ...env },
    });
    p = s.port().then((port) => ({ s, port, lifespan }));
    servers.set(key, p);
  }
  return p;
}

/** The first request may wait in the backlog while the worker boots (Nest, a cold transform cache). */
const first = (port: number, p: string, opts: Parameters<typeof request>[2] = {}): Promise<Reply> => request(port, p, { timeout: 30000, ...opts });

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');

const ownPorts = { listens: await holdPort(), fastify: await holdPort(), nest: await holdPort(), hono: await holdPort() };

// Start every server now so they boot side by side.
// `own`: the port the module asks its own listen() for, which must see nothing; `listened`: the module goes on
// after its listen() and says so.
interface Shape {
  name: string;
  fixture: string;
  path: string;
  kind: RegExp;
  check: (r: Reply) => void;
  env?: NodeJS.ProcessEnv;
  own?: HeldPort;
  listened?: true;
}

/** A module that calls its server's listen() itself, for the port `own` holds, and prints the port it got. */
const listensItself = (name: string, fixture: string, p: string, own: HeldPort, check: Shape['check']): Shape => ({
  name,
  fixture: fx(fixture),
  path: p,
  kind: /listen\(\) at import captured/,
  env: { OWN_PORT: String(own.port) },
  own,
  listened: true,
  check,
});

const SHAPES: Shape[] = [
  { name: 'a CommonJS (req, res) listener', fixture: path.join(FIXTURES, 'cjs-listener.cjs'), path: '/', kind: /\(req, res\) listener/, check: (r) => assert.equal(r.status, 200) },
  { name: 'an object with fetch()', fixture: path.join(FIXTURES, 'fetch-object.mjs'), path: '/', kind: /Fetch handler \(object with fetch\)/, check: (r) => assert.equal(r.status, 200) },
  {
    name: 'compiled ESM in CommonJS (the double default)',
    fixture: fx('double-default.cjs'),
    path: '/',
    kind: /\(req, res\) listener/,
    check: (r) => assert.equal(r.body, 'double default unwrapped'),
  },
  {
    name: 'Express 4',
    fixture: fx('express4.ts'),
    path: '/users/42',
    kind: /Express application/,
    check: (r) => assert.deepEqual(JSON.parse(r.body), { id: '42' }),
  },
  {
    name: 'Express 5 (ESM JavaScript)',
    fixture: fx('express5.mjs'),
    path: '/async',
    kind: /Express application/,
    check: (r) => assert.deepEqual(JSON.parse(r.body), { async: true }),
  },
  {
    name: 'Koa (module.exports from a .cts file)',
    fixture: fx('koa.cts'),
    path: '/k',
    kind: /Koa application/,
    check: (r) => assert.deepEqual(JSON.parse(r.body), { framework: 'koa', path: '/k' }),
  },
  {
    name: 'an async factory resolving to Koa',
    fixture: fx('koa-factory.ts'),
    path: '/',
    kind: /Koa application/,
    check: (r) => assert.deepEqual(JSON.parse(r.body), { made: 'by a factory' }),
  },
  {
    name: 'Fastify, ready() before the first request',
    fixture: fx('fastify.ts'),
    path: '/',
    kind: /Fastify instance/,
    check: (r) => assert.deepEqual(JSON.parse(r.body), { framework: 'fastify', ready: true }),
  },
  {
    name: 'Hono, with clientAddress()',
    fixture: fx('hono.ts'),
    path: '/ip',
    kind: /Fetch handler \(Hono app\)/,
    check: (r) => assert.deepEqual(JSON.parse(r.body), { ip: '127.0.0.1' }),
  },
  {
    name: 'NestJS (async factory), constructor injection',
    fixture: fx('nest/app.ts'),
    path: '/hello/ann',
    kind: /NestJS application/,
    check: (r) => assert.equal(JSON.parse(r.body).message, 'Hello ann'),
  },
  {
    name: 'a TypeScript app importing through its tsconfig paths',
    fixture: fx('paths/src/app.ts'),
    path: '/',
    kind: /\(req, res\) listener/,
    check: (r) => assert.equal(r.body, 'hello tunicorn via paths'),
  },
  listensItself(
    'an Express module calling app.listen(PORT) at import',
    'listens.ts',
    '/',
    ownPorts.listens,
    (r) => assert.deepEqual(JSON.parse(r.body), { captured: true, listening: true }),
  ),
  listensItself(
    'a Fastify ES module awaiting its own listen() at the top level',
    'fastify-listens.mjs',
    '/',
    ownPorts.fastify,
    (r) => assert.deepEqual(JSON.parse(r.body), { framework: 'fastify', awaited: 'listen' }),
  ),
  listensItself(
    'Hono started with serve() from @hono/node-server, its callback given the address',
    'hono-serve.ts',
    '/',
    ownPorts.hono,
    (r) => assert.deepEqual(JSON.parse(r.body), { framework: 'hono', started: 'serve()' }),
  ),
  listensItself(
    'a Nest main.ts whose bootstrap() listens after the import',
    'nest/main.ts',
    '/hello/bob',
    ownPorts.nest,
    (r) => assert.equal(JSON.parse(r.body).message, 'Hello bob'),
  ),
];
for (const shape of SHAPES) void serve(shape.fixture, [], shape.env);
void serve(fx('websocket.ts'));
void serve(fx('lifespan.ts'), ['--max-requests', '3']);
void serve(fx('lifespan.ts'), ['-k', 'sync']);
void serve(fx('lifespan.ts'), ['-k', 'gthread', '--threads', '2']);
void serve(fx('abort.ts'));

describe('serves every shape with its real framework', { concurrency: true }, () => {
  for (const shape of SHAPES) {
    it(shape.name, async () => {
      const { s, port } = await serve(shape.fixture, [], shape.env);
      try {
        const r = await first(port, shape.path);
        shape.check(r);
        await s.waitFor(new RegExp(`Serving .* as [^\n]*${shape.kind.source}`));
        if (shape.own) assert.equal(shape.own.connections, 0, 'nothing reached the port the module asked for');
        if (shape.listened) await s.waitFor(new RegExp(`fixture: listen\\(\\) resolved at port ${port}\\b`));
        assert.doesNotMatch(s.log, /failed to boot|exited with code/, 'the worker booted once and stayed up');
      } catch (err) {
        // What the server logged (at debug level) is what tells a boot race from a fault in the app's shape.
        throw new Error(`${(err as Error).message}\nthe server's log:\n${s.log}`, { cause: err });
      }
    });
  }

  it('a ws WebSocketServer on the module http.Server echoes through tunicorn', async () => {
    const { port } = await serve(fx('websocket.ts'));
    assert.equal((await first(port, '/')).body, 'plain http');
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const reply = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send('ping');
    assert.equal(await reply, 'echo: ping');
    ws.close();
  });

  it('an AbortSignal fires when the client goes away', async () => {
    const { port } = await serve(fx('abort.ts'));
    assert.deepEqual(JSON.parse((await first(port, '/aborted')).body), { seen: [] });
    await request(port, '/wait', { timeout: 300 }).catch(() => {}); // the client gives up and closes
    // Bounded polling: the abort reaches the handler asynchronously.
    let seen: string[] = [];
    for (let i = 0; i < 100 && seen.length === 0; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      seen = JSON.parse((await request(port, '/aborted')).body).seen;
    }
    assert.deepEqual(seen, ['AbortError']);
  });

  it('startup() runs before the first request; shutdown() when max-requests recycles the worker', async () => {
    const { s, port, lifespan } = await serve(fx('lifespan.ts'), ['--max-requests', '3']);
    const r = JSON.parse((await first(port, '/')).body);
    assert.equal(r.state, 'started');
    const firstPid = r.pid as number;
    assert.match(lines(lifespan), new RegExp(`startup ${firstPid}`));
    await request(port, '/');
    await request(port, '/');
    await s.waitFor(new RegExp(`Worker exiting \\(pid: ${firstPid}\\)`), 20000);
    await until(() => lines(lifespan).includes(`shutdown ${firstPid}`), 20000, 'shutdown() of the recycled worker');
    const next = JSON.parse((await first(port, '/')).body);
    assert.notEqual(next.pid, firstPid);
    assert.equal(next.state, 'started');
  });

  it('startup() runs under sync, and in each gthread thread (each has its own copy of the app)', async () => {
    const sync = await serve(fx('lifespan.ts'), ['-k', 'sync']);
    assert.equal(JSON.parse((await first(sync.port, '/')).body).state, 'started');
    const gthread = await serve(fx('lifespan.ts'), ['-k', 'gthread', '--threads', '2']);
    // Whichever thread answers ran its own startup().
    for (let i = 0; i < 4; i++) assert.equal(JSON.parse((await first(gthread.port, '/')).body).state, 'started');
    const pid = JSON.parse((await first(gthread.port, '/')).body).pid as number;
    // A thread accepts once its own startup() is done: the other may still be loading when the first answers.
    const startups = () => lines(gthread.lifespan).split('\n').filter((l) => l === `startup ${pid}`).length;
    await until(() => startups() >= 2, 15000, 'the second thread\'s startup()');
    assert.equal(startups(), 2, 'one startup() per thread');
  });

  it('a startup() that throws stops the server with status 1 and the cause, under every class', async () => {
    const servers = ['async', 'sync', 'gthread'].map((k) => ({ k, s: new Server(['-b', '127.0.0.1:0', '-k', k, fx('startup-throws.ts')]) }));
    // 30 s: the three start together, beside the rest of this suite's servers (up to 14 s each to serve).
    for (const { k, s } of servers) {
      const exit = await within(s.exited, 30000, `-k ${k} to stop`).catch((err: Error) => {
        throw new Error(`${err.message}; the server's log:\n${s.log}`);
      });
      assert.equal(exit.code, 1, `-k ${k}: ${s.log}`);
      assert.match(s.log, /\[ERROR\] app .*startup-throws\.ts: startup\(\) failed: the database did not answer/, `-k ${k}`);
      assert.match(s.log, /Reason: App failed to load/, `-k ${k}`);
    }
  });
});

describe("a framework's own proxy trust, behind a proxy on loopback (forwarded_allow_ips' default)", () => {
  // What the proxy sends, and what each framework resolves from it under its own listen(): the socket's peer
  // (127.0.0.1, the proxy) is what their trust setting judges.
  const proxied = { 'x-forwarded-for': '198.51.100.1, 203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example.com' };
  it("Express with app.set('trust proxy', 'loopback')", async () => {
    const { port } = await serve(fx('trust-proxy-express.ts'));
    const r = await first(port, '/', { headers: proxied });
    assert.deepEqual(JSON.parse(r.body), { ip: '203.0.113.7', ips: ['203.0.113.7'], protocol: 'https', secure: true, hostname: 'shop.example.com' });
    assert.deepEqual(JSON.parse((await request(port, '/')).body), { ip: '127.0.0.1', ips: [], protocol: 'http', secure: false, hostname: '127.0.0.1' });
  });

  it("Fastify with trustProxy: 'loopback'", async () => {
    const { port } = await serve(fx('trust-proxy-fastify.ts'));
    const r = await first(port, '/', { headers: proxied });
    assert.deepEqual(JSON.parse(r.body), { ip: '203.0.113.7', protocol: 'https', host: 'shop.example.com' });
  });

  it("NestJS on Express with app.set('trust proxy', 'loopback')", async () => {
    const { port } = await serve(fx('nest/trust-proxy.ts'));
    const r = await first(port, '/', { headers: proxied });
    assert.deepEqual(JSON.parse(r.body), { ip: '203.0.113.7', protocol: 'https', hostname: 'shop.example.com' });
  });
});

describe('stopping runs the framework close() and the shutdown hooks', () => {
  it('TERM: Fastify onClose, Nest onApplicationShutdown, shutdown()', async () => {
    const targets = [
      { run: await serve(fx('fastify.ts')), note: 'fastify-close' },
      { run: await serve(fx('nest/app.ts')), note: 'nest-close' },
      // Its enableShutdownHooks() listens for TERM, which the worker never gets: tunicorn calls the listener.
      { run: await serve(fx('nest/main-hooks.ts')), note: 'nest-close', signal: 'SIGTERM' },
      // A gthread thread gets no signal at all: each thread's copy of the app hears TERM from tunicorn.
      { run: await serve(fx('nest/main-hooks.ts'), ['-k', 'gthread', '--threads', '2']), note: 'nest-close', signal: 'SIGTERM', times: 2 },
      { run: await serve(fx('lifespan.ts'), ['--max-requests', '3']), note: 'shutdown' },
    ];
    for (const { run } of targets) await first(run.port, '/');
    for (const { run } of targets) run.s.signal('SIGTERM');
    for (const { run, note, signal, times = 1 } of targets) {
      const exit = await run.s.exited;
      assert.equal(exit.code, 0);
      const pids = [...run.s.log.matchAll(/Booting worker with pid: (\d+)/g)].map((m) => m[1]);
      const ran = lines(run.lifespan).split('\n').filter((l) => l.startsWith(`${note} ${pids.at(-1)}`));
      assert.equal(ran.length, times, `${note} ${times} time(s) in the last worker: ${lines(run.lifespan)}`);
      if (signal) assert.equal(ran[0], `${note} ${pids.at(-1)} ${signal}`);
    }
  });
});

/** A GET over plain HTTP or TLS (any certificate), its body and when it ended. */
function getWith(mod: typeof http | typeof https) {
  return (port: number, p: string): Promise<{ body: string; at: number }> =>
    new Promise((resolve, reject) => {
      const r = mod.get({ host: '127.0.0.1', port, path: p, rejectUnauthorized: false, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ body, at: Date.now() }));
      });
      r.on('error', reject);
    });
}
const httpGet = getWith(http);
const httpsGet = getWith(https);

describe('a module that listens itself, under --certfile', { concurrency: true }, () => {
  // tunicorn's TLS server serves, and the app's own server only lends it its listeners: it was never told it
  // listened, so a listen() callback never ran and an `await app.listen()` at the top never returned.
  for (const shape of SHAPES.filter((x) => x.listened)) {
    it(shape.name, async () => {
      const c = selfSigned();
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--certfile', c.cert, '--keyfile', c.key, shape.fixture], { env: shape.env });
      try {
        const port = await s.port();
        const r = await within(httpsGet(port, shape.path), 20000, 'the answer');
        shape.check({ status: 200, headers: {}, body: r.body });
        await s.waitFor(new RegExp(`fixture: listen\\(\\) resolved at port ${port}\\b`));
      } catch (err) {
        throw new Error(`${(err as Error).message}\nthe server's log:\n${s.log}`, { cause: err });
      } finally {
        await s.kill();
      }
    });
  }
});

describe('a graceful stop with WebSockets open', () => {
  /** A WebSocket that has had the app's greeting: the upgrade is done and the app holds it. */
  async function greeted(port: number): Promise<{ closed: Promise<{ code: number; at: number }> }> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const closed = new Promise<{ code: number; at: number }>((resolve) => ws.once('close', (code: number) => resolve({ code, at: Date.now() })));
    await within(new Promise((resolve, reject) => (ws.once('message', resolve), ws.once('error', reject))), 10000, 'the greeting');
    return { closed };
  }

  // No drain ends a WebSocket: waiting for them before the app's shutdown would hold every stop until the
  // class gave up (80 % of graceful_timeout, 24 s here) or the master's kill (gthread, 30 s).
  for (const args of [[], ['-k', 'gthread', '--threads', '2'], ['-k', 'sync']]) {
    const name = args.length ? args.join(' ') : 'async';
    it(`${name}: the app's SIGTERM listener runs once only WebSockets are left, and closes them at once`, async () => {
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--graceful-timeout', '30', ...args, fx('websocket-term.ts')]);
      const port = await s.port();
      await first(port, '/');
      const { closed } = await greeted(port);
      // The WebSocket holds neither the sync worker nor a gthread thread: each of these requests is served
      // (under gthread, some land on the WebSocket's thread). The last one still runs when TERM comes, and
      // is answered before the app's listener runs (under gthread, before the listener of its own thread's
      // copy of the app, which the WebSocket's thread may not be).
      for (let i = 0; i < 4; i++) assert.equal((await request(port, '/?ms=1', { timeout: 5000 })).body, 'slept 1');
      const slow = request(port, '/?ms=1500');
      await s.waitFor(/fixture: request for 1500 ms/);
      const termAt = Date.now();
      s.signal('SIGTERM');
      const close = await within(closed, 10000, 'the WebSocket to close');
      assert.equal(close.code, 1001, "the app's own close frame, not a cut");
      assert.equal((await slow).body, 'slept 1500');
      if (args[1] !== 'gthread') assert.ok(close.at - termAt >= 1000, `the listener waited for the request (${close.at - termAt} ms)`);
      const exit = await within(s.exited, 10000, 'the server to exit');
      assert.equal(exit.code, 0);
      assert.ok(Date.now() - termAt < 10000);
      // A gthread thread's console.error reaches stderr through its process's main thread, so its line may
      // come after the close frame: count once the log is whole.
      await within(s.drained, 10000, 'the log to end');
      assert.equal(s.count(/fixture: SIGTERM listener closes 1 WebSocket\(s\)/), 1);
    });
  }

  // The accepted socket's 'close' (plain or under TLS) came before the upgrade's own, so for a moment the
  // closing WebSocket was still counted as upgraded while the running request was not: the app's shutdown ran
  // with the request still in flight.
  for (const tls of [false, true]) {
    it(`${tls ? 'TLS' : 'plain'}: a WebSocket the client closes during the stop does not start the app's shutdown while a request runs`, async () => {
      const c = selfSigned();
      const s = new Server([
        '-b', '127.0.0.1:0', '-w', '1', '--graceful-timeout', '30',
        ...(tls ? ['--certfile', c.cert, '--keyfile', c.key, '--http-protocols', 'h1'] : []),
        fx('websocket-term.ts'),
      ]);
      const port = await s.port();
      const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${port}/`, { rejectUnauthorized: false });
      await within(new Promise((resolve, reject) => (ws.once('message', resolve), ws.once('error', reject))), 10000, 'the greeting');
      const slow = (tls ? httpsGet : httpGet)(port, '/?ms=2500');
      await s.waitFor(/fixture: request for 2500 ms/);
      s.signal('SIGTERM');
      await s.waitFor(/Worker exiting/);
      ws.close(1000);
      const listenerAt = s.waitFor(/fixture: SIGTERM listener closes \d+ WebSocket\(s\)/, 15000).then(() => Date.now());
      const answered = await within(slow, 10000, 'the slow response');
      assert.equal(answered.body, 'slept 2500');
      assert.ok((await listenerAt) > answered.at - 500, `the app's listener ran ${answered.at - (await listenerAt)} ms before the response`);
      assert.equal((await within(s.exited, 10000, 'the server to exit')).code, 0);
    });
  }

  it('an upgrade counts toward max_requests', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--max-requests', '2', fx('websocket-term.ts')]);
    const port = await s.port();
    await greeted(port);
    assert.doesNotMatch(s.log, /reached max_requests/);
    await greeted(port);
    await s.waitFor(/reached max_requests \(2\)/);
  });

  it('a WebSocket the app leaves open is closed at 80 % of graceful_timeout, and the worker exits by itself', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', 'sync', '--graceful-timeout', '3', fx('websocket.ts')]);
    const port = await s.port();
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const closed = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
    await within(new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject))), 10000, 'the WebSocket to open');
    s.signal('SIGTERM');
    await s.waitFor(/\[WARNING\] Graceful stop: closing 1 upgraded connection\(s\) \(WebSocket, CONNECT\) the app left open at 80 % of graceful_timeout/);
    assert.equal(await within(closed, 5000, 'the WebSocket to close'), 1006, 'cut, with no close frame');
    assert.equal((await within(s.exited, 5000, 'the server to exit')).code, 0);
    assert.doesNotMatch(s.log, /did not stop in time/);
  });
});

describe('--check-config and exports tunicorn cannot serve', () => {
  it('--check-config names the shape of a framework app, opening no port', async () => {
    const own = await holdPort();
    const s = new Server(['--check-config', fx('listens.ts')], { env: { OWN_PORT: String(own.port) } });
    assert.equal((await s.exited).code, 0);
    assert.match(s.stdout, /OK: .*listens\.ts is http\.Server \(its listen\(\) at import captured\)/);
    const f = new Server(['--check-config', fx('fastify.ts')]);
    assert.equal((await f.exited).code, 0);
    assert.match(f.stdout, /OK: .*fastify\.ts is Fastify instance/);
  });

  it("--check-config runs no shutdown() of an app whose startup() it did not run", async () => {
    const s = new Server(['--check-config', fx('lifespan-db.ts')]);
    assert.equal((await s.exited).code, 0, s.log);
    assert.match(s.stdout, /OK: .*lifespan-db\.ts is \(req, res\) listener/);
    assert.equal(s.log, '');
  });

  it('a syntax error in a native ES module is reported with its file and line', async () => {
    const s = new Server(['-b', '127.0.0.1:0', fx('broken-esm.mjs')]);
    assert.equal((await s.exited).code, 1);
    assert.match(s.log, /\[ERROR\] app .*broken-esm\.mjs failed to load: missing \) after argument list \(.*broken-esm\.mjs:3\)/);
  });

  it('an Express Router, express or Fastify themselves are refused in one line, at load (not a 500 for every request)', async () => {
    const refusal = async (spec: string): Promise<string> => {
      const s = new Server(['--check-config', `${fx('mistaken-exports.mjs')}${spec}`]);
      assert.equal((await s.exited).code, 1, s.log);
      return s.log;
    };
    const router = /is an Express Router, not an app: mount it on an app \(`app\.use\(router\)`\) and serve the app/;
    assert.match(await refusal(':router'), router);
    assert.match(await refusal(':router4'), router);
    // The default export is the Router; the app it is mounted on is named.
    assert.match(await refusal(''), new RegExp(`${router.source}\\. Its export app is an Express application: serve it with .*mistaken-exports\\.mjs:app\n$`));
    assert.match(await refusal(':express'), /is express itself \(the function that makes an app\), not an app: serve the app it made/);
    assert.match(await refusal(':fastify'), /is Fastify's factory itself, not an app: serve the instance it made/);
    // A worker stops the server with it, as for any export tunicorn cannot serve.
    const s = new Server(['-b', '127.0.0.1:0', fx('mistaken-exports.mjs:router')]);
    assert.equal((await within(s.exited, 20000, 'the master to stop')).code, 1);
    assert.match(s.log, /\[ERROR\] app .*mistaken-exports\.mjs:router is an Express Router, not an app/);
    // A module that listen()ed is served by its server, whatever it exports.
    const own = await holdPort();
    const listens = new Server(['--check-config', fx('router-listens.cjs')], { env: { OWN_PORT: String(own.port) } });
    assert.equal((await listens.exited).code, 0, listens.log);
    assert.match(listens.stdout, /is http\.Server \(its listen\(\) at import captured\)/);
  });

  it('stops with status 1 and one line naming what the factory resolved to', async () => {
    const s = new Server(['-b', '127.0.0.1:0', fx('bad-factory.ts')]);
    assert.equal((await s.exited).code, 1);
    assert.match(s.log, /bad-factory\.ts is a factory resolving to a number \(42\); tunicorn serves a \(req, res\) listener/);
  });
});

describe('a second server the app listens on itself', () => {
  /**
   * A module that listens its app's server (taken by tunicorn: its port is never opened), then a second one (a
   * metrics endpoint) on `port`; `own`: the port the app's server asks for; `handles`: with its own 'error' listener.
   */
  const metricsApp = (name: string, own: HeldPort, port: number, handles: boolean): string => {
    const file = path.join(tmp, name);
    writeFileSync(
      file,
      "import http from 'node:http';\n" +
        `http.createServer((req, res) => res.end('app')).listen(${own.port});\n` +
        "const metrics = http.createServer((req, res) => res.end('metrics'));\n" +
        `metrics.listen(${port}, '127.0.0.1');\n` +
        (handles ? "metrics.on('error', (err) => process.stderr.write(`fixture: metrics not started: ${err.code}\\n`));\n" : ''),
    );
    return file;
  };

  it("one that cannot listen says whose it is and where it was called, not as tunicorn's bind; one the app handles is left to it", async () => {
    const taken = await holdPort();
    const own = await holdPort();
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', metricsApp('metrics-in-use.mjs', own, taken.port, false)]);
    await s.waitFor(
      new RegExp(
        `\\[ERROR\\] Uncaught exception in worker; exiting\\nError: listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${taken.port}: a server the app listen\\(\\)s on itself, beside the one tunicorn serves \\(only the first HTTP server .*, so a fixed port is had by one of them at most\\)\\n\\s+at .*metrics-in-use\\.mjs:4:\\d+`,
      ),
    );
    await s.kill();
    const handled = new Server(['-b', '127.0.0.1:0', '-w', '1', metricsApp('metrics-handled.mjs', own, taken.port, true)]);
    const port = await handled.port();
    assert.equal((await first(port, '/')).body, 'app');
    await handled.waitFor(/fixture: metrics not started: EADDRINUSE/);
    assert.doesNotMatch(handled.log, /Uncaught exception/);
    assert.equal(own.connections + taken.connections, 0);
    await handled.kill();
  });
});
