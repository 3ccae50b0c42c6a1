/**
 * The processes an app starts end with its worker (src/process-tree.ts):
 * - a child and a grandchild (a shell's child) left running get SIGTERM when the worker exits: at a TERM to
 *   the master (and an INT), a HUP that replaces the worker, a max_requests recycle, a crash by an uncaught
 *   exception, the app's own process.exit(), and under gthread, whose threads spawn them
 * - a worker the master SIGKILLs (timeout, the end of graceful_timeout) is killed with them
 * - a child spawned with `detached: true` (a session of its own) is meant to outlive the worker: it does
 * Every pid a test makes is killed in the cleanup, whatever the outcome.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';

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
async function spawnVia(port: number, what: '/spawn' | '/detached'): Promise<number[]> {
  const r = await request(port, what);
  assert.equal(r.status, 200, r.body);
  const pids = JSON.parse(r.body) as number[];
  for (const pid of pids) made.add(pid);
  assert.ok(pids.length > 0 && pids.every((p) => Number.isInteger(p) && p > 0 && !gone(p)), `running: ${r.body}`);
  return pids;
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
