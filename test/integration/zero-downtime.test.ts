/**
 * Zero downtime: 20 keep-alive connections of continuous requests (test/helpers/load.ts) through each event,
 * asserting a count of failed requests of zero, for every worker class in WORKER_CLASSES:
 * - HUP (three reloads in a row): new workers serve before the old ones stop
 * - TERM: in-flight requests finish, keep-alive clients get `Connection: close`, the master exits 0
 * - TERM while connections wait in the kernel backlog (the only worker is blocked): all of them are served
 * - USR2 + WINCH + TERM (upgrade; the new master takes over the pidfile), and the rollback (HUP old, TERM new)
 * - max_requests recycling
 * - a request sent on an idle kept-alive connection just as a stopping worker closes its idle ones (the loop
 *   busy across the end of the 1 s grace) is answered, not reset (async, gthread; sync keeps none alive); so is
 *   one that comes in after the last read before the close (the loop busy in that read)
 * - the heartbeat kill of a blocked worker: nothing fails that was not on the killed worker
 * - a stuck gthread thread: the connections queued behind its request, those still in the kernel's backlog, and
 *   a request sent on one of its idle kept-alive connections, are served by the next worker
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Load, stopAllLoads } from '../helpers/load.js';
import { KeptConnection } from '../helpers/raw.js';
import { alive, childrenOf, FIXTURES, request, Server, stopAll, until, within } from '../helpers/server.js';
import { selfSigned, type CertFiles } from '../helpers/tls.js';
import { scratchDir } from '../helpers/scratch.js';

/** The worker classes every zero-loss test runs on. */
const WORKER_CLASSES = ['async', 'sync', 'gthread'] as const;

const APP = path.join(FIXTURES, 'zero-downtime-app.mjs');
const tmp = scratchDir('tunicorn-zd-');
let certFiles: CertFiles | null = null;
/** A self-signed certificate, made on first use. */
const certs = (): CertFiles => (certFiles ??= selfSigned('localhost', tmp));
/** Process groups of masters started by USR2 (not children of the test): killed at the end. */
const groups = new Set<number>();

after(async () => {
  await stopAllLoads();
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await stopAll();
});

async function start(cls: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ s: Server; port: number }> {
  const s = new Server(['-b', '127.0.0.1:0', '-k', cls, '--graceful-timeout', '20', ...args, APP], env ? { env: { ...process.env, ...env } } : {});
  groups.add(s.pid);
  const port = await s.port();
  await s.waitFor(/Ready: /);
  return { s, port };
}

function assertNoFailures(load: Load, t: { diagnostic: (m: string) => void }): void {
  t.diagnostic(load.summary());
  assert.equal(load.stats.failed.length, 0, `failed requests: ${load.summary()}`);
}

/** A log line of one process: `[PID] [LEVEL] text`. */
const line = (pid: number, text: string) => new RegExp(`\\[${pid}\\] \\[\\w+\\] ${text}`);

/** Sends `GET path` on a raw connection; resolves with the status line (or the error). */
function rawGet(port: number, p: string): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let data = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    c.on('data', (d: string) => (data += d));
    c.on('end', () => resolve(data.split('\r\n')[0] ?? ''));
    c.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
  });
}

