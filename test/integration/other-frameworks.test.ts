/**
 * The next ring of Node frameworks, exported as their getting-started pages make the app (stand-ins of the same
 * shape, in test/fixtures/apps/other-frameworks.mjs; README "Other frameworks" lists what was run with the real
 * packages), on the real CLI:
 * - a hapi server (`Hapi.server()`, exported without start()): initialize() before the first request, its
 *   `listener` served, stop() on TERM (its onPreStop and onPostStop), under async, sync and gthread;
 * - a hapi server exported after `await server.start()`: its start()'s listen() is captured, stop() runs on TERM;
 * - a restify server: its http.Server (`server.server`) is served;
 * - polka and tinyhttp apps: their handler(req, res) is served, tinyhttp's called on the app (it reads `this`);
 * - GraphQL Yoga (a function that is also a Fetch handler whose Response is its ponyfill's): served by its Node
 *   requestListener, its dispose() on TERM;
 * - a Socket.IO Server exported alone (a new http.Server attached to it) or attached to the app's http.Server:
 *   served, its close() on TERM.
 * - a Feathers app (`express(feathers())`): app.setup(server) runs before serving, on the http.Server served (its
 *   Socket.IO attaches there), and teardown() on TERM; with --preload the master's copy is set up and torn down
 *   without failing (its teardown() closes no server that never listened);
 * - a micro handler served alone, `async (req, res) => 'Welcome to Micro'` (it answers by what it returns): each
 *   request fails with a 500 and a line saying to serve `serve(handler)`, where it waited unanswered, unlogged;
 *   a long-polling listener that keeps res and resolves to push()'s count or an object holding res is not one;
 * Each was refused at load ("is an object", "an instance of Server"), failed every request (Yoga), was served
 * without its setup (Feathers) or left every request unanswered (micro) before.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, request, Server, stopAll, within } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const fx = (name: string) => path.join(FIXTURES, 'apps', name);
const tmp = scratchDir('tunicorn-other-frameworks-');
const notes = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : []);

/** Serves `app`, checks its answer to `url` and the kind logged, stops it with TERM; returns the worker's pid and the notes. */
async function serveAndStop(app: string, url: string, kind: RegExp, body: Record<string, unknown>, cls: string[] = []): Promise<{ pid: string; seen: string[] }> {
  const file = path.join(tmp, `${path.basename(app).replace(/\W/g, '-')}-${cls[1] ?? 'async'}.log`);
  const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--log-level', 'debug', ...cls, fx(app)], { env: { LIFESPAN_FILE: file } });
  const port = await s.port();
  const [pid] = await s.workersBooted(1);
  const r = await request(port, url, { timeout: 30000 });
  assert.equal(r.status, 200, s.log);
  assert.deepEqual(JSON.parse(r.body), body);
  await s.waitFor(kind);
  s.signal('SIGTERM');
  assert.equal((await within(s.exited, 20000, 'the master to stop')).code, 0, s.log);
  return { pid: String(pid), seen: notes(file) };
}

describe('hapi', () => {
  for (const cls of [['-k', 'async'], ['-k', 'sync'], ['-k', 'gthread', '--threads', '2']]) {
    it(`${cls.join(' ')}: Hapi.server() exported without start(): initialize() before serving its listener, stop() on TERM`, async () => {
      const { pid, seen } = await serveAndStop('other-frameworks.mjs:hapi', '/hello', /Serving .* as hapi server/, { framework: 'hapi', phase: 'initialized', url: '/hello' }, cls);
      // Each gthread thread serves a copy of the app: each copy is initialized, and stopped.
      const copies = cls.includes('gthread') ? 2 : 1;
      const count = (what: string) => seen.filter((l) => l === `${what} ${pid}`).length;
      assert.deepEqual([count('onPreStart'), count('onPreStop'), count('onPostStop'), seen.length], [copies, copies, copies, 3 * copies], seen.join('\n'));
      assert.ok(seen.lastIndexOf(`onPreStart ${pid}`) < seen.indexOf(`onPreStop ${pid}`), seen.join('\n'));
    });
  }

  it('exported after `await server.start()`: its listen() is captured, stop() runs on TERM and its listener.close() calls back', async () => {
    const { pid, seen } = await serveAndStop('hapi-started.mjs', '/x', /Serving/, { framework: 'hapi', phase: 'started', url: '/x' });
    assert.deepEqual(seen, [`onPreStart ${pid}`, `onPreStop ${pid}`, `onPostStop ${pid}`]);
  });
});

describe('restify, polka, tinyhttp', () => {
  it("restify.createServer(): its http.Server is served", async () => {
    await serveAndStop('other-frameworks.mjs:restify', '/hello/bob', /Serving .* as restify server/, { framework: 'restify', url: '/hello/bob' });
  });

  it('polka(): its handler is served', async () => {
    await serveAndStop('other-frameworks.mjs:polka', '/users/7', /Serving .* as polka app/, { framework: 'polka', url: '/users/7' });
  });

  it("tinyhttp's new App(): its handler is called on the app", async () => {
    await serveAndStop('other-frameworks.mjs:tinyhttp', '/page/3/', /Serving .* as tinyhttp app/, { framework: 'tinyhttp', url: '/page/3/' });
  });
});

