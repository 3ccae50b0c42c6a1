import { readFileSync } from 'node:fs';
import { statFields } from '../process-tree.js';

/**
 * A worker's memory and CPU time as `tunicornc show workers` shows them (PM2's `pm2 ls` columns), read by the
 * master from /proc when a client asks and never otherwise: nothing is asked of the worker, so a stuck one is
 * measured too, and serving a request costs nothing more. Synchronous because a control answer is built in one
 * turn; two small /proc files a worker take a few microseconds each.
 */
export interface ProcUsage {
  /** Resident set size in bytes (`VmRSS`, every thread); null when unknown (no /proc, the process gone). */
  readonly rss: number | null;
  /** User plus system CPU time since the process started, in seconds; null when unknown. */
  readonly cpu: number | null;
}

/**
 * The unit of the times in /proc/PID/stat. The kernel reports them in USER_HZ, which is 100 on every Linux
 * architecture Node runs on (it is part of the ABI, whatever the kernel's own HZ); Node has no sysconf to ask.
 */
const USER_HZ = 100;

/** The usage of process `pid`; each part null when it cannot be read (no /proc, a zombie, a pid gone). */
export function procUsage(pid: number, proc = '/proc'): ProcUsage {
  return { rss: rssOf(readProcText(`${proc}/${pid}/status`)), cpu: cpuOf(readProcText(`${proc}/${pid}/stat`)) };
}

/** A /proc file as text; null when it cannot be read (no /proc, the process gone, no descriptor left). */
export function readProcText(file: string): string | null {
  try {
    return readFileSync(file, 'latin1');
  } catch {
    return null;
  }
}

/** "VmRSS:	  123456 kB" in /proc/PID/status; a zombie has no Vm lines. */
export function rssOf(status: string | null): number | null {
  const m = status === null ? null : /^VmRSS:\s*(\d+)\s*kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : null;
}

/** utime + stime (fields 14 and 15) of /proc/PID/stat, in seconds (statFields reads the line). */
export function cpuOf(stat: string | null): number | null {
  const f = stat === null ? null : statFields(stat)?.fields;
  if (!f) return null;
  // A line cut short leaves them undefined (NaN).
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return Math.round(((utime + stime) / USER_HZ) * 100) / 100;
}
