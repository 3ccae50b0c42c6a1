import dns from 'node:dns/promises';
import { existsSync, lstatSync, readFileSync, readlinkSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '../config/setting.js';
import { formatAddress, parseAddress, type Address } from './address.js';
import { BindError, bindTcp, bindUnix, explainBindError, localAddress, openFd, type RawHandle } from './handle.js';
import { canonicalHost, startupIsIP } from '../ip.js';

/** A socket the master holds for its workers. */
export interface Listener {
  /** The address actually bound (port 0 replaced by the real port). */
  readonly address: Address;
  readonly url: string;
  readonly fd: number;
  readonly handle: RawHandle;
  /**
   * The Unix socket file this master removes when it stops (absolute): one it bound from a `unix:` address,
   * or one an old master that had bound it handed over by USR2. Null for TCP, and for a socket someone else
   * made (systemd's, an `fd://`), whose file is theirs.
   */
  readonly file: string | null;
}

type LookupAll = (host: string) => Promise<readonly { address: string; family: number }[]>;

const lookupAll: LookupAll = (host) => dns.lookup(host, { all: true });

/**
 * The address a host name binds: its IPv4 address if it has one, as Gunicorn's IPv4 socket binds `localhost`
 * (127.0.0.1), else the first. Node's own order puts `::1` first where /etc/hosts or the resolver does, and
 * a server on [::1] alone refuses the clients and proxies that connect to 127.0.0.1.
 * `setting` names where the host came from in the error: `bind (--bind)`, `healthBind (--health-bind)`.
 */
export async function resolveHost(host: string, setting = 'bind (--bind)', lookup: LookupAll = lookupAll): Promise<string> {
  if (startupIsIP(host)) return host;
  let all: readonly { address: string; family: number }[];
  try {
    all = await lookup(host);
  } catch {
    all = [];
  }
  const chosen = all.find((a) => a.family === 4) ?? all[0];
  if (!chosen) throw new ConfigError(`invalid value for ${setting}: cannot resolve host ${JSON.stringify(host)}`);
  return chosen.address;
}

/**
 * What connecting to the Unix socket at `socketPath` tells: `stale` only for a refusal (nobody listens);
 * `denied` when this user may not connect (EACCES: it may well be live); `live` for a connection, or a
 * backlog that is not read within 1 s (held by someone).
 */
export function probeUnixSocket(socketPath: string): Promise<'live' | 'stale' | 'denied'> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    const done = (what: 'live' | 'stale' | 'denied') => {
      s.destroy();
      resolve(what);
    };
    s.once('connect', () => done('live'));
    s.once('error', (err: NodeJS.ErrnoException) =>
      done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'stale' : err.code === 'EACCES' || err.code === 'EPERM' ? 'denied' : 'live'));
    s.setTimeout(1000, () => done('live'));
  });
}

/**
 * Whether anything may answer on the Unix socket at `socketPath` (bind's unix: sockets, the control socket). Only a
 * refusal says nobody listens: a socket this user may not connect to (EACCES) may well be live, and one whose
 * backlog is not read within 1 s is held by someone.
 */
export async function unixSocketAnswers(socketPath: string): Promise<boolean> {
  return (await probeUnixSocket(socketPath)) !== 'stale';
}

/**
 * A stale Unix socket file (nobody listening) is removed; a live one is an error, and so is one this user
 * may not connect to or remove (a file another user left, a directory it may not write to): each in words.
 */
