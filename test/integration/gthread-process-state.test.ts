/**
 * What an app meets in a gthread thread and not in a worker process, on the real CLI (port 0), and what the
 * user is told:
 * - process.chdir(), process.umask(mask) and process.setuid() at import fail the load with one line that names
 *   gthread and the setting to use (--chdir, --umask, --user) or -k async / -k sync; process.chdir() in a
 *   request: the request's error line says the same
 * - a native addon that is not context-aware (a stand-in that throws Node's "Module did not self-register"): at
 *   import the load fails with the hint, and required in a request, the request's error line has it
 * - process.env is one for the process: a thread's write is seen by the others, as in a worker process
 * - a signal listener other than SIGTERM's never runs in a thread: a warning names it; SIGTERM's alone, none
 * - a write to process.title, which Node ignores in a thread: a warning
 * - an app that listens on worker_threads.parentPort (it took the thread for one of its own) fails to load
 *   with a line that says so, also when it exported nothing
 * - a HUP with requests in flight prints no Node warning about the descriptors the threads close
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { request, Server, stopAll, until, within } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const tmp = scratchDir('tunicorn-gthread-state-');
const GTHREAD = ['-k', 'gthread', '--threads', '2', '-w', '1', '-b', '127.0.0.1:0'];

/** Writes the app; its name, as the server (run in `tmp`) is given it. */
function app(name: string, code: string): string {
  const file = path.join(tmp, name);
  writeFileSync(file, code);
  return name;
}

/** Starts the app under gthread and waits for its master to exit: the log and the status. */
async function failedLoad(file: string): Promise<{ code: number | null; log: string }> {
  const s = new Server([...GTHREAD, file], { cwd: tmp });
  const { code } = await within(s.exited, 20000, 'the master to exit');
  await s.drained;
  return { code, log: s.log };
}

async function serving(file: string): Promise<{ s: Server; port: number }> {
  const s = new Server([...GTHREAD, file], { cwd: tmp });
  const port = await s.port();
  await s.waitFor(/Ready: 1 worker\(s\) serving/);
  return { s, port };
}

