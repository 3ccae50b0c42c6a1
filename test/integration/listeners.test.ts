/**
 * Binding, as the master does it:
 * - unix:PATH, [::1]:0 and several binds at once are served by the same workers
 * - --backlog above net.core.somaxconn is a warning (the kernel caps it)
 * - a sync worker on a unix socket serves connection after connection, pausing and resuming between them
 * - fd://N serves a socket the master inherited
 * - from the moment `Listening at:` is logged, a connection is never refused: it waits in the backlog while
 *   the worker is still loading the app
 * - a busy port is tried 5 times, 1 s apart (as Gunicorn), and bound if it comes free meanwhile; a busy
 *   --health-bind port too, but not one of the app's own addresses, which is refused at once
 * - a busy port, a unix socket in a missing directory and a taken --health-bind port stop the start with one
 *   line that says why; so do a link-local IPv6 address without its interface and a socket path without unix:,
 *   with what to write (the health endpoint before "Listening at", leaving no socket file or pidfile)
 * - a worker that keeps dying while it boots is retried with a pause, then the master gives up (status 3)
 * - ./tunicorn.config.ts is found without -c
 * - NODE_OPTIONS=--inspect-brk (the master and each worker wait for a debugger): the helper that puts the
 *   sockets into listen state does not wait for one too
 * - a host name that resolves to ::1 first and 127.0.0.1 (localhost on many systems) binds 127.0.0.1, as
 *   Gunicorn does (run where a private mount namespace can give the server an /etc/hosts of its own)
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { CLI, FIXTURES, request, Server, stopAll, until, within } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);
const tmp = scratchDir('tunicorn-listeners-');
const fx = (name: string) => path.join(FIXTURES, name);
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

function unixRequest(socketPath: string, urlPath = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: urlPath }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

describe('bind', () => {
  it('serves TCP, IPv6 and a unix socket from one set of workers', async () => {
    const sock = path.join(tmp, 'app.sock');
    const s = new Server(['-b', '127.0.0.1:0', '-b', '[::1]:0', '-b', `unix:${sock}`, fx('listener.ts')]);
    const v4 = Number((await s.waitFor(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/))[1]);
    const v6 = Number((await s.waitFor(/Listening at: http:\/\/\[::1\]:(\d+)/))[1]);
    await s.waitFor(new RegExp(`Listening at: unix:${sock.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    assert.ok(statSync(sock).isSocket());
    const pid = JSON.parse((await request(v4, '/pid')).body).pid;
    assert.equal(JSON.parse((await request(v6, '/pid', { host: '::1' })).body).pid, pid);
    assert.equal(JSON.parse((await unixRequest(sock, '/pid')).body).pid, pid);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.ok(!existsSync(sock), 'the socket file is removed at exit');
  });

  for (const cls of ['async', 'sync', 'gthread']) {
    it(`-k ${cls}: --backlog sets the listen queue of TCP and unix sockets (Node's default is 511)`, async () => {
      const sock = path.join(tmp, `backlog-${cls}.sock`);
      const s = new Server(['-b', '127.0.0.1:0', '-b', `unix:${sock}`, '--backlog', '37', '-k', cls, fx('listener.ts')]);
      await s.waitFor(/Ready: /);
      const port = await s.port();
      // The master primed the sockets, and each worker (each thread) listened again: all with 37. ss shows a
      // listening socket's backlog in its Send-Q column.
      const tcp = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).trim().split(/\s+/);
      assert.equal(tcp[2], '37', `ss: ${tcp.join(' ')}`);
      const unix = execFileSync('ss', ['-Hlx', `src ${sock}`], { encoding: 'utf8' }).trim().split(/\s+/);
      assert.equal(unix[3], '37', `ss: ${unix.join(' ')}`);
      await s.kill();
    });
  }

  // The kernel took the smaller of the two without a word, and so did tunicorn.
  const somaxconn = existsSync('/proc/sys/net/core/somaxconn') ? Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8')) : 0;
  it('--backlog above net.core.somaxconn: a warning that the kernel caps it', { skip: somaxconn > 0 ? false : 'needs /proc/sys/net/core/somaxconn' }, async () => {
    const asked = somaxconn + 1;
    const s = new Server(['-b', '127.0.0.1:0', '--backlog', String(asked), fx('listener.ts')]);
    const port = await s.port();
    assert.match(s.log, new RegExp(`\\[WARNING\\] backlog ${asked} is above the kernel's net\\.core\\.somaxconn \\(${somaxconn}\\), which caps it: at most ${somaxconn} connections wait in each queue; raise it \\(sysctl -w net\\.core\\.somaxconn=${asked}\\) or lower backlog\\n`));
    const tcp = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).trim().split(/\s+/);
    assert.equal(tcp[2], String(somaxconn), `ss: ${tcp.join(' ')}`);
    await s.kill();
    // At the cap: nothing to say.
    const atCap = new Server(['-b', '127.0.0.1:0', '--backlog', String(somaxconn), fx('listener.ts')]);
    await atCap.port();
    assert.doesNotMatch(atCap.log, /somaxconn/);
    await atCap.kill();
  });

  it('two names of one address (a host name and its address, or under a wildcard): one line that says so', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    for (const [first, second] of [[`127.0.0.1:${port}`, `localhost:${port}`], [`0.0.0.0:${port}`, `127.0.0.1:${port}`]]) {
      const s = new Server(['-b', first!, '-b', second!, fx('listener.ts')]);
      assert.equal((await s.exited).code, 1, s.log);
      assert.match(s.log, new RegExp(`tunicorn: error: invalid value for bind \\(--bind\\): "${esc(second!)}" and "${esc(first!)}" are one address \\(.*\\); bind each address once\n`));
      assert.doesNotMatch(s.log, /another process/);
    }
  });

  // As root with unshare(1): the server alone sees an /etc/hosts that lists ::1 first for localhost.
  const hosts = path.join(tmp, 'hosts');
  writeFileSync(hosts, '::1 localhost\n127.0.0.1 localhost\n');
  const ownHosts = ['unshare', '-m', 'sh', '-c', `mount --bind ${hosts} /etc/hosts && exec "$0" "$@"`];
  const canOwnHosts = spawnSync(ownHosts[0]!, [...ownHosts.slice(1), 'getent', 'ahosts', 'localhost'], { encoding: 'utf8' }).stdout?.startsWith('::1');
  it('localhost:PORT binds 127.0.0.1 where the resolver lists ::1 first, as Gunicorn does', { skip: canOwnHosts ? false : 'needs root and unshare -m' }, async () => {
    const s = new Server(['-b', 'localhost:0', fx('listener.ts')], { wrapper: ownHosts });
    const m = await s.waitFor(/Listening at: (http:\/\/\S+) /);
    assert.match(m[1]!, /^http:\/\/127\.0\.0\.1:\d+$/);
    await s.waitFor(/Ready: /);
    assert.equal((await request(await s.port(), '/')).status, 200);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('starts with NODE_OPTIONS=--inspect-brk once a debugger resumes the master and its worker', async () => {
    // The helper that primes the sockets once inherited NODE_OPTIONS: it waited for a debugger nobody knew of,
    // and the start failed after 30 s, blaming the process limit.
    const s = new Server(['-b', '127.0.0.1:0', fx('listener.ts')], { env: { NODE_OPTIONS: '--inspect-brk=127.0.0.1:0' } });
    const resumed = new Set<string>();
    const sockets: WebSocket[] = [];
    try {
      await until(
        () => {
          for (const m of s.log.matchAll(/Debugger listening on (ws:\/\/\S+)/g)) {
            if (resumed.has(m[1]!)) continue;
            resumed.add(m[1]!);
            const ws = new WebSocket(m[1]!);
            ws.on('open', () => ws.send(JSON.stringify({ id: 1, method: 'Runtime.runIfWaitingForDebugger' })));
            ws.on('error', () => {});
            sockets.push(ws);
          }
          return /Ready: 1 worker/.test(s.log);
        },
        20000,
        'the master and its worker to serve',
      );
      assert.equal((await request(await s.port(), '/')).status, 200);
    } finally {
      for (const ws of sockets) ws.close();
      await s.kill();
    }
  });

  it('a sync worker on a unix socket pauses and resumes accepting for every connection, and serves them all', async () => {
    // Each connection closes this worker's copy of the socket and resumes on a duplicate from the master: a
    // Pipe handle, which the worker listens on as it is (src/workers/adopt-pipe.ts).
    const sock = path.join(tmp, 'sync.sock');
    const s = new Server(['-b', `unix:${sock}`, '-k', 'sync', '-w', '1', fx('listener.ts')]);
    await s.waitFor(/Ready: /);
    const pids = new Set<number>();
    for (let i = 0; i < 300; i++) pids.add(JSON.parse((await unixRequest(sock, '/pid')).body).pid);
    assert.equal(pids.size, 1);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('serves an inherited socket given as fd://N', async () => {
    // Play a process manager: bind a socket and hand it to tunicorn as fd 3.
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    const fd = (holder as unknown as { _handle: { fd: number } })._handle.fd;
    const child = spawn(process.execPath, [CLI, '-b', 'fd://3', fx('listener.ts')], { stdio: ['ignore', 'ignore', 'pipe', fd], detached: true });
    let log = '';
    child.stderr!.on('data', (d: Buffer) => (log += d));
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no boot: ${log}`)), 15000);
        child.stderr!.on('data', () => /Booting worker/.test(log) && (clearTimeout(t), resolve()));
      });
      holder.close(); // from here only tunicorn's workers accept on it
      assert.match(log, new RegExp(`Listening at: http://127\\.0\\.0\\.1:${port}`));
      assert.equal((await request(port, '/')).status, 200);
    } finally {
      holder.close();
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });

  it('never refuses a connection after "Listening at", even while the app is still loading', async () => {
    const s = new Server(['-b', '127.0.0.1:0', fx('slow-load.ts')], { env: { LOAD_MS: '1500' } });
    const port = await s.port();
    const t0 = Date.now();
    const r = await request(port, '/', { timeout: 20000 });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'loaded');
    assert.ok(Date.now() - t0 >= 500, 'the request waited in the backlog for the worker');
    await s.kill();
  });

  it('stops with one line when the port stays taken, after trying 5 times 1 s apart as Gunicorn', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const s = new Server(['-b', `127.0.0.1:${port}`, fx('listener.ts')]);
      assert.equal((await s.exited).code, 1);
      assert.match(s.log, new RegExp(`tunicorn: error: cannot bind http://127\\.0\\.0\\.1:${port}: address already in use`));
      assert.equal(s.count(/\[ERROR\] Connection in use: http:\/\/127\.0\.0\.1:\d+; retrying in 1 s/), 4);
      assert.match(s.log, /retrying in 1 s \(attempt 5 of 5\)\n/);
      assert.doesNotMatch(s.log, /\n\s+at /, 'no stack trace');
    } finally {
      taken.close();
    }
  });

  it('a port another process still holds (a server stopping) is tried again, and bound once it is free', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const s = new Server(['-b', `127.0.0.1:${port}`, fx('listener.ts')]);
      await s.waitFor(new RegExp(`\\[ERROR\\] Connection in use: http://127\\.0\\.0\\.1:${port}; retrying in 1 s \\(attempt 2 of 5\\)`));
      await new Promise<void>((r) => taken.close(() => r()));
      await s.waitFor(new RegExp(`Listening at: http://127\\.0\\.0\\.1:${port} `));
      await s.waitFor(/Ready: /);
      assert.equal((await request(port, '/')).status, 200);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    } finally {
      taken.close();
    }
  });

  it('a unix socket in a directory that does not exist: one line that says so, with no hint about ports', async () => {
    // libuv reports a missing directory as EACCES, which read "permission denied (ports below 1024 ...)".
    const dir = path.join(tmp, 'no-such-dir');
    const s = new Server(['-b', `unix:${dir}/app.sock`, fx('listener.ts')]);
    assert.equal((await s.exited).code, 1);
    assert.match(s.log, new RegExp(`(?:^|\\n)tunicorn: error: cannot bind unix:${esc(dir)}/app\\.sock: the directory ${esc(dir)} does not exist\\n$`));
    assert.equal(s.log.match(/^tunicorn: /gm)?.length, 1, 'one error line');
    assert.doesNotMatch(s.log, /ports below 1024|Listening at|\n\s+at /);
  });

  // bind(2) answers EINVAL for fe80::/10 without an interface, which read "not a listening TCP or Unix stream
  // socket", the words for an fd://; a path without unix: read "cannot resolve host".
  it('a link-local IPv6 address without its interface, or a socket path without unix:, is one line that says what to write', async () => {
    const cases: [string, RegExp][] = [
      ['[fe80::1]:0', /(?:^|\n)tunicorn: error: cannot bind http:\/\/\[fe80::1\]:0: a link-local IPv6 address needs its interface: write \[fe80::1%IFACE\]:0 \(IFACE as ip -6 addr names it\)\n$/],
      [path.join(tmp, 'app.sock'), new RegExp(`(?:^|\\n)tunicorn: error: invalid value for bind \\(--bind\\): "${esc(tmp)}/app\\.sock"; a Unix socket path needs its prefix: write unix:${esc(tmp)}/app\\.sock \\(expected `)],
    ];
    for (const [bind, re] of cases) {
      const s = new Server(['-b', bind, fx('listener.ts')]);
      assert.equal((await within(s.exited, 15000, `the server to stop (-b ${bind})`)).code, 1, s.log);
      assert.match(s.log, re);
      assert.equal(s.log.match(/^tunicorn: /gm)?.length, 1, 'one error line');
      assert.doesNotMatch(s.log, /Listening at|retrying|\n\s+at /);
    }
  });

  // Root may remove and connect to anything: the server then runs as nobody (setpriv), as a service user would.
  const asRoot = process.getuid?.() === 0;
  const canDrop = !asRoot || spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'true']).status === 0;
  it('a socket file this user may not remove or connect to: one line that says so, not an internal error', { skip: canDrop ? false : 'needs setpriv to run as nobody' }, async () => {
    const dir = scratchDir('tunicorn-stale-');
    // A socket file nobody listens on (a master killed with SIGKILL left it): a second name of a socket, which
    // stays when the socket closes (and Node removes the first).
    const stale = async (name: string, mode: number) => {
      const holder = net.createServer();
      await new Promise<void>((r) => holder.listen(path.join(dir, `${name}.live`), r));
      linkSync(path.join(dir, `${name}.live`), path.join(dir, name));
      await new Promise<void>((r) => holder.close(() => r()));
      chmodSync(path.join(dir, name), mode);
    };
    await stale('left.sock', 0o777);
    await stale('private.sock', 0o000);
    chmodSync(dir, 0o555); // the user can reach the directory, not write to it
    const wrapper = asRoot ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'] : undefined;
    try {
      const left = new Server(['-b', `unix:${dir}/left.sock`, fx('listener.ts')], { wrapper });
      assert.equal((await left.exited).code, 1, left.log);
      assert.match(left.log, new RegExp(`(?:^|\\n)tunicorn: error: cannot bind unix:${esc(dir)}/left\\.sock: a stale socket file is there \\(nobody listens on it\\), which this user cannot remove \\(permission denied on the directory ${esc(dir)}\\); remove it, or bind another path\\n$`));
      const priv = new Server(['-b', `unix:${dir}/private.sock`, fx('listener.ts')], { wrapper });
      assert.equal((await priv.exited).code, 1, priv.log);
      assert.match(priv.log, /tunicorn: error: cannot bind unix:.*private\.sock: a socket file is there that this user may not connect to \(permission denied\)/);
      assert.doesNotMatch(left.log + priv.log, /internal error|another server is listening|\n\s+at /);
      if (asRoot) {
        // root's socket file in a sticky directory (as /tmp): only root may remove it.
        const sticky = mkdtempSync(path.join(dir, 'sticky-'));
        chmodSync(sticky, 0o1777);
        const holder = net.createServer();
        await new Promise<void>((r) => holder.listen(path.join(sticky, 'live.sock'), r));
        linkSync(path.join(sticky, 'live.sock'), path.join(sticky, 'root.sock'));
        await new Promise<void>((r) => holder.close(() => r()));
        chmodSync(path.join(sticky, 'root.sock'), 0o777);
        const other = new Server(['-b', `unix:${sticky}/root.sock`, fx('listener.ts')], { wrapper });
        assert.equal((await other.exited).code, 1, other.log);
        assert.match(other.log, /which this user cannot remove \(it belongs to another user, and only its owner may remove it from .*\); remove it, or bind another path\n$/);
      }
    } finally {
      chmodSync(dir, 0o755);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a --health-bind port that is taken stops the start before "Listening at", in the words of a --bind one', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    const sock = path.join(tmp, 'health-busy.sock');
    const pidfile = path.join(tmp, 'health-busy.pid');
    try {
      const s = new Server(['-b', `unix:${sock}`, '--pid', pidfile, '--health-bind', `127.0.0.1:${port}`, fx('listener.ts')]);
      assert.equal((await s.exited).code, 1);
      // Tried as a --bind port is first: 5 times, 1 s apart.
      assert.equal(s.count(new RegExp(`\\[ERROR\\] Connection in use: http://127\\.0\\.0\\.1:${port}; retrying in 1 s`)), 4);
      assert.match(
        s.log,
        new RegExp(
          `(?:^|\\n)tunicorn: error: cannot bind the health endpoint http://127\\.0\\.0\\.1:${port} \\(--health-bind\\): ` +
            `address already in use \\(another process listens there; pick another port or stop it\\)\\n$`,
        ),
      );
      assert.equal(s.log.match(/^tunicorn: /gm)?.length, 1, 'one error line');
      assert.doesNotMatch(s.log, /Listening at|\n\s+at /);
      assert.ok(!existsSync(sock), 'no socket file left behind');
      assert.ok(!existsSync(pidfile), 'no pidfile left behind');
    } finally {
      taken.close();
    }
  });
});

describe('health endpoint on a port still held', () => {
  it('is tried again as a --bind port is, and bound once the port is free (a restart while the old server stops)', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const s = new Server(['-b', '127.0.0.1:0', '--health-bind', `127.0.0.1:${port}`, fx('listener.ts')]);
      await s.waitFor(new RegExp(`\\[ERROR\\] Connection in use: http://127\\.0\\.0\\.1:${port}; retrying in 1 s \\(attempt 2 of 5\\)`));
      assert.doesNotMatch(s.log, /Listening at/, 'the health endpoint is bound with the others, before "Listening at"');
      await new Promise<void>((r) => taken.close(() => r()));
      await s.waitFor(new RegExp(`Health checks at: http://127\\.0\\.0\\.1:${port}/health/ready`));
      await s.waitFor(/Ready: /);
      assert.equal((await request(port, '/health/live')).status, 200);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    } finally {
      taken.close();
    }
  });
});

describe('health endpoint on an address the app is served on', () => {
  it('is refused at once in one line, not tried again and misnamed as another process\'s', async () => {
    // The app's socket, given as fd://3 so that the test knows its port beforehand (port 0 for --bind would not).
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    const fd = (holder as unknown as { _handle: { fd: number } })._handle.fd;
    try {
      const s = new Server(['-b', 'fd://3', '--health-bind', `localhost:${port}`, fx('listener.ts')], { fds: [fd] });
      assert.equal((await within(s.exited, 15000, 'the exit')).code, 1);
      assert.match(
        s.log,
        new RegExp(
          `(?:^|\\n)tunicorn: error: invalid value for healthBind \\(--health-bind\\): "localhost:${port}" is an address the server binds for the app ` +
            `\\(http://127\\.0\\.0\\.1:${port}\\); give the health endpoint a port of its own\\n$`,
        ),
      );
      assert.doesNotMatch(s.log, /Connection in use|another process|Listening at/);
    } finally {
      holder.close();
    }
  });
});

describe('health endpoint on a unix socket', () => {
  it('replaces the socket file a killed master left, and refuses one a live server answers on', async () => {
    const sock = path.join(tmp, 'health-stale.sock');
    const first = new Server(['-b', '127.0.0.1:0', '--health-bind', `unix:${sock}`, fx('listener.ts')]);
    await first.workersBooted(1);
    first.signal('SIGKILL');
    await first.exited;
    assert.ok(statSync(sock).isSocket(), 'a SIGKILL leaves the socket file');
    const second = new Server(['-b', '127.0.0.1:0', '--health-bind', `unix:${sock}`, fx('listener.ts')]);
    await second.waitFor(/Ready: /);
    assert.equal((await unixRequest(sock, '/health/live')).status, 200);
    // While it runs, a third server cannot take the endpoint from it.
    const third = new Server(['-b', '127.0.0.1:0', '--health-bind', `unix:${sock}`, fx('listener.ts')]);
    assert.equal((await third.exited).code, 1);
    assert.match(third.log, /tunicorn: error: cannot bind the health endpoint unix:.*health-stale\.sock \(--health-bind\): /);
    assert.equal((await unixRequest(sock, '/health/live')).status, 200, 'the running server keeps it');
    await second.kill();
  });
});

describe('boot failures', () => {
  it('backs off a worker that dies while booting, then gives up with status 3', async () => {
    const s = new Server(['-b', '127.0.0.1:0', fx('exits-at-load.ts')]);
    const exit = await s.exited;
    assert.equal(exit.code, 3);
    await within(s.drained, 10000, 'the log to end');
    assert.equal(s.count(/Booting worker/), 5);
    assert.match(s.log, /Worker failed to boot \(1 in a row\); next try in 0\.1 s/);
    assert.match(s.log, /Worker failed to boot \(4 in a row\); next try in 0\.8 s/);
    assert.match(s.log, /Reason: Worker failed to boot\./);
  });

  it('finds ./tunicorn.config.ts without -c', async () => {
    const s = new Server(['--print-config', 'app.ts'], { cwd: fx('default-config') });
    assert.equal((await s.exited).code, 0);
    assert.match(s.stdout, /procName += "found-by-default" +\(config file\)/);
    assert.match(s.stdout, /config += ".*default-config\/tunicorn\.config\.ts" +\(default\)/);
  });
});