async function clearStaleUnixSocket(socketPath: string): Promise<void> {
  if (!existsSync(socketPath)) return;
  const at = `cannot bind unix:${socketPath}`;
  if (!lstatSync(socketPath).isSocket()) throw new ConfigError(`${at}: the path exists and is not a socket`);
  const state = await probeUnixSocket(socketPath);
  if (state === 'live') throw new ConfigError(`${at}: another server is listening on it`);
  if (state === 'denied')
    throw new ConfigError(`${at}: a socket file is there that this user may not connect to (permission denied), so whether a server listens on it cannot be told; if none does, remove it, or bind another path`);
  try {
    unlinkSync(socketPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'an error';
    const dir = path.dirname(path.resolve(socketPath));
    // EPERM: a sticky directory (/tmp) where only the file's owner (another user, root) may remove it.
    const why = { EACCES: `permission denied on the directory ${dir}`, EPERM: `it belongs to another user, and only its owner may remove it from ${dir}`, EROFS: 'the file system is read-only' }[code] ?? code;
    throw new ConfigError(`${at}: a stale socket file is there (nobody listens on it), which this user cannot remove (${why}); remove it, or bind another path`);
  }
}

export async function bindOne(raw: string, umask = 0): Promise<Listener> {
  const a = parseAddress(raw);
  let handle: RawHandle;
  let address: Address = a;
  switch (a.kind) {
    case 'tcp': {
      const host = await resolveHost(a.host);
      handle = bindTcp(host, a.port, formatAddress(a));
      const bound = localAddress(handle);
      // libuv keeps a TCP bind's EADDRINUSE for listen() ("delayed error"), but our listen() happens in another
      // process on a copy of the fd, which would then listen on a random port. An unbound socket reports port 0.
      if (!bound || (a.port !== 0 && bound.port !== a.port)) {
        handle.close();
        throw new BindError(`cannot bind ${formatAddress(a)}: ${explainBindError('EADDRINUSE')}`, 'EADDRINUSE');
      }
      address = { kind: 'tcp', host, port: bound?.port ?? a.port };
      break;
    }
    case 'unix':
      await clearStaleUnixSocket(a.path);
      {
        // bind(2) makes the file with 0777 & ~umask: the setting's, for this call only; the process keeps its own.
        const old = process.umask(umask);
        try {
          handle = bindUnix(a.path, formatAddress(a));
        } finally {
          process.umask(old);
        }
      }
      break;
    case 'fd': {
      handle = openFd(a.fd, formatAddress(a));
      const bound = localAddress(handle);
      if (bound) address = { kind: 'tcp', host: bound.address, port: bound.port };
      else {
        const p = unixPathOfFd(a.fd);
        if (p) address = { kind: 'unix', path: p };
      }
      break;
    }
  }
  // Absolute, as bound from the directory the master runs in: the file is removed from there, whatever the
  // working directory is then, and a new master (USR2) is told which file it takes over.
  const file = a.kind === 'unix' ? path.resolve(a.path) : null;
  return { address, url: formatAddress(address), fd: handle.fd, handle, file };
}

/**
 * The path a Unix socket fd is bound to (Linux: the fd's inode in /proc/net/unix), so an inherited socket
 * is logged by its path. Node's Pipe handle has no getsockname.
 */
function unixPathOfFd(fd: number): string | null {
  try {
    const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
    if (!inode) return null;
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[6] === inode && cols[7] && cols[7].startsWith('/')) return cols[7];
    }
  } catch {
    /* not Linux, or not a socket */
  }
  return null;
}

/** How bindAll tries an address again that is busy or not (yet) on this machine, as Gunicorn does. */
export interface BindRetry {
  /** Tries in all, the first included (Gunicorn: 5). */
  readonly attempts: number;
  readonly delayMs: number;
  /** Says each failed try that will be tried again (Gunicorn logs `Connection in use: ADDRESS` as an error). */
  readonly say: (line: string) => void;
}

/** Gunicorn's words for the failures it tries again: a port another process still holds, an address not up yet. */
const RETRIED: Record<string, string> = { EADDRINUSE: 'Connection in use', EADDRNOTAVAIL: 'Invalid address' };

/**
 * Runs `bind` (a bind of the address `raw`) until it succeeds, trying a TCP address again that is in use or
 * not on this machine as `retry` says, with a line for each try that will be made again. Shared by --bind and
 * --health-bind: both meet the port of a server that is still stopping when a restart comes quickly.
 */