describe('gthread: what differs in a thread', () => {
  const calls: [string, string, RegExp][] = [
    ['chdir', "process.chdir('/');", /app chdir\.mjs failed to load: process\.chdir\(\) is not supported in workers .*; gthread runs the app in worker threads, where process\.chdir\(\) cannot be called: set --chdir \(chdir\) instead, or serve this app with -k async or -k sync\n/],
    ['umask', 'process.umask(0o077);', /app umask\.mjs failed to load: .*; gthread runs the app in worker threads, where process\.umask\(\) with a mask cannot be called: set --umask \(umask\) instead, or serve this app with -k async or -k sync\n/],
    ['setuid', 'process.setuid(process.getuid());', /app setuid\.mjs failed to load: .*; gthread runs the app in worker threads, where process\.setuid\(\) cannot be called: set --user \(user\) instead, or serve this app with -k async or -k sync\n/],
  ];
  for (const [name, call, line] of calls) {
    it(`process.${name}() at import: the load fails with a line that names gthread and what to use`, async () => {
      const { code, log } = await failedLoad(app(`${name}.mjs`, `${call}\nexport default (req, res) => res.end('ok');\n`));
      assert.equal(code, 1);
      assert.match(log, line);
      assert.match(log, /Reason: App failed to load\./);
    });
  }

  it('process.chdir() in a request: a 500, and the error line names gthread and --chdir', async () => {
    const { s, port } = await serving(app('chdir-request.mjs', "export default (req, res) => { process.chdir('/'); res.end('ok'); };\n"));
    assert.equal((await request(port)).status, 500);
    await s.waitFor(/\[ERROR\] Error handling request GET \/; gthread runs the app in worker threads, where process\.chdir\(\) cannot be called: set --chdir \(chdir\) instead, or serve this app with -k async or -k sync\nTypeError \[ERR_WORKER_UNSUPPORTED_OPERATION\]/);
    await s.kill();
  });

  // No addon that is not context-aware can be built here: these stand-ins throw what Node's loader throws for
  // one loaded a second time in a process (src/node_binding.cc: ERR_DLOPEN_FAILED, "Module did not self-register").
  const selfRegister = "Object.assign(new Error(\"Module did not self-register: '/x/build/Release/legacy.node'.\"), { code: 'ERR_DLOPEN_FAILED' })";
  it('a native addon that is not context-aware, at import: the load fails with the hint', async () => {
    const { code, log } = await failedLoad(app('addon.mjs', `throw ${selfRegister};\n`));
    assert.equal(code, 1);
    assert.match(log, /app addon\.mjs failed to load: Module did not self-register: .*; gthread loads the app in worker threads, where a native addon that is not context-aware \(N-API addons are\) cannot load: serve this app with -k async or -k sync\n/);
  });

  it('a native addon that is not context-aware, loaded in a request: the error line has the hint', async () => {
    const { s, port } = await serving(app('addon-request.mjs', `export default (req, res) => { throw ${selfRegister}; };\n`));
    assert.equal((await request(port)).status, 500);
    await s.waitFor(/\[ERROR\] Error handling request GET \/; gthread loads the app in worker threads, where a native addon that is not context-aware \(N-API addons are\) cannot load: serve this app with -k async or -k sync\nError: Module did not self-register/);
    await s.kill();
  });

  it("process.env is the process's: what one thread writes, the others see", async () => {
    // Each thread writes a key of its own (no race between threads loading at once); a request counts them.
    const file = app(
      'env.mjs',
      "import { threadId } from 'node:worker_threads';\n" +
        "process.env['TUNICORN_TEST_THREAD_' + threadId] = '1';\n" +
        "export default (req, res) => res.end(String(Object.keys(process.env).filter((k) => k.startsWith('TUNICORN_TEST_THREAD_')).length));\n",
    );
    const { s, port } = await serving(file);
    // Both threads have loaded the app before the worker is ready: whichever serves sees both writes.
    for (let i = 0; i < 4; i++) assert.equal((await request(port)).body, '2');
    await s.kill();
  });

  it('a signal listener other than SIGTERM: a warning names it; SIGTERM alone: none', async () => {
    const deaf = await serving(app('signals.mjs', "process.on('SIGUSR2', () => {});\nprocess.on('SIGINT', () => {});\nprocess.on('SIGTERM', () => {});\nexport default (req, res) => res.end('ok');\n"));
    await deaf.s.waitFor(/\[WARNING\] app signals\.mjs listens for SIGUSR2, SIGINT \(process\.on\): a gthread thread gets no signals, so those listeners never run \(its SIGTERM listeners do, at the end of a graceful stop\); serve the app with -k async or -k sync if it needs them\n/);
    assert.equal(deaf.s.count(/listens for/), 1, 'said once, not once per thread');
    await deaf.s.kill();
    const term = await serving(app('sigterm.mjs', "process.on('SIGTERM', () => {});\nexport default (req, res) => res.end('ok');\n"));
    assert.equal((await request(term.port)).body, 'ok');
    assert.doesNotMatch(term.s.log, /listens for/);
    await term.s.kill();
  });

  it('a HUP with requests in flight: no Node warning about descriptors the threads close', async () => {
    // A thread running a request has paused accepting (closed its copy of the listening socket, kept a
    // duplicate to resume on); the stop closes that duplicate, which Node's tracking of a thread's descriptors
    // reported as `Warning: File descriptor N closed but not opened in unmanaged mode`, in Node's words.
    const { s, port } = await serving(app('slow.mjs', "export default (req, res) => {\n  process.stderr.write('app: request\\n');\n  setTimeout(() => res.end('ok'), 1500);\n};\n"));
    const old = Number(/Booting worker with pid: (\d+)/.exec(s.log)![1]);
    const answers = [request(port), request(port)];
    await until(() => s.count(/app: request/) === 2, 10000, 'both requests in the worker');
    s.signal('SIGHUP');
    await s.waitFor(new RegExp(`Worker exited \\(pid: ${old}\\)`), 20000);
    for (const a of answers) assert.equal((await within(a, 20000, 'an answer')).body, 'ok');
    assert.doesNotMatch(s.log, /closed but not opened|Warning: /);
    await s.kill();
  });

  it('a write to process.title: a warning', async () => {
    const { s } = await serving(app('title.mjs', "process.title = 'my-app';\nexport default (req, res) => res.end('ok');\n"));
    await s.waitFor(/\[WARNING\] app title\.mjs set process\.title to "my-app": a gthread thread cannot rename its process, which keeps its name; set --name \(proc_name\) instead, or serve the app with -k async or -k sync\n/);
    await s.kill();
  });

  it('an app that listens on parentPort fails to load with a line that says why, also when it exported nothing', async () => {
    const listens = "import { isMainThread, parentPort } from 'node:worker_threads';\nif (!isMainThread) parentPort.on('message', () => {});\n";
    const port = /listens on worker_threads\.parentPort, as a worker thread started by the app would: in a gthread thread \(where isMainThread is false\) that port is tunicorn's; serve this app with -k async or -k sync\n/;
    const exported = await failedLoad(app('port.mjs', `${listens}export default (req, res) => res.end('ok');\n`));
    assert.equal(exported.code, 1);
    assert.match(exported.log, new RegExp(`\\[ERROR\\] app port\\.mjs ${port.source}`));
    // The classic single-file pattern: the handler only where isMainThread. It exports nothing in a thread,
    // and the loader waits for a listen() that never comes (10 s) before it says so.
    const nothing = await failedLoad(app('port-only.mjs', `${listens}let handler;\nif (isMainThread) handler = (req, res) => res.end('ok');\nexport default handler;\n`));
    assert.equal(nothing.code, 1);
    assert.match(nothing.log, new RegExp(`app port-only\\.mjs: no default export, .*; it ${port.source}`));
  });
});