describe('GraphQL Yoga', () => {
  it("createYoga(): served by its requestListener, not as a Fetch handler (whose Response is its ponyfill's); dispose() on TERM", async () => {
    const { pid, seen } = await serveAndStop('other-frameworks.mjs:yoga', '/graphql?query=x', /Serving .* as GraphQL Yoga/, { framework: 'yoga', url: '/graphql?query=x' });
    assert.deepEqual(seen, [`onDispose ${pid}`]);
  });
});

describe('Socket.IO', () => {
  it('a Server exported alone: attached to a new http.Server that answers 404 elsewhere; close() on TERM', async () => {
    const file = path.join(tmp, 'socketio-alone.log');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--log-level', 'debug', fx('other-frameworks.mjs:socketio')], { env: { LIFESPAN_FILE: file } });
    const port = await s.port();
    const [pid] = await s.workersBooted(1);
    const r = await request(port, '/socket.io/?EIO=4&transport=polling', { timeout: 30000 });
    assert.equal(r.status, 200, s.log);
    assert.equal(JSON.parse(r.body).framework, 'socket.io');
    assert.equal((await request(port, '/other')).status, 404);
    await s.waitFor(/Serving .* as Socket\.IO server/);
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 20000, 'the master to stop')).code, 0, s.log);
    assert.deepEqual(notes(file), [`io-close ${pid}`]);
  });

  it("a Server attached to the app's http.Server: that server is served, the Server's close() on TERM", async () => {
    const { pid, seen } = await serveAndStop('other-frameworks.mjs:socketioAttached', '/page', /Serving .* as Socket\.IO server/, { framework: 'plain http', url: '/page' });
    assert.deepEqual(seen, [`io-close ${pid}`]);
  });
});

describe('Feathers', () => {
  it('express(feathers()): setup(server) before serving, on the server served (Socket.IO attached there); teardown() on TERM', async () => {
    const file = path.join(tmp, 'feathers.log');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--log-level', 'debug', fx('other-frameworks.mjs:feathers')], { env: { LIFESPAN_FILE: file } });
    const port = await s.port();
    const [pid] = await s.workersBooted(1);
    const r = await request(port, '/messages', { timeout: 30000 });
    assert.equal(r.status, 200, s.log);
    assert.deepEqual(JSON.parse(r.body), { framework: 'feathers', setUp: true, url: '/messages' });
    assert.equal(JSON.parse((await request(port, '/socket.io/?EIO=4&transport=polling')).body).framework, 'socket.io');
    await s.waitFor(/Serving .* as Feathers application \(Express\)/);
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 20000, 'the master to stop')).code, 0, s.log);
    assert.deepEqual(notes(file), [`setup ${pid}`, `teardown ${pid}`]);
  });

  it('--preload: the master sets up and tears down its copy, and the worker serves its own', async () => {
    const file = path.join(tmp, 'feathers-preload.log');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--preload', fx('other-frameworks.mjs:feathers')], { env: { LIFESPAN_FILE: file } });
    const port = await s.port();
    const [pid] = await s.workersBooted(1);
    assert.deepEqual(JSON.parse((await request(port, '/m', { timeout: 30000 })).body), { framework: 'feathers', setUp: true, url: '/m' });
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 20000, 'the master to stop')).code, 0, s.log);
    assert.deepEqual(notes(file), [`setup ${s.pid}`, `teardown ${s.pid}`, `setup ${pid}`, `teardown ${pid}`]);
  });
});

describe('micro', () => {
  it("a micro handler served alone fails each request at once with a 500 and a line naming serve(handler)", async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('other-frameworks.mjs:micro')]);
    const port = await s.port();
    const r = await request(port, '/', { timeout: 5000 });
    assert.equal(r.status, 500, s.log);
    await s.waitFor(/\[ERROR\] Error handling request GET \/: the \(req, res\) listener resolved to a string and did not answer: tunicorn sends nothing a listener returns; a micro handler is served as `export default serve\(handler\)` \(serve from 'micro'\); any other listener answers through res \(res\.end\(\)\)\n/);
    // A listener that answered and resolves to res is left alone.
    const o = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('other-frameworks.mjs:endsAndReturns')]);
    const e = await request(await o.port(), '/', { timeout: 5000 });
    assert.equal(e.status, 200, o.log);
    assert.equal(e.body, 'ended');
    o.signal('SIGTERM');
    await o.exited;
    assert.doesNotMatch(o.log, /ERROR/);
  });

  it('a listener that keeps res to answer later (long polling) and resolves to a number or an object holding res is served as before', async () => {
    for (const name of ['longPoll', 'keptInObject']) {
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fx(`other-frameworks.mjs:${name}`)]);
      const r = await request(await s.port(), '/', { timeout: 5000 });
      assert.deepEqual([r.status, r.body], [200, 'answered later'], `${name}: ${s.log}`);
      s.signal('SIGTERM');
      await s.exited;
      assert.doesNotMatch(s.log, /ERROR/, name);
    }
  });
});