export async function bindRetrying<T>(raw: string, bind: () => Promise<T>, retry: BindRetry | undefined): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await bind();
    } catch (err) {
      const what = err instanceof BindError ? RETRIED[err.code] : undefined;
      // A Unix socket in use answers: another server's, which waiting does not free (a stale one is replaced).
      const a = what && retry && attempt < retry.attempts ? parseAddress(raw) : null;
      if (a?.kind !== 'tcp') throw err;
      const s = retry!.delayMs / 1000;
      retry!.say(`${what}: ${formatAddress(a)}; retrying in ${s} s (attempt ${attempt + 1} of ${retry!.attempts})`);
      await sleep(retry!.delayMs);
    }
  }
}

/**
 * Binds every address; on any failure, closes what was bound and rethrows. `umask` is the umask setting: the
 * file of a Unix socket gets 0777 & ~umask (as Gunicorn applies its umask around that bind alone). With
 * `retry`, a TCP address that is in use (a server still stopping) or not on this machine (an interface still
 * coming up) is tried again, as Gunicorn tries 5 times, 1 s apart, before it gives up.
 */
export async function bindAll(raws: readonly string[], umask = 0, retry?: BindRetry): Promise<Listener[]> {
  const out: Listener[] = [];
  try {
    for (const raw of raws) out.push(await bindRetrying(raw, () => bindOne(raw, umask), retry));
  } catch (err) {
    closeListeners(out);
    throw err;
  }
  return out;
}

/**
 * Closes the sockets; `unlink` also removes the socket files that are ours (`file`: never systemd's nor an
 * `fd://`'s; the caller passes false while a successor or an old master still serves them).
 */
export function closeListeners(listeners: readonly Listener[], unlink = true): void {
  for (const l of listeners) {
    l.handle.close();
    if (unlink) unlinkUnixSockets([l]);
  }
}

/** Removes the socket files that are ours (`file`). */
export function unlinkUnixSockets(listeners: readonly Listener[]): void {
  for (const l of listeners) {
    if (!l.file) continue;
    try {
      unlinkSync(l.file);
    } catch {
      /* already gone */
    }
  }
}

/**
 * The listeners a master started by USR2 took from its old master (fds 3..), given what the old master said
 * of them (`files`, from UPGRADE_FILES_ENV: the socket file each had bound, or null): the file becomes this
 * master's to remove, and names the socket in the log where the kernel only knows the path as bound
 * (a relative one). An old master that said nothing (an older tunicorn) handed over every Unix socket as its own.
 */
export function adoptUpgradeListeners(listeners: readonly Listener[], files: readonly (string | null)[] | null): Listener[] {
  return listeners.map((l, i) => {
    if (files === null) return { ...l, file: l.address.kind === 'unix' ? path.resolve(l.address.path) : null };
    const file = files[i] ?? null;
    if (!file) return { ...l, file: null };
    const address: Address = { kind: 'unix', path: file };
    return { ...l, address, url: formatAddress(address), file };
  });
}

/**
 * The listener bound before `listeners[i]` that holds the same address (one TCP port, on the same host or a
 * wildcard on either side), if one does: two names of one address (`localhost:8000`, `127.0.0.1:8000`), which
 * the kernel refuses as "address already in use" although no other process holds it.
 */
export function sameAddressBefore(listeners: readonly Listener[], i: number): Listener | undefined {
  const a = listeners[i]?.address;
  if (a?.kind !== 'tcp') return undefined;
  return listenerHolding(listeners.slice(0, i), a.host, a.port);
}

/**
 * The listener that holds the TCP address `host` (an IP address) and `port`, or one that covers it (a
 * wildcard on either side), if one does: binding it again fails with "address already in use".
 */
export function listenerHolding(listeners: readonly Listener[], host: string, port: number): Listener | undefined {
  // `::` takes both families (Linux binds it dual-stack); `0.0.0.0` IPv4 only.
  const covers = (w: string, h: string) => canonicalHost(w) === canonicalHost(h) || w === '::' || (w === '0.0.0.0' && net.isIPv4(h));
  return listeners.find((l) => l.address.kind === 'tcp' && l.address.port === port && (covers(l.address.host, host) || covers(host, l.address.host)));
}
