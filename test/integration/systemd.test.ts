/**
 * systemd, with a harness that plays its part (no systemd runs here):
 * - socket activation: the harness binds and listens, passes the socket as fd 3 with LISTEN_FDS=1 and
 *   LISTEN_PID set to the server's own pid (a `sh` wrapper sets it to `$$`, then execs node: same pid);
 *   tunicorn serves on it, ignores --bind, and the workers do not see the variables
 * - LISTEN_PID naming another process: the variables are ignored and --bind is used
 * - LISTEN_FDS naming an fd that was not passed: one line that names LISTEN_FDS, not only fd://N
 * - a Unix socket systemd made outlives a USR2 upgrade: neither master removes its file, the promoted one
 *   included; with --user/--group (as root) its owner and mode stay the unit's
 * - readiness: a unix datagram receiver (python3: Node has no unix datagram sockets) gets READY=1 with
 *   MAINPID once the workers serve, RELOADING=1 then READY=1 on HUP, STOPPING=1 on TERM
 * - a USR2 upgrade hands MAINPID over: the new master sends nothing while the old one runs, the old one
 *   sends MAINPID=<new> before it exits, the promoted master sends READY=1 with its own MAINPID
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { bindTcp, bindUnix, localAddress } from '../../src/listeners/handle.js';
import { primeListeners } from '../../src/listeners/prime.js';
import { alive, childrenOf, FIXTURES, request, Server, stopAll, until, within } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

const APP = path.join(FIXTURES, 'zero-downtime-app.mjs');
const tmp = scratchDir('tunicorn-systemd-');
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await stopAll();
});

const hasPython = spawnSync('python3', ['-c', 'import socket'], { stdio: 'ignore' }).status === 0;
const hasNotify = spawnSync('systemd-notify', ['--version'], { stdio: 'ignore' }).status === 0;

/** What systemd does for a .socket unit: bind and listen, then hand the socket over. */
async function activationSocket(): Promise<{ fd: number; port: number; close: () => void }> {
  const h = bindTcp('127.0.0.1', 0, 'the test socket');
  await primeListeners([h.fd], 128);
  return { fd: h.fd, port: localAddress(h)!.port, close: () => h.close() };
}

function unixGet(socketPath: string, p: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath, path: p, agent: false, timeout: 10000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode! }));
    }).on('error', reject);
  });
}

/** `sh` sets LISTEN_PID to its own pid, then execs node, which keeps that pid. */
const SD_WRAPPER = ['sh', '-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"'];

/** The NOTIFY_SOCKET end: prints each datagram on a line (newlines inside one become "|"). */
class NotifyReceiver {
  readonly path = path.join(tmp, `notify-${children.length}.sock`);
  readonly proc: ChildProcess;
  messages: string[] = [];
  constructor() {
    const py =
      'import socket,sys\n' +
      's=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n' +
      's.bind(sys.argv[1])\n' +
      'print("bound",flush=True)\n' +
      'while True:\n' +
      '  print(s.recv(65536).decode().replace("\\n","|"),flush=True)\n';
    this.proc = spawn('python3', ['-c', py, this.path], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(this.proc);
    let buf = '';
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stdout!.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      this.messages.push(...lines);
    });
  }
  bound(): Promise<void> {
    return until(() => this.messages.includes('bound'), 10000, 'the notify socket');
  }
  has(re: RegExp, from = 0): boolean {
    return this.messages.slice(from).some((m) => re.test(m));
  }
}

