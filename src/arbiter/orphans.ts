import { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { readStat, statFields } from '../process-tree.js';
import { loadNative } from '../native.js';

/**
 * A master that runs as PID 1 (`docker run` without `--init`, a Kubernetes container whose command is
 * tunicorn) is every orphan's parent: a shell's background job, the children of a worker the master killed.
 * Each stays a zombie, holding its process-table slot, until its parent waits for it, and Node waits only for
 * the processes it spawned. Gunicorn's master reaps any child (waitpid(-1)). Here that would take the exit of
 * a worker from Node's event loop, which would then never report it (libuv skips a child reaped by someone
 * else), so the master reaps only the zombies it did not spawn: every process Node spawns in the master is
 * recorded as it starts, until its 'exit'.
 */

interface Reaper {
  reap(pid: number): number;
}

/** Processes Node spawned in this process and has not seen exit: libuv reaps those. */
const spawned = new Set<number>();
let reaper: Reaper | null = null;
let scheduled = false;

/**
 * Starts reaping when this process is PID 1, before any code that may spawn (the config file, the app under
 * --preload). Returns what the master should log: null when this is not PID 1.
 */
export function startOrphanReaper(): { level: 'info' | 'warning'; message: string } | null {
  if (process.pid !== 1) return null;
  const native = loadNative<Reaper>('reap');
  if (typeof native === 'string') {
    return {
      level: 'warning',
      message: `Running as PID 1, the master cannot reap orphaned processes (${native}): they stay zombies; run tunicorn under an init (docker run --init, tini)`,
    };
  }
  reaper = native;
  const proto = ChildProcess.prototype as ChildProcess & { spawn(options: unknown): unknown };
  const spawn = proto.spawn;
  proto.spawn = function (this: ChildProcess, options: unknown) {
    const result = spawn.call(this, options);
    const pid = this.pid;
    if (pid !== undefined) {
      spawned.add(pid);
      this.once('exit', () => spawned.delete(pid));
    }
    return result;
  };
  // The kernel signals a new parent for the orphans that are zombies already when it adopts them, and for
  // each one that exits later. A short delay lets Node's own SIGCHLD handling reap its children first.
  process.on('SIGCHLD', () => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(reapOrphans, 20).unref();
  });
  reapOrphans();
  return { level: 'info', message: 'Running as PID 1: the master reaps orphaned processes' };
}

/** Waits for every zombie child of this process that Node did not spawn. */
function reapOrphans(): void {
  scheduled = false;
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return;
  }
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(name);
    if (spawned.has(pid)) continue;
    const text = readStat(name);
    const f = text === null ? null : statFields(text)?.fields;
    if (f && f[0] === 'Z' && Number(f[1]) === process.pid) reaper!.reap(pid);
  }
}
