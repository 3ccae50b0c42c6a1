/**
 * The package as a user gets it: `npm pack` of this folder (without `prepare`: dist/ is the one built for
 * the tests), installed from the tarball into a new project outside the repository, from npm's cache where it
 * can (`--prefer-offline`: jiti's tarball is there since this folder's own install, but npm 11.19 resolves a
 * new dependency from its full registry document, which `npm ci` does not fetch: `--offline` failed with
 * ENOTCACHED on a fresh machine, so that document comes from the registry once), on a machine without a C compiler
 * (`CC` names one that does not exist; scripts/build-native.mjs reads it):
 * - the install succeeds, and its script says, per native module, that it was not built and what runs instead;
 * - the installed bin runs (`--version`), and serves a TypeScript app that imports `clientAddress` from
 *   'tunicorn', with the project's `tunicorn.config.ts`, found by default, typed with `defineConfig` from it;
 * - the master says once, at info level, that the native modules did not load and what the workers do
 *   instead, whatever the number of workers (each worker says it only at debug level);
 * - with node_modules unable to hold jiti's transform cache (read-only in a container image), the transforms go
 *   to the OS temporary directory; with that unusable too, the master says so in one line and the server serves;
 * - the project's own `tsc --noEmit --strict` accepts the config and the app, with `module: commonjs` and no
 *   `esModuleInterop` or `skipLibCheck`, as an older tsconfig has it: tunicorn's types compile there too.
 * About 6 s on an idle machine for the first server (the pack and the offline install 2 s, then the server and
 * tsc side by side), then about 3 s for each of the three servers of the cache cases; 30 s were seen with the
 * machine loaded by other test runs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { request, ROOT, Server, stopAll } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

const run = promisify(execFile);
const tmp = scratchDir('tunicorn-package-');
const project = path.join(tmp, 'project');
const installed = path.join(project, 'node_modules', 'tunicorn');

after(async () => {
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
});

/**
 * npm as a user runs it, without the chatter that asks the registry (update notice, audit, funding). With the
 * CA bundle the machine gives for the registry, which scripts/run-tests.mjs keeps from the tests' processes.
 */
const extraCa = process.env.TUNICORN_TEST_EXTRA_CA_CERTS;
const npm = (args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) =>
  run('npm', [...args, '--no-audit', '--no-fund', '--no-update-notifier'], {
    cwd,
    env: { ...process.env, ...(extraCa ? { NODE_EXTRA_CA_CERTS: extraCa } : {}), ...env },
    encoding: 'utf8',
    timeout: 60000,
  });