for (const cls of WORKER_CLASSES) {
  describe(`zero downtime: ${cls} workers`, () => {
    it('HUP three times under load: no request fails', async (t) => {
      const { s, port } = await start(cls, ['-w', '2']);
      const load = new Load(port);
      await load.okAtLeast(200);
      const before = new Set(load.stats.pids);
      for (let i = 0; i < 3; i++) {
        const from = s.log.length;
        s.signal('SIGHUP');
        await s.waitFor(/Ready: /, 30000, from);
        await load.okAtLeast(100);
      }
      await load.stop();
      assertNoFailures(load, t);
      assert.ok([...load.stats.pids].some((p) => !before.has(p)), 'new workers served');
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    });

    it('TERM under load: in-flight and keep-alive requests end cleanly, exit 0', async (t) => {
      const { s, port } = await start(cls, ['-w', '2']);
      // A client told `Connection: close` stops: new connections after the stop began race the socket's
      // close, which is what --shutdown-delay and the readiness endpoint are for (tested below).
      const load = new Load(port, { stopOnRefused: true });
      await load.okAtLeast(300);
      load.stopAtNextClose();
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
      await load.ended();
      assertNoFailures(load, t);
      assert.ok(load.stats.closes > 0, `keep-alive clients were told Connection: close: ${load.summary()}`);
      assert.match(s.log, /Graceful stop: draining 2 worker\(s\)/);
    });

    it('TERM drains the kernel backlog: connections queued behind a blocked worker are served', async (t) => {
      const { s, port } = await start(cls, ['-w', '1']);
      const mark = path.join(tmp, `spin-${cls}`);
      const spin = request(port, `/spin?ms=1500&mark=${encodeURIComponent(mark)}`, { timeout: 20000 });
      await until(() => existsSync(mark), 10000, 'the worker to block');
      // The only worker is stuck: these connections wait in the kernel backlog, not yet accepted.
      const queued = Array.from({ length: 20 }, () => rawGet(port, '/pid'));
      s.signal('SIGTERM');
      const answers = await Promise.all(queued);
      t.diagnostic(`queued connections answered 200: ${answers.filter((a) => a === 'HTTP/1.1 200 OK').length} of ${answers.length}`);
      assert.deepEqual(answers.filter((a) => a !== 'HTTP/1.1 200 OK'), [], 'every queued connection got 200');
      assert.equal((await spin).status, 200);
      assert.equal((await s.exited).code, 0);
    });

    if (cls !== 'gthread') {
      // A sync worker stops accepting while it serves, an async one at its cap: a TERM that comes then must
      // still drain the backlog once the worker resumes (it was skipped: the queued connection was reset).
      it('TERM while the worker paused accepting (it awaits I/O): the connection queued in the backlog is served', async () => {
        const { s, port } = await start(cls, ['-w', '1', '--worker-connections', '1']);
        const mark = path.join(tmp, `paused-${cls}`);
        const busy = request(port, `/spin?wait=1000&ms=0&mark=${encodeURIComponent(mark)}`, { timeout: 20000 });
        await until(() => existsSync(mark), 10000, 'the worker to take the request');
        const queued = openGet(port, '/pid');
        await queued.connected;
        s.signal('SIGTERM');
        assert.match(await within(queued.status, 20000, 'the queued connection'), /^HTTP\/1\.1 200 /);
        assert.equal((await busy).status, 200);
        assert.equal((await s.exited).code, 0);
      });
    }

    if (cls === 'async') {
      it('TERM while idle keep-alive connections hold the worker at its cap: the queued connection is served, the stop does not wait for their keep-alive', async () => {
        const { s, port } = await start(cls, ['-w', '1', '--worker-connections', '2', '--keep-alive', '60']);
        // Two connections answered and kept open, idle: the worker is at its cap and stops accepting.
        const kept = await Promise.all([0, 1].map(() => keptAlive(port)));
        const queued = openGet(port, '/pid');
        await queued.connected;
        const t0 = Date.now();
        s.signal('SIGTERM');
        assert.match(await within(queued.status, 20000, 'the queued connection'), /^HTTP\/1\.1 200 /);
        assert.equal((await s.exited).code, 0);
        // Idle connections get the stop's 1 s grace, not their 60 s keep-alive (nor graceful_timeout's 20 s).
        assert.ok(Date.now() - t0 < 10000, `the stop took ${Date.now() - t0} ms`);
        for (const c of kept) c.destroy();
      });
    }

    // Not under sync: it closes the connection after every response, as Gunicorn's, so none is kept idle.
    if (cls !== 'sync') {
      // The idle keep-alive close race: a stop closes the connections still idle after its 1 s grace, and a
      // request that had reached the kernel, not yet read, was reset with them (the client saw ECONNRESET on a
      // reused connection). Made certain here: the worker's loop is blocked (by a request, in an I/O callback)
      // across the end of the grace while A's request comes in, so the grace's timer runs before the loop reads
      // it.
      it('HUP: a request sent on an idle kept-alive connection as the grace ends is answered, not reset', async () => {
        const { s, port } = await start(cls, ['-w', '1', ...(cls === 'gthread' ? ['--threads', '1'] : [])]);
        const [a, b, c] = await Promise.all([0, 1, 2].map(() => KeptConnection.open(port)));
        const oldPid = pidIn((await a.ask('/pid')).raw);
        await b.ask('/pid');
        s.signal('SIGHUP');
        // C asks until its answer says `Connection: close`: the old worker's stop, and its grace, have begun.
        for (const end = Date.now() + 20000; ; ) {
          const r = await within(c.ask('/pid'), 20000, "C's answer");
          if (/\r\nConnection: close\r\n/i.test(r.raw)) break;
          assert.ok(Date.now() < end, 'the old worker did not begin its stop within 20 s');
        }
        const spinning = path.join(tmp, `grace-spinning-${cls}`);
        const spun = b.ask(`/spin?ms=2000&spinning=${encodeURIComponent(spinning)}`);
        await until(() => existsSync(spinning), 10000, 'the loop blocked');
        const got = await within(a.ask('/pid'), 20000, "A's answer");
        assert.match(got.raw, /^HTTP\/1\.1 200 /, `A's request on its idle kept-alive connection got: ${JSON.stringify(got.raw)}`);
        assert.equal(pidIn(got.raw), oldPid);
        assert.match(got.raw, /\r\nConnection: close\r\n/i);
        assert.match((await within(spun, 20000, "B's answer")).raw, /^HTTP\/1\.1 200 /);
        await s.waitFor(line(s.pid, `Worker exited \\(pid: ${oldPid}\\)`), 20000);
      });

      // The same race one step on: the grace ends while the loop is blocked (C's request), so its idle close is
      // queued for the check phase of the next turn, whose poll phase is blocked in turn (B's request, read in
      // that poll) while A's request comes in. The poll has passed: only a look at what the kernel holds for A
      // tells its connection from an idle one. On a loaded machine, a client stalled past the grace sent its
      // request just so (signal-storm.test.ts lost 1-8 requests to ECONNRESET).
      it('HUP: a request that reaches an idle kept-alive connection after the last poll before its close is answered, not reset', async () => {
        const { s, port } = await start(cls, ['-w', '1', ...(cls === 'gthread' ? ['--threads', '1'] : [])]);
        const [a, b, c, d] = await Promise.all([0, 1, 2, 3].map(() => KeptConnection.open(port)));
        const oldPid = pidIn((await a.ask('/pid')).raw);
        await Promise.all([b.ask('/pid'), c.ask('/pid')]);
        s.signal('SIGHUP');
        // D asks until its answer says `Connection: close`: the old worker's stop, and its 1 s grace, have begun.
        for (const end = Date.now() + 20000; ; ) {
          const r = await within(d.ask('/pid'), 20000, "D's answer");
          if (/\r\nConnection: close\r\n/i.test(r.raw)) break;
          assert.ok(Date.now() < end, 'the old worker did not begin its stop within 20 s');
        }
        const cSpinning = path.join(tmp, `after-poll-c-${cls}`);
        const bSpinning = path.join(tmp, `after-poll-b-${cls}`);
        // C blocks the loop (in an I/O callback) across the end of the grace; B's request comes in meanwhile.
        const cSpun = c.ask(`/spin?ms=1500&spinning=${encodeURIComponent(cSpinning)}`);
        await until(() => existsSync(cSpinning), 10000, 'C blocking the loop');
        const bSpun = b.ask(`/spin?ms=1000&spinning=${encodeURIComponent(bSpinning)}`);
        const cGot = await within(cSpun, 20000, "C's answer");
        assert.match(cGot.raw, /^HTTP\/1\.1 200 /, `C's answer: ${JSON.stringify(cGot.raw)}`);
        // B blocks the poll of the turn whose check phase closes the idle connections; A's request comes in then.
        await until(() => existsSync(bSpinning), 10000, 'B blocking the loop');
        const got = await within(a.ask('/pid'), 20000, "A's answer");
        assert.match(got.raw, /^HTTP\/1\.1 200 /, `A's request on its idle kept-alive connection got: ${JSON.stringify(got.raw)}`);
        assert.equal(pidIn(got.raw), oldPid);
        assert.match(got.raw, /\r\nConnection: close\r\n/i);
        assert.match((await within(bSpun, 20000, "B's answer")).raw, /^HTTP\/1\.1 200 /);
        await s.waitFor(line(s.pid, `Worker exited \\(pid: ${oldPid}\\)`), 20000);
      });
    }

    it('USR2 + WINCH + TERM upgrades under load; the new master takes over the pidfile', async (t) => {
      const pidfile = path.join(tmp, `upgrade-${cls}.pid`);
      const { s, port } = await start(cls, ['-w', '2', '-p', pidfile]);
      const load = new Load(port);
      await load.okAtLeast(200);

      s.signal('SIGUSR2');
      const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/))[1]);
      await s.waitFor(line(newPid, 'Ready: 2 worker'), 30000);
      assert.equal(readFileSync(`${pidfile}.2`, 'utf8').trim(), String(newPid));
      assert.equal(readFileSync(pidfile, 'utf8').trim(), String(s.pid));
      await load.okAtLeast(100);

      s.signal('SIGWINCH');
      await until(() => childrenOf(s.pid).every((p) => p === newPid), 20000, 'the old workers to exit');
      await load.okAtLeast(100);

      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
      // The old master's stderr pipe, which the new one shares, outlives it: read the log, not the process.
      await until(() => line(newPid, 'Master has been promoted').test(s.log), 10000, 'the promotion');
      await until(() => existsSync(pidfile) && readFileSync(pidfile, 'utf8').trim() === String(newPid), 10000, 'the pidfile to name the new master');
      assert.ok(!existsSync(`${pidfile}.2`));
      await load.okAtLeast(100);
      await load.stop();
      assertNoFailures(load, t);

      process.kill(newPid, 'SIGTERM');
      await until(() => !alive(newPid), 20000, 'the new master to stop');
      assert.ok(!existsSync(pidfile), 'the promoted master removed its pidfile');
    });

    it('USR2 then rollback (WINCH, HUP to the old master, TERM to the new) under load', async (t) => {
      const pidfile = path.join(tmp, `rollback-${cls}.pid`);
      const { s, port } = await start(cls, ['-w', '2', '-p', pidfile]);
      const load = new Load(port);
      await load.okAtLeast(200);
      s.signal('SIGUSR2');
      const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/))[1]);
      await s.waitFor(line(newPid, 'Ready: 2 worker'), 30000);
      s.signal('SIGWINCH');
      await until(() => childrenOf(s.pid).every((p) => p === newPid), 20000, 'the old workers to exit');
      await load.okAtLeast(100);

      const from = s.log.length;
      s.signal('SIGHUP');
      await s.waitFor(line(s.pid, 'Ready: 2 worker'), 30000, from);
      process.kill(newPid, 'SIGTERM');
      await s.waitFor(line(s.pid, `The new master \\(pid ${newPid}\\) exited`), 30000);
      await load.okAtLeast(200);
      await load.stop();
      assertNoFailures(load, t);
      assert.equal(readFileSync(pidfile, 'utf8').trim(), String(s.pid));
      assert.ok(!existsSync(`${pidfile}.2`), 'the new master removed PIDFILE.2');
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    });

    it('max_requests recycling under load: no request fails', async (t) => {
      const { s, port } = await start(cls, ['-w', '2', '--max-requests', '80', '--max-requests-jitter', '20']);
      const load = new Load(port);
      await until(() => s.count(/reached max_requests \(\d+\): replacing it/) >= 4, 60000, 'four recyclings');
      await load.okAtLeast(100);
      await load.stop();
      assertNoFailures(load, t);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    });

    it('the heartbeat kill: no request fails that was not on the killed worker', async (t) => {
      const { s, port } = await start(cls, ['-w', '2', '--timeout', '2']);
      const load = new Load(port);
      await load.okAtLeast(200);
      const spin = request(port, '/spin?ms=8000', { timeout: 20000 }).catch((e: Error) => e);
      const killed = Number((await s.waitFor(/WORKER TIMEOUT \(pid:(\d+)\)/, 20000))[1]);
      await s.waitFor(/Booting worker with pid: \d+[\s\S]*Booting worker with pid: \d+[\s\S]*Booting worker with pid: \d+/, 20000);
      await load.okAtLeast(300);
      await load.stop();
      await spin;
      const elsewhere = load.stats.failed.filter((f) => f.pid !== killed);
      t.diagnostic(`${load.summary()}; killed worker ${killed}`);
      assert.deepEqual(elsewhere, [], `failures not on the killed worker ${killed}: ${load.summary()}`);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    });
  });
}

