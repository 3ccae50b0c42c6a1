/**
 * Sockets a master did not bind itself: the listening sockets an old master hands to its successor on USR2
 * (TUNICORN_FD, as Gunicorn's GUNICORN_FD), and systemd socket activation (LISTEN_FDS / LISTEN_PID, fds from 3).
 */

/** Names the inherited listening fds of a master started by USR2 (comma-separated). */
export const UPGRADE_FD_ENV = 'TUNICORN_FD';
/** The pid of the master that started this one by USR2; the new master takes over when it is gone. */
export const UPGRADE_PID_ENV = 'TUNICORN_PID';
/**
 * For each fd of TUNICORN_FD, the absolute path of the Unix socket file the old master would have removed
 * at its exit, or null (a JSON array): the new master removes those and no other (not systemd's, nor an
 * fd://'s), and names a socket bound by a relative path.
 */
export const UPGRADE_FILES_ENV = 'TUNICORN_FD_FILES';

/** sd_listen_fds(3): passed fds start at 3. */
const SD_LISTEN_FDS_START = 3;

/** Variables only the master reads; workers must not see them (a worker is not the process they name). */
export const MASTER_ONLY_ENV = [UPGRADE_FD_ENV, UPGRADE_PID_ENV, UPGRADE_FILES_ENV, 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'NOTIFY_SOCKET'] as const;

export interface Inherited {
  readonly source: 'upgrade' | 'systemd';
  readonly fds: readonly number[];
  /** For an upgrade: the old master's pid. */
  readonly parentPid: number | null;
  /**
   * For an upgrade: what UPGRADE_FILES_ENV says of each fd (its socket file, or null); null when the old
   * master did not say (an older tunicorn), or for systemd.
   */
  readonly files: readonly (string | null)[] | null;
}

export function inheritedSockets(env: NodeJS.ProcessEnv, pid: number): Inherited | null {
  const up = env[UPGRADE_FD_ENV];
  if (up) {
    const fds = up.split(',').map(Number).filter((n) => Number.isInteger(n) && n >= 0);
    const parent = Number(env[UPGRADE_PID_ENV]);
    return { source: 'upgrade', fds, parentPid: Number.isInteger(parent) && parent > 0 ? parent : null, files: upgradeFiles(env[UPGRADE_FILES_ENV], fds.length) };
  }
  // LISTEN_PID guards against a variable that leaked from a parent: the fds are ours only if it names us.
  if (env.LISTEN_FDS && Number(env.LISTEN_PID) === pid) {
    const n = Number(env.LISTEN_FDS);
    if (Number.isInteger(n) && n > 0) return { source: 'systemd', fds: Array.from({ length: n }, (_, i) => SD_LISTEN_FDS_START + i), parentPid: null, files: null };
  }
  return null;
}

/** UPGRADE_FILES_ENV read: one entry (an absolute path or null) per fd, else null (not said, or not readable). */
function upgradeFiles(raw: string | undefined, count: number): (string | null)[] | null {
  if (!raw) return null;
  try {
    const v: unknown = JSON.parse(raw);
    if (Array.isArray(v) && v.length === count && v.every((f) => f === null || (typeof f === 'string' && f.startsWith('/')))) return v as (string | null)[];
  } catch {
    /* not JSON */
  }
  return null;
}

/** The environment for a worker: the master's, minus what only the master may act on. */
export function workerEnv(env: NodeJS.ProcessEnv, extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, ...extra };
  for (const k of MASTER_ONLY_ENV) delete out[k];
  return out;
}
