/**
 * The control socket (--control-socket PATH) and its client, the real `tunicornc` bin (dist/cli/ctl.js run
 * through its `#!` line), against the real CLI:
 * - show workers / stats / config / listeners tell what runs (pids, counts, the port); show workers and show all
 *   give each process's RSS and CPU time, and a worker that grew and spun shows it
 * - worker add / remove change the live worker count; worker kill replaces one worker; reload replaces all
 * - reopen reopens the logs; shutdown graceful ends the master with status 0 and removes the socket file
 * - the socket file has mode 0600 under umask 0 and refuses another user (as root: run as nobody); a stale
 *   file is replaced, a live one (another server) is not; one that cannot be made is a warning, not a failure
 * - garbage and an oversized line get an error answer, and the master serves on
 * - USR2: the new master takes the socket over; the old one's exit leaves it in place
 * - the client's errors are one line and a non-zero status
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { alive, childrenOf, FIXTURES, request, Server, stopAll, until, within } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

const CTL = fileURLToPath(new URL('../../dist/cli/ctl.js', import.meta.url));
const tmp = scratchDir('tunicorn-ctl-');
const app = path.join(FIXTURES, 'listener.ts');
let n = 0;
const sockPath = () => path.join(tmp, `c${++n}.sock`);

/** Every client process a test started, ended in after() if still running. */
const clients = new Set<import('node:child_process').ChildProcess>();
after(async () => {
  for (const c of clients) c.kill('SIGKILL');
  await stopAll();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the tunicornc bin with `args`; bounded at 15 s. */
async function ctl(...args: string[]): Promise<Run> {
  const child = spawn(CTL, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  clients.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await within(once(child, 'exit'), 15000, `tunicornc ${args.join(' ')}`)) as [number | null];
  clients.delete(child);
  return { code, stdout, stderr };
}

/** One command's data, with -j; the command must succeed. */
async function json(sock: string, command: string): Promise<any> {
  const r = await ctl('-s', sock, '-j', '-c', command);
  assert.equal(r.code, 0, `tunicornc -c "${command}": ${r.stderr}`);
  return JSON.parse(r.stdout);
}

async function start(sock: string, args: string[] = []): Promise<{ s: Server; port: number }> {
  const s = new Server(['-b', '127.0.0.1:0', '--control-socket', sock, ...args, app]);
  const port = await s.port();
  await s.waitFor(/Ready: \d+ worker/);
  return { s, port };
}

/** Sends raw lines on a connection; resolves with every answer line once `count` have come. */
function raw(sock: string, data: string, count: number): Promise<string[]> {
  return within(
    new Promise((resolve, reject) => {
      const c = net.connect(sock);
      let buf = '';
      c.setEncoding('utf8');
      c.on('connect', () => c.write(data));
      c.on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n').filter(Boolean);
        if (lines.length >= count) {
          c.destroy();
          resolve(lines);
        }
      });
      c.on('error', reject);
      c.on('close', () => resolve(buf.split('\n').filter(Boolean)));
    }),
    10000,
    'the answers',
  );
}

