/**
 * What meta-frameworks' Node builds hand tunicorn, on the real CLI (stand-ins of the same shape: next and h3
 * are too heavy, or not needed, as devDependencies; README "Meta-frameworks" lists what was run with the real
 * packages):
 * - a Next.js custom server, `export default next({ dev: false })`: prepare() awaited before the first request,
 *   the handler called with (req, res) only, a request in flight finished on TERM and close() run once after it
 * - a prepare() that fails (no build) stops the server with status 1 and Next's reason, on one line
 * - an h3 1.x app (createApp()) is refused at load in one line that names toNodeListener(app)
 * - a Fetch handler of two parameters, (request, context), served as a function fails its requests with a line
 *   that says how to serve it (`{ fetch }`), which then works; the same line names the base a (req, res)
 *   listener's own `new URL(req.url)` lacks
 * - a middleware (req, res, next) served alone that calls next(err): its line says to mount it on an app
 * - a listener of a rest parameter, `(...args)` (length 0, as Astro's handler in middleware mode): served as a
 *   listener, not called as a factory; a factory under such a wrapper fails its requests with a line naming
 *   FILE:NAME(), which serves it
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, request, Server, stopAll, until, within } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const fx = (name: string) => path.join(FIXTURES, 'apps', name);
const tmp = scratchDir('tunicorn-meta-');

describe('a Next.js custom server, next({ dev: false })', () => {
  it('is served after prepare(); TERM finishes the request in flight, then runs close() once', async () => {
    const lifespan = path.join(tmp, 'next.log');
    const noted = () => (existsSync(lifespan) ? readFileSync(lifespan, 'utf8').split('\n').filter(Boolean) : []);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--log-level', 'debug', fx('next-custom-server.mjs')], { env: { LIFESPAN_FILE: lifespan } });
    const port = await s.port();
    const r = await request(port, '/page?q=1', { timeout: 30000 });
    assert.equal(r.status, 200, s.log);
    assert.deepEqual(JSON.parse(r.body), { framework: 'next', prepared: true, parsedUrl: 'undefined', url: '/page?q=1' });
    await s.waitFor(/Serving .* as Next\.js app/);
    const slow = request(port, '/slow');
    await until(() => noted().length > 0, 10000, 'the slow request to start');
    s.signal('SIGTERM');
    const answered = await slow;
    assert.equal(answered.status, 200);
    assert.equal((await within(s.exited, 20000, 'the master to stop')).code, 0);
    const pid = [...s.log.matchAll(/Booting worker with pid: (\d+)/g)].map((m) => m[1]).at(-1);
    assert.deepEqual(noted(), [`slow ${pid}`, `next-close ${pid}`]);
  });

  it("a prepare() that fails stops the server with status 1 and Next's reason", async () => {
    const s = new Server(['-b', '127.0.0.1:0', fx('next-custom-server.mjs')], { env: { NEXT_BUILD: 'missing' } });
    assert.equal((await within(s.exited, 20000, 'the master to stop')).code, 1);
    assert.match(s.log, /\[ERROR\] app .*next-custom-server\.mjs: starting the Next\.js app failed: Could not find a production build in the '\.next' directory/);
  });
});

describe('h3', () => {
  it('an h3 1.x app (createApp()) is refused at load in one line naming toNodeListener(app)', async () => {
    const s = new Server(['--check-config', fx('h3-v1-app.mjs')]);
    assert.equal((await s.exited).code, 1, s.log);
    assert.match(s.log, /app .*h3-v1-app\.mjs is an h3 app \(createApp\(\) of h3 1\.x\), not a listener: serve the one h3 makes of it, `export default toNodeListener\(app\)`/);
  });
});

describe('functions a length cannot tell from a (req, res) listener', () => {
  it('a Fetch handler of two parameters: its failure says to serve it from { fetch }, which works', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('handler-shapes.mjs')]);
    const port = await s.port();
    assert.equal((await request(port, '/x', { timeout: 30000 })).status, 500);
    await s.waitFor(/TypeError: Invalid URL \(tunicorn serves a function of two parameters as a \(req, res\) listener, whose req\.url is a path, not a URL \(a listener parses it with a base: `new URL\(req\.url, 'http:\/\/localhost'\)`\); a Fetch handler of two, \(request, context\), is served from an object: `export default \{ fetch: handler \}`\)\n\s+at handler/);
    const o = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('handler-shapes.mjs:asObject')]);
    const r = await request(await o.port(), '/x', { timeout: 30000 });
    assert.equal(r.status, 200, o.log);
    assert.equal(r.body, '/x context=undefined');
  });

  it("a (req, res) listener's own new URL(req.url): the same line names the base it lacks, not only the Fetch handler's way out", async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('handler-shapes.mjs:parsesPath')]);
    assert.equal((await request(await s.port(), '/p', { timeout: 30000 })).status, 500);
    // It said only that a Fetch handler of two is served from an object: this function is no Fetch handler.
    await s.waitFor(/TypeError: Invalid URL \(.*whose req\.url is a path, not a URL \(a listener parses it with a base: `new URL\(req\.url, 'http:\/\/localhost'\)`\).*\)\n\s+at parsesPath/);
  });

  it('a listener of a rest parameter, (...args), as Astro\'s middleware-mode handler: served, not called as a factory', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--log-level', 'debug', fx('handler-shapes.mjs:rest')]);
    const r = await request(await s.port(), '/r?x', { timeout: 30000 });
    assert.equal(r.status, 200, s.log);
    assert.equal(r.body, 'rest /r?x');
    await s.waitFor(/Serving .* as \(req, res\) listener/);
  });

  it('a factory under a (...args) wrapper, served as a listener: its requests fail at once with a line that names FILE:NAME(), which serves it', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('handler-shapes.mjs:wrappedFactory')]);
    // Each request made an app and sent nothing: it waited for the client's timeout, and no line said why.
    assert.equal((await request(await s.port(), '/w', { timeout: 10000 })).status, 500);
    await s.waitFor(/\[ERROR\] Error handling request GET \/w: the app, a function of a rest parameter \(\.\.\.args\) served as a \(req, res\) listener, returned a function of 2 parameter\(s\) and sent nothing: if it makes the app \(a factory under a wrapper\), serve its call, `FILE:NAME\(\)`/);
    const called = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('handler-shapes.mjs:wrappedFactory()')]);
    const r = await request(await called.port(), '/w', { timeout: 30000 });
    assert.equal(r.status, 200, called.log);
    assert.equal(r.body, 'made /w');
  });

  it('a middleware (req, res, next) served alone: its next(err) failure says to mount it on an app', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('handler-shapes.mjs:middleware')]);
    const port = await s.port();
    assert.equal((await request(port, '/', { timeout: 30000 })).status, 500);
    await s.waitFor(/TypeError: next is not a function \(tunicorn serves a function of 3 parameters as a \(req, res\) listener, with no next\(\): mount a middleware \(req, res, next\) on an app \(Express: `app\.use\(handler\)`\) and serve the app\)/);
  });
});
