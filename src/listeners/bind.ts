import dns from 'node:dns/promises';
import { existsSync, lstatSync, readFileSync, readlinkSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { ConfigError } from '../config/setting.js';
import { formatAddress, parseAddress, type Address } from './address.js';
import { BindError, bindTcp, bindUnix, explainBindError, localAddress, openFd, type RawHandle } from './handle.js';

/** A socket the master holds for its workers. */
export interface Listener {
  /** The address actually bound (port 0 replaced by the real port). */
  readonly address: Address;
  readonly url: string;
  readonly fd: number;
  readonly handle: RawHandle;
  /** Bound here from an address (not an fd someone else made): its socket file is ours to remove. */
  readonly own: boolean;
}

/** `setting` names where the host came from in the error: `bind (--bind)`, `healthBind (--health-bind)`. */
export async function resolveHost(host: string, setting = 'bind (--bind)'): Promise<string> {
  if (net.isIP(host)) return host;
  try {
    return (await dns.lookup(host)).address;
  } catch {
    throw new ConfigError(`invalid value for ${setting}: cannot resolve host ${JSON.stringify(host)}`);
  }
}

/**
 * Whether anything may answer on the Unix socket at `path` (bind's unix: sockets, the control socket). Only a
 * refusal says nobody listens: a socket this user may not connect to (EACCES) may well be live, and one whose
 * backlog is not read within 1 s is held by someone.
 */
export function unixSocketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    const done = (live: boolean) => {
      s.destroy();
      resolve(live);
    };
    s.once('connect', () => done(true));
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT'));
    s.setTimeout(1000, () => done(true));
  });
}

/** A stale Unix socket file (nobody listening) is removed; a live one is an error. */
async function clearStaleUnixSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket())
    throw new ConfigError(`cannot bind unix:${path}: the path exists and is not a socket`);
  if (await unixSocketAnswers(path)) throw new ConfigError(`cannot bind unix:${path}: another server is listening on it`);
  unlinkSync(path);
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
  return { address, url: formatAddress(address), fd: handle.fd, handle, own: a.kind !== 'fd' };
}

/**
 * The path a Unix socket fd is bound to (Linux: the fd's inode in /proc/net/unix), so an inherited socket
 * is logged by its path and its file can be removed by the master that ends up owning it. Node's Pipe
 * handle has no getsockname.
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

/**
 * Binds every address; on any failure, closes what was bound and rethrows. `umask` is the umask setting: the
 * file of a Unix socket gets 0777 & ~umask (as Gunicorn applies its umask around that bind alone).
 */
export async function bindAll(raws: readonly string[], umask = 0): Promise<Listener[]> {
  const out: Listener[] = [];
  try {
    for (const raw of raws) out.push(await bindOne(raw, umask));
  } catch (err) {
    closeListeners(out);
    throw err;
  }
  return out;
}

/** Closes the sockets; `unlink` also removes Unix socket files (not when a successor or systemd owns them). */
export function closeListeners(listeners: readonly Listener[], unlink = true): void {
  for (const l of listeners) {
    l.handle.close();
    if (unlink) unlinkUnixSockets([l]);
  }
}

export function unlinkUnixSockets(listeners: readonly Listener[]): void {
  for (const l of listeners) {
    if (l.address.kind !== 'unix') continue;
    try {
      unlinkSync(l.address.path);
    } catch {
      /* already gone */
    }
  }
}

/**
 * The listener bound before `listeners[i]` that holds the same address (one TCP port, on the same host or a
 * wildcard on either side), if one does: two names of one address (`localhost:8000`, `127.0.0.1:8000`), which
 * the kernel refuses as "address already in use" although no other process holds it.
 */
export function sameAddressBefore(listeners: readonly Listener[], i: number): Listener | undefined {
  const a = listeners[i]?.address;
  if (a?.kind !== 'tcp') return undefined;
  // `::` takes both families (Linux binds it dual-stack); `0.0.0.0` IPv4 only.
  const covers = (w: string, h: string) => w === h || w === '::' || (w === '0.0.0.0' && net.isIPv4(h));
  return listeners
    .slice(0, i)
    .find((l) => l.address.kind === 'tcp' && l.address.port === a.port && (covers(l.address.host, a.host) || covers(a.host, l.address.host)));
}
