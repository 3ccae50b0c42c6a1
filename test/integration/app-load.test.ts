/**
 * An app whose loading ends the process or never ends says so in one line, in the master (`--check-config`,
 * `--preload`) and in a worker:
 * - a top-level await that can never settle: Node would exit 0 with nothing said;
 * - process.exit() in the app's top-level code;
 * - a worker still loading after the boot timeout is a boot failure, and the log says it was loading;
 * - with --preload, an app that calls process.exit() later, in the master: the log says so.
 * Also what Node says too little about: a require() of an ES-module-only package (named, with the way out, for
 * the app and a config file), CommonJS in a .js file of a "type": "module" package (Node's reason kept), and ES
 * module syntax in a .js file of a CommonJS package (the package.json named, with the way out).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { alive, request, Server, stopAll, until, within } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const tmp = scratchDir('tunicorn-app-load-');
function app(name: string, top: string): string {
  const file = path.join(tmp, name);
  writeFileSync(file, `${top}\nexport default (req, res) => res.end('x');\n`);
  return file;
}
/** Awaits a promise nothing will ever resolve, and nothing else is left to run. */
const neverSettles = app('never-settles.mjs', 'await new Promise(() => {});');
/** Awaits something that keeps the process up: a server that nobody connects to. */
const waitsForever = app('waits-forever.mjs', "import net from 'node:net';\nawait new Promise(() => net.createServer().listen(0, '127.0.0.1'));");
const loads = app('loads.mjs', '');
const exits = app('exits.mjs', 'process.exit(3);');
/** Ends the master (which has no IPC channel) once its worker has had time to boot; the workers never. */
const exitsLater = app('exits-later.mjs', 'if (!process.send) setTimeout(() => process.exit(3), 1500);');
/**
 * Ends the master 0.5 s after its own load; each worker's load holds its event loop for 2 s, so the worker
 * reports back to a master that is gone before it has heard so (the IPC write fails with EPIPE).
 */
const exitsWhileWorkerLoads = app(
  'exits-while-worker-loads.mjs',
  'if (!process.send) setTimeout(() => process.exit(3), 500);\nelse { const t = Date.now(); while (Date.now() - t < 2000); }',
);
/** Leaves a rejected promise unhandled at its top level. */
const rejects = app('rejects.mjs', "Promise.reject(new Error('rejected at import'));");
/** Crashes every worker a moment after it is ready, from a timer its top-level code set. */
const crashesSoon = app('crashes-soon.mjs', "setTimeout(() => { throw new Error('crash soon after the load'); }, 300);");
/** Loads for a minute: a stop during its load must not wait for it. */
const loadsSlowly = app('loads-slowly.mjs', 'await new Promise((resolve) => setTimeout(resolve, 60000));');
/** Ends its process (or, under gthread, its thread) with status 5 on GET /exit. */
const exitsOnRequest = path.join(tmp, 'exits-on-request.mjs');
writeFileSync(exitsOnRequest, "export default (req, res) => (req.url === '/exit' ? process.exit(5) : res.end('x'));\n");
/** The common "graceful" snippet: exit on TERM. */
const exitsOnTerm = app('exits-on-term.mjs', "process.on('SIGTERM', () => process.exit(0));");

/**
 * The boot timeout's case waits 30 s (the bound's floor) on the master's clock alone: its servers start with
 * the file and its test, the file's last, awaits them, so the other tests run during those 30 s instead of
 * after them. Settled to an error or null: a failure before the test awaits it is not an unhandled rejection.
 */
