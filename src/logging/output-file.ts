import { accessSync, constants, existsSync, lstatSync, readlinkSync, statSync } from 'node:fs';
import { attempt, createProblem } from '../fs-problem.js';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { logging } from '../config/sections/logging.js';
import { ConfigError, longFlag } from '../config/setting.js';
import { standardStream } from './sink.js';

/**
 * A file the server writes, as a user knows it: the setting's name in words and its flag, so a failure to open
 * it can say which setting to change.
 */
export interface OutputFile {
  /** `error log`, `pidfile`. */
  readonly what: string;
  /** What the server does with it: `open` (a log, appended to) or `write` (the pidfile). */
  readonly verb: 'open' | 'write';
  readonly flag: string;
  /** A file name to suggest when the path given is a directory. */
  readonly example: string;
}

export const ERROR_LOG: OutputFile = {
  what: 'error log',
  verb: 'open',
  flag: longFlag(logging.errorlog.flags),
  example: 'error.log',
};
export const ACCESS_LOG: OutputFile = {
  what: 'access log',
  verb: 'open',
  flag: longFlag(logging.accesslog.flags),
  example: 'access.log',
};

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    // A uid with no passwd entry (containers run as an arbitrary uid).
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

/** Where `path` leads when it is a symbolic link (resolved against its directory), or undefined. */
function linkTarget(path: string): string | undefined {
  const st = attempt(() => lstatSync(path));
  if (st instanceof Error || !st.isSymbolicLink()) return undefined;
  const to = attempt(() => readlinkSync(path));
  return to instanceof Error ? undefined : resolve(dirname(path), to);
}

/**
 * The one line that says why `path` cannot be written, and what to do about it:
 * `cannot open error log "/var/log/x/e.log" (--error-logfile): the directory /var/log/x does not exist; ...`.
 * `err` is what open(2) or the check (checkWritable) failed with; `exists` whether the file itself is there,
 * which tells a file that may not be written from a directory where no file may be created.
 */
export function cannotWrite(
  file: OutputFile,
  path: string,
  err: { readonly code?: string | undefined; readonly message: string; readonly at?: string | undefined; readonly target?: string | undefined },
  exists = existsSync(path),
  user = currentUser(),
): string {
  // A symbolic link whose target cannot be created (a volume not mounted): the target's directory is the one.
  const target = err.code === 'ENOENT' || err.code === 'ENOTDIR' ? (err.target ?? linkTarget(path)) : undefined;
  const dir = dirname(target ?? path);
  const other = `choose another ${file.flag}`;
  let cause: string;
  switch (err.code) {
    case 'ENOENT':
      // open(2) said ENOENT of a directory that is there: one where no file can be created (/proc, /sys).
      cause = existsSync(dir) ? `no file can be created in ${dir}; ${other}` : `the directory ${dir} does not exist; create it or ${other}`;
      break;
    case 'ENOTDIR':
      cause = `${err.at ?? dir} is not a directory; ${other}`;
      break;
    case 'EISDIR':
      cause = `it is a directory; name a file, such as ${join(path, file.example)}`;
      break;
    case 'EACCES':
    case 'EPERM':
      cause = exists
        ? `permission denied: user ${user} may not write to the file; change its owner or mode, or ${other}`
        : `permission denied: user ${user} may not create files in ${dir}; change its owner or mode, or ${other}`;
      break;
    case 'EROFS':
      cause = `${exists ? 'the file' : dir} is on a read-only file system; ${other}`;
      break;
    case 'ENOCREATE':
      cause = `no file can be created in ${dir} (a kernel file system); ${other}`;
      break;
    case 'ENOSPC':
      cause = `no space is left on the device that holds ${dir}; free some, or ${other}`;
      break;
    default:
      // Node's message without its repetition of the call and the path: `EMFILE: too many open files`.
      cause = err.message.replace(/, \w+ '.*'$/, '');
  }
  const via = target === undefined ? '' : `it is a symbolic link to ${target}, and `;
  return `cannot ${file.verb} ${file.what} ${JSON.stringify(path)} (${file.flag}): ${via}${cause}`;
}

/** Runs `open` (the open or write of `path`); a failure becomes a ConfigError that says it in words. */
export function opening<T>(file: OutputFile, path: string, open: () => T): T {
  try {
    return open();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (typeof e?.code !== 'string') throw err;
    throw new ConfigError(cannotWrite(file, path, e));
  }
}

interface Problem {
  readonly code: string | undefined;
  readonly message: string;
  /** The file itself is there (see cannotWrite). */
  readonly exists: boolean;
  /** ENOTDIR: the part of the path that is a file. */
  readonly at?: string;
  /** `path` is a symbolic link to this file, whose directory has the problem. */
  readonly target?: string;
}

const problem = (err: { code?: string | undefined; message?: string }, exists: boolean): Problem => ({
  code: err.code,
  message: err.message ?? err.code ?? 'unknown error',
  exists,
});

/**
 * Why opening `path` to append would fail, found without creating anything; null if it would not. The file
 * is not a directory and may be written, or it does not exist and its directory exists and takes new files.
 */
function writeProblem(path: string, hops = 0): Problem | null {
  // stat follows a symlink: /dev/stderr or a link to a file elsewhere are checked for what they lead to.
  const st = attempt(() => statSync(path));
  // A link to no file yet: open(2) creates its target, so the target's directory must take new files.
  const target = st instanceof Error && st.code === 'ENOENT' && hops < 8 ? linkTarget(path) : undefined;
  if (target !== undefined) {
    const p = writeProblem(target, hops + 1);
    return p && { ...p, target: p.target ?? target };
  }
  if (!(st instanceof Error)) {
    if (st.isDirectory()) return problem({ code: 'EISDIR' }, true);
    // Not only a regular file: /dev/null or /dev/stdout are fine log files too.
    const denied = attempt(() => accessSync(path, constants.W_OK));
    return denied instanceof Error ? problem(denied, true) : null;
  }
  // ENOENT: no such file yet. ENOTDIR, EACCES: something on the way to it, which the directory shows.
  if (st.code !== 'ENOENT' && st.code !== 'ENOTDIR' && st.code !== 'EACCES') return problem(st, false);
  const p = createProblem(dirname(path));
  return p && { code: p.code, message: p.code, exists: false, at: p.at };
}

/**
 * Checks that `path` could be opened for writing, creating nothing: --check-config must not leave files
 * behind, and the master checks the access log, which only its workers open. Throws the ConfigError that
 * opening it would.
 */
export function checkWritable(file: OutputFile, path: string): void {
  const p = writeProblem(path);
  if (p) throw new ConfigError(cannotWrite(file, path, p, p.exists));
}

/** The logs of a config, checked as checkWritable does; `-` (stderr, stdout) needs no check. */
export function checkLogFiles(cfg: { readonly errorlog: string; readonly accesslog: string | null }): void {
  if (cfg.errorlog !== '-' && standardStream(cfg.errorlog) === null) checkWritable(ERROR_LOG, cfg.errorlog);
  if (cfg.accesslog && cfg.accesslog !== '-' && standardStream(cfg.accesslog) === null) checkWritable(ACCESS_LOG, cfg.accesslog);
}
