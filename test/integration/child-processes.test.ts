/**
 * The processes an app starts end with its worker (src/process-tree.ts):
 * - a child and a grandchild (a shell's child) left running get SIGTERM when the worker exits: at a TERM to
 *   the master (and an INT), a HUP that replaces the worker, a max_requests recycle, a crash by an uncaught
 *   exception, the app's own process.exit(), and under gthread, whose threads spawn them
 * - a worker the master SIGKILLs (timeout, the end of graceful_timeout) is killed with them
 * - a child spawned with `detached: true` (a session of its own) is meant to outlive the worker: it does
 * - the master is a child subreaper (Linux, native module built; src/arbiter/orphans.ts): it ends what a
 *   worker killed from outside left (a child and a grandchild), a double fork's orphan when its worker ends,
 *   SIGKILLs one that ignores SIGTERM after graceful_timeout, reaps the orphans it adopted when they exit, and
 *   leaves a detached child, the new master of a USR2 upgrade, a child_exit hook's orphan and the workers of a
 *   killed USR2 new master (whose ages are counted from 1 too) alone
 * Every pid a test makes is killed in the cleanup, whatever the outcome.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { alive, FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

const APP = path.join(FIXTURES, 'spawns-children.mjs');
const made = new Set<number>();

after(async () => {
  await stopAll();
  for (const pid of made) {
    if (!gone(pid)) process.kill(pid, 'SIGKILL');
  }
});

/** Exited: no such process, or a zombie waiting for its parent (which is no longer the worker). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z';
  } catch {
    return true;
  }
}

/** Asks the app for processes; their pids are recorded for the cleanup. */
async function spawnVia(port: number, what: '/spawn' | '/detached' | '/double' | '/brief' | '/stubborn' | `/late?file=${string}`): Promise<number[]> {
  const r = await request(port, what);
  assert.equal(r.status, 200, r.body);
  const pids = JSON.parse(r.body) as number[];
  for (const pid of pids) made.add(pid);
  assert.ok(pids.length > 0 && pids.every((p) => Number.isInteger(p) && p > 0 && !gone(p)), `running: ${r.body}`);
  return pids;
}

/** The parent of a process that runs, from its stat; null when it is gone. */
function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

async function allGone(pids: number[], what: string): Promise<void> {
  await until(() => pids.every(gone), 10000, `${what}: ${pids.filter((p) => !gone(p)).join(', ')} to end`);
}

/** Blocks the worker's event loop for good; resolves once it is blocked (the head it sent first came). */
async function hang(port: number): Promise<void> {
  const req = http.get({ host: '127.0.0.1', port, path: '/hang', agent: false });
  req.on('error', () => {});
  await once(req, 'response');
}

const start = (args: string[] = []) => new Server(['-b', '127.0.0.1:0', '-w', '1', ...args, APP]);