const bootTimeoutCase = (async () => {
  // -t 1: the boot timeout is its floor, 30 s (a first TypeScript transform can take long).
  const s = new Server(['-b', '127.0.0.1:0', '-t', '1', waitsForever]);
  // The same bound, at the same time: a postWorkerInit hook that never settles is named, not the app.
  const hookCfg = path.join(tmp, 'hangs-in-post-worker-init.config.mjs');
  writeFileSync(hookCfg, 'export default { postWorkerInit: () => new Promise(() => {}) };\n');
  const hook = new Server(['-b', '127.0.0.1:0', '-t', '1', '-c', hookCfg, loads]);
  await s.waitFor(/WORKER TIMEOUT \(pid:\d+\) while loading the app: not ready 30 s after it started\n/, 45000);
  await hook.waitFor(/WORKER TIMEOUT \(pid:\d+\) while in its postWorkerInit hook \(the app is not at fault\): not ready 30 s after it started\n/, 15000);
  await hook.kill();
  await s.waitFor(/Worker failed to boot \(1 in a row\)/, 10000);
  assert.doesNotMatch(s.log, /no request was running/);
  // The worker's end was tunicorn's (the master's SIGABRT), not the app's.
  assert.doesNotMatch(s.log, /called process\.exit/);
  await s.kill();
})().then(() => null, (err: unknown) => err);

