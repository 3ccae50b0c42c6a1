import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { appWork } from '../app/app-work.js';
import { fdOf } from '../http/peek.js';
import type { ErrorLog } from '../logging/error-log.js';
import type { HeldRegistry } from './held-sockets.js';
import { acceptTimes, type Serving } from './serving.js';

/**
 * What waits for its turn: a connection not read yet (`req` unset), or a request that came on a connection
 * already served (kept alive, or pipelined) while another request ran. `held`: a new connection's entry in the
 * HeldRegistry, if it has one.
 */
interface Queued {
  readonly socket: net.Socket;
  held: number | undefined;
  readonly req?: IncomingMessage;
  readonly res?: ServerResponse;
  /** When the request was queued: the start of its queue time. */
  readonly at?: number;
}

export interface Busy {
  /**
   * A connection was just accepted. Called synchronously from the 'connection' event: a class that stops
   * accepting here (closes its listening descriptors) accepts nothing more, not even on the next turn of
   * the loop (libuv accepts again on each turn while connections are pending).
   */
  onAdmit(): void;
  /** A request starts running, on a new connection or a kept-alive one (gthread, which admitted nothing then). */
  onRun?(): void;
  /** Nothing is running and nothing is queued. */
  onIdle(): void;
}

export interface OneAtATimeOptions {
  /**
   * Lets the class stop accepting while it is busy (sync from the moment it holds a connection; a gthread
   * thread, where the native dup() is built, once a request outlasts the turn that started it), so the kernel
   * keeps the others for idle workers or threads (and a worker killed for a timeout takes no one else's
   * connection with it). Connections accepted while a request runs anyway (by a thread without the module, or
   * in the turn that started the request) queue here, unread, each recorded in `held` so the process can hand
   * them over if the thread gets stuck.
   */
  readonly busy?: Busy;
  readonly held?: HeldRegistry;
  /**
   * Keep connections alive between requests (gthread, as Gunicorn's): a connection whose response is sent stays
   * open without holding the turn, and its next request queues behind whatever waits. Otherwise every response
   * says `Connection: close` (sync).
   */
  readonly keepAlive?: boolean;
  /**
   * With `keepAlive`: the most connections kept open (a gthread thread's share of `worker_connections`). A
   * thread does not stop accepting at it, so a response given while more are open says `Connection: close`: idle
   * kept-alive connections never add up past it.
   */
  readonly maxConnections?: number;
  /**
   * Where a gthread thread records each kept-alive connection while it is idle between two requests, so the
   * process can hand it over if the thread gets stuck (plain HTTP/1 only: over TLS the session is the
   * thread's). Taken back when its next request comes, or when it closes.
   */
  readonly kept?: HeldRegistry;
  /**
   * For the line that says a turn waits on a handler whose client left, and request_deadline (ms, 0: none),
   * which bounds that wait as it bounds the request: past it the next request runs.
   */
  readonly log?: ErrorLog;
  readonly deadlineMs?: number;
}

/** The app's work for the request of the current turn (see appWork): pending until `settled`. */
interface Work {
  readonly res: ServerResponse;
  readonly req: IncomingMessage;
  readonly start: number;
  settled: boolean;
  /** The end of the turn, waiting for the work to settle. */
  then: (() => void) | null;
}

/** What `kept` needs of an open connection: its listener, and its entry while it is idle and recorded. */
interface Kept {
  readonly listener: number;
  token: number | undefined;
}

/** Takes a record back from its registry: false when the process claimed it (handed over). */
const takeBack = (registry: HeldRegistry | null, token: number | undefined): boolean =>
  token === undefined || registry === null || registry.take(token);

/** The connection a request came on: over TLS the request's socket wraps the one accepted. */
const connectionOf = (req: IncomingMessage): net.Socket => {
  const socket = req.socket as net.Socket & { _parent?: net.Socket | null };
  return socket._parent ?? socket;
};

/**
 * Runs one request at a time (Gunicorn's sync worker, and each thread of its gthread worker). Connections
 * accepted while a request runs wait here, in order, unread, and are served in turn: never dropped, never
 * served at once. So do requests that arrive on connections served before (kept alive or pipelined): the
 * app's listener runs for them when their turn comes.
 *
 * A turn belongs to one connection: from being handed to Node's parser until its first request's response
 * closes (sent or cut), or the connection does; then, for each later request, from its arrival (or its place
 * in the queue) until its response closes.
 */
