import type net from 'node:net';
import { loadNative } from '../native.js';

/** A socket's (or listening server's) descriptor, or -1 (closed, or none of its own). */
export const fdOf = (socket: net.Socket | net.Server): number =>
  (socket as (net.Socket | net.Server) & { _handle?: { fd?: number } | null })._handle?.fd ?? -1;

/**
 * `peek(fd)` or `read(fd)` from native/peek.c: copies up to `buffer.byteLength` bytes the kernel holds for a
 * socket into `buffer` and returns how many (0: the peer closed), or -errno (-EAGAIN: none yet). A peek leaves
 * them in the kernel; a read takes them.
 */
export interface Peek {
  (fd: number): number;
  readonly buffer: ArrayBuffer;
}

/** Bytes read or looked at: a first request line longer than this is read on through JavaScript. */
const PEEK_BYTES = 2048;

/** A peek or read function made by `open` or `openRead`, with a buffer of its own, or why there is none. */
function withBuffer(open: 'open' | 'openRead'): Peek | string {
  const make = peekFunction<(size: number) => Peek>(open);
  return typeof make === 'string' ? make : make(PEEK_BYTES);
}

/**
 * Where a request line may start in `buf[0, n)`: past the empty lines before it, CR and LF in any mix, as llhttp
 * skips them (RFC 9112 section 2.2 asks a server to ignore at least one CRLF there, and lets it take a lone LF
 * for one). `n` when there is nothing else.
 */
export function pastEmptyLines(buf: Uint8Array, n = buf.length): number {
  let start = 0;
  while (start < n && (buf[start] === 0x0d || buf[start] === 0x0a)) start++;
  return start;
}

/**
 * Whether the kernel holds bytes for descriptor `fd` (-1: none of its own) that may be a request: any past the
 * empty lines llhttp skips (pastEmptyLines). What decides whether an idle connection may be closed without
 * resetting a request that came in unread.
 */
export function holdsRequestBytes(peek: Peek, fd: number): boolean {
  const n = fd < 0 ? -1 : peek(fd);
  return n > 0 && pastEmptyLines(new Uint8Array(peek.buffer, 0, n)) < n;
}

/**
 * A peek function (a gthread worker's look at the idle connections of a stuck thread), or why there is none.
 */
export const openPeek = (): Peek | string => withBuffer('open');

/**
 * A read function (one per gate: the threads of a gthread worker each have one), or why there is none (the
 * module is not built, or is older than read()).
 */
export const openRead = (): Peek | string => withBuffer('openRead');

/** Function `name` of native/peek.c, or why there is none (the module is not built, or is older than it). */
function peekFunction<F>(name: 'open' | 'openRead' | 'dup' | 'peer'): F | string {
  const native = loadNative<Record<string, unknown>>('peek');
  if (typeof native === 'string') return native;
  const fn = native[name];
  return typeof fn === 'function' ? (fn as F) : `dist/native/peek.node has no ${name}(); \`npm run build\` rebuilds it`;
}

/**
 * `dup(fd)` from native/peek.c: a close-on-exec duplicate of a descriptor, or -errno; or why there is none
 * (the module is not built, or is older than this function).
 */
export const openDup = (): ((fd: number) => number) | string => peekFunction('dup');

/**
 * `peer(fd)` from native/peek.c: a connection's peer address as text, as `socket.remoteAddress` gives it, or
 * undefined (closed, or not an IP socket); or why there is none (the module is not built, or is older).
 */
export const openPeer = (): ((fd: number) => string | undefined) | string => peekFunction('peer');