describe('an app that ends or stalls its loading', () => {
  for (const flag of ['--check-config', '--preload']) {
    it(`${flag}: a top-level await that can never settle is an error, not a silent exit 0`, async () => {
      const s = new Server(['-b', '127.0.0.1:0', flag, neverSettles]);
      assert.equal((await s.exited).code, 1);
      assert.match(s.log, /^tunicorn: error: app .*never-settles\.mjs never finished loading: its top-level code awaits something that can never settle \(nothing else was left to run\)\n$/);
    });
  }

  it('--check-config: process.exit() at import is named, with its status', async () => {
    const s = new Server(['--check-config', exits]);
    assert.equal((await s.exited).code, 3);
    assert.match(s.log, /^tunicorn: error: app .*exits\.mjs called process\.exit\(3\) while loading\n$/);
  });

  it('a worker names the process.exit() that ended its loading', async () => {
    const s = new Server(['-b', '127.0.0.1:0', exits]);
    await s.exited;
    assert.match(s.log, /\[ERROR\] app .*exits\.mjs called process\.exit\(3\) while loading\n/);
  });

  it('process.exit(4) at import is the app\'s status, not taken for tunicorn\'s failed load: retried, then status 3', async () => {
    const exits4 = app('exits-4.mjs', 'process.exit(4);');
    const s = new Server(['-b', '127.0.0.1:0', exits4]);
    assert.equal((await within(s.exited, 30000, 'the master to give up')).code, 3);
    assert.equal(s.count(/Booting worker/), 5);
    assert.match(s.log, /Reason: Worker failed to boot\./);
  });

  it('--preload: an app that ends the master later is named in the log, its pidfile goes, and the workers follow', async () => {
    const pidfile = path.join(tmp, 'exits-later.pid');
    const s = new Server(['-b', '127.0.0.1:0', '-p', pidfile, '--preload', exitsLater]);
    await until(() => existsSync(pidfile), 10000, 'the pidfile');
    assert.equal((await s.exited).code, 3);
    assert.ok(!existsSync(pidfile), 'the pidfile is removed');
    assert.match(s.log, /\[CRITICAL\] The master is exiting with status 3: process\.exit\(\) was called by the app \(--preload\) or a server hook, not by tunicorn\n/);
    await s.waitFor(/Worker exiting \(pid: \d+\): the master is gone/);
  });

  it('--preload: an exception the app throws later in the master is logged, and the master serves on', async () => {
    const app = path.join(tmp, 'throws-in-master.mjs');
    writeFileSync(app, "if (!process.send) setTimeout(() => { throw new Error('late timer error in the master'); }, 1000);\nexport default (req, res) => res.end('ok');\n");
    const pidfile = path.join(tmp, 'throws-in-master.pid');
    const s = new Server(['-b', '127.0.0.1:0', '-p', pidfile, '--preload', app]);
    const port = await s.port();
    await s.waitFor(/\[ERROR\] Uncaught exception in the master, from the app \(--preload\) or a config hook; the master serves on:\nError: late timer error in the master\n\s+at .*throws-in-master\.mjs/);
    assert.equal((await request(port)).body, 'ok');
    assert.ok(existsSync(pidfile), 'the pidfile stays');
    assert.ok(alive(s.pid));
    await s.kill();
  });

  it('--preload: a worker still loading when the master ends exits quietly (no uncaught EPIPE)', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '--preload', exitsWhileWorkerLoads]);
    const worker = Number((await s.waitFor(/Booting worker with pid: (\d+)/))[1]);
    assert.equal((await s.exited).code, 3);
    await until(() => !alive(worker), 10000, 'the worker to exit');
    assert.doesNotMatch(s.log, /Uncaught exception|EPIPE/);
  });

  it('--preload: the app\'s TERM listener does not run in the master, whose graceful stop goes on', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '--preload', '--graceful-timeout', '5', exitsOnTerm]);
    await s.workersBooted(1);
    assert.match(s.log, /\[WARNING\] The master handles TERM itself: 1 SIGTERM listener\(s\) added by the app \(--preload\) or the config file will not run in the master\n/);
    s.signal('SIGTERM');
    assert.deepEqual(await s.exited, { code: 0, signal: null });
    assert.match(s.log, /Shutting down: Master/);
    assert.doesNotMatch(s.log, /The master is exiting with status|the master is gone/);
  });

  it("a config file's TERM listener, added again by each HUP's read of the file, does not run in the master either", async () => {
    const config = path.join(tmp, 'exits-on-term.config.mjs');
    writeFileSync(config, "process.on('SIGTERM', () => process.exit(0));\nexport default { gracefulTimeout: 5 };\n");
    const s = new Server(['-b', '127.0.0.1:0', '-c', config, loads]);
    await s.workersBooted(1);
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Handling signal: hup/);
    await s.waitFor(/Worker exited \(pid: \d+\)/, 20000, from);
    s.signal('SIGTERM');
    assert.deepEqual(await s.exited, { code: 0, signal: null });
    // Its graceful stop, not the listener's process.exit().
    assert.doesNotMatch(s.log, /The master is exiting with status|the master is gone/);
    assert.match(s.log, /Shutting down: Master/);
    assert.match(s.log.slice(from), /\[WARNING\] The master handles TERM itself: 1 SIGTERM listener\(s\) added by the app \(--preload\) or the config file will not run in the master\n/);
  });

  it('the master keeps signal listeners that were there before the app (Node\'s own, for a terminal), and only those', async () => {
    // As Node adds one for SIGWINCH when stdout is a terminal: here by --import, before tunicorn's main runs.
    const before = "--import=data:text/javascript,process.on('SIGWINCH',()=>{})";
    const quiet = new Server(['-b', '127.0.0.1:0', '--preload', loads], { env: { NODE_OPTIONS: before } });
    await quiet.workersBooted(1);
    assert.doesNotMatch(quiet.log, /The master handles/);
    await quiet.kill();
    const app = path.join(tmp, 'winch.mjs');
    writeFileSync(app, "process.on('SIGWINCH', () => {});\nexport default (req, res) => res.end('x');\n");
    const warned = new Server(['-b', '127.0.0.1:0', '--preload', app], { env: { NODE_OPTIONS: before } });
    await warned.waitFor(/\[WARNING\] The master handles WINCH itself: 1 SIGWINCH listener\(s\) added by the app/);
    await warned.kill();
  });

  it('a normal stop says nothing of the kind', async () => {
    const s = new Server(['-b', '127.0.0.1:0', loads]);
    await s.workersBooted(1);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.doesNotMatch(s.log, /The master is exiting with status/);
  });

  it('a rejection the top-level code leaves unhandled fails the load, in one line, in every class and --check-config', async () => {
    const line = /app .*rejects\.mjs failed to load: a promise it made was rejected and nothing handled the rejection: Error: rejected at import; add a \.catch\(\) or await it in a try\n/;
    const check = new Server(['--check-config', rejects]);
    assert.equal((await check.exited).code, 1);
    assert.match(check.log, line);
    for (const cls of ['async', 'sync', 'gthread']) {
      const s = new Server(['-b', '127.0.0.1:0', '-k', cls, rejects]);
      assert.equal((await within(s.exited, 20000, 'the master to stop')).code, 1, s.log);
      assert.match(s.log, line);
      assert.match(s.log, /Reason: App failed to load\./);
      assert.equal(s.count(/Booting worker/), 1, `${cls}: no worker after the first`);
    }
  });

  it('workers that die soon after they are ready are replaced with a growing pause, never in a tight loop', async () => {
    const s = new Server(['-b', '127.0.0.1:0', crashesSoon]);
    await s.waitFor(/died \d+\.\d s after it started serving \(2 in a row\); next worker in 0\.1 s/, 20000);
    await s.waitFor(/\(3 in a row\); next worker in 0\.2 s/, 20000);
    await s.waitFor(/\(4 in a row\); next worker in 0\.4 s/, 20000);
    // The first of a streak is replaced at once, and says nothing more than its death.
    assert.doesNotMatch(s.log, /\(1 in a row\)/);
    assert.doesNotMatch(s.log, /Reason:/);
    await s.kill();
  });

  it('a streak of quick deaths ends once a worker started after it has served 10 s: the next death is a first again', async () => {
    const flag = path.join(tmp, 'crash-while-flagged');
    const flagged = app('crashes-while-flagged.mjs', `import { existsSync } from 'node:fs';\nif (existsSync(${JSON.stringify(flag)})) setTimeout(() => { throw new Error('crash while flagged'); }, 300);`);
    writeFileSync(flag, '');
    const s = new Server(['-b', '127.0.0.1:0', '--max-requests', '3', flagged]);
    const port = await s.port();
    await s.waitFor(/\(2 in a row\); next worker in 0\.1 s/, 20000);
    rmSync(flag);
    // A worker spawned from now on loads without the flag (one spawned before may still have seen it, and
    // die once more): it serves on, and once it has for 10 s the streak is over. It then retires
    // (max_requests), and its replacement dies at once: the first of a new streak, replaced at once.
    const from = s.log.length;
    await s.workersBooted(1, from);
    // The 10 s of serving are the behaviour under test: from its spawn, its load (under 1 s) and the 10 s.
    await new Promise((r) => setTimeout(r, 12000));
    for (let i = 0; i < 3; i++) await request(port);
    const [served, next] = await s.workersBooted(2, from);
    // The retired worker's exit (not a flagged worker's, whose exit after its crash says the same words).
    await s.waitFor(new RegExp(`Worker exited \\(pid: ${served}\\)`), 10000, from);
    process.kill(next!, 'SIGKILL');
    await s.waitFor(/was sent SIGKILL/, 10000, from);
    await s.workersBooted(3, from);
    assert.doesNotMatch(s.log.slice(from), /in a row/);
    await s.kill();
  });

  it('an exception the app throws from a timer while it loads is not taken for a process.exit(): gthread and --preload', async () => {
    const throwsEarly = app('throws-early.mjs', "setTimeout(() => { throw new Error('early timer boom'); }, 200);\nawait new Promise((r) => setTimeout(r, 1000));");
    const threads = new Server(['-b', '127.0.0.1:0', '-k', 'gthread', '--threads', '2', throwsEarly]);
    await threads.waitFor(/Thread \d of worker \d+ failed; exiting/);
    assert.doesNotMatch(threads.log, /called process\.exit/);
    await threads.kill();
    const preload = new Server(['-b', '127.0.0.1:0', '--preload', throwsEarly]);
    assert.equal((await preload.exited).code, 1);
    assert.match(preload.log, /^tunicorn: error: app .*throws-early\.mjs failed to load: it threw an uncaught exception while loading\nError: early timer boom\n\s+at .*throws-early\.mjs:1:\d+/);
    assert.doesNotMatch(preload.log, /called process\.exit|Node\.js v/);
  });

  it('-k gthread: TERM while some threads have loaded the app and others have not stops the worker at once', async () => {
    const mixed = app(
      'mixed-load.mjs',
      // Thread 0 says so half a second after its load (it has told its process by then); the others load for a minute.
      "import { isMainThread, workerData } from 'node:worker_threads';\nconst t = isMainThread ? 0 : workerData.thread;\nif (t === 0) setTimeout(() => process.stderr.write('thread 0 loaded\\n'), 500);\nawait new Promise((r) => setTimeout(r, t === 0 ? 0 : 60000));",
    );
    const s = new Server(['-b', '127.0.0.1:0', '-k', 'gthread', '--threads', '3', mixed]);
    await s.waitFor(/thread 0 loaded/);
    s.signal('SIGTERM');
    assert.deepEqual(await within(s.exited, 10000, 'the server to stop'), { code: 0, signal: null });
    assert.doesNotMatch(s.log, /did not stop in time/);
  });

  it('-k gthread: process.exit() at import is named once per worker, and the master reads its status', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-k', 'gthread', '--threads', '2', exits]);
    assert.equal((await within(s.exited, 30000, 'the master to give up')).code, 3);
    await s.drained;
    const named = s.count(/\[ERROR\] app .*exits\.mjs called process\.exit\(3\) while loading\n/);
    assert.equal(named, s.count(/Booting worker with pid/), 'one line per worker, not per thread');
    assert.match(s.log, /Worker \(pid:\d+\) exited with code 3\n/);
    assert.match(s.log, /Reason: Worker failed to boot\./);
    assert.doesNotMatch(s.log, /before it was asked to|^\s+at /m);
  });

  it('-k gthread: a top-level await that can never settle fails the load at once, in one line', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-k', 'gthread', neverSettles]);
    assert.equal((await within(s.exited, 20000, 'the master to stop')).code, 1);
    assert.match(s.log, /\[ERROR\] app .*never-settles\.mjs never finished loading: its top-level code awaits something that can never settle/);
    assert.match(s.log, /Reason: App failed to load\./);
    assert.equal(s.count(/Booting worker/), 1, 'no retry of a load that cannot succeed');
  });

  it('-k gthread: a thread the app ends with process.exit(5) ends its worker with status 5', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-k', 'gthread', '--threads', '2', exitsOnRequest]);
    await s.workersBooted(1);
    const port = await s.port();
    await request(port, '/exit').catch(() => undefined);
    await s.waitFor(/\[ERROR\] Thread \d of worker \d+ exited \(code 5\) before it was asked to; exiting\n/);
    await s.waitFor(/Worker \(pid:\d+\) exited with code 5\n/);
    await s.workersBooted(2);
    assert.equal((await request(port)).body, 'x');
    await s.kill();
  });

  for (const cls of ['async', 'gthread']) {
    it(`-k ${cls}: TERM while the app loads stops the worker at once, and is not taken for the app's exit`, async () => {
      const s = new Server(['-b', '127.0.0.1:0', '-k', cls, loadsSlowly]);
      await s.waitFor(/Booting worker with pid/);
      s.signal('SIGTERM');
      // The app's load takes 60 s: the stop does not wait for it.
      assert.deepEqual(await within(s.exited, 15000, 'the server to stop'), { code: 0, signal: null });
      assert.doesNotMatch(s.log, /called process\.exit|before it was asked to/);
    });
  }
});

