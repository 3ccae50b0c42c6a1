/**
 * The control socket's pure parts (src/control/commands.ts): command parsing, request parsing, the text
 * tables tunicornc prints; and its settings' checks (--control-socket, --control-socket-mode).
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { CommandError, COMMANDS, formatData, MAX_STEP, parseCommand, parseRequest, table } from '../../src/control/commands.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { scratchDir } from '../helpers/scratch.js';

const resolve = (argv: string[], fileValues: Record<string, unknown> = {}) => resolveConfig({ argv, env: {}, cwd: '/nonexistent', fileValues });

describe('parseCommand', () => {
  it('reads every command, with its defaults', () => {
    assert.deepEqual(parseCommand('show workers'), { name: 'show', what: 'workers' });
    assert.deepEqual(parseCommand('  SHOW   Stats '), { name: 'show', what: 'stats' });
    for (const what of ['all', 'config', 'listeners'] as const) assert.deepEqual(parseCommand(`show ${what}`), { name: 'show', what });
    assert.deepEqual(parseCommand('worker add'), { name: 'worker add', count: 1 });
    assert.deepEqual(parseCommand('worker add 3'), { name: 'worker add', count: 3 });
    assert.deepEqual(parseCommand('worker remove 2'), { name: 'worker remove', count: 2 });
    assert.deepEqual(parseCommand('worker kill 1234'), { name: 'worker kill', pid: 1234 });
    assert.deepEqual(parseCommand('reload'), { name: 'reload' });
    assert.deepEqual(parseCommand('reopen'), { name: 'reopen' });
    assert.deepEqual(parseCommand('help'), { name: 'help' });
    // The help names each bound the parser holds to.
    const help = Object.fromEntries(COMMANDS);
    assert.match(help['worker add [N]']!, new RegExp(`at most ${MAX_STEP}\\b`));
    assert.match(help['worker remove [N]']!, new RegExp(`at most ${MAX_STEP}\\b`));
    assert.throws(() => parseCommand(`worker remove ${MAX_STEP + 1}`));
    assert.deepEqual(parseCommand('shutdown'), { name: 'shutdown', mode: 'graceful' });
    assert.deepEqual(parseCommand('shutdown quick'), { name: 'shutdown', mode: 'quick' });
  });

  it('refuses, in one line, what it cannot run', () => {
    const cases: [string, RegExp][] = [
      ['', /^empty command/],
      ['bogus', /^unknown command "bogus"; try "help"$/],
      ['show', /^show what\? one of: all, workers, config, stats, listeners$/],
      ['show dirty', /^unknown: show dirty/],
      ['show workers now', /^too many arguments: usage: show workers$/],
      ['worker add 0', /N must be a whole number from 1 to 100/],
      ['worker add -1', /N must be a whole number/],
      [`worker add ${MAX_STEP + 1}`, /N must be a whole number from 1 to 100/],
      ['worker add two', /got "two"/],
      ['worker kill', /^usage: worker kill PID/],
      ['worker kill abc', /^usage: worker kill PID/],
      ['worker kill 99999999999999999999', /^usage: worker kill PID/], // past any pid Linux gives (2^22)
      ['worker kill 12 13', /^too many arguments/],
      ['worker', /^unknown: worker; one of/],
      ['shutdown now', /^usage: shutdown \[graceful\|quick\]/],
      ['reload please', /^too many arguments: usage: reload$/],
    ];
    for (const [text, re] of cases) {
      assert.throws(() => parseCommand(text), (err: Error) => err instanceof CommandError && re.test(err.message) && !err.message.includes('\n'), text);
    }
  });
});

describe('parseRequest', () => {
  it('takes an object with a command string and keeps its id', () => {
    assert.deepEqual(parseRequest('{"id": 7, "command": "show stats"}'), { id: 7, command: 'show stats' });
    assert.deepEqual(parseRequest('{"command": "help"}'), { id: null, command: 'help' });
  });

  it('names what is wrong with anything else, keeping the id when there is one', () => {
    assert.throws(() => parseRequest('garbage'), /^CommandError: not JSON/);
    assert.throws(() => parseRequest('[1,2]'), /expected a JSON object/);
    assert.throws(() => parseRequest('null'), /expected a JSON object/);
    assert.throws(() => parseRequest('{"id": 3, "command": 5}'), (err: CommandError & { id?: unknown }) => err.id === 3 && /no "command" string/.test(err.message));
  });
});

describe('text output', () => {
  it('table(): columns as wide as their widest cell, two spaces apart, no trailing spaces', () => {
    assert.equal(table(['PID', 'AGE', 'X'], [[1, 22, null], [12345, 3, 'y']]), 'PID    AGE  X\n1      22   -\n12345  3    y\n');
  });

  it('show workers prints PID AGE BOOTED LAST_BEAT STATE RSS CPU; "-" for a figure /proc could not give', () => {
    const out = formatData(parseCommand('show workers'), {
      workers: [
        { pid: 101, age: 1, booted: true, last_heartbeat: 0.5, state: 'ready', rss: 52.25 * 2 ** 20, cpu: 1.5 },
        { pid: 20202, age: 12, booted: false, last_heartbeat: 1.234, state: 'booting', rss: null, cpu: null },
      ],
      count: 2,
    });
    assert.equal(
      out,
      [
        'PID    AGE  BOOTED  LAST_BEAT  STATE    RSS       CPU',
        '101    1    yes     0.50       ready    52.3 MiB  1.50 s',
        '20202  12   no      1.23       booting  -         -',
        '',
      ].join('\n'),
    );
    const all = formatData(parseCommand('show all'), { master: { pid: 9, workers_target: 2, rss: 48 * 2 ** 20, cpu: 0.25 }, workers: [], count: 0 });
    assert.equal(all.split('\n')[0], 'master  pid 9, 2 worker(s) wanted, RSS 48.0 MiB, CPU 0.25 s');
  });

  it('show listeners, stats and the other answers', () => {
    assert.equal(formatData(parseCommand('show listeners'), { listeners: [{ address: 'http://127.0.0.1:8000', fd: 19, type: 'tcp' }], count: 1 }), 'ADDRESS                FD  TYPE\nhttp://127.0.0.1:8000  19  tcp\n');
    assert.equal(formatData(parseCommand('show stats'), { uptime: 1.5, pid: 9, reloads: 0 }), 'uptime   1.5\npid      9\nreloads  0\n');
    // A config value as JSON: the log's "-" (stderr, stdout) and null (off) must not read alike.
    assert.equal(formatData(parseCommand('show config'), { errorlog: '-', accesslog: null, workers: 2, bind: ['a:1'] }), 'errorlog   "-"\naccesslog  null\nworkers    2\nbind       ["a:1"]\n');
    assert.equal(formatData(parseCommand('worker add 2'), { added: 2, previous: 1, total: 3 }), 'added     2\nprevious  1\ntotal     3\n');
    // A shape it does not know is shown as key/value lines, not a crash.
    assert.equal(formatData(parseCommand('show workers'), { other: [1] }), 'other  [1]\n');
  });
});

describe('settings', () => {
  it('control socket: off by default; mode 0600; a path, a mode and --no-control-socket', async () => {
    const d = await resolve(['app']);
    assert.equal(d.config.controlSocket, null);
    assert.equal(d.config.controlSocketMode, '0600');
    assert.equal(d.config.controlSocketDisable, false);
    const r = await resolve(['--control-socket', '/run/app.ctl', '--control-socket-mode', '660', '--no-control-socket', 'app']);
    assert.equal(r.config.controlSocket, '/run/app.ctl');
    assert.equal(r.config.controlSocketMode, '0660');
    assert.equal(r.config.controlSocketDisable, true);
    assert.equal((await resolve(['app'], { controlSocketMode: 0o640 })).config.controlSocketMode, '0640');
    assert.equal((await resolve(['--control-socket-mode', '0o600', 'app'])).config.controlSocketMode, '0600');
  });

  it('a bad value is one line naming the setting', async () => {
    await assert.rejects(resolve(['--control-socket-mode', 'rw', 'app']), /^ConfigError: invalid value for controlSocketMode \(--control-socket-mode\): "rw"; expected an octal mode/);
    await assert.rejects(resolve(['--control-socket-mode', '1777', 'app']), /expected an octal mode from 0 to 0777/);
    await assert.rejects(resolve(['app'], { controlSocketMode: 1000 }), /expected an octal mode/);
    await assert.rejects(resolve(['--control-socket', 'x'.repeat(200), 'app']), /^ConfigError: invalid value for controlSocket \(--control-socket\): .*longer than 10\d bytes/);
    await assert.rejects(resolve(['--control-socket', '', 'app']), /expected the path of a Unix socket file/);
  });
});

describe('lazy loading', () => {
  it('the master loads nothing of src/control/ while the control socket is off: type imports only', () => {
    const src = readFileSync(fileURLToPath(new URL('../../src/arbiter/arbiter.ts', import.meta.url)), 'utf8');
    const eager = src.split('\n').filter((l) => /^import (?!type )[^;]*from '\.\.\/control\//.test(l));
    assert.deepEqual(eager, []);
  });
});

describe('ControlServer.listen', () => {
  it('does not follow a link put at the path after bind: another file keeps its mode', async () => {
    const { ControlServer } = await import('../../src/control/server.js');
    const dir = scratchDir('tunicorn-ctl-unit-');
    const sock = path.join(dir, 'c.sock');
    const victim = path.join(dir, 'victim');
    writeFileSync(victim, 'x');
    chmodSync(victim, 0o644);
    // bind(2) runs inside listen(): right after it, the socket is moved away and a link to victim put in its place.
    const listen = net.Server.prototype.listen;
    net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
      const r = (listen as (...a: unknown[]) => net.Server).apply(this, args);
      renameSync(sock, `${sock}.moved`);
      symlinkSync(victim, sock);
      return r;
    } as typeof listen;
    const warnings: string[] = [];
    const control = new ControlServer(sock, 0o666, () => null, (l) => warnings.push(l));
    try {
      await control.listen(false);
    } finally {
      net.Server.prototype.listen = listen;
      control.close();
    }
    assert.equal(statSync(victim).mode & 0o777, 0o644, 'the linked file was chmod-ed');
    assert.equal(statSync(`${sock}.moved`).mode & 0o777, 0o666, 'the socket has the mode asked for');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a directory that does not exist is named as such, not as libuv\'s EACCES ("permission denied")', async () => {
    const { ControlServer } = await import('../../src/control/server.js');
    const dir = scratchDir('tunicorn-ctl-unit-');
    const sock = path.join(dir, 'missing', 'c.sock');
    const warnings: string[] = [];
    const control = new ControlServer(sock, 0o600, () => null, (l) => warnings.push(l));
    try {
      assert.equal(await control.listen(false), null);
    } finally {
      control.close();
    }
    assert.deepEqual(warnings, [
      `control_socket (--control-socket): cannot listen on ${sock}: the directory ${path.join(dir, 'missing')} does not exist; going on without a control socket`,
    ]);
  });
});