/**
 * Opens a connection (TLS with `secure`) and sends `GET path` once it is connected: `connected` settles first,
 * then `status`, with the whole response.
 */
function openGet(port: number, p: string, secure = false): { connected: Promise<void>; status: Promise<string> } {
  let connected!: () => void;
  const c = secure ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect(port, '127.0.0.1');
  const ready = new Promise<void>((resolve) => (connected = resolve));
  const status = new Promise<string>((resolve) => {
    let data = '';
    c.setEncoding('utf8');
    // Connected once TCP is: a TLS handshake waits until the server serves the connection.
    c.once('connect', () => connected());
    c.on(secure ? 'secureConnect' : 'connect', () => {
      c.write(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    c.on('data', (d: string) => (data += d));
    c.on('end', () => resolve(data));
    c.on('error', (e: NodeJS.ErrnoException) => {
      connected();
      resolve(`error ${e.code}`);
    });
  });
  return { connected: ready, status };
}

/** A connection that got its answer to `GET /pid` and is kept open (keep-alive), idle. */
function keptAlive(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => c.write('GET /pid HTTP/1.1\r\nHost: x\r\n\r\n'));
    let data = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      data += d;
      if (/\r\n\r\n\{"pid":\d+\}$/.test(data)) resolve(c);
    });
    c.on('error', reject);
  });
}

