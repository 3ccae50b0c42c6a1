/**
 * Deploying a new release in place, as Capistrano, Deployer and many CI scripts do: each release in a folder of
 * its own, a `current` symlink switched to the next one, then HUP or USR2 (docs/operations.md, "Deploying a
 * new release"). Each test makes its releases under a temporary folder:
 * - `--chdir DIR/current`: the old release deleted after the switch, a worker killed: its replacement starts
 *   in the new release and serves it; HUP too. A link to a deleted folder: a worker that cannot start says so
 *   in one line, and so does a USR2
 * - started from `cd DIR/current` ($PWD names the symlink): HUP serves the new release and reads its default
 *   config file; USR2 starts the new master in the release `current` names then
 * - tunicorn installed in the release, deleted with it: a worker that cannot start says why in one line (not
 *   Node's stack), and so does a USR2 to a release where tunicorn is not installed; started by a relative path
 *   from inside `current` (Node resolves it through the real folder), USR2 runs the new release's tunicorn
 * - USR2 whose new release does not load: the old master serves on, and the log says why in one line
 * - HUP with a config that names another pidfile moves it (Gunicorn's reload); one deleted is written again;
 *   none in the config removes it; one naming another live server fails the reload in one line; during a USR2
 *   upgrade it stays where it is, said in one line
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { alive, childrenOf, request, ROOT, Server, stopAll, until } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);
/** The process groups of servers upgraded with USR2: the new master outlives the test's child. */
const groups: number[] = [];
after(() => {
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

const tmp = scratchDir('tunicorn-deploy-');
after(() => rmSync(tmp, { recursive: true, force: true }));

/** DIR/releases/N: a TypeScript app that answers `release N`, and a default config file for N workers. */
function release(dir: string, n: number, opts: { broken?: boolean; config?: boolean } = {}): string {
  const rel = path.join(dir, 'releases', String(n));
  mkdirSync(rel, { recursive: true });
  writeFileSync(path.join(rel, 'lib.ts'), opts.broken ? `export const release: number = ${n} +;\n` : `export const release: number = ${n};\n`);
  writeFileSync(
    path.join(rel, 'app.ts'),
    `import http from 'node:http';\nimport { release } from './lib.ts';\nexport default http.createServer((_req, res) => res.end(\`release \${release}\`));\n`,
  );
  if (opts.config) writeFileSync(path.join(rel, 'tunicorn.config.ts'), `export default { workers: ${n} };\n`);
  return rel;
}

/** Points DIR/current at release N in one rename, as deploy tools switch it (`ln -s` aside, then `mv -T`). */
function switchTo(dir: string, n: number): void {
  const next = path.join(dir, 'current.next');
  symlinkSync(path.join('releases', String(n)), next);
  renameSync(next, path.join(dir, 'current'));
}

/** Asks for / every 100 ms until the answer is `body`, bounded by `ms`; the last answer says what came instead. */
async function answers(port: number, body: string, ms = 20000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const last = await request(port, '/', { timeout: 3000 }).then(
      (r) => r.body,
      (err: Error) => `(${err.message})`,
    );
    if (last === body) return;
    assert.ok(Date.now() < end, `timed out after ${ms} ms waiting for ${JSON.stringify(body)}; last answer: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a symlinked release, with --chdir', () => {
  it('a worker that replaces a dead one starts in the new release, though the old one is deleted; so does HUP', async () => {
    const dir = path.join(tmp, 'chdir');
    const old = release(dir, 1);
    release(dir, 2);
    switchTo(dir, 1);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--chdir', path.join(dir, 'current'), 'app.ts']);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    await answers(port, 'release 1');
    switchTo(dir, 2);
    rmSync(old, { recursive: true });
    const [worker] = childrenOf(s.pid);
    process.kill(worker!, 'SIGKILL');
    await answers(port, 'release 2');
    assert.doesNotMatch(s.log, /uv_cwd|failed to boot/);
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Ready: 1 worker/, 20000, from);
    await answers(port, 'release 2');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('a worker that cannot start because the folder is gone says so in one line', async () => {
    const dir = path.join(tmp, 'gone');
    const old = release(dir, 1);
    switchTo(dir, 1);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--chdir', path.join(dir, 'current'), 'app.ts']);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    await answers(port, 'release 1');
    rmSync(old, { recursive: true });
    const from = s.log.length;
    process.kill(childrenOf(s.pid)[0]!, 'SIGKILL');
    const current = path.join(dir, 'current');
    await s.waitFor(
      new RegExp(`\\[ERROR\\] Could not start a worker: its working directory ${current} does not exist \\(deleted, or a symlink to a release that was deleted\\); put it back or restart from an existing one; retrying in 10 s\n`),
      20000,
      from,
    );
    // A USR2 says so in the old master's log, rather than start a new master that exits at its --chdir.
    const usr2 = s.log.length;
    s.signal('SIGUSR2');
    await s.waitFor(
      new RegExp(`\\[ERROR\\] USR2: cannot start a new master: its working directory ${current} does not exist \\(deleted, or a symlink to a release that was deleted\\); put it back or restart from an existing one\n`),
      20000,
      usr2,
    );
    assert.doesNotMatch(s.log.slice(usr2), /started a new master/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
});

describe('a symlinked release, started from inside it', () => {
  it('($PWD names the symlink) HUP serves the new release with its config file; USR2 starts the new master in the next', async () => {
    const dir = path.join(tmp, 'pwd');
    release(dir, 1, { config: true });
    release(dir, 2, { config: true });
    release(dir, 3, { config: true });
    switchTo(dir, 1);
    const current = path.join(dir, 'current');
    // As a shell starts it after `cd DIR/current`: its $PWD names the symlink, getcwd() the release.
    const s = new Server(['-b', '127.0.0.1:0', 'app.ts'], { cwd: current, env: { PWD: current } });
    groups.push(s.pid);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    await answers(port, 'release 1');
    switchTo(dir, 2);
    let from = s.log.length;
    s.signal('SIGHUP');
    // Release 2's tunicorn.config.ts asks for 2 workers.
    await s.waitFor(/Number of workers: 1 -> 2/, 20000, from);
    await s.waitFor(/Ready: 2 worker/, 20000, from);
    await answers(port, 'release 2');
    switchTo(dir, 3);
    from = s.log.length;
    s.signal('SIGUSR2');
    const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/, 20000, from))[1]);
    await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: 3 worker`), 30000, from);
    s.signal('SIGWINCH');
    await answers(port, 'release 3');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    // The old master's stderr pipe, which the new one shares, outlives it: read the log, not the process.
    await until(() => /Master has been promoted/.test(s.log.slice(from)), 20000, 'the promotion');
    await answers(port, 'release 3');
    process.kill(newPid, 'SIGTERM');
    await until(() => !alive(newPid), 20000, 'the new master to exit');
  });
});