describe('the processes an app leaves running end with its worker', () => {
  it('a TERM to the master ends them, and says so', async () => {
    const s = start();
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    await allGone(pids, 'after TERM');
    assert.match(s.log, /ending the processes it started that still run \(SIGTERM\): \d+ \(sleep\), \d+ \(sh\), \d+ \(sleep\)/);
  });

  it('a quick stop (INT to the master) ends them', async () => {
    const s = start();
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    s.signal('SIGINT');
    await s.exited;
    await allGone(pids, 'after INT');
  });

  it("the app's own process.exit() ends them", async () => {
    const s = start();
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    await request(port, '/exit').catch(() => {});
    await s.waitFor(/exited with code 3/);
    await allGone(pids, 'after process.exit(3)');
  });

  it('a HUP that replaces the worker ends them', async () => {
    const s = start();
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Worker exited \(pid: \d+\)/, 15000, from);
    await allGone(pids, 'after HUP');
    assert.equal((await request(port, '/')).status, 200);
  });

  it('a max_requests recycle ends them', async () => {
    const s = start(['--max-requests', '2']);
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    await request(port, '/');
    await s.waitFor(/Worker exited \(pid: \d+\)/);
    await allGone(pids, 'after max_requests');
  });

  it('a crash by an uncaught exception ends them', async () => {
    const s = start();
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    await request(port, '/throw');
    await s.waitFor(/Uncaught exception in worker/);
    await allGone(pids, 'after the crash');
  });

  it('under gthread, the processes its threads started end too', async () => {
    const s = start(['-k', 'gthread', '--threads', '2']);
    const port = await s.port();
    const pids = [...(await spawnVia(port, '/spawn')), ...(await spawnVia(port, '/spawn'))];
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    await allGone(pids, 'after TERM under gthread');
  });

  it('a worker killed at its timeout is killed with them', async () => {
    const s = start(['-t', '2']);
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    await hang(port);
    await s.waitFor(/WORKER TIMEOUT/);
    await allGone(pids, 'after the timeout');
    await s.waitFor(/killed with the processes it started that still ran: \d+ \(sleep\), \d+ \(sh\), \d+ \(sleep\)/);
  });

  it('a worker killed at the end of graceful_timeout is killed with them', async () => {
    // No timeout: the stuck worker meets only the graceful stop's bound.
    const s = start(['-t', '0', '--graceful-timeout', '1']);
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    await hang(port);
    s.signal('SIGTERM');
    await s.waitFor(/did not stop in time: killing it/);
    await s.exited;
    await allGone(pids, 'after graceful_timeout');
    assert.match(s.log, /killed with the processes it started/);
  });

  it('a detached child (a session of its own) outlives the worker', async () => {
    const s = start();
    const port = await s.port();
    const [detached] = await spawnVia(port, '/detached');
    const pids = await spawnVia(port, '/spawn');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    await allGone(pids, 'after TERM');
    assert.ok(!gone(detached!), `the detached child ${detached} still runs`);
  });
});

// The master as a child subreaper needs the native module (dist/native/master.node) and Linux.
const subreaper = process.platform === 'linux' && existsSync(new URL('../../dist/native/master.node', import.meta.url));