describe('an ES-module-only package required from CommonJS', () => {
  // A package as ES-module-only packages ship: "exports" with an `import` condition and no `require`.
  const project = path.join(tmp, 'esm-only-project');
  const pkg = path.join(project, 'node_modules', 'esm-only');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'esm-only', type: 'module', exports: { '.': { types: './index.d.ts', import: './index.js' } } }));
  writeFileSync(path.join(pkg, 'index.js'), "export const shout = (s) => `${s.toUpperCase()}!`;\n");
  const file = (name: string, text: string) => (writeFileSync(path.join(project, name), text), path.join(project, name));
  const hint = /; esm-only is an ES module only package \(its "exports" have no entry for require\(\)\): load it with `await import\('esm-only'\)`, or make the file that requires it an ES module/;

  it('the load fails in one line that says so and what to do, for the app and for a config file', async () => {
    const required = file('requires.cjs', "const { shout } = require('esm-only');\nmodule.exports = (req, res) => res.end(shout('x'));\n");
    const s = new Server(['--check-config', required]);
    assert.equal((await s.exited).code, 1);
    assert.match(s.log, new RegExp(`^tunicorn: error: app .*requires\\.cjs failed to load: No "exports" main defined in .*esm-only/package\\.json \\(.*requires\\.cjs:1:\\d+\\)\\)${hint.source}.*\\n$`));
    const config = file('tunicorn.config.cjs', "require('esm-only');\nmodule.exports = {};\n");
    const c = new Server(['--check-config', '-c', config, file('plain.cjs', "module.exports = (req, res) => res.end('x');\n")]);
    assert.equal((await c.exited).code, 1);
    assert.match(c.log, new RegExp(`config file .*tunicorn\\.config\\.cjs failed to load: No "exports" main defined in .*${hint.source}`));
  });

  it('imported as the line says, it loads: import() from CommonJS, or an ES module app', async () => {
    for (const app of [
      file('imports.cjs', "module.exports = async () => {\n  const { shout } = await import('esm-only');\n  return (req, res) => res.end(shout('x'));\n};\n"),
      file('imports.mjs', "import { shout } from 'esm-only';\nexport default (req, res) => res.end(shout('x'));\n"),
    ]) {
      const s = new Server(['--check-config', app]);
      assert.equal((await s.exited).code, 0, s.log);
    }
  });
});

