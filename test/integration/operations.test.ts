/**
 * Operations around the signals:
 * - --health-bind: /health/live and /health/ready answered by the master; ready once the workers serve,
 *   and throughout a HUP (the old workers count until the new ones serve)
 * - --shutdown-delay: on TERM, /health/ready turns 503 at once while the app keeps serving for the delay;
 *   a load balancer that stops sending on 503 loses nothing; then the drain, and exit 0
 * - USR2 upgrade on a Unix socket: the old master leaves the socket file to the new one, which names it and
 *   removes it once promoted, also when it was bound by a relative path
 * - HUP re-reads the config file: a new worker count and log level take effect; a config that no longer
 *   loads keeps the running one and logs why; a setting only a restart applies (chdir, preload, reload,
 *   capture_output, umask) is said in one line each, while the file differs, and the running config keeps the
 *   start's value; a new pidfile path moves the pidfile, as Gunicorn's reload does; a new backlog above
 *   somaxconn is said as at the start, a new worker class in one line
 * - as PID 1 (in a PID namespace of its own, as in a container), the master reaps the orphans it adopts
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { Load, stopAllLoads } from '../helpers/load.js';
import { alive, childrenOf, FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

const APP = path.join(FIXTURES, 'zero-downtime-app.mjs');
const CTL = fileURLToPath(new URL('../../dist/cli/ctl.js', import.meta.url));

/** Kills what is left of a server's process group (a master started by USR2 is not the test's child). */
function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}
const tmp = scratchDir('tunicorn-ops-');
after(async () => {
  await stopAllLoads();
  await stopAll();
});

/**
 * The reload that never finishes loading its config file fails after 30 s (the bound) on the master's clock
 * alone: its server starts with the file and its test, the file's last, awaits it, so the other tests run
 * during those 30 s instead of after them. Settled to an error or null: a failure before the test awaits it is
 * not an unhandled rejection.
 */
const hupWaitsCase = (async () => {
  const cfg = path.join(tmp, 'hup-waits.config.mjs');
  writeFileSync(cfg, 'export default { workers: 1 };\n');
  const s = new Server(['-b', '127.0.0.1:0', '-c', cfg, APP]);
  const port = await s.port();
  await s.waitFor(/Ready: 1 worker/);
  // A top-level await on something that never answers (the master's loop has other work: it never runs dry).
  writeFileSync(cfg, "import net from 'node:net';\nawait new Promise(() => net.createServer().listen(0, '127.0.0.1').unref());\nexport default { workers: 2 };\n");
  const from = s.log.length;
  s.signal('SIGHUP');
  await s.waitFor(/Reload failed, keeping the running configuration: config file .*hup-waits\.config\.mjs did not finish loading within 30 s\n/, 45000, from);
  assert.equal((await request(port, '/pid')).status, 200);
  assert.doesNotMatch(s.log.slice(from), /Booting worker/);
  await s.kill();
})().then(() => null, (err: unknown) => err);

