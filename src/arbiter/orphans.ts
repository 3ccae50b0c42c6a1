import { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describeProcesses, ProcessTable, signalEach, startOf, stillRuns, type Descendant } from '../process-tree.js';
import { loadNative } from '../native.js';

/**
 * The master adopts the orphans below it, and reaps them.
 *
 * As PID 1 (`docker run` without `--init`, a Kubernetes container whose command is tunicorn) it is every
 * orphan's parent; elsewhere on Linux it makes itself a child subreaper (prctl(PR_SET_CHILD_SUBREAPER)), and
 * the orphans of the processes below it come to it instead of to init: the children of a worker killed by a
 * signal it did not send (the OOM killer, `kill -9`), a double fork's (`sh -c 'cmd &'`), a process that
 * ignored the worker's SIGTERM. Those a worker left are ended (SIGTERM, then SIGKILL after graceful_timeout),
 * as the worker ends them itself at any other exit (src/workers/child.ts).
 *
 * Each stays a zombie, holding its process-table slot, until its parent waits for it, and Node waits only for
 * the processes it spawned. Gunicorn's master reaps any child (waitpid(-1)). Here that would take the exit of
 * a worker from Node's event loop, which would then never report it (libuv skips a child reaped by someone
 * else), so the master reaps only the zombies it did not spawn: every process Node spawns in the master is
 * recorded as it starts, until its 'exit'.
 *
 * Whose an adopted process is: the kernel does not say, and the workers share the master's session and process
 * group (a terminal's Ctrl-C reaches them all). The children of a worker are re-parented the moment it dies,
 * so those the master finds as it hears of the exit, started since that worker did, are taken for its own.
 * Those adopted when one of the master's own processes exits (a `--preload` app's child, a hook's, a new
 * master started by USR2) are found on that SIGCHLD and are never ended. Only /proc is read, on SIGCHLD and
 * on a worker's exit: nothing while the workers serve.
 */

interface Reaper {
  reap(pid: number): number;
  /** Missing from a module built before it was added. */
  subreaper?(): number;
}

/** What the master logs about it at start. */
export interface OrphansNote {
  readonly level: 'debug' | 'info' | 'warning';
  readonly message: string;
}

/** Where the lines about what a worker left go. */
interface OrphansLog {
  info(message: string): void;
  warning(message: string): void;
}

/** A process a worker left, sent SIGTERM: killed at `killAt` if it still runs (Infinity: killed already). */
interface Ending {
  readonly d: Descendant;
  readonly worker: number;
  readonly killAt: number;
}

/** A worker that exited, whose leftovers the next read of /proc ends. */
interface Dead {
  readonly pid: number;
  readonly age: number;
  readonly start: string;
  readonly boundS: number;
}

/**
 * The variable each worker is started with (ageMark(): the master's pid and its age, src/arbiter/arbiter.ts
 * spawnWorker()), which the processes the app starts inherit with the rest of its environment:
 * /proc/PID/environ of an adopted process names the worker it came from, unless the app gave it an
 * environment of its own.
 */
export const WORKER_AGE_ENV = 'TUNICORN_WORKER_AGE';

/**
 * The value of WORKER_AGE_ENV for worker `age` of this master (0: the master's own). With the master's pid: the
 * workers of a USR2 upgrade's new master count their ages from 1 too, and theirs come to this master if that
 * one dies.
 */
export function ageMark(age: number): string {
  return `${process.pid}:${age}`;
}

/**
 * The age of the worker a process came from, from the environment it was started with; 0 for the master's own
 * (startOrphanReaper() marks the master's own environment), and for what came from another master below this
 * one (a USR2 upgrade's new master, its own too); null when not there.
 */
function markedAge(pid: number): number | null {
  let env: string;
  try {
    env = readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return null;
  }
  const key = `${WORKER_AGE_ENV}=`;
  let from: number;
  if (env.startsWith(key)) from = key.length;
  else {
    const i = env.indexOf(`\0${key}`);
    if (i === -1) return null;
    from = i + 1 + key.length;
  }
  const end = env.indexOf('\0', from);
  const mark = /^(\d+):(\d+)$/.exec(env.slice(from, end === -1 ? undefined : end));
  if (mark === null) return null;
  return Number(mark[1]) === process.pid ? Number(mark[2]) : 0;
}

/** How many exited workers are remembered, for what they left that is found later (a shell's child). */
const REMEMBERED_DEAD = 64;

