import { accessSync, constants, statSync, statfsSync } from 'node:fs';
import path from 'node:path';

/** What an fs call returned, or the error it threw. */
export function attempt<T>(call: () => T): T | NodeJS.ErrnoException {
  try {
    return call();
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
}

/** What an fs call failed with (its errno code), or null when it did not. */
export function errnoOf(call: () => unknown): string | null {
  const r = attempt(call);
  return r instanceof Error ? ((r as NodeJS.ErrnoException).code ?? 'EUNKNOWN') : null;
}

/**
 * Why no file can be created in a directory, as open(2) or bind(2) would fail, found without creating one.
 * - ENOENT: `dir` does not exist;
 * - ENOTDIR: `at`, a part of the path, is a file where a directory should be;
 * - EACCES: this user cannot reach `dir` (`reach`) or cannot write to it;
 * - EROFS: `dir` is on a read-only file system;
 * - ENOCREATE (ours): `dir` is on a kernel file system that takes no new files (/proc, /sys), where access(2)
 *   still says yes to root;
 * any other code as the system gave it.
 */
export interface CreateProblem {
  readonly code: string;
  readonly dir: string;
  readonly at: string;
  readonly reach: boolean;
}

/**
 * A CreateProblem in words, as the end of a sentence: `the directory /x does not exist`. The read-only case
 * names the directory only; a caller adds what to do.
 */
export function describeCreateProblem(p: CreateProblem): string {
  switch (p.code) {
    case 'ENOENT':
      return `the directory ${p.dir} does not exist`;
    case 'ENOTDIR':
      return `${p.at} is not a directory`;
    case 'EROFS':
      return `the directory ${p.dir} is on a read-only file system`;
    case 'ENOCREATE':
      return `no file can be created in ${p.dir} (a kernel file system)`;
    case 'EACCES':
    case 'EPERM':
      return p.reach ? `permission denied: this user cannot reach the directory ${p.dir}` : `permission denied: this user cannot create files in ${p.dir}`;
    default:
      return `${p.dir}: ${p.code}`;
  }
}

/** statfs(2) types of Linux file systems whose directories take no new file: proc, sysfs, cgroup, cgroup2. */
const KERNEL_FILE_SYSTEMS = new Set([0x9fa0, 0x62656572, 0x27e0eb, 0x63677270]);

export function createProblem(dir: string): CreateProblem | null {
  const problem = (code: string, at = dir, reach = false): CreateProblem => ({ code, dir, at, reach });
  const st = errnoOf(() => statSync(dir));
  if (st === 'ENOENT' || st === 'ENOTDIR') {
    // The nearest part of the path that exists says which: a directory missing, or a file where one should be.
    for (let up = path.dirname(dir); up !== path.dirname(up); up = path.dirname(up)) {
      const c = errnoOf(() => statSync(up));
      if (c === 'ENOENT' || c === 'ENOTDIR') continue;
      if (c === null && !statSync(up).isDirectory()) return problem('ENOTDIR', up);
      break;
    }
    return problem('ENOENT');
  }
  if (st === 'EACCES') return problem('EACCES', dir, true);
  if (st) return problem(st);
  if (!statSync(dir).isDirectory()) return problem('ENOTDIR');
  const fsType = attempt(() => statfsSync(dir).type);
  if (typeof fsType === 'number' && KERNEL_FILE_SYSTEMS.has(fsType)) return problem('ENOCREATE');
  // Creating a file takes write and search permission on its directory. As root, access(2) grants both
  // except on a read-only file system (EROFS), which open(2) and bind(2) refuse too.
  const denied = errnoOf(() => accessSync(dir, constants.W_OK | constants.X_OK));
  return denied ? problem(denied) : null;
}