describe('the packed package, installed in a new project without a C compiler', () => {
  let install = '';
  /** What the project's tsc printed: nothing when it accepts every file. */
  let typecheck: Promise<string>;

  before(async () => {
    const packed = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], ROOT);
    const tarball = path.join(tmp, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);
    mkdirSync(project);
    // As `npm init -y` writes it (npm 11): a CommonJS project, where the TypeScript files run as CommonJS too.
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'project', version: '1.0.0', private: true, type: 'commonjs' }));
    const out = await npm(['install', '--prefer-offline', '--foreground-scripts', tarball], project, { CC: path.join(tmp, 'no-such-cc') });
    install = out.stdout + out.stderr;
    writeFileSync(
      path.join(project, 'tunicorn.config.ts'),
      "import { defineConfig } from 'tunicorn';\n\nexport default defineConfig({\n  workers: 2,\n  postWorkerInit: (worker) => worker.log.info(`worker ${worker.id} ready`),\n});\n",
    );
    writeFileSync(path.join(project, 'app.ts'), "import { clientAddress } from 'tunicorn';\n\nexport default (request: Request): Response => new Response(`you are ${clientAddress(request)}`);\n");
    // Started now and awaited by its test, so that it runs while the server does.
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const typeRoots = path.join(ROOT, 'node_modules', '@types');
    const args = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'commonjs', '--moduleResolution', 'node10', '--typeRoots', typeRoots, '--types', 'node'];
    typecheck = run(process.execPath, [tsc, ...args, 'tunicorn.config.ts', 'app.ts'], { cwd: project, encoding: 'utf8' }).then(
      (r) => r.stdout,
      (e: { stdout?: string; message: string }) => e.stdout || e.message,
    );
  });

  it('installs, saying what runs instead of each native module', () => {
    for (const name of ['watchdog', 'peek', 'master']) assert.match(install, new RegExp(`native ${name}: not built \\(\\S*no-such-cc not found\\); \\S`));
    assert.deepEqual(readdirSync(path.join(installed, 'dist', 'native')).filter((f) => f.endsWith('.node')), []);
  });

  it('runs its bin', async () => {
    const { stdout } = await run(path.join(project, 'node_modules', '.bin', 'tunicorn'), ['--version'], { encoding: 'utf8' });
    assert.match(stdout, /^tunicorn \d+\.\d+\.\d+ \(Node\.js v\d+/);
  });

  it('serves a TypeScript app with its typed config, and says once what it does without the native modules', async () => {
    const s = new Server(['-b', '127.0.0.1:0', 'app.ts'], { cwd: project, bin: true, cli: path.join(installed, 'dist', 'cli', 'main.js') });
    const port = await s.port();
    await s.waitFor(/Ready: 2 worker\(s\) serving/, 20000);
    assert.equal(s.count(/\[INFO\] worker \d ready/), 2, 'the config file ran in each worker');
    const reply = await request(port, '/');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'you are 127.0.0.1');
    const line = /\[INFO\] Native modules not loaded \(dist\/native\/watchdog\.node not built, dist\/native\/peek\.node not built\): workers watch for a stalled event loop with a worker thread \(about 9 MB more each\) and read a connection's first bytes through JavaScript; they serve the same\. `node (\S+)` builds them where a C compiler \(cc\) is installed \(npm install runs it; pnpm, Yarn and Bun once the project allows tunicorn to build: README, Install\)$/m;
    assert.equal(s.count(line), 1, s.log);
    assert.equal((await s.waitFor(line))[1], path.join(installed, 'scripts', 'build-native.mjs'), 'the script, where it is');
    assert.equal(s.log.split('\n').filter((l) => /native/i.test(l)).length, 1, 'nothing more of it at info level');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('caches the TypeScript transforms in the temporary directory when node_modules cannot hold them', async () => {
    // A read-only node_modules (a container image's): jiti then cached nothing, silently, and each worker
    // compiled the app again as it started. A file where the cache's folder would go fails the same for any
    // user, root included (chmod does not stop root).
    rmSync(path.join(project, 'node_modules', '.cache'), { recursive: true, force: true });
    writeFileSync(path.join(project, 'node_modules', '.cache'), '');
    const temp = path.join(tmp, 'temp');
    mkdirSync(temp);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', 'app.ts'], { cwd: project, env: { TMPDIR: temp }, cli: path.join(installed, 'dist', 'cli', 'main.js') });
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker\(s\) serving/, 20000);
    assert.equal((await request(port, '/')).status, 200);
    const own = path.join(temp, `jiti-uid${process.getuid!()}`);
    const cached = readdirSync(own, { recursive: true, encoding: 'utf8' });
    assert.ok(cached.some((f) => /^tunicorn-\w+\/project-app\b.*\.mjs$/.test(f)), `the app's transform in ${own}: ${cached.join(', ')}`);
    assert.doesNotMatch(s.log, /not cached/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('says in one line that the transforms are not cached when no folder can hold them, and serves', async () => {
    // node_modules/.cache is a file (above), and so is TMPDIR: as with a read-only root file system.
    const temp = path.join(tmp, 'temp-file');
    writeFileSync(temp, '');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', 'app.ts'], { cwd: project, env: { TMPDIR: temp }, cli: path.join(installed, 'dist', 'cli', 'main.js') });
    const port = await s.port();
    await s.waitFor(/Ready: 2 worker\(s\) serving/, 20000);
    assert.equal((await request(port, '/')).status, 200);
    const line = `[INFO] TypeScript transforms are not cached (not writable, or not this user's own: ${path.join(project, 'node_modules', '.cache', 'jiti')}, ${temp}/jiti-uid${process.getuid!()}): each worker compiles the app as it starts. Set TMPDIR to a writable directory to cache them, or JITI_FS_CACHE=false to say no cache is meant`;
    assert.equal(s.log.split('\n').filter((l) => l.endsWith(line)).length, 1, s.log);
    assert.equal(s.count(/cached/), 1, 'one line, not one per worker');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    const off = new Server(['-b', '127.0.0.1:0', '-w', '1', 'app.ts'], { cwd: project, env: { TMPDIR: temp, JITI_FS_CACHE: 'false' }, cli: path.join(installed, 'dist', 'cli', 'main.js') });
    await off.waitFor(/Ready: 1 worker\(s\) serving/, 20000);
    assert.equal(off.count(/cached/), 0, 'JITI_FS_CACHE=false: no cache is meant, nothing said');
    off.signal('SIGTERM');
    assert.equal((await off.exited).code, 0);
  });

  it("type-checks in the project's own strict tsc, module commonjs without esModuleInterop or skipLibCheck", async () => {
    assert.equal(await typecheck, '');
  });
});