/**
 * Starts adopting and reaping, before any code that may spawn (the config file, the app under --preload).
 * Returns what the master should log (null off Linux, not PID 1, where nothing changes), and the adopter the
 * arbiter tells of its workers (null when the master adopts nothing).
 */
export function startOrphanReaper(): { note: OrphansNote | null; adopter: Adopter | null } {
  // A master started from a worker's app (a test, a tool) has one: its own processes are not that worker's.
  delete process.env[WORKER_AGE_ENV];
  const pid1 = process.pid === 1;
  if (!pid1 && process.platform !== 'linux') return { note: null, adopter: null };
  const native = loadNative<Reaper>('master');
  const without = (why: string) => ({ note: { level: 'debug' as const, message: `Not a child subreaper (${why}): what a killed worker leaves running is re-parented to init` }, adopter: null });
  if (typeof native === 'string') {
    if (!pid1) return without(native);
    const message = `Running as PID 1, the master cannot reap orphaned processes (${native}): they stay zombies; run tunicorn under an init (docker run --init, tini)`;
    return { note: { level: 'warning', message }, adopter: null };
  }
  if (!pid1) {
    const r = typeof native.subreaper === 'function' ? native.subreaper() : -22;
    if (r !== 0) return without(`prctl failed: errno ${-r}`);
  }
  const note: OrphansNote = pid1
    ? { level: 'info', message: 'Running as PID 1: the master reaps orphaned processes' }
    : { level: 'debug', message: 'The master is a child subreaper: it adopts, ends and reaps what its workers leave running' };
  // Age 0 in the master's own environment, which what it spawns inherits (a hook's child, a --preload app's,
  // the new master of a USR2 upgrade), the workers each having their own: an orphan of the master's own says
  // so, and is never taken for a worker's, even when it is adopted as a worker exits (a child_exit hook's).
  process.env[WORKER_AGE_ENV] = ageMark(0);
  return { note, adopter: new Adopter(native) };
}

/**
 * An adopted process that waits for its worker's exit. `owners`, for one found by its start time: the workers
 * that ran when it was found and started at or before it. Only those may have started it: a worker spawned
 * later can share its start time (a clock tick is 10 ms) but came after it.
 */
interface Pending {
  readonly d: Descendant;
  readonly from: Dead | null;
  readonly age: number | null;
  readonly owners: readonly number[];
}

/** The master's adopted processes: reaped when they exit, ended when they are what a worker left. */
export class Adopter {
  /** Processes Node spawned in this process and has not seen exit: libuv reaps those. */
  readonly #spawned = new Set<number>();
  /**
   * The workers among them, by pid, with their age and start time (workerStart()): the exit of one is not the
   * master's own (workerExited() handles it), and they are the ones that may own an adopted process.
   */
  readonly #live = new Map<number, { readonly age: number; readonly start: string | null }>();
  /** Adopted processes of the master's own (pid to start time): never ended. */
  readonly #own = new Map<number, string>();
  /** The processes workers left, asked to end, by pid. */
  readonly #ending = new Map<number, Ending>();
  /**
   * Processes adopted at a worker's exit while another worker that started before them still runs, so that it
   * may have started them (a double fork of its own): by pid, ended once no worker that may own them runs.
   */
  readonly #pending = new Map<number, Pending>();
  /** The last workers that exited, by age. */
  readonly #recentDead = new Map<number, Dead>();
  readonly #dead: Dead[] = [];
  /** A process Node spawned here exited since the last read on SIGCHLD: its orphans are the master's. */
  #ownExited = false;
  /** A worker exited since the last read on SIGCHLD: that SIGCHLD was its exit, handled by workerExited(). */
  #workerSeen = false;
  #scheduled = false;
  /** The arbiter's log (setLog()); nothing said before. */
  #log: OrphansLog | null = null;
  /** Called when a scan leaves processes to end (setWake()). */
  #wake: (() => void) | null = null;

