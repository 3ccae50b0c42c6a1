import type http from 'node:http';
import type http2 from 'node:http2';
import type net from 'node:net';
import { fdOf, holdsRequestBytes, openPeek, type Peek } from './peek.js';

/**
 * How often idle keep-alive connections are looked for. A connection is closed between `keepalive` + 1 s and
 * that + SWEEP_MS after its last response.
 */
export const SWEEP_MS = 500;

/** Node's own margin: it closes an idle connection 1 s after the `Keep-Alive: timeout=N` it advertised. */
const MARGIN_MS = 1000;

/** What Node's connection list gives for each connection (`closeIdleConnections` reads the same field). */
export interface TrackedParser {
  readonly socket?: net.Socket & { _httpMessage?: http.ServerResponse | null };
  /** The last request the parser began: the one coming in, while it is not complete. */
  readonly incoming?: http.IncomingMessage | null;
}
export interface ConnectionsList {
  /** The connections not parsing a request. */
  idle(): TrackedParser[];
  /** The connections whose parser is inside a request (body-timeout.ts reads it; checked there). */
  active?(): TrackedParser[];
}

/**
 * An idle connection as the last sweep saw it: the bytes written to it by then (its responses), and when it was
 * first seen idle since its last response.
 */
interface Mark {
  readonly wrote: number;
  readonly since: number;
}

/**
 * Node's list of an http.Server's connections (made when it is 'listening'), or null: not listening, or a Node
 * release that changed it.
 */
export function connectionsList(server: http.Server): ConnectionsList | null {
  const key = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections');
  const list = key && (server as unknown as Record<symbol, ConnectionsList | undefined>)[key];
  return typeof list?.idle === 'function' ? list : null;
}

/**
 * Node keeps the keep-alive timeout with a timer on each socket: set when a response finishes, cleared when
 * the next request arrives, two timer-list operations for every request on a keep-alive connection. This
 * keeps the same timeout with one sweep per worker instead, over the list Node already keeps of the
 * connections that are not parsing a request (the one behind `closeIdleConnections()`). A connection is closed
 * once two sweeps `keepalive` + 1 s apart found it idle, with no response on it and none written in between.
 *
 * Responses, not bytes read, are its activity: llhttp skips CR and LF before a request line (RFC 9112 section
 * 2.2) without starting a message, so a client that sent a bare CRLF every few hundred ms kept the connection
 * idle in Node's sense yet never idle for the timeout (Node's own timer, reset by every read, is no better),
 * and a few hundred such clients held every `worker_connections` place of every worker. A request that comes
 * makes the connection busy (not in the list) until its response is sent, and that moves the count; the empty
 * lines before it are ignored as before, they just buy no time.
 *
 * Call it once the server is 'listening' (Node makes the list then). It returns false, having done nothing,
 * if the list is not there (a Node release that changed it): the caller then leaves the timeout to Node.
 */
export function sweepIdleConnections(server: http.Server, keepAliveMs: number): boolean {
  const list = connectionsList(server);
  if (list === null) return false;
  const limit = keepAliveMs + MARGIN_MS;
  let marks = new Map<net.Socket, Mark>();
  const sweep = (): void => {
    const now = performance.now();
    const next = new Map<net.Socket, Mark>();
    for (const { socket } of list.idle()) {
      // Idle in Node's sense means only "not parsing a request": a response may still be running or be
      // written to a slow reader. Its socket holds it until its last byte is handed to the kernel.
      if (!socket || socket._httpMessage || socket.destroyed) continue;
      // A getter, but over an empty write queue here: the socket holds no response.
      const wrote = socket.bytesWritten;
      const mark = marks.get(socket);
      const since = mark !== undefined && mark.wrote === wrote ? mark.since : now;
      if (now - since < limit || holdsRequest(socket)) next.set(socket, { wrote, since });
      else socket.destroy();
    }
    marks = next;
  };
  // The sweep runs in the check phase, after the poll of the same turn has read what clients sent: run from the
  // timer, before the poll, it closed a connection whose next request had come in while the loop was busy (a
  // long synchronous step), unread, and that resets it (the client saw ECONNRESET). Read, the request makes the
  // connection busy, or, answered already, moves its count of bytes written. A request that came in after that
  // poll, while the loop was busy in it, is seen by holdsRequest.
  sweepEvery(keepAliveMs, sweep);
  return true;
}

