import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/setting.js';

export interface Identity {
  readonly uid: number;
  readonly gid: number;
  /** The user's name, for initgroups (null when given as a number that /etc/passwd does not list). */
  readonly userName: string | null;
}

function table(path: string): string[][] {
  try {
    return readFileSync(path, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    return [];
  }
}

/** user / group settings to numeric ids, from /etc/passwd and /etc/group (Node has no getpwnam). */
export function resolveIdentity(user: string | null, group: string | null): Identity | null {
  if (user === null && group === null) return null;
  const passwd = table('/etc/passwd');
  let uid = process.getuid?.() ?? 0;
  let gid = process.getgid?.() ?? 0;
  let userName: string | null = null;
  if (user !== null) {
    const row = /^\d+$/.test(user) ? passwd.find((r) => r[2] === user) : passwd.find((r) => r[0] === user);
    if (!row && !/^\d+$/.test(user)) throw new ConfigError(`invalid value for user (--user): no user named ${JSON.stringify(user)} on this machine`);
    uid = row ? Number(row[2]) : Number(user);
    gid = row ? Number(row[3]) : gid;
    userName = row ? row[0]! : null;
  }
  if (group !== null) {
    if (/^\d+$/.test(group)) gid = Number(group);
    else {
      const row = table('/etc/group').find((r) => r[0] === group);
      if (!row) throw new ConfigError(`invalid value for group (--group): no group named ${JSON.stringify(group)} on this machine`);
      gid = Number(row[2]);
    }
  }
  return { uid, gid, userName };
}

/**
 * Switches this process to the identity: the group first (and the supplementary groups, which a root
 * process would otherwise keep), then the user, after which there is no way back.
 */
export function dropPrivileges(id: Identity, initgroups: boolean): void {
  if (process.getuid?.() !== 0) {
    if (process.getuid?.() === id.uid && process.getgid?.() === id.gid) return;
    throw new Error(`cannot switch to uid ${id.uid} / gid ${id.gid}: only root can (start tunicorn as root, or drop --user/--group)`);
  }
  if (initgroups && id.userName) (process as unknown as { initgroups(user: string, extraGroup: number): void }).initgroups(id.userName, id.gid);
  else process.setgroups!([id.gid]);
  process.setgid!(id.gid);
  process.setuid!(id.uid);
}

/** The umask setting as a number (`"0o22"`, `"022"` and `"22"` are all octal; a number is taken as it is). */
export function parseUmask(s: string | number): number {
  return typeof s === 'number' ? s : parseInt(s.replace(/^0o/i, ''), 8);
}

/** Switching identity needs root; say so at start rather than have every worker fail to boot. */
export function checkCanSwitch(id: Identity | null): void {
  if (!id || process.getuid?.() === 0) return;
  if (process.getuid?.() === id.uid && process.getgid?.() === id.gid) return;
  throw new ConfigError(`user/group (--user, --group) need tunicorn to start as root (it runs as uid ${process.getuid?.()}); start it as root or leave them out`);
}