describe('the master adopts what its workers leave, ends it and reaps it', { skip: !subreaper && 'needs Linux and dist/native/master.node' }, () => {
  /** The worker's pid, from the app's default answer. */
  const workerPid = async (port: number) => (JSON.parse((await request(port, '/')).body) as { pid: number }).pid;

  it('a worker killed with SIGKILL from outside: its child and grandchild end, and the master says so', async () => {
    const s = start();
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    const worker = await workerPid(port);
    process.kill(worker, 'SIGKILL');
    await s.waitFor(/was sent SIGKILL!/);
    await allGone(pids, 'after the kill -9');
    assert.match(s.log, new RegExp(`Worker \\(pid:${worker}\\) left processes running: ending them \\(SIGTERM, SIGKILL after 30 s\\): \\d+ \\(sleep\\), \\d+ \\(sh\\), \\d+ \\(sleep\\)`));
    assert.equal((await request(port, '/')).status, 200);
  });

  it("a double fork's orphan (sh -c 'sleep &') is adopted by the master and ends when its worker ends", async () => {
    const s = start();
    const port = await s.port();
    const [orphan] = await spawnVia(port, '/double');
    // Its shell has exited: it is the master's now, not init's.
    await until(() => parentOf(orphan!) === s.pid, 5000, `the master to adopt ${orphan} (parent: ${parentOf(orphan!)})`);
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Worker exited \(pid: \d+\)/, 15000, from);
    await allGone([orphan!], 'after HUP');
  });

  for (const route of ['/double', '/double-bare'] as const) {
    const how = route === '/double' ? 'named by the environment it inherited' : 'in an environment of its own, by its start time';
    it(`with two workers, a double fork's orphan outlives the exit of the other worker and ends with its own (${how})`, async () => {
      const s = new Server(['-b', '127.0.0.1:0', '-w', '2', APP]);
      const port = await s.port();
      const [a, b] = await s.workersBooted(2);
      await s.waitFor(/Ready: 2 worker/);
      // Both workers started before it.
      const r = await request(port, route);
      const [orphan] = JSON.parse(r.body) as number[];
      made.add(orphan!);
      const own = Number(r.headers['x-worker']);
      const other = own === a ? b! : a!;
      await until(() => parentOf(orphan!) === s.pid, 5000, `the master to adopt ${orphan} (parent: ${parentOf(orphan!)})`);
      const from = s.log.length;
      process.kill(other, 'SIGKILL');
      await s.waitFor(new RegExp(`Worker \\(pid:${other}\\) was sent SIGKILL`), 15000, from);
      // The replacement boots once the master has dealt with the exit, /proc read included.
      await s.waitFor(/Booting worker with pid: \d+/, 15000, from);
      assert.ok(!gone(orphan!), `${orphan}, the orphan of worker ${own}, was ended when worker ${other} died`);
      assert.doesNotMatch(s.log.slice(from), new RegExp(`(?:: |, )${orphan} \\(`));
      process.kill(own, 'SIGKILL');
      await s.waitFor(new RegExp(`Worker \\(pid:${own}\\) left processes running: ending them \\(SIGTERM, SIGKILL after 30 s\\): ${orphan} \\(sleep\\)`), 15000, from);
      await allGone([orphan!], 'after its worker died');
    });
  }

  it('with two workers, what a worker killed from outside left ends at once, though the other started before it', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', APP]);
    const port = await s.port();
    await s.workersBooted(2);
    await s.waitFor(/Ready: 2 worker/);
    const r = await request(port, '/spawn');
    const pids = JSON.parse(r.body) as number[];
    for (const p of pids) made.add(p);
    const worker = Number(r.headers['x-worker']);
    process.kill(worker, 'SIGKILL');
    await s.waitFor(new RegExp(`Worker \\(pid:${worker}\\) left processes running: ending them \\(SIGTERM, SIGKILL after 30 s\\): \\d+ \\(sleep\\), \\d+ \\(sh\\), \\d+ \\(sleep\\)`));
    await allGone(pids, 'after the kill -9');
  });

  it('a process that ignores SIGTERM is killed (SIGKILL) graceful_timeout after it', async () => {
    const s = start(['--graceful-timeout', '1']);
    const port = await s.port();
    const [stubborn] = await spawnVia(port, '/stubborn');
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(/Worker exited \(pid: \d+\)/, 15000, from);
    // The worker's own SIGTERM is ignored, and the master's.
    await s.waitFor(new RegExp(`left processes running: ending them \\(SIGTERM, SIGKILL after 1 s\\): ${stubborn} \\(sleep\\)`), 5000, from);
    assert.ok(!gone(stubborn!), 'it outlives the SIGTERMs');
    await s.waitFor(new RegExp(`still ran after SIGTERM: killed \\(SIGKILL\\): ${stubborn} \\(sleep\\)`), 5000, from);
    await allGone([stubborn!], 'after the SIGKILL');
  });

  // A process started after the master read /proc for its worker's exit (here by a shell the master then asked
  // to end) becomes the master's child when that shell is killed, and is found on the SIGCHLD of the kill,
  // between the master's steps. Its SIGKILL is due graceful_timeout later: the master's tick, resting for 10 s
  // by then, is woken for it (Adopter.setWake).
  it('a process adopted after its worker exited, on a SIGCHLD, is killed on time though the master rests', async () => {
    const file = path.join(scratchDir('tunicorn-late-'), 'late.pid');
    const s = start(['--graceful-timeout', '1']);
    const port = await s.port();
    const [shell] = await spawnVia(port, `/late?file=${encodeURIComponent(file)}`);
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(new RegExp(`still ran after SIGTERM: killed \\(SIGKILL\\): ${shell} \\(sh\\)`), 15000, from);
    await until(() => existsSync(file) && readFileSync(file, 'utf8').trim() !== '', 5000, 'the late process to be started');
    const late = Number(readFileSync(file, 'utf8'));
    made.add(late);
    await s.waitFor(new RegExp(`left processes running: ending them \\(SIGTERM, SIGKILL after 1 s\\): [^\\n]*\\b${late} \\(sleep\\)`), 5000, from);
    const adopted = s.log.length;
    assert.ok(!gone(late), 'it outlives the SIGTERM');
    // Due 1 s after its SIGTERM, with a margin for a loaded machine; the resting tick would come about 9 s after it.
    await s.waitFor(new RegExp(`still ran after SIGTERM: killed \\(SIGKILL\\): [^\\n]*\\b${late} \\(sleep\\)`), 6000, adopted);
    await allGone([late], 'after the SIGKILL');
  });

  it('a graceful stop waits for them within graceful_timeout, then kills them', async () => {
    const s = start(['--graceful-timeout', '1']);
    const port = await s.port();
    const [stubborn] = await spawnVia(port, '/stubborn');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.ok(gone(stubborn!), `${stubborn} was killed before the master exited`);
    assert.match(s.log, /Waiting for 1 process\(es\) the workers left to end/);
  });

  it("a stop of the master ends within graceful_timeout: what a worker left gets what remains of its worker's stop", async () => {
    const s = start(['--graceful-timeout', '4']);
    const port = await s.port();
    const [stubborn] = await spawnVia(port, '/stubborn');
    // Holds the worker's stop for 2 s of its 4.
    const waiting = request(port, '/wait');
    await s.waitFor(/Ready: 1 worker/);
    s.signal('SIGTERM');
    assert.equal((await waiting).status, 200);
    assert.equal((await s.exited).code, 0);
    assert.ok(gone(stubborn!), `${stubborn} was killed before the master exited`);
    const bound = Number(s.log.match(/left processes running: ending them \(SIGTERM, SIGKILL after (\d+) s\)/)?.[1]);
    assert.ok(bound >= 1 && bound < 4, `the bound after the worker's 2 s stop: ${bound} s, not a new graceful_timeout of 4 s\n${s.log}`);
  });

  it('an orphan it adopted is reaped when it exits: no zombie', async () => {
    const s = start();
    const port = await s.port();
    const [orphan] = await spawnVia(port, '/brief');
    await until(() => parentOf(orphan!) === s.pid, 5000, `the master to adopt ${orphan} (parent: ${parentOf(orphan!)})`);
    // It exits after 1 s: gone from /proc, not left a zombie (state Z) of the master.
    await until(() => !existsSync(`/proc/${orphan}`), 10000, `${orphan} to be reaped (state: ${readFileSync(`/proc/${orphan}/stat`, 'latin1').split(') ')[1]?.[0]})`);
    assert.equal((await request(port, '/')).status, 200);
  });

  it('a detached child outlives a worker killed from outside', async () => {
    const s = start();
    const port = await s.port();
    const [detached] = await spawnVia(port, '/detached');
    const pids = await spawnVia(port, '/spawn');
    process.kill(await workerPid(port), 'SIGKILL');
    await s.waitFor(/left processes running: ending them/);
    await allGone(pids, 'after the kill -9');
    assert.ok(!gone(detached!), `the detached child ${detached} still runs`);
  });

  it("a hook's orphan is the master's own: left alone when a worker killed from outside is ended with its own", async () => {
    const file = path.join(scratchDir('tunicorn-orphan-'), 'pid');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-c', path.join(FIXTURES, 'master-orphan.config.mjs'), APP], { env: { ...process.env, ORPHAN_PID_FILE: file } });
    const port = await s.port();
    await until(() => existsSync(file) && readFileSync(file, 'utf8') !== '', 10000, 'the hook to start its orphan');
    const hooks = Number(readFileSync(file, 'utf8'));
    made.add(hooks);
    await until(() => parentOf(hooks) === s.pid, 5000, `the master to adopt ${hooks}`);
    const pids = await spawnVia(port, '/spawn');
    process.kill(await workerPid(port), 'SIGKILL');
    await s.waitFor(/left processes running: ending them/);
    await allGone(pids, 'after the kill -9');
    assert.ok(!gone(hooks), `the hook's orphan ${hooks} still runs`);
    assert.doesNotMatch(s.log, new RegExp(`(?:: |, )${hooks} \\(`));
  });

  it("a child_exit hook's orphan, adopted as the worker dies, is the master's own: left alone", async () => {
    const file = path.join(scratchDir('tunicorn-orphan-'), 'pid');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-c', path.join(FIXTURES, 'child-exit-orphan.config.mjs'), APP], { env: { ...process.env, ORPHAN_PID_FILE: file } });
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    const worker = await workerPid(port);
    process.kill(worker, 'SIGKILL');
    // The line of the read of /proc that found what the worker left, with the hook's orphan already adopted.
    const line = (await s.waitFor(new RegExp(`Worker \\(pid:${worker}\\) left processes running: ending them[^\\n]*`)))[0];
    await until(() => existsSync(file) && readFileSync(file, 'utf8') !== '', 10000, 'the hook to start its orphan');
    const hooks = Number(readFileSync(file, 'utf8'));
    made.add(hooks);
    await allGone(pids, 'after the kill -9');
    assert.doesNotMatch(line, new RegExp(`(?:: |, )${hooks} \\(`));
    assert.ok(!gone(hooks), `the hook's orphan ${hooks} still runs`);
    assert.equal(parentOf(hooks), s.pid, `the master adopted the hook's orphan ${hooks}`);
  });

  it("the workers of a USR2 upgrade's new master killed with SIGKILL are not taken for the old master's of the same age", async () => {
    const s = start();
    await s.port();
    // The old master's worker of age 1 exits (HUP): age 2 serves.
    s.signal('SIGHUP');
    await s.waitFor(/Worker exited \(pid: \d+\)/);
    let from = s.log.length;
    s.signal('SIGUSR2');
    const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/, 15000, from))[1]);
    made.add(newPid);
    // Its first worker is of age 1 too.
    const theirs = Number((await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Booting worker with pid: (\\d+)`), 30000, from))[1]);
    made.add(theirs);
    await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: 1 worker`), 30000, from);
    from = s.log.length;
    process.kill(newPid, 'SIGKILL');
    await s.waitFor(/The new master \(pid \d+\) exited \(SIGKILL\)/, 15000, from);
    // Re-parented to the old master, it ends by itself (its master is gone), and is reaped.
    await until(() => !existsSync(`/proc/${theirs}`), 15000, `${theirs} to end and be reaped`);
    assert.doesNotMatch(s.log.slice(from), /left processes running/);
  });

  it('the new master of a USR2 upgrade is left alone when a worker of the old one dies', async () => {
    const s = start();
    const port = await s.port();
    const pids = await spawnVia(port, '/spawn');
    const worker = await workerPid(port);
    s.signal('SIGUSR2');
    const newPid = Number((await s.waitFor(/started a new master \(pid (\d+)\)/))[1]);
    made.add(newPid);
    await s.waitFor(new RegExp(`\\[${newPid}\\] \\[INFO\\] Ready: 1 worker`), 30000);
    process.kill(worker, 'SIGKILL');
    await s.waitFor(new RegExp(`Worker \\(pid:${worker}\\) left processes running`));
    await allGone(pids, 'after the kill -9');
    assert.ok(alive(newPid) && !gone(newPid), 'the new master still runs');
    // The upgrade completes: the old master stops, the new one serves.
    s.signal('SIGTERM');
    await s.exited;
    await until(() => s.log.includes(`[${newPid}] [INFO] Master has been promoted`), 10000, 'the promotion');
    assert.equal((await request(port, '/')).status, 200);
    process.kill(newPid, 'SIGTERM');
    await until(() => gone(newPid), 20000, 'the new master to stop');
  });
});
