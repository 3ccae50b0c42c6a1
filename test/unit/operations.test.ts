/**
 * Pure logic of the operations features: which inherited sockets a master takes (USR2, systemd), what the
 * workers' environment hides, --reload-extra-file globs, what a reload (HUP) keeps from the start, and the
 * directory the workers start in (a symlinked release's path, as $PWD names it).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { upgradeNodeBinary } from '../../src/arbiter/node-binary.js';
import { globToRegExp } from '../../src/arbiter/reloader.js';
import { applyReload } from '../../src/arbiter/start-only.js';
import { startDir, upgradeProgram, workDir } from '../../src/arbiter/work-dir.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { inheritedSockets, workerEnv } from '../../src/listeners/inherit.js';
import { scratchDir } from '../helpers/scratch.js';

describe('inherited sockets', () => {
  it('takes TUNICORN_FD from an upgrade, with the old master pid', () => {
    assert.deepEqual(inheritedSockets({ TUNICORN_FD: '3,4', TUNICORN_PID: '77' }, 100), { source: 'upgrade', fds: [3, 4], parentPid: 77, files: null });
  });
  it('takes the socket files the old master hands over (TUNICORN_FD_FILES), one per fd, or none when unreadable', () => {
    const env = { TUNICORN_FD: '3,4,5', TUNICORN_PID: '77' };
    assert.deepEqual(inheritedSockets({ ...env, TUNICORN_FD_FILES: '["/run/a.sock",null,null]' }, 100)?.files, ['/run/a.sock', null, null]);
    for (const bad of ['["/run/a.sock"]', '["a.sock",null,null]', 'not json', '{}'])
      assert.equal(inheritedSockets({ ...env, TUNICORN_FD_FILES: bad }, 100)?.files, null, bad);
  });
  it('takes systemd fds from 3 only when LISTEN_PID names this process', () => {
    assert.deepEqual(inheritedSockets({ LISTEN_FDS: '2', LISTEN_PID: '100' }, 100), { source: 'systemd', fds: [3, 4], parentPid: null, files: null });
    assert.equal(inheritedSockets({ LISTEN_FDS: '2', LISTEN_PID: '99' }, 100), null);
    assert.equal(inheritedSockets({ LISTEN_FDS: '0', LISTEN_PID: '100' }, 100), null);
    assert.equal(inheritedSockets({}, 100), null);
  });
  it('hides the master-only variables from workers and adds raw_env', () => {
    const env = workerEnv({ PATH: '/bin', LISTEN_FDS: '1', LISTEN_PID: '5', NOTIFY_SOCKET: '/x', TUNICORN_FD: '3', TUNICORN_FD_FILES: '[null]' }, { A: 'b' });
    assert.deepEqual(env, { PATH: '/bin', A: 'b' });
  });
});

describe('reload globs', () => {
  const cases: [string, string, boolean][] = [
    ['*.txt', 'a.txt', true],
    ['*.txt', 'd/a.txt', false],
    ['**/*.txt', 'd/e/a.txt', true],
    ['**/*.txt', 'a.txt', true],
    ['templates/**', 'templates/x/y.html', true],
    ['a?.json', 'ab.json', true],
    ['a?.json', 'abc.json', false],
    ['.env', '.env', true],
    ['.env', 'xenv', false],
  ];
  for (const [glob, p, want] of cases) {
    it(`${glob} ${want ? 'matches' : 'does not match'} ${p}`, () => assert.equal(globToRegExp(glob).test(p), want));
  }
});

describe('operations settings', () => {
  const resolve = (argv: string[]) => resolveConfig({ argv: [...argv, 'app.ts'], env: {}, cwd: '/', fileValues: {} });
  it('parses --health-bind, --shutdown-delay, --reload and repeated --reload-extra-file', async () => {
    const r = await resolve(['--health-bind', '0.0.0.0:8001', '--shutdown-delay', '2.5', '--reload', '--reload-extra-file', 'a/*.txt', '--reload-extra-file', '.env']);
    assert.equal(r.config.healthBind, '0.0.0.0:8001');
    assert.equal(r.config.shutdownDelay, 2.5);
    assert.equal(r.config.reload, true);
    assert.deepEqual(r.config.reloadExtraFile, ['a/*.txt', '.env']);
  });
  it('names health_bind, not bind, in a bad address', async () => {
    await assert.rejects(resolve(['--health-bind', 'host:99999']), /invalid value for healthBind \(--health-bind\): "host:99999"; the port "99999" is not 0\.\.65535 \(expected HOST:PORT, \[IPv6\]:PORT or unix:PATH\)$/);
  });
  it('rejects a negative shutdown delay', async () => {
    await assert.rejects(resolve(['--shutdown-delay', '-1']), /shutdownDelay \(--shutdown-delay\)/);
  });
});