/**
 * Node checks header_timeout (`headersTimeout`; `requestTimeout` is 0 here) from a timer of its own that every
 * http.Server starts on 'listening' and runs every `connectionsCheckingInterval` (1 s here), open connections or
 * none: an idle worker woke for it every second, and a gthread thread, whose beat is on another period, once
 * more. This moves Node's check to the sweeps, which sleep while the thread has no connection open (a
 * connection whose header section could be late exists only while one is): Node's timer is cleared, and the
 * function it ran (Node's `checkConnections`, bound to the server) runs every 0.5 s instead, or every
 * `checkMs` if shorter.
 *
 * Call it once the server is 'listening', after Node's own listener (the server was made before it is
 * called). It returns false, having done nothing, if the timer is not there (a Node release that changed it):
 * Node's timer then goes on as before.
 */
export function sweepHeaderTimeouts(server: http.Server | http2.Http2SecureServer, checkMs: number): boolean {
  const key = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connectionsCheckingInterval');
  const timer = key && (server as unknown as Record<symbol, (NodeJS.Timeout & { _onTimeout?: unknown }) | undefined>)[key];
  const check = timer?._onTimeout;
  if (typeof check !== 'function') return false;
  clearInterval(timer);
  // Bound to the server by Node (checkConnections.bind(server)): called as it is.
  sweepEvery(checkMs, check as () => void);
  return true;
}

/** A periodic sweep of this thread's connections or requests (keep-alive, body_timeout, request_deadline). */
interface Sweep {
  readonly everyMs: number;
  readonly run: () => void;
  timer: NodeJS.Timeout | null;
}

const sweeps: Sweep[] = [];
/** The count of open connections the sweeps sleep by (Serving's), or null: they never sleep. */
let openConnections: (() => number) | null = null;
let asleep = false;

/**
 * Runs `sweep` every SWEEP_MS (or every `limitMs`, if shorter), in the check phase, after the poll of the same
 * turn has read what clients sent: see sweepIdleConnections. The sweeps of a thread sleep while it has no
 * connection open (sleepSweepsWhenIdle), so that an idle worker's loop wakes for its heartbeat alone, and the
 * next connection wakes them (wakeSweeps): what they look at (connections, and the requests on them) cannot
 * exist in between.
 */
export function sweepEvery(limitMs: number, sweep: () => void): void {
  const s: Sweep = { everyMs: Math.min(SWEEP_MS, limitMs), run: sweep, timer: null };
  sweeps.push(s);
  if (!asleep) startSweep(s);
}

function startSweep(s: Sweep): void {
  s.timer = setInterval(() => {
    if (openConnections !== null && openConnections() === 0) return sleepSweeps();
    setImmediate(s.run);
  }, s.everyMs).unref();
}

/** No connection is open: the timers stop, after one last run of each sweep, which lets go of what it kept. */
function sleepSweeps(): void {
  asleep = true;
  for (const s of sweeps) {
    if (s.timer !== null) clearInterval(s.timer);
    s.timer = null;
    setImmediate(s.run);
  }
}

/** A connection was accepted: the sweeps run again if they slept (one comparison otherwise). */
export function wakeSweeps(): void {
  if (!asleep) return;
  asleep = false;
  for (const s of sweeps) startSweep(s);
}

/** The sweeps of this thread sleep while `count()` (its open connections) is 0; wakeSweeps() ends that. */
export function sleepSweepsWhenIdle(count: () => number): void {
  openConnections = count;
}

/** The look at a connection's descriptor (native/peek.c), opened at the first close; null without the module. */
let peek: Peek | null | undefined;

/**
 * Whether the kernel holds bytes the server has not read for this connection, closed for idling: a request
 * that came in while the loop was busy after its last poll. Closed, it would be reset unread (ECONNRESET on a
 * client that reused the connection, a 502 from a load balancer); kept, the next turn reads and answers it.
 * Empty lines alone are no request (holdsRequestBytes): a client sending them without pause keeps nothing.
 * One system call per connection the timeout closes; none without the native module (nor over TLS, whose
 * socket has no descriptor of its own), where such a request is reset as Node's own timeout would.
 */
