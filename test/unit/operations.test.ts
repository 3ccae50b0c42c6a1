/**
 * Pure logic of the operations features: which inherited sockets a master takes (USR2, systemd), what the
 * workers' environment hides, and --reload-extra-file globs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { globToRegExp } from '../../src/arbiter/reloader.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { inheritedSockets, workerEnv } from '../../src/listeners/inherit.js';

describe('inherited sockets', () => {
  it('takes TUNICORN_FD from an upgrade, with the old master pid', () => {
    assert.deepEqual(inheritedSockets({ TUNICORN_FD: '3,4', TUNICORN_PID: '77' }, 100), { source: 'upgrade', fds: [3, 4], parentPid: 77 });
  });
  it('takes systemd fds from 3 only when LISTEN_PID names this process', () => {
    assert.deepEqual(inheritedSockets({ LISTEN_FDS: '2', LISTEN_PID: '100' }, 100), { source: 'systemd', fds: [3, 4], parentPid: null });
    assert.equal(inheritedSockets({ LISTEN_FDS: '2', LISTEN_PID: '99' }, 100), null);
    assert.equal(inheritedSockets({ LISTEN_FDS: '0', LISTEN_PID: '100' }, 100), null);
    assert.equal(inheritedSockets({}, 100), null);
  });
  it('hides the master-only variables from workers and adds raw_env', () => {
    const env = workerEnv({ PATH: '/bin', LISTEN_FDS: '1', LISTEN_PID: '5', NOTIFY_SOCKET: '/x', TUNICORN_FD: '3' }, { A: 'b' });
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
