/**
 * The one place that touches Node internals to hold a listening socket without accepting on it.
 *
 * A `net.Server` that listens in the master accepts connections too, and libuv offers no way to stop that on a
 * listening handle (uv_read_stop is a no-op there). Node's cluster module binds without listening through the
 * internal `net._createServerHandle`; we do the same, then call listen(2) on its descriptor from the master's
 * native module, or have a short-lived child process call listen() on its inherited copy and exit (see
 * prime.ts). The master's handle never starts an accept watcher.
 */
import { fstatSync, readlinkSync, type Stats } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import util from 'node:util';
import { createProblem, describeCreateProblem } from '../fs-problem.js';
import { startupIsIPv6 } from '../ip.js';

export interface RawHandle {
  readonly fd: number;
  getsockname?(out: Record<string, unknown>): number;
  close(cb?: () => void): void;
}

type CreateServerHandle = (
  address: string | null,
  port: number,
  addressType: number,
  fd?: number,
  flags?: number,
) => RawHandle | number;

const createServerHandle = (net as unknown as { _createServerHandle?: CreateServerHandle })._createServerHandle;

export class BindError extends Error {
  override name = 'BindError';
  constructor(
    message: string,
    readonly code: string,
    /** Which of the listeners failed, when several were put into listen state at once (prime.ts). */
    readonly index?: number,
  ) {
    super(message);
  }
}

/** Out of a resource: the same words for TCP and Unix sockets. */
const OUT_OF: Record<string, string> = {
  EMFILE: 'too many open files: the open-file limit (ulimit -n, systemd\'s LimitNOFILE=) is too low; raise it',
  ENFILE: 'too many open files on this machine (the system-wide limit, fs.file-max, is reached)',
  ENOBUFS: 'out of kernel memory for sockets',
  ENOMEM: 'out of memory',
};

const WHY: Record<string, string> = {
  ...OUT_OF,
  EADDRINUSE: 'address already in use (another process listens there; pick another port or stop it)',
  EACCES: 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)',
  EADDRNOTAVAIL: 'address not available on this machine',
  EBADF: 'not an open file descriptor',
  EINVAL: 'not a listening TCP or Unix stream socket',
  ENOTSOCK: 'not a socket',
};

export function explainBindError(code: string): string {
  return WHY[code] ?? code;
}

const WHY_UNIX: Record<string, string> = {
  ...OUT_OF,
  EADDRINUSE: 'the socket file exists (another server listens there, or it was left behind: remove it)',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOTDIR: 'a part of the path is not a directory',
  ENOENT: 'the directory does not exist',
};

/**
 * Why a Unix socket could not be made at `socketPath`. libuv reports a missing directory as EACCES (as Windows
 * would), so the directory that should hold the socket file is looked at here: the cause, not the errno.
 */
export function explainUnixBindError(socketPath: string, code: string): string {
  const p = createProblem(path.dirname(path.resolve(socketPath)));
  switch (p?.code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'EACCES':
    case 'EPERM':
      return describeCreateProblem(p);
    case 'EROFS':
      // A container's read-only root file system (readOnlyRootFilesystem, docker run --read-only).
      return `${describeCreateProblem(p)}: give a path in a writable directory (a volume, such as an emptyDir, or /tmp)`;
    default:
      // Nothing wrong with the directory (or a cause it does not show): the errno's own words.
      return WHY_UNIX[code] ?? code;
  }
}

function check(result: RawHandle | number, what: string): RawHandle {
  if (typeof result === 'number') {
    const code = util.getSystemErrorName(result);
    throw new BindError(`cannot bind ${what}: ${explainBindError(code)}`, code);
  }
  return result;
}

function api(): CreateServerHandle {
  if (!createServerHandle) throw new Error('this Node.js has no net._createServerHandle; tunicorn needs Node >= 20');
  return createServerHandle;
}

export function bindTcp(host: string, port: number, what: string): RawHandle {
  const result = api()(host, port, startupIsIPv6(host) ? 6 : 4);
  // EINVAL's words above are for an fd://; for an address bind(2) says it of an IPv6 link-local one without
  // its interface (fe80::/10 exists once per interface).
  if (typeof result === 'number' && util.getSystemErrorName(result) === 'EINVAL') {
    const why = /^fe[89ab][0-9a-f]:/i.test(host) && !host.includes('%')
      ? `a link-local IPv6 address needs its interface: write [${host}%IFACE]:${port} (IFACE as ip -6 addr names it)`
      : 'the system refuses this address (EINVAL)';
    throw new BindError(`cannot bind ${what}: ${why}`, 'EINVAL');
  }
  return check(result, what);
}

export function bindUnix(socketPath: string, what: string): RawHandle {
  const result = api()(socketPath, -1, -1);
  if (typeof result === 'number') {
    const code = util.getSystemErrorName(result);
    throw new BindError(`cannot bind ${what}: ${explainUnixBindError(socketPath, code)}`, code);
  }
  return result;
}

export function openFd(fd: number, what: string): RawHandle {
  // Node takes anything but a TCP or Unix socket (an fd not open, a file, a UDP socket) for EINVAL: say which.
  let stat: Stats;
  try {
    stat = fstatSync(fd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EBADF';
    throw new BindError(`cannot bind ${what}: ${code === 'EBADF' ? 'not an open file descriptor (nothing passed this process a socket there)' : explainBindError(code)}`, code);
  }
  if (!stat.isSocket()) {
    const kind = kindOf(stat) ?? nodeOwn(fd);
    throw new BindError(`cannot bind ${what}: not a socket${kind ? ` (file descriptor ${fd} is ${kind})` : ''}`, 'ENOTSOCK');
  }
  // Node asserts that an fd comes with no address and a falsy port (so 0, not -1).
  return check(api()(null, 0, 0, fd), what);
}

/**
 * An fd nothing was passed at is often open all the same: Node opens its event loop's epoll and eventfd
 * descriptors from 3 up, where systemd's first socket goes, so `-b fd://3` without a socket finds one of those.
 * Linux names them `anon_inode:[eventpoll]`; nothing a service manager passes is one.
 */
function nodeOwn(fd: number): string | null {
  let link: string;
  try {
    link = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
  return link.startsWith('anon_inode:') ? `Node's own ${link}: nothing passed this process a socket there` : null;
}

function kindOf(s: Stats): string | null {
  if (s.isFile()) return 'a file';
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a pipe';
  if (s.isCharacterDevice()) return 'a terminal or device';
  return null;
}

/** The bound TCP address (the real port when 0 was asked for). */
export function localAddress(h: RawHandle): { address: string; port: number } | null {
  const out: Record<string, unknown> = {};
  if (!h.getsockname || h.getsockname(out) !== 0) return null;
  return { address: String(out.address), port: Number(out.port) };
}