function holdsRequest(socket: net.Socket): boolean {
  if (peek === undefined) {
    const p = openPeek();
    peek = typeof p === 'string' ? null : p;
  }
  return peek !== null && holdsRequestBytes(peek, fdOf(socket));
}

/** How long a session closed with a GOAWAY, all its streams done, may wait for its client to end the connection. */
const GOAWAY_GRACE_MS = 1000;

/** What a sweep saw of a session besides "idle, with this many streams started so far". */
const BUSY = -1;
const CLOSING = -2;

/** What the sweep knows of one HTTP/2 session. */
interface SessionUse {
  /** Streams open now. */
  open: number;
  /** Streams started so far: a change between two sweeps is activity. */
  started: number;
  /** What the last sweep saw: `started` if the session was idle, CLOSING if Node had closed it, else BUSY. */
  seen: number;
  /** When a sweep first saw it so. */
  since: number;
  /**
   * Ends the connection under the session once its last write is out, or null once done. Taken as the session
   * starts: once Node lets go of the socket (a closed session waiting for the client's FIN), `session.socket`
   * no longer reaches it.
   */
  endSocket: (() => void) | null;
}

/**
 * Closes idle HTTP/2 sessions, with the meaning `keepalive` has for HTTP/1.1: a session with no stream open
 * for `keepalive` + 1 s gets a GOAWAY (session.close()), and one with no stream yet gets `header_timeout`, as
 * an HTTP/1 connection does for its first request. With `keepalive` 0 a session gets its GOAWAY as soon as its
 * last stream ends, as an HTTP/1 connection is closed after each response. A stream that is running, however
 * long or quiet, keeps its session open. Once Node has closed a session (its streams done), a client that has
 * not ended the connection GOAWAY_GRACE_MS later has it ended for it: a silent client would otherwise hold it
 * (and, under `async`, a `worker_connections` place) for good. This covers the GOAWAY of a graceful stop too.
 *
 * A stream costs a counter and one 'close' listener, no timer and no clock read: one sweep every SWEEP_MS
 * per worker, running only while there are sessions, finds the idle ones, as sweepIdleConnections does for
 * HTTP/1. A session is closed between its limit and its limit + SWEEP_MS after it went idle.
 */
export class IdleSessions {
  readonly #sessions = new Map<http2.ServerHttp2Session, SessionUse>();
  /** 0: a session gets its GOAWAY when its last stream ends. */
  readonly #idleMs: number;
  readonly #firstMs: number;
  /** A graceful stop began: a session that comes later gets its GOAWAY once it has opened its first streams. */
  #closing = false;
  #sweep: NodeJS.Timeout | null = null;

  constructor(keepAliveMs: number, headerTimeoutMs: number) {
    this.#idleMs = keepAliveMs > 0 ? keepAliveMs + MARGIN_MS : 0;
    this.#firstMs = headerTimeoutMs;
  }