/** The pid in a raw answer of the fixture (its JSON body names the worker). */
const pidIn = (raw: string): number => (JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { pid: number }).pid;

describe('zero downtime: a stuck gthread thread', () => {
  for (const secure of [false, true]) {
  it(`hands the connections queued behind its request to the next worker (${secure ? 'TLS' : 'plain HTTP'}; without the native module)`, async () => {
    // One worker, one thread. B waits 500 ms, then spins for good. While it waits the thread's loop is free
    // and accepts C, D and E, which queue behind B: a thread serves one connection at a time. (With the native
    // module a thread stops accepting while it serves B: they wait in the backlog, the test after next.)
    const tlsArgs = secure ? ['--certfile', certs().cert, '--keyfile', certs().key] : [];
    const { s, port } = await start('gthread', ['-w', '1', '--threads', '1', '--timeout', '2', ...tlsArgs], { TUNICORN_NATIVE: '0' });
    const mark = path.join(tmp, `b-started-${secure}`);
    const b = openGet(port, `/spin?wait=500&ms=60000&mark=${encodeURIComponent(mark)}`, secure);
    await until(() => existsSync(mark), 10000, 'B started');
    const rest = [];
    for (let i = 0; i < 3; i++) {
      const c = openGet(port, '/pid', secure);
      await c.connected;
      rest.push(c.status);
    }
    const stuck = Number((await s.waitFor(/WORKER TIMEOUT \(pid:(\d+)\)/, 20000))[1]);
    const answers = await Promise.all(rest);
    await s.waitFor(line(stuck, 'Handing 3 waiting connection\\(s\\) over to the other workers'), 5000);
    for (const r of answers) {
      assert.match(r, /^HTTP\/1\.1 200 /, `a queued connection was lost: ${r.split('\r\n')[0]}`);
      assert.notEqual(pidIn(r), stuck, 'served by the replacement, not the stuck worker');
    }
    assert.doesNotMatch(await b.status, /^HTTP\/1\.1 200 /);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
  }

  it('leaves the connections waiting in the backlog to the next worker: the stuck thread accepts none of them', async () => {
    // One worker, one thread. F connects while B spins, so F waits in the kernel's backlog, not in the worker.
    // The stuck thread must not accept F on its way out. Woken by Worker.terminate(), it did: B spins in a
    // timer callback (`wait`), and once the termination ended that callback the loop polled for I/O before it
    // stopped, accepted F and closed it unread, a reset.
    const { s, port } = await start('gthread', ['-w', '1', '--threads', '1', '--timeout', '2']);
    const spinning = path.join(tmp, 'b-spinning');
    openGet(port, `/spin?wait=100&ms=60000&spinning=${encodeURIComponent(spinning)}`);
    await until(() => existsSync(spinning), 10000, 'B spinning');
    const f = openGet(port, '/pid');
    await f.connected;
    const stuck = Number((await s.waitFor(/WORKER TIMEOUT \(pid:(\d+)\)/, 20000))[1]);
    const r = await within(f.status, 20000, 'the answer to the connection that waited in the backlog');
    assert.match(r, /^HTTP\/1\.1 200 /, `the connection that waited in the backlog was lost: ${r.split('\r\n')[0]}`);
    assert.notEqual(pidIn(r), stuck, 'served by the replacement');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('hands its idle kept-alive connections to the next worker: a request sent on one while it is stuck is served', async () => {
    // One worker, one thread. A's connection is kept alive after its first answer; B then spins for good, and
    // A sends its second request on the idle connection: the stuck thread cannot read it.
    const { s, port } = await start('gthread', ['-w', '1', '--threads', '1', '--timeout', '2']);
    const a = net.connect(port, '127.0.0.1');
    try {
      let data = '';
      a.setEncoding('utf8');
      a.on('data', (d: string) => (data += d));
      a.on('error', () => {});
      const answers = (n: number) => until(() => (data.match(/"pid":\d+/g) ?? []).length >= n || a.destroyed, 30000, `${n} answer(s) on A`);
      a.write('GET /pid HTTP/1.1\r\nHost: x\r\n\r\n');
      await answers(1);
      assert.match(data, /^HTTP\/1\.1 200 [\s\S]*connection: keep-alive/i, 'kept alive');
      const first = pidIn(data);
      const spinning = path.join(tmp, 'b-spinning-kept');
      openGet(port, `/spin?wait=100&ms=60000&spinning=${encodeURIComponent(spinning)}`);
      await until(() => existsSync(spinning), 10000, 'B spinning');
      const sentAt = data.length;
      a.write('GET /pid HTTP/1.1\r\nHost: x\r\n\r\n');
      await s.waitFor(line(first, 'Handing 1 idle kept-alive connection\\(s\\) over to the other workers'), 20000);
      await answers(2);
      const second = data.slice(sentAt);
      assert.match(second, /^HTTP\/1\.1 200 /, `the request sent while the thread was stuck was lost: ${JSON.stringify(second)}`);
      assert.notEqual(pidIn(second), first, 'served by the replacement');
    } finally {
      a.destroy();
    }
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  for (const native of [true, false]) {
  it(`HUP: the connections that came behind its request go to the new worker at once (${native ? 'from the backlog' : 'handed over, without the native module'})`, async () => {
    // As above, but no timeout: HUP replaces the worker while B spins. The old worker keeps running B until
    // graceful_timeout (20 s here); C, D and E must not wait for that, nor be lost with it. With the native
    // module the thread accepted none of them (they wait in the backlog); without it, they queue behind B.
    const { s, port } = await start('gthread', ['-w', '1', '--threads', '1', '--timeout', '0'], native ? undefined : { TUNICORN_NATIVE: '0' });
    const old = (await s.workersBooted(1))[0]!;
    const mark = path.join(tmp, 'b-started-hup');
    openGet(port, `/spin?wait=500&ms=60000&mark=${encodeURIComponent(mark)}`);
    await until(() => existsSync(mark), 10000, 'B started');
    const rest = [];
    for (let i = 0; i < 3; i++) {
      const c = openGet(port, '/pid');
      await c.connected;
      rest.push(c.status);
    }
    s.signal('SIGHUP');
    const answers = await within(Promise.all(rest), 10000, 'the answers to the queued connections after the HUP');
    if (native) assert.equal(s.count(/Handing \d+ waiting connection/), 0, 'none was accepted by the busy thread');
    else await s.waitFor(line(old, 'Handing 3 waiting connection\\(s\\) over to the other workers'), 5000);
    for (const r of answers) {
      assert.match(r, /^HTTP\/1\.1 200 /, `a queued connection was lost: ${r.split('\r\n')[0]}`);
      assert.notEqual(pidIn(r), old, 'served by the new worker');
    }
    await s.kill();
  });
  }
});