describe('a symlinked release, with a JavaScript config file', () => {
  it('HUP reads the config file of the release the symlink names now, not the one it named at the start', async () => {
    const dir = path.join(tmp, 'mjs');
    for (const n of [1, 2]) writeFileSync(path.join(release(dir, n), 'tunicorn.config.mjs'), `export default { workers: ${n} };\n`);
    switchTo(dir, 1);
    const current = path.join(dir, 'current');
    // Imported by Node itself (not through the TypeScript loader), which remembers the real path of a path.
    const s = new Server(['-b', '127.0.0.1:0', '-c', path.join(current, 'tunicorn.config.mjs'), 'app.ts'], { cwd: current, env: { PWD: current } });
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    switchTo(dir, 2);
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Number of workers: 1 -> 2/, 20000, from);
    await s.waitFor(/Ready: 2 worker/, 20000, from);
    await answers(port, 'release 2');
  });
});

/** A copy of this tunicorn in the release's node_modules (its dependencies through a link to ours). */
function install(rel: string): void {
  const pkg = path.join(rel, 'node_modules', 'tunicorn');
  mkdirSync(pkg, { recursive: true });
  cpSync(path.join(ROOT, 'dist'), path.join(pkg, 'dist'), { recursive: true });
  cpSync(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'));
}

describe('tunicorn installed in the release', () => {
  it('started by a relative path from inside `current`: USR2 runs the tunicorn of the new release', async () => {
    const dir = path.join(tmp, 'relative');
    const old = release(dir, 1);
    install(old);
    install(release(dir, 2));
    switchTo(dir, 1);
    const current = path.join(dir, 'current');
    // Node names a relative program through the kernel's directory: releases/1/node_modules/...
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', 'app.ts'], { cwd: current, env: { PWD: current }, cli: './node_modules/tunicorn/dist/cli/main.js' });
    groups.push(s.pid);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    switchTo(dir, 2);
    rmSync(old, { recursive: true });
    const from = s.log.length;
    s.signal('SIGUSR2');
    const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/, 20000, from))[1]);
    await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: 1 worker`), 30000, from);
    s.signal('SIGWINCH');
    await answers(port, 'release 2');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    await until(() => /Master has been promoted/.test(s.log.slice(from)), 20000, 'the promotion');
    process.kill(newPid, 'SIGTERM');
    await until(() => !alive(newPid), 20000, 'the new master to exit');
  });

  it('deleted with it: a worker that cannot start, and a USR2 to a release without tunicorn, each say why in one line', async () => {
    const dir = path.join(tmp, 'installed');
    const old = release(dir, 1);
    release(dir, 2);
    install(old);
    switchTo(dir, 1);
    const current = path.join(dir, 'current');
    const cli = path.join(current, 'node_modules', 'tunicorn', 'dist', 'cli', 'main.js');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', 'app.ts'], { cwd: current, env: { PWD: current }, cli });
    groups.push(s.pid);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    await answers(port, 'release 1');
    switchTo(dir, 2);
    rmSync(old, { recursive: true });
    let from = s.log.length;
    process.kill(childrenOf(s.pid)[0]!, 'SIGKILL');
    const entry = path.join(old, 'node_modules', 'tunicorn', 'dist', 'workers', 'child.js');
    await s.waitFor(
      new RegExp(`\\[ERROR\\] Could not start a worker: tunicorn's worker code ${entry} is gone \\(the folder this master was started from was deleted\\); USR2 starts a new master from the files there now, or restart; retrying in 10 s\n`),
      20000,
      from,
    );
    from = s.log.length;
    s.signal('SIGUSR2');
    await s.waitFor(
      new RegExp(`\\[ERROR\\] USR2: cannot start a new master: ${cli}, the program this master was started as, does not exist now; install tunicorn there \\(npm ci\\) and send USR2 again\n`),
      20000,
      from,
    );
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.doesNotMatch(s.log, /MODULE_NOT_FOUND|    at /);
  });
});

