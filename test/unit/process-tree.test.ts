/**
 * src/process-tree.ts: the processes below one, as a worker's exit and the master's SIGKILL find them. A child
 * and a grandchild are found, parents first; a detached child (a session of its own) and what is below it are
 * not; one read of /proc serves several roots; a process whose start time changed (its pid reused) is not
 * signalled. The master's subreaper (src/arbiter/orphans.ts) reads a process's children in its session and its
 * zombies from the same table.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { descendants, describeProcesses, ProcessTable, readStat, signalEach, statFields, stillRuns } from '../../src/process-tree.js';
import { until } from '../helpers/server.js';

const made: number[] = [];
after(() => {
  for (const pid of made) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

/**
 * A shell that starts `sleep` and waits for it; resolves with the shell and the sleep's pid once that process
 * runs sleep (a background job is a forked shell, named sh, until its exec: on a loaded machine, long enough to
 * be read under that name).
 */
async function shellWithChild(detached = false): Promise<{ shell: ChildProcess; sleep: number }> {
  const shell = spawn('sh', ['-c', 'sleep 60 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'], detached });
  made.push(shell.pid!);
  const [data] = (await once(shell.stdout!, 'data')) as [Buffer];
  const sleep = Number(String(data).trim());
  made.push(sleep);
  // Its name as the code under test reads it.
  await until(() => statFields(readStat(sleep) ?? '')?.name === 'sleep', 5000, `${sleep} to exec sleep`);
  return { shell, sleep };
}

describe('descendants', () => {
  it('finds a child and its child, parents first, and leaves out a detached child and its own', async () => {
    const own = await shellWithChild();
    const detached = await shellWithChild(true);
    const found = descendants(process.pid)!;
    const pids = found.map((d) => d.pid);
    assert.ok(pids.includes(own.shell.pid!) && pids.includes(own.sleep), JSON.stringify(found));
    assert.ok(pids.indexOf(own.shell.pid!) < pids.indexOf(own.sleep), 'the parent before its child');
    assert.ok(!pids.includes(detached.shell.pid!) && !pids.includes(detached.sleep), `detached left out: ${JSON.stringify(found)}`);
    assert.deepEqual(found.find((d) => d.pid === own.sleep)?.name, 'sleep');
    assert.match(describeProcesses(found.filter((d) => d.pid === own.shell.pid || d.pid === own.sleep)), /^\d+ \(sh\), \d+ \(sleep\)$/);
  });

  it('one read of /proc serves several roots (the master killing several workers at once)', async () => {
    const a = await shellWithChild();
    const b = await shellWithChild();
    const table = ProcessTable.read()!;
    assert.deepEqual(table.below(a.shell.pid!)!.map((d) => d.pid), [a.sleep]);
    assert.deepEqual(table.below(b.shell.pid!)!.map((d) => d.pid), [b.sleep]);
  });

  it('is null for a process that is not there', () => {
    assert.equal(descendants(2 ** 22 + 1), null);
  });
});

describe('signalEach', () => {
  it('signals the processes found, and skips one whose start time changed (a reused pid)', async () => {
    const { shell, sleep } = await shellWithChild();
    const found = descendants(process.pid)!.filter((d) => d.pid === shell.pid || d.pid === sleep);
    assert.equal(found.length, 2);
    const reused = found.map((d) => ({ ...d, start: String(Number(d.start) + 1) }));
    assert.deepEqual(signalEach(reused, 'SIGTERM'), []);
    assert.equal(shell.exitCode, null);
    const exited = once(shell, 'exit');
    assert.deepEqual(signalEach(found, 'SIGTERM').map((d) => d.pid), [shell.pid, sleep]);
    assert.deepEqual(await exited, [null, 'SIGTERM']);
  });

  it('more than `max` processes are counted in the line, not listed', () => {
    const list = Array.from({ length: 12 }, (_, i) => ({ pid: 100 + i, name: 'sleep', start: '1' }));
    assert.equal(describeProcesses(list, 2), '100 (sleep), 101 (sleep) and 10 more');
  });
});

describe('ProcessTable: children in a session, zombies', () => {
  it("lists a process's running children of its session, and its zombies apart", async () => {
    const own = await shellWithChild();
    const detached = await shellWithChild(true);
    // A `sleep 0.1` whose parent execs `sleep 60`, which never waits for it: a zombie once it exits.
    const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
    made.push(parent.pid!);
    const zombie = Number(String(((await once(parent.stdout!, 'data')) as [Buffer])[0]).trim());
    let table = ProcessTable.read()!;
    const session = table.sessionOf(process.pid)!;
    const children = table.childrenIn(process.pid, session).map((d) => d.pid);
    assert.ok(children.includes(own.shell.pid!) && children.includes(parent.pid!), JSON.stringify(children));
    assert.ok(!children.includes(detached.shell.pid!), 'a detached child is in another session');
    assert.ok(!children.includes(own.sleep), 'a grandchild is not a child');
    const start = Date.now();
    while (!(table = ProcessTable.read()!).zombiesOf(parent.pid!).includes(zombie)) {
      assert.ok(Date.now() - start < 5000, `${zombie} to become a zombie of ${parent.pid}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(!table.childrenIn(parent.pid!, session).some((d) => d.pid === zombie), 'a zombie is not a running child');
    assert.equal(stillRuns({ pid: zombie, name: 'sleep', start: '0' }), false);
    assert.equal(table.sessionOf(zombie), null);
  });
});
