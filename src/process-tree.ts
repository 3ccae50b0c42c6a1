import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';

/**
 * The processes a worker started (the app's ffmpeg, a headless browser, a sidecar), found when the worker ends
 * so that they end with it (src/workers/child.ts at its exit, WorkerHandle.kill() for the master's SIGKILL,
 * src/arbiter/orphans.ts for what a worker left to the master as a child subreaper).
 * Node has no call for this and Linux no list of descendants (/proc/PID/task/TID/children needs a kernel
 * option many kernels lack): /proc is read, every process's stat once, only when a worker ends, never while
 * it serves.
 */

/** A process found below another: its pid, and its start time, which tells a reused pid from it. */
export interface Descendant {
  readonly pid: number;
  readonly name: string;
  /** Field 22 of /proc/PID/stat, in clock ticks since boot: a pid reused later has a later one. */
  readonly start: string;
}

interface Stat {
  state: string;
  ppid: number;
  session: number;
  name: string;
  start: string;
}

/**
 * A /proc/PID/stat line, "pid (comm) state ppid pgrp session ...": the command name, and the fields after it,
 * field N (as proc(5) numbers them) at index N - 3. The name may hold spaces and parentheses (a process title
 * such as "tunicorn: (w) x"), so the fields count from its last ')'. Null for a line that is not one. The one
 * reader of that line for the process tree, the master's reaper (orphans.ts) and `show workers` (proc-usage.ts).
 */
export function statFields(text: string): { name: string; fields: string[] } | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  return { name: text.slice(text.indexOf('(') + 1, close), fields: text.slice(close + 2).split(' ') };
}

/** /proc/PID/stat as text; null when the process is gone (or there is no /proc). */
export function readStat(pid: number | string): string | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
}

/**
 * The buffer each stat line is read into. A read of /proc reads a few hundred of them, and the master reads it
 * on each SIGCHLD: made with readFileSync and split into all 52 fields, each line's garbage grew the master's
 * young generation, whose memory stayed (about 1 MB of its idle RSS, measured).
 */
const statBuf = Buffer.allocUnsafe(2048);

/** /proc/PID/stat, parsed (the few fields the tree needs, with no field list made); null when gone. */
function stat(pid: number | string): Stat | null {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return null;
  }
  let n: number;
  try {
    n = readSync(fd, statBuf, 0, statBuf.length, 0);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
  const text = statBuf.toString('latin1', 0, n);
  const close = text.lastIndexOf(')');
  if (close < 0 || n === statBuf.length) return null;
  // From field 3 on (proc(5)'s numbers), after the name: state, ppid, pgrp, session, ..., starttime (22).
  let at = close + 2;
  const next = (): string => {
    const end = text.indexOf(' ', at);
    const v = text.slice(at, end);
    at = end + 1;
    return v;
  };
  const skip = (count: number): void => {
    for (let i = 0; i < count; i++) at = text.indexOf(' ', at) + 1;
  };
  const state = next();
  const ppid = Number(next());
  skip(1);
  const session = Number(next());
  skip(15);
  const start = next();
  if (at === 0 || start === '') return null;
  return { state, ppid, session, name: text.slice(text.indexOf('(') + 1, close), start };
}

/**
 * One read of every process's stat in /proc: the processes below any of them, found from it. The master reads
 * it once for all the workers it kills at one time (the end of a stop's graceful_timeout can kill them all).
 */
export class ProcessTable {
  private constructor(
    private readonly stats: Map<number, Stat>,
    private readonly children: Map<number, number[]>,
    /** The zombies, by parent: exited, waiting for their parent to reap them. */
    private readonly zombies: Map<number, number[]>,
  ) {}

  /** The table now, or null where /proc cannot be read. */
  static read(): ProcessTable | null {
    let names: string[];
    try {
      names = readdirSync('/proc');
    } catch {
      return null;
    }
    const stats = new Map<number, Stat>();
    const children = new Map<number, number[]>();
    const zombies = new Map<number, number[]>();
    for (const name of names) {
      const c = name.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const s = stat(name);
      if (s === null) continue;
      const pid = Number(name);
      // A zombie has exited: nothing to end, and its children have a new parent already.
      const into = s.state === 'Z' ? zombies : children;
      if (s.state !== 'Z') stats.set(pid, s);
      const list = into.get(s.ppid);
      if (list) list.push(pid);
      else into.set(s.ppid, [pid]);
    }
    return new ProcessTable(stats, children, zombies);
  }

  /** The session of a process that runs; null when it is not in the table. */
  sessionOf(pid: number): number | null {
    return this.stats.get(pid)?.session ?? null;
  }

  /** The running children of `parent` in `session` (those of another session are left out, as in below()). */
  childrenIn(parent: number, session: number): Descendant[] {
    return (this.children.get(parent) ?? []).flatMap((pid) => {
      const s = this.stats.get(pid)!;
      return s.session === session ? [{ pid, name: s.name, start: s.start }] : [];
    });
  }

  /** The children of `parent` that are zombies. */
  zombiesOf(parent: number): readonly number[] {
    return this.zombies.get(parent) ?? [];
  }

  /**
   * Every process below `root` (children, their children, ...) that is in root's session, parents before
   * their children; null when root is not in the table. A child spawned with `detached: true` called
   * setsid(): it is meant to outlive the worker, and it and the processes below it are left out. A process
   * whose parent ended before (a double fork) is no longer below root and cannot be found. Threads need no
   * care: a child's parent is the process, whichever of its threads spawned it.
   */
  below(root: number): Descendant[] | null {
    const own = this.stats.get(root);
    if (own === undefined) return null;
    const found: Descendant[] = [];
    const queue = [root];
    for (let i = 0; i < queue.length; i++) {
      for (const pid of this.children.get(queue[i]!) ?? []) {
        const s = this.stats.get(pid)!;
        if (s.session !== own.session) continue;
        found.push({ pid, name: s.name, start: s.start });
        queue.push(pid);
      }
    }
    return found;
  }
}

/** Field 22 of /proc/PID/stat (see Descendant.start); null when the process is gone or there is no /proc. */
export function startOf(pid: number): string | null {
  return stat(pid)?.start ?? null;
}

/** The processes below `root` (see ProcessTable.below), from a read of /proc now; null without /proc. */
export function descendants(root: number): Descendant[] | null {
  return ProcessTable.read()?.below(root) ?? null;
}

/**
 * Sends `signal` to each process of `list` that is still the one found (same start time: its pid was not
 * reused since), and returns those signalled. The check leaves a window of microseconds between the read and
 * the kill; a pid is reused only after every other pid was handed out since it ended.
 */
export function signalEach(list: readonly Descendant[], signal: NodeJS.Signals): Descendant[] {
  const sent: Descendant[] = [];
  for (const d of list) {
    if (!stillRuns(d)) continue;
    try {
      process.kill(d.pid, signal);
      sent.push(d);
    } catch {
      /* gone since, or not ours (EPERM): nothing to do */
    }
  }
  return sent;
}

/** The process found still runs: same start time (its pid was not reused), not a zombie. */
export function stillRuns(d: Descendant): boolean {
  const now = stat(d.pid);
  return now !== null && now.start === d.start && now.state !== 'Z';
}

/** "1234 (sleep), 1240 (ffmpeg)", at most `max` of them, for a log line. */
export function describeProcesses(list: readonly Descendant[], max = 10): string {
  const shown = list.slice(0, max).map((d) => `${d.pid} (${d.name})`).join(', ');
  return list.length > max ? `${shown} and ${list.length - max} more` : shown;
}