  constructor(private readonly reaper: Reaper) {
    const spawned = this.#spawned;
    const exited = (pid: number) => {
      spawned.delete(pid);
      if (!this.#live.delete(pid)) this.#ownExited = true;
    };
    const proto = ChildProcess.prototype as ChildProcess & { spawn(options: unknown): unknown };
    const spawn = proto.spawn;
    proto.spawn = function (this: ChildProcess, options: unknown) {
      const result = spawn.call(this, options);
      const pid = this.pid;
      if (pid !== undefined) {
        spawned.add(pid);
        this.once('exit', () => exited(pid));
      }
      return result;
    };
    // The kernel signals a new parent for the orphans that are zombies already when it adopts them, and for
    // each one that exits later. A short delay lets Node's own SIGCHLD handling reap its children first.
    process.on('SIGCHLD', () => {
      if (this.#scheduled) return;
      this.#scheduled = true;
      setTimeout(() => {
        this.#scheduled = false;
        this.scan(null);
        if (this.busy) this.#wake?.();
      }, 20).unref();
    });
    // As PID 1, what the container's runtime left (a zombie already) is reaped now; a new subreaper has adopted
    // nothing yet.
    if (process.pid === 1) this.scan(null);
  }

  /** The arbiter's log, for the lines about what a worker left. */
  setLog(log: OrphansLog): void {
    this.#log = log;
  }

  /**
   * What to call when a scan between the arbiter's steps finds processes to end: a resting master's tick may
   * be seconds away, and dueKills() must run at their due times.
   */
  setWake(wake: () => void): void {
    this.#wake = wake;
  }

  /** A worker's start time, read as it is spawned (field 22 of its stat), for workerExited(). */
  workerStart(pid: number, age: number): string | null {
    const start = startOf(pid);
    this.#live.set(pid, { age, start });
    return start;
  }

  /**
   * A worker exited (`start`: its workerStart()): the processes it left, which the kernel has just given to
   * the master, are sent SIGTERM and killed `boundS` seconds later if they still run (dueKills()). `killed`:
   * those the master SIGKILLed with it (WorkerHandle.kill), not asked again.
   */
  workerExited(pid: number, age: number, start: string | null, boundS: number, killed: readonly Descendant[] = []): void {
    if (start === null) return;
    for (const d of killed) this.#ending.set(d.pid, { d, worker: pid, killAt: Infinity });
    this.#workerSeen = true;
    // One read of /proc for the workers that exit together (a stop ends them all): at the next turn of the
    // event loop, before the arbiter's step (see endingCount()).
    if (this.#dead.length === 0) setImmediate(() => this.flushDead());
    const dead: Dead = { pid, age, start, boundS };
    this.#dead.push(dead);
    this.#recentDead.set(age, dead);
    if (this.#recentDead.size > REMEMBERED_DEAD) this.#recentDead.delete(this.#recentDead.keys().next().value!);
  }

  /** Kills (SIGKILL) the processes left by workers whose time to end after SIGTERM is over; all of them with `all`. */
  dueKills(now: number, all = false): void {
    // A quick stop: what the last workers left is found before it is killed.
    if (all) this.flushDead();
    if (this.#ending.size === 0) return;
    const due = new Map<number, Descendant[]>();
    for (const e of this.#ending.values()) {
      // Gone already (a grandchild's exit is its parent's news, not the master's): not waited for.
      if (!stillRuns(e.d)) {
        this.#ending.delete(e.d.pid);
        continue;
      }
      if (!all && now < e.killAt) continue;
      this.#ending.delete(e.d.pid);
      if (e.killAt === Infinity) continue;
      due.set(e.worker, [...(due.get(e.worker) ?? []), e.d]);
    }
    for (const [worker, list] of due) {
      const sent = signalEach(list, 'SIGKILL');
      if (sent.length) this.#log?.warning(`Processes left by worker (pid:${worker}) still ran after SIGTERM: killed (SIGKILL): ${describeProcesses(sent)}`);
    }
  }

  /** Whether exits wait to be looked at, or processes left by workers to be killed (the master's tick stays quick). */
  get busy(): boolean {
    return this.#dead.length > 0 || this.#ending.size > 0;
  }

  /** Processes left by workers that were asked to end and may still run: a graceful stop waits for them. */
  endingCount(): number {
    this.flushDead();
    return [...this.#ending.values()].filter((e) => e.killAt !== Infinity).length;
  }

  /** Does the worker of that age run? */
  private ageRuns(age: number): boolean {
    for (const w of this.#live.values()) if (w.age === age) return true;
    return false;
  }

  /** The workers that run and started at or before `start`, and so may have started that process. */
  private mayOwn(start: string): number[] {
    const pids: number[] = [];
    for (const [pid, w] of this.#live) if (w.start !== null && notBefore(start, w.start)) pids.push(pid);
    return pids;
  }

  private flushDead(): void {
    if (this.#dead.length > 0) this.scan(this.#dead.splice(0));
  }

  /**
   * One read of /proc: reaps the zombies the master did not spawn, forgets the adopted processes that are
   * gone, and sorts the new ones: those of the workers that just `exited`, or the master's own.
   */
  private scan(exited: readonly Dead[] | null): void {
    const table = ProcessTable.read();
    if (table === null) return;
    let reaped = false;
    // A worker that has died but whose exit Node has not reported yet: its orphans are the master's already.
    let workerDying = false;
    for (const pid of table.zombiesOf(process.pid)) {
      if (this.#live.has(pid)) workerDying = true;
      if (this.#spawned.has(pid)) continue;
      this.reaper.reap(pid);
      reaped = true;
    }
    let endingLeft = false;
    for (const pid of this.#ending.keys()) {
      if (table.sessionOf(pid) !== null) continue;
      this.#ending.delete(pid);
      endingLeft = true;
    }
    for (const pid of this.#own.keys()) if (table.sessionOf(pid) === null) this.#own.delete(pid);
    for (const pid of this.#pending.keys()) if (table.sessionOf(pid) === null) this.#pending.delete(pid);
    // A SIGCHLD that no exit the master knows of explains (a spawnSync() child of a hook) may have left orphans
    // of the master's own: they are kept, as are those of a process Node spawned here. (An adopted process's
    // exit, reaped here, explains one.)
    const mastersOwn = exited === null && !workerDying && (this.#ownExited || !(this.#workerSeen || endingLeft || reaped));
    if (exited === null) this.#ownExited = this.#workerSeen = false;
    const session = table.sessionOf(process.pid);
    if (session === null) return;
    const found = new Map<Dead, Descendant[]>();
    const end = (d: Descendant, from: Dead) => found.set(from, [...(found.get(from) ?? []), d, ...table.below(d.pid)!]);
    // The worker a process came from: of those that exited, the last one started before it.
    const origin = (d: Descendant) =>
      exited?.reduce<Dead | null>((best, w) => (notBefore(d.start, w.start) && (!best || notBefore(w.start, best.start)) ? w : best), null) ?? null;
    for (const d of table.childrenIn(process.pid, session)) {
      if (this.#spawned.has(d.pid) || this.#own.get(d.pid) === d.start || this.#ending.get(d.pid)?.d.start === d.start) continue;
      if (this.#pending.get(d.pid)?.d.start === d.start) continue;
      // Its environment names its worker: ended if that worker is gone, else when it goes.
      const age = markedAge(d.pid);
      if (age === 0) {
        this.#own.set(d.pid, d.start);
        continue;
      }
      if (age !== null) {
        const gone = this.ageRuns(age) ? null : (exited?.find((w) => w.age === age) ?? this.#recentDead.get(age));
        if (gone) end(d, gone);
        else if (this.ageRuns(age)) this.#pending.set(d.pid, { d, from: null, age, owners: [] });
        continue;
      }
      // Without it (the app gave it an environment of its own), its start time says which workers may own it.
      const from = origin(d);
      // A worker that still runs and started before it may have started it instead (a double fork is adopted
      // while its worker serves): it waits until no such worker runs, rather than be ended under one that needs it.
      const owners = from ? this.mayOwn(d.start) : [];
      if (from && owners.length > 0) this.#pending.set(d.pid, { d, from, age: null, owners });
      else if (from) end(d, from);
      else if (mastersOwn) this.#own.set(d.pid, d.start);
    }
    // Those that waited, once the last worker that may have started them is gone.
    if (exited !== null) {
      for (const [pid, { d, from, age, owners }] of this.#pending) {
        if (table.sessionOf(pid) === null) continue;
        if (age !== null) {
          const gone = this.ageRuns(age) ? null : (exited.find((w) => w.age === age) ?? this.#recentDead.get(age));
          if (!gone) continue;
          this.#pending.delete(pid);
          end(d, gone);
          continue;
        }
        if (owners.some((w) => this.#live.has(w))) continue;
        this.#pending.delete(pid);
        // Named after the worker whose exit leaves none that may own it, the likelier origin.
        end(d, origin(d) ?? from!);
      }
    }
    for (const [w, list] of found) {
      const sent = signalEach(list, 'SIGTERM');
      const killAt = Date.now() + w.boundS * 1000;
      for (const d of sent) this.#ending.set(d.pid, { d, worker: w.pid, killAt });
      if (sent.length) this.#log?.info(`Worker (pid:${w.pid}) left processes running: ending them (SIGTERM, SIGKILL after ${w.boundS} s): ${describeProcesses(sent)}`);
    }
  }
}

/** Is `start` (clock ticks since boot, as text) at or after `since`? */
function notBefore(start: string, since: string): boolean {
  return Number(start) >= Number(since);
}