describe('USR2 to a release that does not load', () => {
  it('the old master serves on; the log says why in one line', async () => {
    const dir = path.join(tmp, 'broken');
    release(dir, 1);
    release(dir, 2, { broken: true });
    switchTo(dir, 1);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--chdir', path.join(dir, 'current'), 'app.ts']);
    groups.push(s.pid);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    switchTo(dir, 2);
    s.signal('SIGUSR2');
    const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/))[1]);
    await s.waitFor(new RegExp(`\\[${newPid}\\] \\[ERROR\\] app app.ts failed to load: ParseError: Unexpected token \\(.*releases/2/lib\\.ts:1:\\d+\\)\n`), 20000);
    await s.waitFor(new RegExp(`\\[${s.pid}\\] \\[WARNING\\] The new master \\(pid ${newPid}\\) exited \\(code 1\\); this master stays in charge`), 20000);
    await answers(port, 'release 1');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
});

describe('HUP and the pidfile', () => {
  it('moves it to the path the config names now, writes a deleted one again, removes it when the config names none', async () => {
    const cfg = path.join(tmp, 'pidfile.config.mjs');
    const pid1 = path.join(tmp, 'first.pid');
    const pid2 = path.join(tmp, 'second.pid');
    const write = (pidfile: string | null) => writeFileSync(cfg, `export default { workers: 1, pidfile: ${JSON.stringify(pidfile)} };\n`);
    write(pid1);
    const app = path.join(release(path.join(tmp, 'pidfile'), 1), 'app.ts');
    const s = new Server(['-b', '127.0.0.1:0', '-c', cfg, app]);
    await s.waitFor(/Ready: 1 worker/);
    assert.equal(readFileSync(pid1, 'utf8'), `${s.pid}\n`);
    const hup = async () => {
      const from = s.log.length;
      s.signal('SIGHUP');
      await s.waitFor(/Ready: 1 worker/, 20000, from);
      return s.log.slice(from);
    };

    write(pid2);
    assert.match(await hup(), new RegExp(`\\[INFO\\] Pidfile moved to ${pid2}\n`));
    assert.ok(!existsSync(pid1), 'the old path is removed');
    assert.equal(readFileSync(pid2, 'utf8'), `${s.pid}\n`);

    // Deleted (a tmpfiles cleanup, a hand): the next HUP writes it again.
    unlinkSync(pid2);
    assert.doesNotMatch(await hup(), /Pidfile/);
    assert.equal(readFileSync(pid2, 'utf8'), `${s.pid}\n`);

    // One that names another live server (this test's own Node process stands for it): the reload fails.
    writeFileSync(pid1, `${process.pid}\n`);
    write(pid1);
    let from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(
      new RegExp(`\\[ERROR\\] Reload failed, keeping the running configuration: pidfile ${pid1} names process ${process.pid}, which is still running; stop it or choose another --pid\n`),
      20000,
      from,
    );
    assert.equal(readFileSync(pid2, 'utf8'), `${s.pid}\n`);
    assert.equal(readFileSync(pid1, 'utf8'), `${process.pid}\n`, 'the other server\'s pidfile is left alone');
    unlinkSync(pid1);

    write(null);
    assert.match(await hup(), new RegExp(`\\[INFO\\] Pidfile ${pid2} removed: the config names none now\n`));
    assert.ok(!existsSync(pid2));
    from = s.log.length;
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.doesNotMatch(s.log.slice(from), /ERROR/);
  });

  it('during a USR2 upgrade, leaves it where it is and says so', async () => {
    const cfg = path.join(tmp, 'upgrade-pidfile.config.mjs');
    const pid1 = path.join(tmp, 'upgrade-first.pid');
    const pid2 = path.join(tmp, 'upgrade-second.pid');
    writeFileSync(cfg, `export default { workers: 1, pidfile: ${JSON.stringify(pid1)} };\n`);
    const app = path.join(release(path.join(tmp, 'upgrade-pidfile'), 1), 'app.ts');
    const s = new Server(['-b', '127.0.0.1:0', '-c', cfg, app]);
    groups.push(s.pid);
    await s.waitFor(/Ready: 1 worker/);
    s.signal('SIGUSR2');
    const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/))[1]);
    await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: 1 worker`), 30000);
    writeFileSync(cfg, `export default { workers: 1, pidfile: ${JSON.stringify(pid2)} };\n`);
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(
      new RegExp(`\\[${s.pid}\\] \\[WARNING\\] pidfile changed in the config: it stays in place during an upgrade \\(USR2\\); send HUP again once the upgrade is done\n`),
      20000,
      from,
    );
    await s.waitFor(/Ready: 1 worker/, 20000, from);
    assert.equal(readFileSync(pid1, 'utf8'), `${s.pid}\n`);
    assert.equal(readFileSync(`${pid1}.2`, 'utf8'), `${newPid}\n`);
    assert.ok(!existsSync(pid2));
    process.kill(newPid, 'SIGTERM');
    await s.waitFor(new RegExp(`The new master \\(pid ${newPid}\\) exited`), 20000, from);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
});