describe('CommonJS in a .js file of a "type": "module" package', () => {
  it("the load error keeps Node's reason (the package.json) and its way out (.cjs), not only `require is not defined`", async () => {
    const project = path.join(tmp, 'type-module-project');
    mkdirSync(project);
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'type-module-project', type: 'module' }));
    writeFileSync(path.join(project, 'app.js'), "const http = require('node:http');\nmodule.exports = (req, res) => res.end('x');\n");
    const s = new Server(['--check-config', path.join(project, 'app.js')]);
    assert.equal((await s.exited).code, 1);
    assert.match(
      s.log,
      /^tunicorn: error: app .*app\.js failed to load: require is not defined in ES module scope, you can use import instead\. This file is being treated as an ES module because it has a '\.js' file extension and '.*type-module-project\/package\.json' contains "type": "module"\. To treat it as a CommonJS script, rename it to use the '\.cjs' file extension\. \(.*app\.js:1:\d+\)\n$/,
    );
  });
});

describe('ES module syntax in a .js file of a CommonJS package', () => {
  // "type": "commonjs" is what npm 11's `npm init -y` writes; Node then runs every .js file as CommonJS.
  it('the load error names the package.json and the way out (.mjs, or "type": "module"), for the app and a config file', async () => {
    const project = path.join(tmp, 'type-commonjs-project');
    mkdirSync(project);
    const pkg = path.join(project, 'package.json');
    writeFileSync(pkg, JSON.stringify({ name: 'type-commonjs-project', type: 'commonjs' }));
    writeFileSync(path.join(project, 'app.js'), "import http from 'node:http';\nexport default (req, res) => res.end('x');\n");
    writeFileSync(path.join(project, 'conf.js'), 'export default { workers: 2 };\n');
    writeFileSync(path.join(project, 'ok.cjs'), "module.exports = (req, res) => res.end('x');\n");
    for (const [args, name, what, reason] of [
      [['--check-config', path.join(project, 'app.js')], 'app.js', 'app', 'Cannot use import statement outside a module'],
      [['--check-config', '-c', path.join(project, 'conf.js'), path.join(project, 'ok.cjs')], 'conf.js', 'config file', "Unexpected token 'export'"],
    ] as const) {
      const s = new Server([...args]);
      assert.equal((await s.exited).code, 1);
      const file = path.join(project, name);
      assert.equal(
        s.log.split('\n').find((l) => l.startsWith('tunicorn: error: ')),
        `tunicorn: error: ${what} ${file} failed to load: ${reason} (${file}:1); ${name} is an ES module in a .js file, which Node runs as CommonJS (${pkg} has "type": "commonjs"): rename it to .mjs, or set "type": "module" in ${pkg}`,
        s.log,
      );
    }
  });
});

describe('a worker still loading after the boot timeout (started with the file, above)', () => {
  it('is killed, logged as loading (or as in the hook that hangs), and counted as a boot failure', async () => {
    const err = await bootTimeoutCase;
    if (err) throw err;
  });
});
