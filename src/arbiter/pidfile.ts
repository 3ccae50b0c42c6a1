import { chmodSync, existsSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { processSettings } from '../config/sections/process.js';
import { ConfigError, longFlag } from '../config/setting.js';
import { checkWritable, opening, type OutputFile } from '../logging/output-file.js';

export const PIDFILE: OutputFile = {
  what: 'pidfile',
  verb: 'write',
  flag: longFlag(processSettings.pidfile.flags),
  example: 'tunicorn.pid',
};

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether a live process may be a tunicorn master: its name (the first 15 bytes of its title, or of its
 * program) is `tunicorn: ...` or Node's: `node` up to Node 22, the main thread's name `MainThread` on Node 24
 * and `node-MainThread` on Node 26, before a title is set. Any other program (`sleep`, `sshd`) got the pid of
 * a server that is gone, after a reboot or a long time. Where /proc cannot tell, it may be.
 */
function mayBeServer(pid: number): boolean {
  try {
    const name = readFileSync(`/proc/${pid}/comm`, 'utf8');
    return name.startsWith('tunicorn') || name.startsWith('node') || name.startsWith('MainThread');
  } catch {
    return true;
  }
}

/**
 * A pidfile naming a live process other than `pid` that may be a server means another server probably runs:
 * a ConfigError.
 */
function refuseLiveOwner(path: string, pid: number): void {
  let old: number | null = null;
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    old = Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    /* no pidfile yet */
  }
  if (old !== null && old !== pid && alive(old) && mayBeServer(old))
    throw new ConfigError(`pidfile ${path} names process ${old}, which is still running; stop it or choose another --pid`);
}

/**
 * The master's pidfile. A pidfile naming a process that no longer runs (a crash, a reboot), or that another
 * program runs now (its pid reused), is replaced: it must not block a start, a common complaint about
 * Gunicorn. One naming a live Node process other than us is an error, since another server is probably
 * running.
 */
export class Pidfile {
  #path: string | null = null;

  get path(): string | null {
    return this.#path;
  }

  /**
   * Checks, creating nothing, that the pidfile could be written and names no other live process (see
   * checkWritable): before anything is bound, and for --check-config.
   */
  static check(path: string, pid = process.pid): void {
    checkWritable(PIDFILE, path);
    refuseLiveOwner(path, pid);
  }

  /** Only that the file could be written (`--check-config`, while the server may well run). */
  static checkWritable(path: string): void {
    checkWritable(PIDFILE, path);
  }

  /**
   * Throws a ConfigError when another server runs, or, in words, when the file cannot be written. As
   * Gunicorn's: written aside and renamed into place, mode 0644 whatever the umask (0 by default, which left
   * the file writable by every local user, who could then make a `kill $(cat PIDFILE)` hit any process), so
   * the pidfile is never seen empty or half written, nor left so by a full disk.
   */
  create(path: string, pid = process.pid): void {
    refuseLiveOwner(path, pid);
    const aside = `${path}.${pid}.tmp`;
    opening(PIDFILE, path, () => {
      try {
        writeFileSync(aside, `${pid}\n`, { mode: 0o644, flag: 'wx' });
        chmodSync(aside, 0o644);
        renameSync(aside, path);
      } catch (err) {
        rmSync(aside, { force: true });
        // A pidfile made for the server in a directory it may not write (root's /run): written in place, as
        // before, with the mode it was given.
        const code = (err as NodeJS.ErrnoException).code;
        if ((code === 'EACCES' || code === 'EPERM') && existsSync(path)) return writeFileSync(path, `${pid}\n`);
        throw err;
      }
    });
    this.#path = path;
  }

  /**
   * A reload's pidfile, as Gunicorn's: written afresh at `to` (so one deleted since is back), and the one at
   * another path removed if it still names us. When `to` cannot be written, the old one stays.
   */
  moveTo(to: string | null, pid = process.pid): void {
    const from = this.#path;
    if (to) this.create(to, pid);
    else this.#path = null;
    if (from && (!to || resolve(from) !== resolve(to))) Pidfile.removeStale(from, pid);
  }

  /** Moves the pidfile (USR2 upgrades write PIDFILE.2 and take the name back later). */
  rename(to: string): void {
    if (!this.#path) return;
    renameSync(this.#path, to);
    this.#path = to;
  }

  /** Removes the file at `path` if it names `pid`: what a process that died without its exit left behind. */
  static removeStale(path: string, pid: number): boolean {
    try {
      if (Number(readFileSync(path, 'utf8').trim()) !== pid) return false;
      unlinkSync(path);
      return true;
    } catch {
      return false;
    }
  }

  /** Removes it, only if it still names us. */
  unlink(pid = process.pid): void {
    if (!this.#path) return;
    try {
      if (Number(readFileSync(this.#path, 'utf8').trim()) === pid) unlinkSync(this.#path);
    } catch {
      /* already gone */
    }
    this.#path = null;
  }
}