describe('health endpoint and shutdown delay', () => {
  it('reports ready while the workers serve, not ready from TERM on, and serves through the delay', async (t) => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', '--health-bind', '127.0.0.1:0', '--shutdown-delay', '3', APP]);
    const port = await s.port();
    const hport = Number((await s.waitFor(/Health checks at: http:\/\/127\.0\.0\.1:(\d+)\/health\/ready/))[1]);
    assert.equal((await request(hport, '/health/live')).status, 200);
    await until(() => s.log.includes('Ready: '), 20000, 'the workers');
    const ready = await request(hport, '/health/ready');
    assert.equal(ready.status, 200);
    assert.match(ready.body, /2 of 2 workers serving/);
    assert.equal((await request(hport, '/nope')).status, 404);
    // RFC 9110: a 405 names the methods allowed.
    const post = await request(hport, '/health/ready', { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    assert.equal(post.body, 'method not allowed: POST (the health endpoint answers GET and HEAD)\n');

    // A reload does not flap readiness: the old workers count until the new ones serve.
    const from = s.log.length;
    s.signal('SIGHUP');
    const during: number[] = [];
    while (!s.log.slice(from).includes('Ready: ')) {
      during.push((await request(hport, '/health/ready')).status);
      if (during.length > 2000) break;
    }
    assert.ok(during.length > 0);
    assert.deepEqual([...new Set(during)], [200], 'ready throughout the HUP');

    const load = new Load(port);
    await load.okAtLeast(200);
    const atTerm = s.log.length;
    s.signal('SIGTERM');
    // The load balancer: polls readiness, and stops sending once it says 503.
    await until(() => s.log.includes('Shutdown delay: serving 3 s more'), 10000, 'the delay to begin');
    const notReady = await request(hport, '/health/ready');
    assert.equal(notReady.status, 503);
    assert.match(notReady.body, /stopping/);
    // The stop has begun with the delay: a HUP or a TTIN then is ignored, as after it (no worker boots).
    s.signal('SIGHUP');
    await s.waitFor(/HUP ignored: the master is stopping/, 10000, atTerm);
    s.signal('SIGTTIN');
    await s.waitFor(/TTIN ignored: the master is stopping/, 10000, atTerm);
    assert.doesNotMatch(s.log.slice(atTerm), /Booting worker|Number of workers/);
    // Still serving, on keep-alive, without Connection: close: the delay has not ended.
    const closesAtTerm = load.stats.closes;
    await load.okAtLeast(100);
    assert.equal(load.stats.closes, closesAtTerm, 'no Connection: close during the delay');
    await load.stop();
    t.diagnostic(load.summary());
    assert.equal(load.stats.failed.length, 0, load.summary());
    assert.equal((await s.exited).code, 0);
    assert.match(s.log, /Graceful stop: draining 2 worker/);
  });
});

describe('HUP re-reads the config', () => {
  it('applies a new worker count and log level; keeps the running config when the file breaks', async () => {
    const cfg = path.join(tmp, 'hup.config.ts');
    writeFileSync(cfg, `export default { workers: 2, loglevel: 'info' };\n`);
    const s = new Server(['-b', '127.0.0.1:0', '-c', cfg, APP]);
    const port = await s.port();
    await s.waitFor(/Ready: 2 worker/);

    writeFileSync(cfg, `export default { workers: 3, loglevel: 'debug' };\n`);
    let from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Ready: 3 worker/, 30000, from);
    assert.match(s.log.slice(from), /Number of workers: 2 -> 3/);
    assert.match(s.log.slice(from), /\[DEBUG\]/);
    await until(() => childrenOf(s.pid).length === 3, 20000, 'three workers');

    writeFileSync(cfg, `export default { workers: ;\n`);
    from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Reload failed, keeping the running configuration: .*hup\.config\.ts/, 20000, from);
    assert.equal((await request(port, '/pid')).status, 200);
    assert.equal(childrenOf(s.pid).length, 3);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
});

describe('a signal during the start', () => {
  it('waits for the start to finish, then is handled: TERM stops the server cleanly, its pidfile removed', async () => {
    const cfg = path.join(tmp, 'slow-start.config.mjs');
    writeFileSync(
      cfg,
      "export default { onStarting: () => { process.stderr.write('hook: starting\\n'); return new Promise((resolve) => setTimeout(resolve, 1500)); } };\n",
    );
    const pidfile = path.join(tmp, 'slow-start.pid');
    const s = new Server(['-b', '127.0.0.1:0', '-c', cfg, '-p', pidfile, APP]);
    await s.waitFor(/hook: starting/);
    s.signal('SIGTERM');
    assert.deepEqual(await s.exited, { code: 0, signal: null });
    assert.match(s.log, /Listening at: [\s\S]*Handling signal: term[\s\S]*Shutting down: Master/);
    assert.doesNotMatch(s.log, /Booting worker/);
    assert.ok(!existsSync(pidfile), 'no pidfile left behind');
  });
});

describe('HUP after the default config file is gone', () => {
  it('keeps the running configuration instead of falling back to the defaults', async () => {
    // Found in the working directory, not named with -c: the reload's resolve finds no file at all.
    const dir = mkdtempSync(path.join(tmp, 'default-cfg-'));
    const cfg = path.join(dir, 'tunicorn.config.mjs');
    writeFileSync(cfg, `export default { workers: 2 };\n`);
    const s = new Server(['-b', '127.0.0.1:0', APP], { cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: 2 worker/);
    unlinkSync(cfg);
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/\[ERROR\] Reload failed, keeping the running configuration: the config file .*tunicorn\.config\.mjs is gone \(deleted or moved\); put it back and send HUP again, or restart the server to run without it/, 20000, from);
    assert.doesNotMatch(s.log.slice(from), /Number of workers|Booting worker/);
    assert.equal((await request(port, '/pid')).status, 200);
    assert.equal(childrenOf(s.pid).length, 2);
    // Put back, it is read again.
    writeFileSync(cfg, `export default { workers: 3 };\n`);
    s.signal('SIGHUP');
    await s.waitFor(/Number of workers: 2 -> 3/, 20000, from);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
});

describe('HUP with a new control socket mode', () => {
  it('says that the control socket keeps its mode until a restart', async () => {
    const cfg = path.join(tmp, 'ctl-mode.config.mjs');
    const sock = path.join(tmp, 'ctl-mode.ctl');
    writeFileSync(cfg, `export default { workers: 1, controlSocket: ${JSON.stringify(sock)}, controlSocketMode: 0o600 };\n`);
    const s = new Server(['-b', '127.0.0.1:0', '-c', cfg, APP]);
    await s.waitFor(/Ready: 1 worker/);
    writeFileSync(cfg, `export default { workers: 1, controlSocket: ${JSON.stringify(sock)}, controlSocketMode: 0o660 };\n`);
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/\[WARNING\] control_socket changed in the config: a reload keeps the control socket as it is \(its path and mode\); restart to change it/, 20000, from);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
});

describe('HUP with settings only a restart applies', () => {
  it('says so in one line each, keeps what the start made, says it again while the file differs, and not once it is put back', async () => {
    const cfg = path.join(tmp, 'start-only.config.mjs');
    const pid1 = path.join(tmp, 'start-only-1.pid');
    const pid2 = path.join(tmp, 'start-only-2.pid');
    const sock = path.join(tmp, 'start-only.ctl');
    const first = { workers: 1, pidfile: pid1, controlSocket: sock, backlog: 64 };
    writeFileSync(cfg, `export default ${JSON.stringify(first)};\n`);
    const s = new Server(['-b', '127.0.0.1:0', '-c', cfg, APP]);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    const lines = [
      /\[WARNING\] chdir changed in the config: a reload keeps the working directory of the start; restart to change it\n/,
      /\[WARNING\] preload changed in the config: the master loads the app \(--preload\) at the start only; restart to apply it\n/,
      /\[WARNING\] reload changed in the config: a reload keeps the file watcher as it is \(reload, reload_extra_file\); restart to change it\n/,
      /\[WARNING\] capture_output changed in the config: the new workers follow it, the master's own stdout and stderr stay as they are; restart to change it\n/,
      /\[WARNING\] umask changed in the config: it applies to the socket files bound at the start, which a reload keeps; restart to apply it\n/,
    ];
    // backlog applies (the new workers listen() again with it): capped by somaxconn as at the start.
    const second = { ...first, pidfile: pid2, chdir: tmp, preload: true, reload: true, captureOutput: true, umask: '0o77', backlog: somaxconn + 1, workerClass: 'gthread' };
    writeFileSync(cfg, `export default ${JSON.stringify(second)};\n`);
    let from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Ready: 1 worker/, 30000, from);
    for (const re of lines) assert.match(s.log.slice(from), re);
    assert.match(s.log.slice(from), new RegExp(`\\[WARNING\\] backlog ${somaxconn + 1} is above the kernel's net.core.somaxconn \\(${somaxconn}\\)`));
    assert.match(s.log.slice(from), /\[INFO\] Using worker: gthread \(from the new workers on\)\n/);
    // The pidfile is not one of them: it moves, as in Gunicorn's reload.
    assert.doesNotMatch(s.log.slice(from), /pidfile changed/);
    assert.match(s.log.slice(from), new RegExp(`\\[INFO\\] Pidfile moved to ${pid2}\n`));
    assert.ok(!existsSync(pid1), 'the old pidfile is removed');
    assert.equal(readFileSync(pid2, 'utf8'), `${s.pid}\n`);
    // The running configuration is what runs: the start's chdir (none), the new pidfile.
    const shown = spawnSync(process.execPath, [CTL, '-s', sock, '-j', '-c', 'show config'], { encoding: 'utf8' });
    assert.equal(JSON.parse(shown.stdout).chdir, null, shown.stderr);
    assert.equal(JSON.parse(shown.stdout).pidfile, pid2, shown.stderr);
    assert.equal((await request(port, '/pid')).status, 200);

    // Still not applied: said again.
    from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Ready: 1 worker/, 30000, from);
    assert.match(s.log.slice(from), lines[0]!);

    // Put back: nothing to say.
    writeFileSync(cfg, `export default ${JSON.stringify(first)};\n`);
    from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Ready: 1 worker/, 30000, from);
    assert.doesNotMatch(s.log.slice(from), /changed in the config/);
    assert.match(s.log.slice(from), /\[INFO\] Using worker: async \(from the new workers on\)\n/);
    assert.ok(existsSync(pid1) && !existsSync(pid2), 'the pidfile moved back');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.ok(!existsSync(pid1), 'the pidfile removed at the stop');
  });
});

function unixGet(socketPath: string, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: p, agent: false, timeout: 10000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

describe('USR2, then the new master is killed', () => {
  it('the old master stays in charge and removes the PIDFILE.2 that named the dead one', async () => {
    const pidfile = path.join(tmp, 'killed-upgrade.pid');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-p', pidfile, APP]);
    const port = await s.port();
    await s.waitFor(/Ready: /);
    s.signal('SIGUSR2');
    const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/))[1]);
    try {
      await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: `), 20000);
      assert.equal(readFileSync(`${pidfile}.2`, 'utf8').trim(), String(newPid));
      process.kill(newPid, 'SIGKILL');
      await s.waitFor(new RegExp(`The new master \\(pid ${newPid}\\) exited \\(SIGKILL\\); this master stays in charge`));
      await s.waitFor(/Removed .*killed-upgrade\.pid\.2, which named it/);
      assert.ok(!existsSync(`${pidfile}.2`), 'PIDFILE.2 is gone');
      assert.equal(readFileSync(pidfile, 'utf8').trim(), String(s.pid));
      assert.equal((await request(port, '/pid')).status, 200);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    } finally {
      killGroup(s.pid);
    }
  });
});

describe('USR2 on a Unix socket', () => {
  it('leaves the socket file to the new master, which removes it when it stops', async () => {
    const sock = path.join(tmp, 'upgrade.sock');
    const s = new Server(['-b', `unix:${sock}`, '-w', '1', APP]);
    await s.waitFor(/Ready: /);
    const before = JSON.parse((await unixGet(sock, '/pid')).body).pid as number;
    s.signal('SIGUSR2');
    const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/))[1]);
    try {
      await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: `), 20000);
      s.signal('SIGWINCH');
      await until(() => childrenOf(s.pid).every((p) => p === newPid), 20000, 'the old worker to exit');
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
      assert.ok(existsSync(sock), `the socket file is still there: ${s.log}`);
      const r = await unixGet(sock, '/pid');
      assert.equal(r.status, 200);
      assert.notEqual(JSON.parse(r.body).pid, before, 'served by the new master\'s worker');
      process.kill(newPid, 'SIGTERM');
      await until(() => !alive(newPid), 20000, 'the new master to stop');
      assert.ok(!existsSync(sock), 'the promoted master removed the socket file');
    } finally {
      killGroup(s.pid);
    }
  });
});