  add(session: http2.ServerHttp2Session): void {
    const use: SessionUse = { open: 0, started: 0, seen: BUSY, since: 0, endSocket: endSocketOf(session) };
    this.#sessions.set(session, use);
    const noKeepAlive = this.#idleMs === 0;
    const closing = this.#closing;
    const ended = (): void => {
      if (--use.open === 0 && noKeepAlive) session.close();
    };
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      use.open++;
      use.started++;
      // A session that came during a graceful stop is served the streams it opened with, then gets its GOAWAY.
      if (closing && use.started === 1) setImmediate(() => session.close());
      // on, not once: 'close' is emitted once anyway.
      stream.on('close', ended);
    });
    session.once('close', () => this.#sessions.delete(session));
    this.#sweep ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  /** A GOAWAY to every session (a graceful stop): its running streams finish, then it closes. */
  closeAll(): void {
    this.#closing = true;
    for (const s of this.#sessions.keys()) s.close();
  }

  private sweep(): void {
    if (this.#sessions.size === 0) {
      clearInterval(this.#sweep!);
      this.#sweep = null;
      return;
    }
    const now = performance.now();
    for (const [session, use] of this.#sessions) {
      // Node destroys a closed session once its last stream is done, then waits for the client to close. A
      // closed session with streams running lets them finish.
      const state = session.destroyed ? CLOSING : use.open > 0 || session.closed ? BUSY : use.started;
      if (state !== use.seen) {
        use.seen = state;
        use.since = now;
      } else if (state === CLOSING) {
        if (now - use.since >= GOAWAY_GRACE_MS && use.endSocket) {
          use.endSocket();
          use.endSocket = null;
        }
      } else if (state !== BUSY && now - use.since >= (state === 0 ? this.#firstMs : this.#idleMs)) {
        session.close();
      }
    }
  }
}

/** The socket's destroySoon, through the session's proxy socket (which lets no destroy() through). */
function endSocketOf(session: http2.ServerHttp2Session): (() => void) | null {
  const end = (session.socket as net.Socket | undefined)?.destroySoon;
  return typeof end === 'function' ? end : null;
}

/** Node's ServerResponse with the method that writes its head (every Node version since 0.x has it). */
type StoringResponse = http.ServerResponse & { _storeHeader: (firstLine: string, headers: unknown) => void };

const closing = new WeakSet<object>();

/** Whether `name` is `Connection` and `value` does not say close. */
function keepsOpen(name: unknown, value: unknown): boolean {
  return typeof name === 'string' && name.length === 10 && name.toLowerCase() === 'connection' && !/\bclose\b/i.test(String(value));
}

/**
 * A response that is to close its connection (the client's `Connection: close` or HTTP/1.0, a worker
 * stopping, `keepalive` 0, the sync class, a gthread thread over its share) says so, whatever `Connection` the
 * app set. Node reads an app's `Connection: keep-alive` as an order to keep the connection (its
 * `shouldKeepAlive` becomes true): the response said keep-alive and the connection stayed open, against the
 * client's `close` (RFC 9112 section 9.6) and the server's decision, and a stopping worker's client could send
 * its next request on a connection about to close. The app's value becomes `close` when the head is written.
 * Costs one property read per response; only one that closes looks for the field.
 */
export function closeAsDecided(proto: http.ServerResponse): void {
  if (closing.has(proto)) return;
  closing.add(proto);
  const store = (proto as StoringResponse)._storeHeader;
  Object.defineProperty(proto, '_storeHeader', {
    configurable: true,
    writable: true,
    value: function _storeHeader(this: StoringResponse, firstLine: string, headers: unknown): void {
      if (!this.shouldKeepAlive && this.statusCode !== 101) headers = closingHeaders(this, headers);
      store.call(this, firstLine, headers);
    },
  });
}

/** `headers` (as writeHead gives them to _storeHeader) with an app's `Connection` other than close made close. */
function closingHeaders(res: StoringResponse, headers: unknown): unknown {
  // Fields set with setHeader(): `headers` is the response's own table, which setHeader() changes in place.
  if (res.hasHeader('connection')) {
    if (keepsOpen('connection', res.getHeader('connection'))) res.setHeader('connection', 'close');
    return headers;
  }
  // Fields given to writeHead() alone: its object or list, copied with the value changed.
  if (headers === null || typeof headers !== 'object') return headers;
  if (Array.isArray(headers)) {
    if (Array.isArray(headers[0])) {
      const pairs = headers as [unknown, unknown][];
      return pairs.some((p) => keepsOpen(p[0], p[1])) ? pairs.map((p) => (keepsOpen(p[0], p[1]) ? [p[0], 'close'] : p)) : headers;
    }
    let found = false;
    for (let i = 0; i < headers.length && !found; i += 2) found = keepsOpen(headers[i], headers[i + 1]);
    if (!found) return headers;
    const copy = [...(headers as unknown[])];
    for (let i = 0; i < copy.length; i += 2) if (keepsOpen(copy[i], copy[i + 1])) copy[i + 1] = 'close';
    return copy;
  }
  const record = headers as Record<string, unknown>;
  for (const k in record) {
    if (Object.hasOwn(record, k) && keepsOpen(k, record[k])) return { ...record, [k]: 'close' };
  }
  return headers;
}