describe('the Node.js binary a USR2 master runs', () => {
  const dir = scratchDir('tunicorn-node-binary-');
  const make = (rel: string, mode: number) => {
    const file = path.join(dir, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, '#!/bin/sh\n', { mode });
    chmodSync(file, mode);
    return file;
  };
  const a = make('a/node', 0o755);
  const b = make('b/node', 0o755);
  make('c/node', 0o644); // not executable: skipped, as execvp skips it
  mkdirSync(path.join(dir, 'd/node'), { recursive: true }); // a directory named node: skipped
  symlinkSync(b, path.join(dir, 'link'));
  const P = (...dirs: string[]) => ({ PATH: dirs.map((d) => path.join(dir, d)).join(path.delimiter) });

  it('looks a bare name up in PATH now, in order, skipping what cannot run', () => {
    assert.equal(upgradeNodeBinary('node', P('c', 'd', 'b', 'a'), '/', '/fallback'), b);
    assert.equal(upgradeNodeBinary('node', P('a', 'b'), '/', '/fallback'), a);
    // An empty entry is the current directory, as for execvp.
    assert.equal(upgradeNodeBinary('node', { PATH: `${path.delimiter}${path.join(dir, 'b')}` }, path.join(dir, 'a'), '/fallback'), a);
  });
  it('takes a path as given, relative to the start directory, through its symlinks as they are now', () => {
    assert.equal(upgradeNodeBinary(path.join(dir, 'link'), {}, '/', '/fallback'), path.join(dir, 'link'));
    assert.equal(upgradeNodeBinary('./a/node', {}, dir, '/fallback'), a);
  });
  it('falls back to the running binary when the name runs nothing now', () => {
    assert.equal(upgradeNodeBinary('node', P('c', 'd'), '/', '/fallback'), '/fallback');
    assert.equal(upgradeNodeBinary('node', {}, dir, '/fallback'), '/fallback');
    assert.equal(upgradeNodeBinary(path.join(dir, 'gone/node'), {}, '/', '/fallback'), '/fallback');
    assert.equal(upgradeNodeBinary('', P('a'), '/', '/fallback'), '/fallback');
  });
});

describe('a reload of settings only a restart applies', () => {
  const resolve = (fileValues: Record<string, unknown>) => resolveConfig({ argv: ['app'], env: {}, cwd: '/nonexistent', fileValues }).then((r) => r.config);

  it('keeps the start value of each changed one and says it; the rest of the new config runs', async () => {
    const start = await resolve({ pidfile: '/run/a.pid', bind: ['127.0.0.1:8000'], workers: 2 });
    const next = await resolve({ pidfile: '/run/b.pid', bind: ['127.0.0.1:9000'], workers: 3, chdir: '/srv', captureOutput: true });
    const { config, warnings } = applyReload(start, next);
    // The pidfile is not one of them: the master moves it (Arbiter.movePidfile), as Gunicorn's reload does.
    assert.equal(config.pidfile, '/run/b.pid');
    assert.deepEqual(config.bind, ['127.0.0.1:8000']);
    assert.equal(config.chdir, start.chdir);
    assert.equal(config.workers, 3);
    // The new workers follow capture_output: only the master's part waits.
    assert.equal(config.captureOutput, true);
    assert.ok(Object.isFrozen(config));
    assert.deepEqual(
      warnings.map((w) => w.split(' ')[0]),
      ['bind', 'chdir', 'capture_output'],
    );
  });

  it('says nothing when the values are the same setting (an umask spelled another way) or nothing changed', async () => {
    const start = await resolve({ umask: '0o22', reloadExtraFile: ['a.json'] });
    assert.deepEqual(applyReload(start, await resolve({ umask: '022', reloadExtraFile: ['a.json'] })).warnings, []);
    assert.deepEqual(applyReload(start, await resolve({ umask: '0o77' })).warnings.map((w) => w.split(' ')[0]), ['umask', 'reload']);
  });
});

describe('the directory the workers start in', () => {
  const dir = scratchDir('tunicorn-workdir-');
  mkdirSync(path.join(dir, 'releases', '1'), { recursive: true });
  mkdirSync(path.join(dir, 'other'));
  symlinkSync(path.join('releases', '1'), path.join(dir, 'current'));
  const real = path.join(dir, 'releases', '1');

  it('is $PWD when it names the directory, symlinks kept (as Gunicorn\'s util.getcwd)', () => {
    assert.equal(startDir({ PWD: path.join(dir, 'current') }, real), path.join(dir, 'current'));
  });
  it('is the kernel\'s when $PWD names another directory, is relative, is missing or is gone', () => {
    assert.equal(startDir({ PWD: path.join(dir, 'other') }, real), real);
    assert.equal(startDir({ PWD: 'current' }, real), real);
    assert.equal(startDir({}, real), real);
    assert.equal(startDir({ PWD: path.join(dir, 'gone') }, real), real);
  });
  it("USR2's program: one under the real start directory is named from the start directory, another is kept", () => {
    const r1 = '/srv/app/releases/1';
    assert.equal(upgradeProgram(`${r1}/node_modules/.bin/tunicorn`, '/srv/app/current', r1), '/srv/app/current/node_modules/.bin/tunicorn');
    assert.equal(upgradeProgram('/usr/lib/node_modules/tunicorn/dist/cli/main.js', '/srv/app/current', r1), '/usr/lib/node_modules/tunicorn/dist/cli/main.js');
    assert.equal(upgradeProgram('/srv/app/releases/10/main.js', '/srv/app/current', r1), '/srv/app/releases/10/main.js');
    assert.equal(upgradeProgram(`${r1}/main.js`, r1, r1), `${r1}/main.js`);
  });
  it('is chdir from there, unresolved, or the start directory', () => {
    assert.equal(workDir('/srv/app', 'current'), '/srv/app/current');
    assert.equal(workDir('/srv/app', '/srv/other/current'), '/srv/other/current');
    assert.equal(workDir('/srv/app/current', null), '/srv/app/current');
  });
});
