/** Processes for the benchmark: free ports, RSS from /proc, children of a pid, the first answered request. */
import * as fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

/** A port that is free now, below the ephemeral range so wrk's client sockets never collide with it. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port found in 20000-29999');
}

/** Resident set size in MB (VmRSS), or null when the process is gone. */
export function rssMb(pid: number): number | null {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : null;
  } catch {
    return null;
  }
}

/** Pids whose parent is `pid`. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      // The command name (field 2) may hold spaces and parentheses: the fields after the last ')' are fixed.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

/** The kernel's clock ticks per second for /proc/PID/stat times (USER_HZ: 100 on Linux everywhere). */
const TICKS_PER_S = 100;

/**
 * The share of all cores (0-1) busy with anything, the hypervisor's steal included, over `ms` of this moment:
 * from /proc/stat. Taken while none of the benchmark's own processes run, it is the other work on the
 * machine. Null where there is no /proc/stat.
 */
export async function busyShare(ms: number): Promise<number | null> {
  const read = (): { busy: number; total: number } | null => {
    try {
      const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
      // user nice system idle iowait irq softirq steal (guest time is already in user)
      const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
      return { busy: total - f[3]! - f[4]!, total };
    } catch {
      return null;
    }
  };
  const a = read();
  await sleep(ms);
  const b = read();
  if (!a || !b || b.total <= a.total) return null;
  return (b.busy - a.busy) / (b.total - a.total);
}

/** CPU time (user + system) a process has used so far, in ms, or 0 when it is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name.
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** A thread's name and its voluntary context switches so far. */
export interface ThreadSwitches {
  readonly name: string;
  readonly switches: number;
}

/**
 * Each thread's voluntary context switches so far (a switch the thread asked for: a wait on a timer, the event
 * loop's poll, a sleep; preemption is not counted), and its name, by thread id, over these processes. An idle
 * thread makes one each time it wakes. Threads and processes gone are left out. (test/integration/resources.test.ts
 * reads it too.)
 */
export function threadSwitches(pids: readonly number[]): Map<number, ThreadSwitches> {
  const out = new Map<number, ThreadSwitches>();
  for (const pid of pids) {
    let tasks: string[];
    try {
      tasks = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const status = fs.readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
        const m = status.match(/^voluntary_ctxt_switches:\s+(\d+)/m);
        if (m) out.set(Number(t), { name: status.match(/^Name:\s+(.*)$/m)?.[1] ?? '', switches: Number(m[1]) });
      } catch {
        // the thread ended while we looked
      }
    }
  }
  return out;
}

/** Wakeups a second between two threadSwitches() reads `seconds` apart, of the threads in both. */
export function wakeupsPerS(before: Map<number, ThreadSwitches>, after: Map<number, ThreadSwitches>, seconds: number): number {
  let n = 0;
  for (const [tid, a] of after) {
    const b = before.get(tid);
    if (b !== undefined) n += a.switches - b.switches;
  }
  return Math.round((n / seconds) * 10) / 10;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One GET; resolves with the status, or null on any failure. */
export function get(port: number, path: string, tls = false, timeoutMs = 2000): Promise<number | null> {
  return new Promise((resolve) => {
    const mod = tls ? https : http;
    const req = mod.get({ host: '127.0.0.1', port, path, agent: false, rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? null));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/** Polls until GET / answers 200; resolves with the time it took from `since`, or rejects after `limitMs`. */
export async function firstAnswer(port: number, since: number, tls: boolean, limitMs: number, failed: () => string | null): Promise<number> {
  for (;;) {
    if ((await get(port, '/', tls, 1000)) === 200) return performance.now() - since;
    const why = failed();
    if (why) throw new Error(why);
    if (performance.now() - since > limitMs) throw new Error(`no answer on port ${port} within ${limitMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