describe('systemd socket activation', () => {
  it('serves on the socket passed as fd 3 when LISTEN_PID names it, and hides the variables from workers', async () => {
    const sock = await activationSocket();
    const s = new Server(['-b', '127.0.0.1:1', '-w', '2', APP], { wrapper: SD_WRAPPER, fds: [sock.fd] });
    sock.close(); // systemd keeps its copy; the harness need not
    await s.waitFor(/Using 1 listening socket\(s\) from systemd \(socket activation\); bind is ignored/);
    const port = await s.port();
    assert.equal(port, sock.port);
    await s.waitFor(/Ready: /);
    const r = await request(port, '/env?name=LISTEN_FDS');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).value, null);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('a Unix socket systemd made keeps its file through a USR2 upgrade: the promoted master leaves it to systemd', async () => {
    // A .socket unit with ListenStream=/run/app.sock: systemd keeps the socket (and its file) across restarts of
    // the service; a file removed by the service leaves the socket unreachable until the unit restarts.
    const sock = path.join(tmp, 'activated.sock');
    const h = bindUnix(sock, 'the test socket');
    await primeListeners([h.fd], 128);
    const s = new Server(['-b', '127.0.0.1:1', '-w', '1', APP], { wrapper: SD_WRAPPER, fds: [h.fd] });
    try {
      await s.waitFor(/Ready: /);
      assert.equal((await unixGet(sock, '/pid')).status, 200);
      s.signal('SIGUSR2');
      const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/))[1]);
      await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: `), 20000);
      s.signal('SIGWINCH');
      await until(() => childrenOf(s.pid).every((p) => p === newPid), 20000, 'the old worker to exit');
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
      // The old master's stderr pipe, which the new one shares, outlives it: read the log, not the process.
      await until(() => new RegExp(`\\[${newPid}\\] \\[INFO\\] Master has been promoted`).test(s.log), 10000, 'the promotion');
      assert.equal((await unixGet(sock, '/pid')).status, 200);
      process.kill(newPid, 'SIGTERM');
      await until(() => !alive(newPid), 20000, 'the promoted master to stop');
      assert.ok(existsSync(sock), `systemd's socket file is still there: ${s.log}`);
    } finally {
      try {
        process.kill(-s.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      h.close(); // libuv removes the file of the socket it bound: systemd's part
    }
  });

  it('--user/--group leave the owner of a socket file systemd made as the unit set it', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async () => {
    // SocketUser=/SocketGroup=/SocketMode=0660 give a proxy (nginx as www-data) its access: a chown to the
    // workers' user and group would take it away.
    const sock = path.join(tmp, 'activated-owner.sock');
    const h = bindUnix(sock, 'the test socket');
    await primeListeners([h.fd], 128);
    chmodSync(sock, 0o660);
    const s = new Server(['-b', '127.0.0.1:1', '-w', '1', '-u', 'nobody', '-g', 'nogroup', APP], { wrapper: SD_WRAPPER, fds: [h.fd] });
    try {
      await s.waitFor(/Ready: /);
      const st = statSync(sock);
      assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [0, 0, 0o660], `owner and mode as systemd made them: ${s.log}`);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    } finally {
      h.close();
    }
  });

  // The line named fd://4, which nobody wrote: not a word of systemd or LISTEN_FDS.
  it('LISTEN_FDS naming more sockets than were passed: one line that says where the fd came from', async () => {
    const sock = await activationSocket();
    const wrapper = ['sh', '-c', 'LISTEN_PID=$$ LISTEN_FDS=2 exec "$0" "$@"'];
    const s = new Server(['-b', '127.0.0.1:0', APP], { wrapper, fds: [sock.fd] });
    sock.close();
    assert.equal((await within(s.exited, 15000, 'the server to stop')).code, 1, s.log);
    assert.match(
      s.log,
      // fd 4 is not open, or is one Node opened for itself (libuv's epoll or a pipe).
      /\ntunicorn: error: cannot bind fd:\/\/4: (?:not an open file descriptor|not a socket)[^;\n]*; LISTEN_FDS=2 says systemd passed 2 socket\(s\), as fds 3 to 4: check the unit's \.socket file, or the LISTEN_FDS of whatever started tunicorn\n$/,
    );
    assert.doesNotMatch(s.log, /Booting worker/);
  });

  it('ignores LISTEN_FDS when LISTEN_PID names another process', async () => {
    const s = new Server(['-b', '127.0.0.1:0', APP], { env: { LISTEN_FDS: '1', LISTEN_PID: '1' } });
    const port = await s.port();
    assert.doesNotMatch(s.log, /from systemd/);
    assert.equal((await request(port, '/pid')).status, 200);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
});

describe('systemd readiness notification', { skip: !hasPython || !hasNotify ? 'needs python3 and systemd-notify' : false }, () => {
  it('sends READY=1 with MAINPID when the workers serve, RELOADING/READY on HUP, STOPPING on TERM', async () => {
    const rx = new NotifyReceiver();
    await rx.bound();
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', APP], { env: { NOTIFY_SOCKET: rx.path } });
    await s.waitFor(/Ready: /);
    await until(() => rx.has(/READY=1/), 10000, 'READY=1');
    const ready = rx.messages.find((m) => /READY=1/.test(m))!;
    assert.match(ready, new RegExp(`MAINPID=${s.pid}(\\||$)`));
    assert.match(ready, /STATUS=2 worker\(s\) serving/);

    const from = rx.messages.length;
    const logFrom = s.log.length;
    s.signal('SIGHUP');
    await until(() => rx.has(/RELOADING=1/, from), 10000, 'RELOADING=1');
    assert.match(rx.messages.slice(from).find((m) => /RELOADING=1/.test(m))!, /MONOTONIC_USEC=\d+/);
    await s.waitFor(/Ready: /, 20000, logFrom);
    await until(() => rx.has(/READY=1/, from), 10000, 'READY=1 after the reload');

    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.ok(rx.has(/STOPPING=1/, from), `STOPPING=1 before exit: ${JSON.stringify(rx.messages)}`);
  });

  it('hands MAINPID over to the new master during a USR2 upgrade', async () => {
    const rx = new NotifyReceiver();
    await rx.bound();
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', APP], { env: { NOTIFY_SOCKET: rx.path } });
    await until(() => rx.has(/READY=1/), 20000, 'READY=1');
    s.signal('SIGUSR2');
    const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/))[1]);
    try {
      await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: `), 20000);
      assert.ok(!rx.has(new RegExp(`MAINPID=${newPid}`)), `the new master is silent while the old one runs: ${JSON.stringify(rx.messages)}`);
      s.signal('SIGWINCH');
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
      assert.ok(rx.has(new RegExp(`MAINPID=${newPid}`)), `the old master named its successor: ${JSON.stringify(rx.messages)}`);
      await until(() => rx.has(new RegExp(`READY=1.*MAINPID=${newPid}|MAINPID=${newPid}.*READY=1`)), 10000, 'READY=1 from the promoted master');
    } finally {
      try {
        process.kill(newPid, 'SIGTERM');
      } catch {
        /* gone */
      }
      await until(() => !alive(newPid), 20000, 'the new master to stop').catch(() => process.kill(-s.pid, 'SIGKILL'));
    }
  });
});