export class OneAtATime {
  readonly #queue: Queued[] = [];
  /** The connection whose turn it is. */
  #current: net.Socket | null = null;
  /** Its request runs (else it waits for its first request to be read). */
  #running = false;
  /** Ends the current turn (once): its response closed (sent, or cut), or its connection did. */
  #finished: (() => void) | null = null;
  readonly #busy: Busy | null;
  readonly #held: HeldRegistry | null;
  readonly #keepAlive: boolean;
  readonly #maxConnections: number;
  readonly #kept: HeldRegistry | null;
  /** With `kept`: every open connection's record (nothing of ours is stored on the socket). */
  readonly #conns = new Map<net.Socket, Kept>();
  /** The request that runs, and the app's work for it once the app's listener returned a promise. */
  #req: IncomingMessage | null = null;
  #res: ServerResponse | null = null;
  #work: Work | null = null;
  readonly #log: ErrorLog | null;
  readonly #deadlineMs: number;
  /** A connection's turn is under way (a request runs, or a connection waits for its first): not idle. */
  get busy(): boolean {
    return this.#current !== null;
  }

  /** The server's own request listeners (the request wrapper and the app), run when a request's turn comes. */
  readonly #app: (req: IncomingMessage, res: ServerResponse) => void;

  constructor(
    private readonly serving: Serving,
    options: OneAtATimeOptions = {},
  ) {
    this.#busy = options.busy ?? null;
    this.#held = options.held ?? null;
    this.#keepAlive = options.keepAlive ?? false;
    this.#maxConnections = options.maxConnections ?? Infinity;
    this.#kept = (this.#keepAlive && options.kept) || null;
    this.#log = options.log ?? null;
    this.#deadlineMs = options.deadlineMs ?? 0;
    appWork.track = (res, work) => this.track(res, work);
    serving.setAdmit((socket, _serve, listener) => this.admit(socket, listener));
    const server = serving.http;
    const app = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
    server.removeAllListeners('request');
    this.#app =
      app.length === 1 ? app[0]!.bind(server) : (req, res) => { for (const l of app) l.call(server, req, res); };
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    serving.onUpgrade = (req) => this.upgraded(req);
  }

