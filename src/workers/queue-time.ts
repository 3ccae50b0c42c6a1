import type { IncomingMessage } from 'node:http';
import type net from 'node:net';

/**
 * The queue times of the requests that waited, in milliseconds, by request: a WeakMap rather than a property on
 * Node's request object (see SlotTable.put). Under a global symbol, one per process: the app may load its own
 * copy of this module (tunicorn in its node_modules) and must read the table the worker writes.
 */
const kTable = Symbol.for('tunicorn.queueTimes');
type WithTable = typeof globalThis & { [kTable]?: WeakMap<IncomingMessage, number> };

/** The table, made by the worker before it serves (outside a worker there is none). */
export function queueTable(): WeakMap<IncomingMessage, number> {
  const g = globalThis as WithTable;
  return (g[kTable] ??= new WeakMap());
}

/**
 * How long the request waited before reaching the app, in milliseconds: since the worker accepted its
 * connection, or since the proxy saw it when the proxy sent `X-Request-Start`; 0 for a request that did not
 * wait (a later one on a keep-alive connection). Undefined outside a tunicorn worker. For metrics and logs.
 */
export function queueTime(req: IncomingMessage): number | undefined {
  const table = (globalThis as WithTable)[kTable];
  return table === undefined ? undefined : (table.get(req) ?? 0);
}

/**
 * `X-Request-Start` as proxies send it (`t=1700000000.123`, or a bare number): seconds, milliseconds or
 * microseconds since the epoch, told apart by size. Returns epoch milliseconds, or undefined.
 */
export function parseRequestStart(v: string | string[] | undefined): number | undefined {
  if (typeof v !== 'string') return undefined;
  const n = Number(v.trim().replace(/^t=/, ''));
  if (!Number.isFinite(n) || n <= 0) return undefined;
  if (n < 1e11) return n * 1000;
  if (n < 1e14) return n;
  return n / 1000;
}

/**
 * When the worker accepted each connection whose first request has not reached the app yet: the start of that
 * request's queue time. A WeakMap, not a property on the socket (see SlotTable.put). `#waiting` counts its
 * entries, so that the later requests of keep-alive connections, which find nothing here, skip the lookup
 * while no connection waits for its first request.
 */
export class AcceptTimes {
  readonly #at = new WeakMap<net.Socket, number>();
  #waiting = 0;

  accepted(socket: net.Socket, at: number): void {
    this.#at.set(socket, at);
    this.#waiting++;
  }

  /**
   * The accept time for the first request of the connection `on` (a request's socket), once: undefined for the
   * requests after it.
   */
  take(on: net.Socket): number | undefined {
    if (this.#waiting === 0) return undefined;
    // Over TLS the request's socket wraps the one accepted (for HTTP/2, through the session's proxy).
    const socket = (on as net.Socket & { _parent?: net.Socket | null })._parent ?? on;
    const at = this.#at.get(socket);
    if (at !== undefined) this.forget(socket);
    return at;
  }

  /** The connection closed, or left this process, before a request took its time. */
  forget(socket: net.Socket): void {
    if (this.#waiting > 0 && this.#at.delete(socket)) this.#waiting--;
  }
}
