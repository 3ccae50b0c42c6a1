/**
 * What a framework app starts is closed by whoever started it:
 * - with --preload the master loads the app but never serves it: what starting it began there (Fastify's
 *   onReady, Nest's init hooks: a cron, a queue consumer) is closed at once, not left running in the master;
 * - a module that awaits its own listen() at the top level has its exports read once that import finishes:
 *   its startup() runs, and a stop closes the Fastify app it exports (onClose hooks) and runs its shutdown();
 * - a factory that awaits its own listen() is served (it used to wait for that listen() until the boot
 *   timeout), and the app it resolves to is closed on stop;
 * - a request that outlasts a stop does not keep the app's shutdown() from running, under every class;
 * - the app's own server.close(cb) in its shutdown() calls back without ERR_SERVER_NOT_RUNNING;
 * - a stop that fails names the part: each part that throws (the framework's close(), the shutdown export) is
 *   logged; one that never settles is named at 90 % of graceful_timeout, and the worker exits without it
 *   (its TERM listeners run) before the master's kill;
 * - a SIGTERM sent to the whole process group (systemd's KillMode=control-group) reaches the workers too: the
 *   app's async SIGTERM listener is waited for there as after the master's stop message, under every class;
 *   also when a module preloaded with NODE_OPTIONS added a SIGTERM listener first: each runs once.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const tmp = scratchDir('tunicorn-framework-lifecycle-');
const fx = (name: string) => path.join(FIXTURES, 'apps', name);
const notes = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : []);

describe('framework lifecycle', () => {
  for (const cls of ['async', 'sync', 'gthread']) {
    it(`${cls}: a SIGTERM sent to the whole process group (systemd's control-group kill) waits for the app's async SIGTERM listener`, async () => {
      const file = path.join(tmp, `term-group-${cls}.log`);
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', cls, fx('async-term-listener.mjs')], { env: { TERM_FILE: file } });
      const port = await s.port();
      await s.waitFor(/Ready: 1 worker/);
      const worker = Number((await request(port, '/')).body);
      // The Server helper starts the master in a process group of its own, with its workers.
      process.kill(-s.pid, 'SIGTERM');
      assert.equal((await s.exited).code, 0, s.log);
      // Its promise was waited for: the line written 300 ms after the signal is there, once.
      assert.deepEqual(notes(file), [`term ${worker}`], s.log);
    });
  }

  it("a SIGTERM listener a preloaded module added (NODE_OPTIONS=--import) runs once, at the stop's end, with the app's", async () => {
    const file = path.join(tmp, 'term-preloaded.log');
    const env = { TERM_FILE: file, NODE_OPTIONS: `--import ${fx('preloaded-term-listener.mjs')}` };
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('async-term-listener.mjs')], { env });
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    const worker = Number((await request(port, '/')).body);
    process.kill(worker, 'SIGTERM');
    await s.waitFor(new RegExp(`Worker exited \\(pid: ${worker}\\)`));
    // Each once, and the app's awaited: its line comes 300 ms after the signal, before the worker's exit.
    assert.deepEqual(notes(file).filter((l) => l.endsWith(` ${worker}`)), [`preload ${worker}`, `term ${worker}`], s.log);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0, s.log);
  });

  it('--preload: the master closes its copy of a Fastify app at once; its onReady work does not run on in the master', async () => {
    const file = path.join(tmp, 'preload.log');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--preload', fx('fastify-hooks.mjs')], { env: { LIFESPAN_FILE: file } });
    const port = await s.port();
    const [worker] = await s.workersBooted(1);
    assert.equal((await request(port, '/', { timeout: 30000 })).status, 200);
    const master = s.pid;
    // The master's copy was started (its onReady ran) while loading, and closed before the worker booted.
    assert.ok(notes(file).includes(`onReady ${master}`), notes(file).join('\n'));
    assert.ok(notes(file).includes(`onClose ${master}`), `the master's copy was never closed:\n${notes(file).join('\n')}`);
    // Its background work stopped there: no tick of the master's after its close, while the worker ticks on.
    const closedAt = notes(file).indexOf(`onClose ${master}`);
    await until(() => notes(file).filter((l) => l === `tick ${worker}`).length >= 3, 10000, 'three ticks of the worker');
    assert.deepEqual(notes(file).slice(closedAt).filter((l) => l === `tick ${master}`), []);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.ok(notes(file).includes(`onClose ${worker}`));
    // The module's shutdown export is the workers': the master closed the framework alone.
    assert.ok(notes(file).includes(`shutdown ${worker}`), notes(file).join('\n'));
    assert.ok(!notes(file).includes(`shutdown ${master}`), notes(file).join('\n'));
  });

  for (const cls of [['-k', 'async'], ['-k', 'sync'], ['-k', 'gthread', '--threads', '2']]) {
    it(`${cls.join(' ')}: a module awaiting its own listen() at the top level: its startup(), its Fastify onClose and shutdown() run`, async () => {
      const file = path.join(tmp, `late-${cls[1]}.log`);
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', ...cls, fx('fastify-listens-lifespan.mjs')], { env: { LIFESPAN_FILE: file } });
      const port = await s.port();
      const [worker] = await s.workersBooted(1);
      assert.equal((await request(port, '/', { timeout: 30000 })).status, 200);
      const copies = cls.includes('gthread') ? 2 : 1;
      await until(() => notes(file).filter((l) => l === `startup ${worker}`).length === copies, 10000, 'startup()');
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
      const seen = notes(file);
      assert.equal(seen.filter((l) => l === `onClose ${worker}`).length, copies, seen.join('\n'));
      assert.equal(seen.filter((l) => l === `shutdown ${worker}`).length, copies, seen.join('\n'));
      assert.ok(seen.indexOf(`onClose ${worker}`) < seen.indexOf(`shutdown ${worker}`), seen.join('\n'));
    });
  }
});

describe('a factory that awaits its own listen()', () => {
  for (const cls of [['-k', 'async'], ['-k', 'gthread', '--threads', '2']]) {
    it(`${cls.join(' ')}: is served at once, its listen() resolves, and its Fastify app is closed on stop`, async () => {
      const file = path.join(tmp, `factory-${cls[1]}.log`);
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', ...cls, fx('fastify-factory-listens.mjs')], { env: { LIFESPAN_FILE: file } });
      const port = await s.port();
      const [worker] = await s.workersBooted(1);
      await s.waitFor(/Ready: 1 worker\(s\) serving/, 15000);
      assert.equal((await request(port, '/', { timeout: 10000 })).status, 200);
      const copies = cls.includes('gthread') ? 2 : 1;
      await until(() => notes(file).filter((l) => l === `listened ${worker}`).length === copies, 10000, "the factory's listen() to resolve");
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
      assert.equal(notes(file).filter((l) => l === `onClose ${worker}`).length, copies, notes(file).join('\n'));
      assert.doesNotMatch(s.log, /WORKER TIMEOUT/);
    });
  }
});

describe('a request that outlasts the stop', () => {
  const app = path.join(tmp, 'slow.mjs');
  writeFileSync(
    app,
    "import { appendFileSync } from 'node:fs';\n" +
      'export function startup() {}\n' +
      "export function shutdown() { appendFileSync(process.env.LIFESPAN_FILE, `shutdown ${process.pid}\\n`); }\n" +
      'export default (req, res) => {\n' +
      "  if (req.url !== '/slow') return res.end('ok');\n" +
      "  appendFileSync(process.env.LIFESPAN_FILE, `slow ${process.pid}\\n`);\n" +
      "  setTimeout(() => res.end('slow'), 60000);\n" +
      '};\n',
  );
  for (const cls of [['-k', 'async'], ['-k', 'sync'], ['-k', 'gthread', '--threads', '1']]) {
    it(`${cls.join(' ')}: shutdown() still runs, at 80 % of graceful_timeout, before the master's kill`, async () => {
      const file = path.join(tmp, `slow-${cls[1]}.log`);
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--graceful-timeout', '2', ...cls, app], { env: { LIFESPAN_FILE: file } });
      const port = await s.port();
      const [worker] = await s.workersBooted(1);
      assert.equal((await request(port, '/', { timeout: 30000 })).status, 200);
      const slow = request(port, '/slow', { timeout: 30000 }).catch((err: unknown) => err);
      await until(() => notes(file).includes(`slow ${worker}`), 10000, 'the slow request to reach the app');
      s.signal('SIGTERM');
      await s.waitFor(/Graceful stop: cutting the requests still running at 80 % of graceful_timeout, so the app's shutdown runs before the master's kill: GET \/slow/);
      assert.equal((await s.exited).code, 0);
      await slow;
      assert.deepEqual(notes(file), [`slow ${worker}`, `shutdown ${worker}`]);
      assert.doesNotMatch(s.log, /did not stop in time/);
    });
  }
});

describe('a shutdown() that never settles', () => {
  const app = path.join(tmp, 'shutdown-hangs.mjs');
  writeFileSync(
    app,
    "import { appendFileSync } from 'node:fs';\n" +
      "export default (req, res) => res.end('ok');\n" +
      "process.on('SIGTERM', () => appendFileSync(process.env.LIFESPAN_FILE, `term ${process.pid}\\n`));\n" +
      'export function shutdown() {\n' +
      "  appendFileSync(process.env.LIFESPAN_FILE, `shutdown ${process.pid}\\n`);\n" +
      '  return new Promise(() => {});\n' +
      '}\n',
  );
  for (const cls of [['-k', 'async'], ['-k', 'sync'], ['-k', 'gthread', '--threads', '1']]) {
    it(`${cls.join(' ')}: is given up at 90 % of graceful_timeout, in one line; the TERM listeners still run, and the worker exits before the master's kill`, async () => {
      const file = path.join(tmp, `hangs-${cls[1]}.log`);
      // 4 s: the worker gives up at 3.6 s, the master would kill it at 4, a margin a loaded machine keeps.
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--graceful-timeout', '4', ...cls, app], { env: { LIFESPAN_FILE: file } });
      const port = await s.port();
      const [worker] = await s.workersBooted(1);
      assert.equal((await request(port, '/', { timeout: 30000 })).status, 200);
      s.signal('SIGTERM');
      await s.waitFor(/\[WARNING\] Graceful stop: the shutdown\(\) export had not finished \d+\.\d s into the stop; the worker exits without it, before the master's kill at graceful_timeout \(4 s\)\n/);
      assert.equal((await s.exited).code, 0);
      assert.deepEqual(notes(file), [`shutdown ${worker}`, `term ${worker}`]);
      assert.doesNotMatch(s.log, /did not stop in time/);
    });
  }
});

describe("the app's own server.close(cb) in its shutdown", () => {
  const app = path.join(tmp, 'closes-own-server.mjs');
  writeFileSync(
    app,
    "import { appendFileSync } from 'node:fs';\n" +
      "import http from 'node:http';\n" +
      "const server = http.createServer((req, res) => res.end('ok'));\n" +
      'server.listen(0);\n' +
      'export function shutdown() {\n' +
      '  return new Promise((resolve, reject) => server.close((err) => {\n' +
      "    appendFileSync(process.env.LIFESPAN_FILE, `closed ${err ? err.code : 'ok'} ${process.pid}\\n`);\n" +
      '    if (err) reject(err); else resolve();\n' +
      '  }));\n' +
      '}\n',
  );
  for (const cls of [['-k', 'async'], ['-k', 'sync'], ['-k', 'gthread', '--threads', '1']]) {
    it(`${cls.join(' ')}: calls back with no error, as on a server that listened`, async () => {
      const file = path.join(tmp, `close-${cls[1]}.log`);
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', ...cls, app], { env: { LIFESPAN_FILE: file } });
      const port = await s.port();
      const [worker] = await s.workersBooted(1);
      assert.equal((await request(port, '/', { timeout: 30000 })).status, 200);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
      assert.deepEqual(notes(file), [`closed ok ${worker}`]);
      assert.doesNotMatch(s.log, /Error while stopping|ERR_SERVER_NOT_RUNNING/);
    });
  }
});

describe("the app's own stop, when it fails", () => {
  it('a throw in the Fastify onClose hook and one in the shutdown export: both logged, each naming its part', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('stop-fails.mjs')]);
    await s.port();
    await s.waitFor(/Ready: 1 worker\(s\) serving/, 15000);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.match(s.log, /\[ERROR\] Error while stopping: the Fastify instance's close\(\) \(its onClose hooks\) failed\nError: onClose broke\n/);
    assert.match(s.log, /\[ERROR\] Error while stopping: the shutdown\(\) export failed\nError: pool already closed\n/);
  });
});