describe('control socket', () => {
  it('show workers, stats, config and listeners tell what runs; the socket is 0600 under umask 0', async () => {
    const sock = sockPath();
    const { s, port } = await start(sock, ['-w', '2', '--umask', '0', '-e', 'API_TOKEN=s3cret']);
    const booted = await s.workersBooted(2);
    assert.equal(statSync(sock).mode & 0o777, 0o600);
    assert.ok(statSync(sock).isSocket());

    const w = await json(sock, 'show workers');
    assert.equal(w.count, 2);
    assert.deepEqual(w.workers.map((x: any) => x.pid).sort(), [...booted].sort());
    assert.deepEqual(w.workers.map((x: any) => x.pid).sort(), childrenOf(s.pid).sort());
    for (const x of w.workers) {
      assert.equal(x.booted, true);
      assert.equal(x.state, 'ready');
      assert.ok(x.last_heartbeat >= 0 && x.last_heartbeat < 10, `heartbeat ${x.last_heartbeat}`);
    }

    const st = await json(sock, 'show stats');
    assert.equal(st.pid, s.pid);
    assert.equal(st.workers_current, 2);
    assert.equal(st.workers_target, 2);
    assert.equal(st.workers_spawned, 2);
    assert.equal(st.workers_killed, 0);
    assert.equal(st.reloads, 0);
    assert.ok(st.uptime > 0);

    const cfg = await json(sock, 'show config');
    assert.equal(cfg.workers, 2);
    assert.equal(cfg.controlSocket, sock);
    assert.equal(cfg.controlSocketMode, '0600');
    assert.deepEqual(cfg.rawEnv, { API_TOKEN: '(hidden)' }, 'the names of -e variables, not their values');

    const l = await json(sock, 'show listeners');
    assert.equal(l.count, 1);
    assert.equal(l.listeners[0].address, `http://127.0.0.1:${port}`);
    assert.equal(l.listeners[0].type, 'tcp');
    assert.equal(typeof l.listeners[0].fd, 'number');

    // The text form: an aligned table with a header.
    const text = await ctl('-s', sock, '-c', 'show workers');
    assert.equal(text.code, 0);
    const lines = text.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^PID +AGE +BOOTED +LAST_BEAT +STATE +RSS +CPU$/);
    assert.equal(lines.length, 3);
    for (const pid of booted) assert.ok(lines.some((x) => x.startsWith(`${pid} `)), `a row for ${pid}`);
  });

  it("show workers and show all tell each process's memory (RSS) and CPU time, read from /proc when asked", async () => {
    const sock = sockPath();
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--control-socket', sock, path.join(FIXTURES, 'memory-app.mjs')]);
    const port = await s.port();
    const [pid] = (await s.workersBooted(1)) as [number];
    // Once it serves: asked at its spawn, a worker may not have run for a tick of CPU time yet (cpu 0, seen on
    // Node 26).
    assert.equal(JSON.parse((await request(port, '/pid')).body).pid, pid);
    const before = (await json(sock, 'show workers')).workers[0];
    assert.equal(before.pid, pid);
    assert.ok(Number.isInteger(before.rss) && before.rss > 10 * 2 ** 20, `rss ${before.rss}`);
    assert.ok(typeof before.cpu === 'number' && before.cpu > 0, `cpu ${before.cpu}`);
    // 64 MiB kept by the worker show in the next answer, as they would in `pm2 ls`.
    const r = await request(port, '/grow?mb=64');
    assert.equal(r.status, 200);
    let after = (await json(sock, 'show workers')).workers[0];
    assert.ok(after.rss - before.rss >= 60 * 2 ** 20, `rss ${before.rss} -> ${after.rss}`);
    // So does the CPU time it spends spinning: 300 ms of wall clock a request, until half a second of CPU time
    // shows (fewer requests on an idle machine; at most 20).
    for (let i = 0; i < 20 && after.cpu - before.cpu < 0.5; i++) {
      assert.equal((await request(port, '/grow?spin=300')).status, 200);
      after = (await json(sock, 'show workers')).workers[0];
    }
    assert.ok(after.cpu - before.cpu >= 0.5, `cpu ${before.cpu} -> ${after.cpu}`);
    // The worker's own figure and the master's reading of /proc agree (both are VmRSS).
    assert.ok(Math.abs(after.rss - JSON.parse(r.body).rss) < 16 * 2 ** 20, `rss ${after.rss} vs the worker's ${JSON.parse(r.body).rss}`);

    const all = await json(sock, 'show all');
    assert.equal(all.master.pid, s.pid);
    assert.ok(all.master.rss > 10 * 2 ** 20 && all.master.cpu > 0, JSON.stringify(all.master));

    const text = await ctl('-s', sock, '-c', 'show all');
    assert.equal(text.code, 0);
    const lines = text.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, new RegExp(`^master  pid ${s.pid}, 1 worker\\(s\\) wanted, RSS \\d+\\.\\d MiB, CPU \\d+\\.\\d\\d s$`));
    assert.match(lines[1]!, /^PID +AGE +BOOTED +LAST_BEAT +STATE +RSS +CPU$/);
    assert.match(lines[2]!, new RegExp(`^${pid} +1 +yes +\\d+\\.\\d\\d +ready +\\d+\\.\\d MiB +\\d+\\.\\d\\d s$`));
  });

  it('worker add 2 then worker remove 1 change the live worker count', async () => {
    const sock = sockPath();
    const { s } = await start(sock, ['-w', '1']);
    await s.workersBooted(1);
    const add = await json(sock, 'worker add 2');
    assert.deepEqual(add, { added: 2, previous: 1, total: 3 });
    await s.workersBooted(3);
    await until(() => childrenOf(s.pid).length === 3, 10000, '3 workers');
    assert.equal((await json(sock, 'show workers')).count, 3);

    const from = s.log.length;
    assert.deepEqual(await json(sock, 'worker remove 1'), { removed: 1, previous: 3, total: 2 });
    await s.waitFor(/Worker exited \(pid: \d+\)/, 15000, from);
    await until(() => childrenOf(s.pid).length === 2, 10000, '2 workers');
    const w = await json(sock, 'show workers');
    assert.equal(w.count, 2);
    assert.equal((await json(sock, 'show stats')).workers_target, 2);
    // Never below 1: an error answer, and the count stays.
    assert.deepEqual(await json(sock, 'worker remove 1'), { removed: 1, previous: 2, total: 1 });
    const below = await ctl('-s', sock, '-c', 'worker remove');
    assert.equal(below.code, 1);
    assert.equal(below.stderr, 'tunicornc: error: at least one worker must run\n');
    // A command refused is not logged as one done (the removes above were done: one line each).
    assert.equal(s.count(/Control socket: worker remove 1\n/), 2);
  });

  it('worker kill PID replaces that worker; reload replaces them all', async () => {
    const sock = sockPath();
    const { s, port } = await start(sock, ['-w', '2']);
    const [a, b] = await s.workersBooted(2);
    let from = s.log.length;
    assert.deepEqual(await json(sock, `worker kill ${a}`), { killed: a });
    const [c] = (await s.workersBooted(1, from)) as [number];
    await until(() => !alive(a!), 10000, `worker ${a} to exit`);
    await until(() => childrenOf(s.pid).length === 2, 10000, '2 workers');
    assert.deepEqual(childrenOf(s.pid).sort(), [b, c].sort());
    const gone = await ctl('-s', sock, '-c', `worker kill ${a}`);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^tunicornc: error: no worker with pid \d+ \(see "show workers"\)\n$/);
    assert.equal(s.count(new RegExp(`Control socket: worker kill ${a}\n`)), 1, 'the refused kill is not logged as done');

    from = s.log.length;
    assert.deepEqual(await json(sock, 'reload'), { status: 'reloading' });
    const fresh = await s.workersBooted(2, from);
    await until(() => !alive(b!) && !alive(c), 15000, 'the old workers to exit');
    await until(() => childrenOf(s.pid).length === 2, 10000, '2 workers');
    assert.deepEqual(childrenOf(s.pid).sort(), [...fresh].sort());
    const st = await json(sock, 'show stats');
    assert.equal(st.reloads, 1);
    assert.equal(st.workers_spawned, 5);
    assert.equal(st.workers_killed, 3);
    assert.equal((await request(port)).status, 200);
  });

  it('reopen reopens the logs: an access log moved away is made again', async () => {
    const sock = sockPath();
    const acc = path.join(tmp, 'access.log');
    const { port } = await start(sock, ['--access-logfile', acc]);
    await request(port, '/?before=1');
    await until(() => existsSync(acc) && readFileSync(acc, 'utf8').includes('before=1'), 10000, 'the access line');
    renameSync(acc, `${acc}.1`);
    assert.deepEqual(await json(sock, 'reopen'), { status: 'reopening' });
    await until(() => existsSync(acc), 10000, 'the access log made again');
    await request(port, '/?after=1');
    await until(() => readFileSync(acc, 'utf8').includes('after=1'), 10000, 'the access line in the new file');
    assert.ok(!readFileSync(`${acc}.1`, 'utf8').includes('after=1'));
  });

  it('shutdown graceful ends the master with status 0, and the socket file is gone', async () => {
    const sock = sockPath();
    const { s } = await start(sock);
    assert.ok(existsSync(sock));
    assert.deepEqual(await json(sock, 'shutdown graceful'), { status: 'shutting_down', mode: 'graceful' });
    const { code } = await within(s.exited, 20000, 'the master to exit');
    assert.equal(code, 0);
    assert.equal(existsSync(sock), false);
    assert.match(s.log, /Control socket: shutdown graceful/);
  });

  it('a stale socket file (its server crashed) is replaced; a live one is left to its server', async () => {
    const sock = sockPath();
    // A process that binds the path and dies by SIGKILL leaves the socket file behind, with nobody on it.
    const crash = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    clients.add(crash);
    await within(once(crash, 'exit'), 10000, 'the crashing process');
    clients.delete(crash);
    assert.ok(statSync(sock).isSocket(), 'a stale socket file');
    const { s } = await start(sock);
    assert.match(s.log, /Control socket at: .*c\d+\.sock \(mode 0600\)/);
    assert.equal((await json(sock, 'show stats')).pid, s.pid);

    // A second server on the same path: a warning, it starts anyway, and the first keeps its socket.
    const { s: second } = await start(sock);
    assert.match(second.log, /WARNING\] control_socket \(--control-socket\): another process answers on .*; going on without a control socket/);
    assert.doesNotMatch(second.log, /Control socket at/);
    assert.equal((await json(sock, 'show stats')).pid, s.pid);
    second.signal('SIGTERM');
    assert.equal((await within(second.exited, 20000, 'the second server')).code, 0);
    assert.ok(existsSync(sock), "the second server's exit leaves the first one's socket");
    assert.equal((await json(sock, 'show stats')).pid, s.pid);
  });

  it('a control socket that cannot be made is a warning: the server starts and serves without it', async () => {
    const sock = path.join(tmp, 'no-such-dir', 'c.sock');
    const { s, port } = await start(sock);
    assert.match(s.log, /WARNING\] control_socket \(--control-socket\): cannot listen on .*no-such-dir\/c\.sock: the directory .*no-such-dir does not exist; going on without a control socket/);
    assert.equal((await request(port)).status, 200);
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 20000, 'the server')).code, 0);
  });

  it('garbage and an oversized line get an error answer; the master serves on', async () => {
    const sock = sockPath();
    const { s, port } = await start(sock);
    const fds = () => readdirSync(`/proc/${s.pid}/fd`).length;
    const before = fds();
    const answers = (await raw(sock, 'garbage\n[1]\n{"id": 5}\n{"id": 6, "command": "worker jump"}\n{"id": 7, "command": "show stats"}\n', 5)).map((l) => JSON.parse(l));
    assert.deepEqual(answers.slice(0, 4).map((a) => [a.id, a.ok]), [[null, false], [null, false], [5, false], [6, false]]);
    assert.match(answers[0].error, /^not JSON/);
    assert.match(answers[3].error, /^unknown: worker jump/);
    assert.equal(answers[4].id, 7);
    assert.equal(answers[4].ok, true);
    assert.equal(answers[4].data.pid, s.pid);

    const long = await raw(sock, 'x'.repeat(200 * 1024), 1);
    assert.deepEqual(JSON.parse(long[0]!), { id: null, ok: false, error: 'request line longer than 65536 bytes' });
    // A client that goes away mid-line, and one mid-answer.
    const c = net.connect(sock);
    await once(c, 'connect');
    c.write('{"id": 1, "comm');
    c.destroy();
    const d = net.connect(sock);
    await once(d, 'connect');
    d.end('{"id": 1, "command": "show config"}\n');
    d.destroy();
    // Every one of these connections is let go, the refused one too: it no longer reads, so it saw nothing of
    // its client's close, and held its descriptor until the 60 s idle timeout.
    await until(() => fds() <= before, 10000, 'the connections to be closed');

    assert.equal((await json(sock, 'show stats')).pid, s.pid);
    assert.equal((await request(port)).status, 200);
    assert.ok(alive(s.pid));
  });

  it('USR2: the new master takes the socket over; the old one leaves it in place when it exits', async () => {
    const sock = sockPath();
    const { s } = await start(sock);
    const from = s.log.length;
    s.signal('SIGUSR2');
    await s.waitFor(/Control socket at: .* taken over from the old master \(pid \d+\)/, 20000, from);
    await s.waitFor(/Ready: 1 worker/, 20000, from);
    const newPid = (await json(sock, 'show stats')).pid as number;
    assert.notEqual(newPid, s.pid);
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 20000, 'the old master')).code, 0);
    assert.ok(existsSync(sock), 'the socket file is the new master\'s: the old one did not remove it');
    assert.equal((await json(sock, 'show stats')).pid, newPid);
    await json(sock, 'shutdown quick');
    await until(() => !alive(newPid), 20000, 'the new master to exit');
    assert.equal(existsSync(sock), false);
  });

  it('mode 0600: another user is refused (permission denied, one line); 0666 lets them in', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async () => {
    // A directory everyone may enter, so that only the socket's own mode decides.
    const open = scratchDir('tunicorn-ctl-open-');
    chmodSync(open, 0o755);
    const asNobody = async (sock: string): Promise<Run> => {
      const child = spawn(process.execPath, [CTL, '-s', sock, '-j', '-c', 'show stats'], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] });
      clients.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const [code] = (await within(once(child, 'exit'), 15000, 'tunicornc as nobody')) as [number | null];
      clients.delete(child);
      return { code, stdout, stderr };
    };
    const closed = path.join(open, 'closed.sock');
    await start(closed);
    const r = await asNobody(closed);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tunicornc: error: permission denied on ${closed}: run as the server's user, or widen --control-socket-mode (see docs/operations.md)\n`);
    const wide = path.join(open, 'wide.sock');
    const { s } = await start(wide, ['--control-socket-mode', '0666']);
    assert.equal(statSync(wide).mode & 0o777, 0o666);
    const ok = await asNobody(wide);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).pid, s.pid);
  });

  it("the client's errors are one line and a non-zero status", async () => {
    const missing = path.join(tmp, 'none.sock');
    const r = await ctl('-s', missing, '-c', 'show stats');
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `tunicornc: error: no control socket at ${missing}: start the server with --control-socket ${missing} (it is off by default), or give -s the path it uses\n`);

    const sock = sockPath();
    await start(sock);
    const u = await ctl('-s', sock, '-c', 'frobnicate');
    assert.equal(u.code, 2);
    assert.equal(u.stderr, 'tunicornc: error: unknown command "frobnicate"; try "help"\n');
    const opt = await ctl('-s', sock, '--frob');
    assert.equal(opt.code, 2);
    assert.equal(opt.stderr.split('\n').length, 2);
    const none = await ctl('-c', 'show stats');
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^tunicornc: error: no socket: give -s PATH/);
    // Not a terminal and no command: not interactive.
    const noCmd = await ctl('-s', sock);
    assert.equal(noCmd.code, 2);
    assert.match(noCmd.stderr, /interactive mode needs a terminal\)\n$/);
    // The command after the options, as words.
    const words = await ctl('-s', sock, '-j', 'show', 'stats');
    assert.equal(words.code, 0);
    assert.equal(typeof JSON.parse(words.stdout).pid, 'number');
    const help = await ctl('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /worker kill PID/);
  });

  it('a path that is no socket (a file, a directory) is said to be one, not taken for a stale socket', async () => {
    // Linux refuses a connect to a regular file or a directory with ECONNREFUSED, as it does a stale socket.
    const file = path.join(tmp, 'not-a-socket.txt');
    writeFileSync(file, 'hello\n');
    const f = await ctl('-s', file, '-c', 'show stats');
    assert.equal(f.code, 1);
    assert.equal(f.stderr, `tunicornc: error: ${file} is not a socket but a regular file: give -s the path the server was started with (--control-socket PATH)\n`);
    const d = await ctl('-s', tmp, '-c', 'show stats');
    assert.equal(d.code, 1);
    assert.match(d.stderr, /is not a socket but a directory: give -s the path/);
  });

  it('show config as text tells "-" (stderr, stdout) from null (off), as --print-config does', async () => {
    const sock = sockPath();
    await start(sock);
    const text = await ctl('-s', sock, '-c', 'show config');
    assert.equal(text.code, 0, text.stderr);
    const value = (key: string) => new RegExp(`^${key} +(.*)$`, 'm').exec(text.stdout)?.[1];
    assert.equal(value('errorlog'), '"-"', 'the error log is stderr');
    assert.equal(value('accesslog'), 'null', 'the access log is off, not stdout');
    assert.equal(value('workers'), '1');
    assert.equal(value('statsdPrefix'), '""');
  });
  it('USR2 of a server that did not get the control socket (another server has it) leaves that socket alone', async () => {
    const sock = sockPath();
    const { s: first } = await start(sock);
    const { s: second } = await start(sock);
    assert.match(second.log, /another process answers on/);
    const from = second.log.length;
    second.signal('SIGUSR2');
    const newPid = Number((await second.waitFor(/started a new master \(pid (\d+)\)/, 20000, from))[1]);
    try {
      await second.waitFor(new RegExp(`\\[${newPid}\\] \\[(INFO|WARNING)\\] (Control socket at|control_socket)`), 20000, from);
      assert.doesNotMatch(second.log, /taken over from the old master/);
      assert.equal((await json(sock, 'show stats')).pid, first.pid, "the first server's socket is still its own");
    } finally {
      process.kill(newPid, 'SIGTERM');
      await until(() => !alive(newPid), 20000, 'the new master to exit');
    }
    assert.equal((await json(sock, 'show stats')).pid, first.pid);
  });

  it('a relative path that resolves longer than a Unix socket path may be: a warning, and no file made', async () => {
    const deep = path.join(tmp, 'd'.repeat(40));
    mkdirSync(deep);
    // 102 bytes: the setting's check passes; after --chdir it is well over the limit.
    const { s, port } = await start('x'.repeat(100) + '.s', ['--chdir', deep]);
    assert.match(s.log, /WARNING\] control_socket \(--control-socket\): .*xx\.s is longer than 10\d bytes, the most a Unix socket path may be; going on without a control socket/);
    assert.deepEqual(readdirSync(deep), [], 'no socket file under a truncated name');
    assert.equal((await request(port)).status, 200);
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 20000, 'the server')).code, 0);
    assert.deepEqual(readdirSync(deep), []);
  });

  const hasScript = spawnSync('script', ['--version']).status === 0;
  it('interactive on a terminal with nothing at the path: one line and status 1, not a hang', { skip: hasScript ? false : 'needs script(1) for a terminal' }, async () => {
    const missing = path.join(tmp, 'gone.sock');
    const child = spawn('script', ['-qec', `${CTL} -s ${missing}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    clients.add(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = (await within(once(child, 'exit'), 15000, 'tunicornc on a terminal to exit')) as [number | null];
    clients.delete(child);
    assert.equal(code, 1);
    assert.match(out, /tunicornc: error: no control socket at /);
  });
  it('during --shutdown-delay the master shows itself stopping, as it answers', async () => {
    const sock = sockPath();
    const { s } = await start(sock, ['--shutdown-delay', '30']);
    assert.equal((await json(sock, 'show all')).master.stopping, false);
    assert.deepEqual(await json(sock, 'shutdown'), { status: 'shutting_down', mode: 'graceful' });
    await s.waitFor(/Shutdown delay: serving 30 s more/);
    const refused = await ctl('-s', sock, '-c', 'worker add');
    assert.equal(refused.stderr, 'tunicornc: error: the master is stopping\n');
    assert.equal((await json(sock, 'show all')).master.stopping, true);
    await json(sock, 'shutdown quick');
    assert.equal((await within(s.exited, 20000, 'the master to exit')).code, 0);
    assert.equal(existsSync(sock), false);
  });
  it("another user's live socket, which that user may not connect to, is not taken for a stale one", { skip: process.getuid?.() === 0 ? false : 'needs root' }, async () => {
    // A directory anyone may write to: removing the file is allowed, only the probe decides.
    const shared = scratchDir('tunicorn-ctl-shared-');
    chmodSync(shared, 0o777);
    const sock = path.join(shared, 'live.sock');
    const { s } = await start(sock);
    const server = fileURLToPath(new URL('../../dist/control/server.js', import.meta.url));
    const code = `const { ControlServer } = await import(${JSON.stringify(server)});
      const c = new ControlServer(${JSON.stringify(sock)}, 0o600, () => null, (l) => console.log(l));
      console.log(String(await c.listen(false)));
      c.close();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] });
    clients.add(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await within(once(child, 'exit'), 15000, 'the control server as nobody');
    clients.delete(child);
    assert.match(out, /another process answers on .*live\.sock .*going on without a control socket\nnull\n$/);
    assert.equal((await json(sock, 'show stats')).pid, s.pid, "the root server's socket is still there");
  });
});
