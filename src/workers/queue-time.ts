import type { IncomingMessage } from 'node:http';
// Named, not `import net`: this module's declarations reach an app's own tsc through index.d.ts, and a default
// import of node:net fails there without esModuleInterop (TS1192: a tsconfig with `module: commonjs`).
import type { Socket } from 'node:net';
import { fdOf } from '../http/peek.js';

/**
 * The queue times of the requests that waited, in milliseconds, by request. Under a global symbol, one per
 * process (or gthread thread): the app may load its own copy of this module (tunicorn in its node_modules) and
 * must read the table the worker writes.
 *
 * Nothing is stored on Node's request object (see SlotTable.put), and a WeakMap keyed by requests costs the
 * garbage collector on every request that waited (every one under `Connection: close`; see AcceptTimes). So
 * the worker records into `times` only once something in the process has called queueTime(); until then a
 * call finds a running request's time in the worker's table of running requests.
 */
export interface QueueTable {
  readonly times: WeakMap<IncomingMessage, number>;
  /** Set by the first queueTime() call: from then on every request that waited is recorded in `times`. */
  asked: boolean;
  /** The queue time of a request still running, or undefined. */
  readonly running: (req: IncomingMessage) => number | undefined;
}

const kTable = Symbol.for('tunicorn.queueTimes');
type WithTable = typeof globalThis & { [kTable]?: QueueTable };

/** The table, made by the worker before it serves (outside a worker there is none). */
export function queueTable(running: QueueTable['running']): QueueTable {
  const g = globalThis as WithTable;
  return (g[kTable] ??= { times: new WeakMap(), asked: false, running });
}

/**
 * How long the request waited before reaching the app, in milliseconds: since the worker accepted its
 * connection, or since the proxy saw it when the proxy sent `X-Request-Start`; 0 for a request that did not
 * wait (a later one on a keep-alive connection, unless a gthread thread queued it behind another). Undefined
 * outside a tunicorn worker. For metrics and logs.
 */
export function queueTime(req: IncomingMessage): number | undefined {
  const table = (globalThis as WithTable)[kTable];
  if (table === undefined) return undefined;
  table.asked = true;
  return table.times.get(req) ?? table.running(req) ?? 0;
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
 * request's queue time. Kept by descriptor, with the socket to tell a reused descriptor from its last owner
 * (a descriptor is reused as soon as its socket is closed, before the socket's 'close' event): no property
 * on Node's socket (see SlotTable.put), and no WeakMap. A WeakMap whose keys are new objects costs the
 * garbage collector on every connection: in profiles of `Connection: close` load (`perf`), the two WeakMaps this
 * and QueueTable replaced took 1.6 % of the workers' CPU in their write barrier, rehashing and clearing, and
 * young-generation collections 0.4 % more. `#waiting` counts the connections here, so that the later
 * requests of keep-alive connections skip the look while none waits for its first request.
 */
export class AcceptTimes {
  readonly #socket: (Socket | null)[] = [];
  readonly #at: number[] = [];
  #waiting = 0;

  /** Records the accept time; returns the key to `forget` the connection by (its descriptor, or -1). */
  accepted(socket: Socket, at: number): number {
    const fd = fdOf(socket);
    if (fd < 0) return -1;
    // The descriptor's last owner may still be here: its 'close' has not run yet, and it forgets nothing now.
    if (this.#socket[fd] == null) this.#waiting++;
    this.#socket[fd] = socket;
    this.#at[fd] = at;
    return fd;
  }

  /**
   * The accept time for the first request of the connection `on` (a request's socket), once: undefined for the
   * requests after it.
   */
  take(on: Socket): number | undefined {
    if (this.#waiting === 0) return undefined;
    // Over TLS the request's socket wraps the one accepted (for HTTP/2, through the session's proxy).
    const socket = (on as Socket & { _parent?: Socket | null })._parent ?? on;
    const fd = fdOf(socket);
    if (fd < 0 || this.#socket[fd] !== socket) return undefined;
    this.forget(socket, fd);
    return this.#at[fd];
  }

  /** The connection closed, or left this process, before a request took its time. `key`: from `accepted`. */
  forget(socket: Socket, key: number): void {
    if (key >= 0 && this.#socket[key] === socket) {
      this.#socket[key] = null;
      this.#waiting--;
    }
  }
}
