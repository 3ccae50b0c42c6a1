/**
 * A Gunicorn user's habits, on the real CLI: what Gunicorn's docs show works as they say, or is refused, or
 * is said in one line; never misread or dropped in silence.
 * - `unix://PATH` binds PATH as Gunicorn does: `unix://app.sock` in the working directory, not /app.sock;
 * - `module:create_app()` (run.rst's application factory) calls the export, whatever its parameters; a call
 *   with arguments is refused in one line, not "app not found";
 * - a hook's `log.info('... %s', worker.pid)`, as Gunicorn's example config writes it, is formatted;
 * - GUNICORN_CMD_ARGS and a ./gunicorn.conf.py, which tunicorn does not read, are named in a warning, and so
 *   is --reload-extra-file without --reload (Gunicorn ignores it in silence).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { request, Server, stopAll } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const tmp = scratchDir('tunicorn-gunicorn-');
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A factory of one (optional) parameter: served as it is, it would be taken for a Fetch handler. */
writeFileSync(
  path.join(tmp, 'factory.mjs'),
  "export function create_app(options) { return (req, res) => res.end(`made by create_app(${options === undefined ? '' : 'options'})`); }\n" +
    'export const notAFunction = 42;\n',
);
writeFileSync(path.join(tmp, 'hello.mjs'), "export default (req, res) => res.end('hello');\n");

/** GET / over a Unix socket. */
function getUnix(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: '/', timeout: 10000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
  });
}

describe("Gunicorn's command lines and config, as a migrating user writes them", () => {
  it('-b unix://app.sock binds app.sock in the working directory, as Gunicorn does, not /app.sock', async () => {
    const name = `t${process.pid}-${Date.now()}.sock`;
    // Where the misread put it, removed whatever happens (a server killed by stopAll leaves its socket file).
    after(() => rmSync(path.join('/', name), { force: true }));
    const s = new Server(['-b', `unix://${name}`, 'hello.mjs'], { cwd: tmp });
    await s.workersBooted(1);
    assert.equal(existsSync(path.join('/', name)), false, 'the socket is not in /');
    assert.equal(await getUnix(path.join(tmp, name)), 'hello');
    assert.match(s.log, new RegExp(`Listening at: unix:${name.replace(/\./g, '\\.')} \\(`));
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it("serves module:create_app() by calling the factory, as Gunicorn's run.rst shows", async () => {
    const s = new Server(['-b', '127.0.0.1:0', 'factory:create_app()'], { cwd: tmp });
    const port = await s.port();
    const r = await request(port, '/', { timeout: 20000 });
    assert.equal(r.body, 'made by create_app()');
    await s.kill();
  });

  it('refuses a factory call with arguments, or of a value that is no function, in one line', async () => {
    const args = new Server(['--check-config', "factory:create_app('prod')"], { cwd: tmp });
    assert.equal((await args.exited).code, 1);
    assert.equal(
      args.log,
      "tunicorn: error: app factory:create_app('prod'): tunicorn calls a factory with no arguments (factory:create_app()); read its settings from the environment (-e KEY=VALUE) instead\n",
    );
    const value = new Server(['--check-config', 'factory:notAFunction()'], { cwd: tmp });
    assert.equal((await value.exited).code, 1);
    assert.match(value.log, /^tunicorn: error: app factory:notAFunction\(\): notAFunction is a number \(42\), not a function to call; serve it without the parentheses\n$/);
  });

  it("formats a hook's log message with its arguments, as Gunicorn's example config writes them", async () => {
    const config = path.join(tmp, 'hooks.config.cjs');
    writeFileSync(
      config,
      'module.exports = {\n' +
        "  whenReady(server) { server.log.info('Server is ready. Spawning %d workers', server.numWorkers); },\n" +
        "  postFork(server, worker) { server.log.info('Worker spawned (pid: %s)', worker.pid); },\n" +
        "  postWorkerInit(worker) { worker.log.info('100%% ready'); },\n" +
        '};\n',
    );
    const s = new Server(['-b', '127.0.0.1:0', '-c', config, 'hello.mjs'], { cwd: tmp });
    const [pid] = await s.workersBooted(1);
    await s.waitFor(new RegExp(`\\[INFO\\] Worker spawned \\(pid: ${pid}\\)\\n`));
    await s.waitFor(/\[INFO\] 100%% ready\n/); // no arguments: the message as it is
    assert.match(s.log, /\[INFO\] Server is ready\. Spawning 1 workers\n/);
    await s.kill();
  });

  it('says in a warning that GUNICORN_CMD_ARGS and ./gunicorn.conf.py are not read', async () => {
    const dir = mkdtempSync(path.join(tmp, 'conf-'));
    writeFileSync(path.join(dir, 'gunicorn.conf.py'), 'workers = 4\n');
    const s = new Server(['-b', '127.0.0.1:0', path.join(tmp, 'hello.mjs')], { cwd: dir, env: { GUNICORN_CMD_ARGS: '--workers=4' } });
    await s.workersBooted(1);
    assert.match(s.log, /\[WARNING\] GUNICORN_CMD_ARGS is set \("--workers=4"\), and tunicorn does not read it: put those options in TUNICORN_CMD_ARGS/);
    assert.match(s.log, /\[WARNING\] \/.*\/gunicorn\.conf\.py is not read: tunicorn's default config file is \.\/tunicorn\.config\.ts/);
    await s.kill();
    const check = new Server(['--check-config', path.join(tmp, 'hello.mjs')], { cwd: dir, env: { GUNICORN_CMD_ARGS: '--workers=4' } });
    assert.equal((await check.exited).code, 0);
    assert.match(check.log, /^tunicorn: warning: GUNICORN_CMD_ARGS is set/m);
  });

  it('says that --reload-extra-file without --reload watches nothing', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '--reload-extra-file', 'templates/*.html', 'hello.mjs'], { cwd: tmp });
    await s.workersBooted(1);
    assert.match(s.log, /\[WARNING\] reload_extra_file \(--reload-extra-file\) is watched only with --reload, which is off: no file is watched\n/);
    await s.kill();
  });
});
