import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/registry.js';
import { ConfigError } from '../config/setting.js';
import { rssOf } from './proc-usage.js';

/**
 * How often the master reads each worker's RSS for max_worker_memory. One read of a small /proc file per worker
 * (a few microseconds, off the master's thread) costs nothing at this pace, and a leak that grows a worker by
 * 10 MB a second, a fast one, overshoots the limit by at most 50 MB before the replacement starts. PM2 checks
 * every 30 s; shorter would buy little, since the limit is a recycling point, not a cap (the cgroup's
 * `MemoryMax=` is the cap).
 */
export const MEMORY_PERIOD_MS = 5000;

/**
 * A worker above the limit this soon after it reported ready was, in effect, too big from its start: the app
 * needs about that much once it has served a few requests (its caches filled, its code compiled). Recycled, its
 * replacement would grow as fast, and so on for ever. At QUICK_MEMORY_IN_A_ROW such workers in a row the master
 * stops recycling for memory (until a HUP) and says why. 30 s is six readings, and a real leak that outgrows the
 * limit that fast would have the server starting a worker every half minute anyway.
 */
export const QUICK_MEMORY_MS = 30_000;
export const QUICK_MEMORY_IN_A_ROW = 3;

/**
 * Test-only: `TUNICORN_TEST_MEMORY_PERIOD_MS` shortens the period so that a test sees a few samples without
 * waiting for them. Not a setting, not documented for users.
 */
export function memoryPeriodMs(env: NodeJS.ProcessEnv): number {
  const ms = Number(env.TUNICORN_TEST_MEMORY_PERIOD_MS);
  return Number.isInteger(ms) && ms > 0 ? ms : MEMORY_PERIOD_MS;
}

/**
 * max_worker_memory needs /proc (Linux) to read the workers' memory from the master: without it the limit
 * would never be checked, in silence. Called at start, by --check-config and by a reload that sets it.
 */
export function checkMemoryLimit(cfg: Config, proc = '/proc'): void {
  if (cfg.maxWorkerMemory > 0 && !existsSync(`${proc}/self/status`)) {
    throw new ConfigError(
      `max_worker_memory (--max-worker-memory) needs ${proc}/PID/status to read a worker's memory, and this system has none (it is Linux-only): remove the setting, or use max_requests`,
    );
  }
}

/** The resident set size of process `pid`, in bytes (`VmRSS`, which counts every thread); null once it is gone. */
export async function readRss(pid: number, proc = '/proc'): Promise<number | null> {
  let text: string;
  try {
    text = await readFile(`${proc}/${pid}/status`, 'latin1');
  } catch {
    return null;
  }
  return rssOf(text);
}

/** A size for a log line: `512 MiB`, `612.4 MiB`, `1.5 GiB`. */
export function formatSize(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  // Just under a unit (1073741823 bytes) would round to "1024.0 MiB": it reads as the next unit.
  if (!Number.isInteger(n) && n.toFixed(1) === '1024.0' && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`;
}