  /**
   * An upgrade (WebSocket) or CONNECT request went to the app, which owns its connection from now on: the
   * turn ends here, not when the connection closes, or one WebSocket would hold the worker (or thread) for its
   * whole life while the connections behind it waited. The app's handlers for its messages run on the event
   * loop between other requests. Nor is the connection a kept-alive one the process may hand over any more.
   */
  private upgraded(req: IncomingMessage): void {
    const socket = connectionOf(req);
    const kept = this.#kept ? this.#conns.get(socket) : undefined;
    if (kept) {
      this.#conns.delete(socket);
      this.unpark(kept);
    }
    // Only a turn still waiting for its first request: a request pipelined before the upgrade may still run,
    // and its response's close ends the turn.
    if (this.#current === socket && !this.#running) this.#finished?.();
  }

  // Nothing of ours is stored on the socket (see SlotTable.put): the queue entries and the closures keep it.
  private admit(socket: net.Socket, listener: number): void {
    this.#busy?.onAdmit();
    const entry: Queued = { socket, held: this.#held && this.#current ? this.#held.hold(fdOf(socket), listener) : undefined };
    const kept: Kept | null = this.#kept ? { listener, token: undefined } : null;
    if (kept) this.#conns.set(socket, kept);
    socket.once('close', () => {
      if (kept) {
        this.#conns.delete(socket);
        this.unpark(kept);
      }
      const queue = this.#queue;
      // Whatever still waits for this connection: itself, unread, or requests that came on it.
      for (let i = queue.length - 1; i >= 0; i--) {
        const e = queue[i]!;
        if (e.socket !== socket) continue;
        queue.splice(i, 1);
        if (e === entry) this.release(entry);
      }
      if (this.#current === socket) this.#finished?.();
    });
    this.#queue.push(entry);
    if (!this.#current) this.next();
  }

  /** Takes a queued socket back from the HeldRegistry: false when the process claimed it (handed over). */
  private release(entry: Queued): boolean {
    const token = entry.held;
    entry.held = undefined;
    return takeBack(this.#held, token);
  }

  private next(): void {
    const queue = this.#queue;
    let entry = queue.shift();
    while (entry) {
      // A request runs unless its connection is gone or closing (after a `Connection: close` response, Node
      // writes nothing more there: a request pipelined behind it is never answered).
      if (entry.req ? entry.socket.writable && !entry.res!.destroyed : this.release(entry)) break;
      // A connection claimed by the process for another worker: not ours to serve, read or close any more.
      if (!entry.req) this.serving.forget(entry.socket);
      entry = queue.shift();
    }
    if (!entry) {
      this.#current = null;
      this.#finished = null;
      this.#running = false;
      this.#busy?.onIdle();
      return;
    }
    if (entry.req) {
      // Its wait is its queue time (%(Q)s, queueTime()): the request wrapper takes it as a first request's.
      acceptTimes.accepted(entry.socket, entry.at!);
      this.run(entry.socket, entry.req, entry.res!);
    } else {
      this.turn(entry.socket, false);
      this.serving.serve(entry.socket);
    }
  }

  /**
   * Gives `socket` the turn; the returned function ends it (once, and only while it is the current turn), and
   * with `park` records the connection as idle (see `kept`).
   */
  private turn(socket: net.Socket, running: boolean, park = false): () => void {
    this.#current = socket;
    this.#running = running;
    let done = false;
    const finished = () => {
      if (done) return;
      // The response closed (or the connection did) while the app's handler still runs (its client left, or it
      // works on after answering): the next request waits for the handler, as it would with the client there.
      const work = this.#work;
      if (work !== null && !work.settled && running) {
        if (work.then === null) this.holdFor(work, finished);
        return;
      }
      done = true;
      if (park) this.park(socket);
      // After every listener of the event that ended it: the request wrapper's (access log, post_request)
      // and the app's own 'close' listeners still belong to this turn.
      if (this.#finished === finished) process.nextTick(() => this.#finished === finished && this.next());
    };
    this.#finished = finished;
    return finished;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (!this.#keepAlive || this.serving.connections > this.#maxConnections) res.shouldKeepAlive = false;
    const socket = connectionOf(req);
    const kept = this.#kept ? this.#conns.get(socket) : undefined;
    // Handed to another worker while this thread was stuck: the process is on its way out, and the request
    // is not ours to answer.
    if (kept && !this.unpark(kept)) return;
    if (this.#current === null || (this.#current === socket && !this.#running)) this.run(socket, req, res);
    else this.#queue.push({ socket, held: undefined, req, res, at: performance.now() });
  }

  private run(socket: net.Socket, req: IncomingMessage, res: ServerResponse): void {
    this.#req = req;
    this.#res = res;
    this.#work = null;
    // 'close', not 'finish': what runs on the response's close (the request wrapper's access log and
    // post_request, the app's own listeners) belongs to the turn too. Node emits it one tick after 'finish',
    // or when the connection goes.
    res.once('close', this.turn(socket, true, this.#kept !== null && req.socket === socket));
    this.#busy?.onRun?.();
    this.#app(req, res);
  }

  /** The app's listener returned a promise for the request that runs (see appWork). */
  private track(res: ServerResponse, promise: PromiseLike<unknown>): void {
    if (res !== this.#res) return;
    const work: Work = { res, req: this.#req!, start: performance.now(), settled: false, then: null };
    this.#work = work;
    const settle = (): void => this.settle(work);
    promise.then(settle, settle);
  }

  /** The work is done (its promise settled) or no longer waited for: the turn it held may end. */
  private settle(work: Work): void {
    work.settled = true;
    if (this.#work === work) this.#work = null;
    work.then?.();
  }

  /**
   * The turn ended but for `work`, which still runs: `finished` ends it once the work settles, or at
   * request_deadline, past which tunicorn no longer waits for a request (the next one runs beside it).
   */
  private holdFor(work: Work, finished: () => void): void {
    const left = this.#deadlineMs > 0 ? this.#deadlineMs - (performance.now() - work.start) : Infinity;
    // Cut at request_deadline (which the log said, with its 503): the worker is freed, as that cut promises.
    if (left <= 0) {
      this.settle(work);
      return finished();
    }
    // Sent whole: the usual case of a listener that ended its response before it returned (Node emits the
    // response's 'close' on the next tick, before the promise's reaction runs). Or work after the response.
    if (work.res.writableFinished) {
      work.then = finished;
      return;
    }
    const what = `${work.req.method} ${work.req.url}`;
    this.#log?.debug(`The client of ${what} left before its response; the next request waits for its handler to return`);
    let timer: NodeJS.Timeout | undefined;
    work.then = () => {
      clearTimeout(timer);
      finished();
    };
    if (this.#deadlineMs > 0) {
      timer = setTimeout(() => {
        this.#log?.warning(`The handler of ${what} still runs ${(this.#deadlineMs / 1000).toString()} s after it began, past request_deadline, and its client left: the next request runs beside it`);
        this.settle(work);
      }, left);
      timer.unref();
    }
  }

  /**
   * Records a kept-alive connection that is idle after its response (see `kept`): open and writable (not
   * closing after a `Connection: close`), with no request of its own queued.
   */
  private park(socket: net.Socket): void {
    const kept = this.#conns.get(socket);
    if (!kept || kept.token !== undefined || !socket.writable) return;
    for (const e of this.#queue) if (e.socket === socket) return;
    kept.token = this.#kept!.hold(fdOf(socket), kept.listener);
  }

  /** Takes a parked connection back: false when the process claimed it (handed over). */
  private unpark(kept: Kept): boolean {
    const token = kept.token;
    kept.token = undefined;
    return takeBack(this.#kept, token);
  }
}