describe('USR2 on a Unix socket bound by a relative path', () => {
  it('the new master names the file, and removes it once promoted and stopped', async () => {
    // The kernel knows the socket only by the path as bound (rel.sock, from --chdir): the old master says which.
    const dir = mkdtempSync(path.join(tmp, 'rel-'));
    const sock = path.join(dir, 'rel.sock');
    const s = new Server(['-b', 'unix:rel.sock', '--chdir', dir, '-w', '1', APP]);
    await s.waitFor(/Ready: /);
    s.signal('SIGUSR2');
    const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/))[1]);
    try {
      await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: `), 20000);
      assert.match(s.log, new RegExp(`\\[${newPid}\\] \\[INFO\\] Listening at: unix:${sock.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} `));
      s.signal('SIGWINCH');
      await until(() => childrenOf(s.pid).every((p) => p === newPid), 20000, 'the old worker to exit');
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
      assert.equal((await unixGet(sock, '/pid')).status, 200);
      await until(() => new RegExp(`\\[${newPid}\\] \\[INFO\\] Master has been promoted`).test(s.log), 10000, 'the promotion');
      process.kill(newPid, 'SIGTERM');
      await until(() => !alive(newPid), 20000, 'the new master to stop');
      assert.ok(!existsSync(sock), 'the promoted master removed the socket file');
    } finally {
      killGroup(s.pid);
    }
  });
});

describe('USR2 and the Node.js binary', () => {
  // The bin starts `node` from PATH; an upgrade (nvm, n, a moved symlink, a package) changes what that name
  // runs. The new master must run that, not the binary the old one runs (process.execPath, its symlinks
  // resolved at start).
  it('runs the node the command names now', async () => {
    const dir = mkdtempSync(path.join(tmp, 'bin-'));
    const node = path.join(dir, 'node');
    symlinkSync(process.execPath, node);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', APP], { bin: true, env: { PATH: `${dir}${path.delimiter}${process.env.PATH ?? ''}` } });
    try {
      await s.waitFor(/Ready: /);
      // The upgrade: `node` now names another binary, here a script that marks the process it starts.
      unlinkSync(node);
      writeFileSync(node, `#!/bin/sh\nexport TUNICORN_TEST_NODE=upgraded\nexec '${process.execPath}' "$@"\n`, { mode: 0o755 });
      s.signal('SIGUSR2');
      const m = await s.waitFor(/started a new master \(pid (\d+)\) on the same sockets, with (\S+);/);
      const newPid = Number(m[1]);
      assert.equal(m[2], node);
      await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: `), 20000);
      assert.match(readFileSync(`/proc/${newPid}/environ`, 'latin1'), /(?:^|\0)TUNICORN_TEST_NODE=upgraded\0/);
      assert.match(s.log, new RegExp(`\\[${newPid}\\] \\[INFO\\] Starting tunicorn \\S+ on Node\\.js ${process.version.replace(/\./g, '\\.')}\n`));
      process.kill(newPid, 'SIGTERM');
      await until(() => !alive(newPid), 20000, 'the new master to stop');
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    } finally {
      killGroup(s.pid);
    }
  });
});

/** `unshare` can make a PID namespace here (root, or a kernel that lets this user). */
const canUnshare = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' }).status === 0;

/** `pid` and every process under it, with its state (R, S, Z...) and command. */
function tree(pid: number): { pid: number; state: string; comm: string }[] {
  const out: { pid: number; state: string; comm: string }[] = [];
  const walk = (p: number) => {
    for (const c of childrenOf(p)) {
      try {
        const stat = readFileSync(`/proc/${c}/stat`, 'latin1');
        const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        out.push({ pid: c, state: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!, comm });
      } catch {
        continue; // gone meanwhile
      }
      walk(c);
    }
  };
  walk(pid);
  return out;
}

describe('as PID 1', { skip: canUnshare ? false : 'unshare cannot make a PID namespace here' }, () => {
  // Docker without --init, or a Kubernetes container whose command is tunicorn: every orphan in the container
  // becomes the master's child, and stays a zombie until the master waits for it.
  it('the master reaps the orphans it adopts, and its workers still come and go', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--max-requests', '3', path.join(FIXTURES, 'orphans.mjs')], {
      wrapper: ['unshare', '--pid', '--fork', '--mount-proc'],
    });
    const port = await s.port();
    await s.waitFor(/\[1\] \[INFO\] Running as PID 1: the master reaps orphaned processes/);
    for (let i = 0; i < 5; i++) assert.equal((await request(port, '/')).body, 'spawned\n');
    const left = () => tree(s.pid).filter((p) => p.comm === 'sleep');
    // Each sleep ends after 0.2 s; without a reaper it stays in the table as a zombie for good.
    await until(() => left().length === 0, 5000, 'no sleep left, running or zombie').catch((err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(left())}`);
    });
    // max_requests (3) replaced the worker: the master saw its exit, which Node reports only if the reaper
    // left that child to Node.
    await s.waitFor(/Booting worker with pid: \d+[\s\S]*Booting worker with pid: \d+/);
    await s.waitFor(/Worker exited \(pid: \d+\)/);
    assert.equal((await request(port, '/')).body, 'spawned\n');
  });
});

describe('HUP with a config file that never finishes loading (started with the file, above)', () => {
  it('fails the reload after 30 s, in one line, and keeps serving', async () => {
    const err = await hupWaitsCase;
    if (err) throw err;
  });
});
