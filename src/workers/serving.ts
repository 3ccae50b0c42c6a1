import http from 'node:http';
import net from 'node:net';
// The module's binding, not the global: `performance` on globalThis is a lazy getter, dearer on every read.
import { performance } from 'node:perf_hooks';
import { expressTrustsProxy, swapsPrototypes, type ServedApp } from '../app/shapes.js';
import { forgetPeer } from '../http/forwarded.js';
import { connectionsList, sleepSweepsWhenIdle, wakeSweeps } from '../http/keep-alive.js';
import { fdOf, holdsRequestBytes, openPeek, type Peek } from '../http/peek.js';
import { asksToContinue, hasOtherExpectation, HttpLayer } from '../http/server.js';
import type { ListenerInfo } from '../protocol/messages.js';
import { adoptPipe, isPipeHandle, learnNetInternals } from './adopt-pipe.js';
import type { WorkerRuntime } from './runtime.js';
import { AcceptTimes } from './queue-time.js';
import { DescriptorWatch } from './descriptor-watch.js';
import { SlotTable } from './slot-table.js';

/** How long keep-alive clients get `Connection: close` answers before idle connections are closed. */
const DRAIN_IDLE_GRACE_MS = 1000;
/** TERM drain: how often to look for connections still queued in the backlog, and for how long at most. */
const DRAIN_QUIET_MS = 50;
const DRAIN_ACCEPT_MAX_MS = 2000;

/**
 * Node's closeIdleConnections(), run from the check phase of this turn of the event loop, after its poll phase
 * has read what clients sent: a connection whose next request is there is then busy with it (it is answered,
 * with `Connection: close`) and is left open. Called from a timer (a stop's grace, its sweep), it ran before the
 * poll, and a request that had reached the kernel while the loop was busy was closed unread, which resets the
 * connection: the client saw ECONNRESET on a reused connection (the idle keep-alive close race).
 *
 * A request can also come in after that poll, while the loop is still busy in it (a request that blocks it, read
 * in the same poll): closed unread, it was reset as well (seen with clients stalled on a loaded machine). So each
 * idle connection's descriptor is looked at first (`peek`, MSG_PEEK, one system call per idle connection, only
 * during a stop): one the kernel holds bytes for is left to the next turn, which reads its request. What comes
 * in after the close, from a client that had not read it yet, remains the client's to retry (RFC 9112 section
 * 9.3.1). Without `peek` (the native module not built; a TLS socket, with no descriptor of its own), Node's
 * closeIdleConnections().
 */
function closeIdleAfterPoll(h1: Partial<Pick<http.Server, 'closeIdleConnections'>>, peek: Peek | null): void {
  setImmediate(() => {
    const list = peek && connectionsList(h1 as http.Server);
    if (!list) return void h1.closeIdleConnections?.();
    for (const { socket } of list.idle()) {
      if (!socket || socket.destroyed) continue;
      // As Node's closeIdleConnections(): a response still being written holds its connection.
      if (socket._httpMessage && !socket._httpMessage.finished) continue;
      // Empty lines alone are no request: a client sending them without pause would hold it to the end.
      if (holdsRequestBytes(peek, fdOf(socket))) continue;
      socket.destroy();
    }
  });
}

/** When each connection still waiting for its first request was accepted (the queue time, runtime.ts). */
export const acceptTimes = new AcceptTimes();

/**
 * Decides when an accepted connection is served. The default serves it at once; a worker class that runs one
 * request at a time (sync, a gthread thread) or caps its connections (async) holds connections back here.
 * `serve` must be called exactly once per admitted socket, unless the socket closed first.
 */
export type Admit = (socket: net.Socket, serve: (socket: net.Socket) => void, listener: number) => void;

/**
 * The HTTP server of one worker (or one gthread thread) on the inherited listening sockets.
 *
 * One plain net.Server per listening socket accepts and hands the connection to `admit`, which passes it on to
 * the one http.Server; the http.Server itself never listens, so a class can close and re-open accepting
 * (`closeAcceptor` / `listenAcceptor`) without touching the app's server or its connections. The app's own
 * http.Server, when it made one, is served as it is.
 */
export class Serving {
  readonly http: http.Server;
  /** The server Node parses requests with (plain, TLS or HTTP/2), its limits, proxy headers and gate. */
  readonly layer: HttpLayer;
  readonly #acceptors: (net.Server | null)[];
  /** Every connection accepted and not yet closed (served or held back by `admit`). */
  readonly #open = new SlotTable<net.Socket>();
  #admit: Admit = (socket, serve) => serve(socket);
  /** The class's part of a connection's close, run from Serving's own 'close' listener (one per socket). */
  #onClose: ((socket: net.Socket) => void) | null = null;
  #stopping: Promise<void> | null = null;
  /**
   * When a connection was last handed to the http.Server during a stop, or when the stop began (the drain must
   * not close a connection as idle before its first request).
   */
  #lastServed = 0;
  /** When the stop began. */
  #stopAt = 0;
  /**
   * The stop's look at an idle connection's descriptor before closing it (closeIdleAfterPoll), made when first
   * needed; null when there is none (the native module not built).
   */
  #peek: Peek | null | undefined;
  #drained: (() => void) | null = null;
  /** A graceful stop's early app shutdown, due once every connection left is an upgraded one (see stop). */
  #upgradesOnly: (() => Promise<void>) | null = null;
  /** Connections accepted so far (the TERM drain watches it). */
  #accepted = 0;
  #acceptorsClosed = false;
  /** listen() ran: the worker accepts (or paused accepting: sync while busy, async at its cap). */
  #listened = false;
  /** Set by a class that runs one request at a time (OneAtATime): an upgrade or CONNECT request went to the app. */
  onUpgrade: ((req: http.IncomingMessage) => void) | null = null;
  /**
   * The accepted connections (of `#open`) an upgrade or CONNECT request took over, until they close: counted
   * here, on the accepted socket, and left in #closed before the check, so that the connection closing is
   * never counted as still upgraded (the runtime's own count, on the TLS socket, drops later).
   */
  readonly #upgraded = new Set<net.Socket>();
  /** Says when an accepted connection shows the worker at its open-file limit. */
  readonly #descriptors: DescriptorWatch;
  /** The app's own server (a listen() captured, an exported http.Server), or null. */
  readonly #own: http.Server | null;

  constructor(
    private readonly runtime: WorkerRuntime,
    served: ServedApp,
    private readonly listeners: readonly ListenerInfo[],
  ) {
    let ownsProxyTrust = served.ownsProxyTrust === true;
    this.#own = (served.server as http.Server | undefined) ?? null;
    if (served.server) {
      const own = served.server;
      // It never listens itself (the acceptors do): its close(cb), a Node app's usual graceful stop (in its
      // `shutdown` or a SIGTERM listener), would call back with ERR_SERVER_NOT_RUNNING, an error the app did
      // not make. It calls back as on a server that listened, when the server emits 'close'.
      const close = own.close;
      own.close = function (this: http.Server, cb?: (err?: Error) => void): http.Server {
        if (typeof cb !== 'function' || (this as unknown as { _handle: unknown })._handle) return close.call(this, cb);
        this.once('close', () => cb());
        return close.call(this);
      };
      const theirs = own.listeners('request') as ((req: http.IncomingMessage, res: http.ServerResponse) => void)[];
      // Its 'checkContinue' and 'checkExpectation' listeners answer the requests that ask for `100-continue`, or
      // expect something else, instead: Node would give those to them directly, past the checks, the forwarded
      // headers, the access log and the error handling (see AppExpectations).
      const continues = own.listeners('checkContinue') as typeof theirs;
      const expectations = own.listeners('checkExpectation') as typeof theirs;
      own.removeAllListeners('checkContinue');
      own.removeAllListeners('checkExpectation');
      const listenersFor = (req: http.IncomingMessage): typeof theirs => {
        if (continues.length > 0 && asksToContinue(req)) return continues;
        if (expectations.length > 0 && hasOtherExpectation(req)) return expectations;
        return theirs;
      };
      // An app's own server whose 'request' listener is an Express app (Nest on Express, a listen() captured).
      ownsProxyTrust ||= theirs.some((l) => expressTrustsProxy(l));
      this.layer = new HttpLayer(runtime.config, runtime.log, runtime.wrap((req, res) => {
        try {
          for (const l of listenersFor(req)) l.call(own, req, res);
        } catch (err) {
          runtime.onAppError(err, req, res);
        }
      }), own, (req, socket) => {
        runtime.upgrading(req, socket);
        const accepted = (socket as net.Socket & { _parent?: net.Socket | null })._parent ?? (socket as net.Socket);
        if (this.#open.indexOf(accepted) >= 0) this.#upgraded.add(accepted);
        this.onUpgrade?.(req);
      }, { continues: continues.length > 0, expectations: expectations.length > 0, swapsPrototypes: theirs.some((l) => swapsPrototypes(l)) }, runtime.refusalLog);
    } else {
      this.layer = new HttpLayer(runtime.config, runtime.log, runtime.wrap(served.listener!), undefined, undefined, { swapsPrototypes: served.swapsPrototypes === true }, runtime.refusalLog);
    }
    this.http = this.layer.server as http.Server;
    // The layer's sweeps (keep-alive, body_timeout, request_deadline) have nothing to look at without a connection.
    sleepSweepsWhenIdle(() => this.#open.size);
    if (ownsProxyTrust) this.layer.keepPeer();
    const layer = this.layer;
    if (runtime.ticketKeys !== null) layer.useTicketKeys(runtime.ticketKeys);
    runtime.onTicketKeys((keys) => {
      if (layer.useTicketKeys(keys)) runtime.log.debug('TLS session-ticket keys rotated: this server issues and accepts tickets under the new ones');
    });
    this.#acceptors = listeners.map(() => null);
    const { workerClass, workerConnections } = runtime.config;
    this.#descriptors = new DescriptorWatch((open, limit) =>
      runtime.log.error(
        `Worker (pid:${process.pid}) is at its open-file limit: ${open} of ${limit} descriptors open (ulimit -n). ` +
          `Until some close, new connections are accepted and closed at once, unanswered (libuv's answer to EMFILE), ` +
          `and nothing else logs them. Raise the limit (ulimit -n, systemd's LimitNOFILE=)` +
          (workerClass === 'sync' ? '' : ` or lower --worker-connections (${workerConnections})`),
      ),
    );
  }

  /**
   * A TERM drain that finds this class busy with an event stream, with nothing else open but other streams
   * and upgraded connections, ends at once (a gthread thread sets it): the stream ends only with the app's
   * shutdown, which runs after the drain, so a paused thread's drain waited for it until the cut at 80 % of
   * graceful_timeout, and one that accepted queued each new connection behind it, unread, to be reset at the
   * cut. The worker's other threads, and the other workers, drain the backlog.
   */
  drainSkipsStreams = false;

  get stopping(): boolean {
    return this.#stopping !== null;
  }

  /** The stop closed the listeners for good (after the TERM drain, if any): no acceptor may open again. */
  get acceptorsClosed(): boolean {
    return this.#acceptorsClosed;
  }

  /** Connections accepted and not closed yet. */
  get connections(): number {
    return this.#open.size;
  }

  /**
   * Installs the class's admission policy (before `listen`), and what the class does when a connection it was
   * given closes: `onClose` runs from Serving's own 'close' listener, so a class adds none of its own.
   */
  setAdmit(admit: Admit, onClose: ((socket: net.Socket) => void) | null = null): void {
    this.#admit = admit;
    this.#onClose = onClose;
  }

  /** Accepts on every listener; resolves once all of them listen. */
  async listen(): Promise<void> {
    if (this.listeners.length === 0) throw new Error('no listening sockets were handed to this worker');
    for (let i = 0; i < this.listeners.length; i++) await this.listenAcceptor(i, this.listeners[i]!.fd);
    this.#listened = true;
    // The server answers address() and `listening` as if it listened itself: with the first listener's
    // address, and true until the stop closes the listeners. An app's code asks once its server listens
    // (Fastify's listen() reads the address to log it, and throws on null; Nest resolves listen() only once
    // it has one).
    const address = this.#acceptors[0]!.address();
    // With --certfile the server that serves is tunicorn's TLS one, and the app's own (a listen() captured)
    // only lends it its listeners: the app's server is told too, or its listen() callback never ran (Express,
    // Hono's serve()), and an `await app.listen()` at the top of the module (Fastify, Nest) never returned.
    const own = this.#own !== null && this.#own !== this.http ? this.#own : null;
    for (const server of own ? [this.http, own] : [this.http]) {
      Object.defineProperty(server, 'address', { value: () => address, configurable: true, writable: true });
      Object.defineProperty(server, 'listening', { get: () => !this.#acceptorsClosed, configurable: true });
    }
    // The http.Server never listens itself (the acceptors do), but Node starts its connection tracking on
    // 'listening': without it there is no header timeout and closeIdleConnections() does nothing. An app's
    // own 'listening' handlers (a captured listen() callback) run here too, as they would on a real listen.
    this.http.emit('listening');
    own?.emit('listening');
  }

  /**
   * Accepts on listener `i` again, on `target`: an inherited descriptor, or a raw handle the master sent
   * (a fresh duplicate: closing an acceptor closes its descriptor).
   */
  listenAcceptor(i: number, target: number | object): Promise<void> {
    // Sockets arrive paused, unread until served: the connection gate reads the first bytes itself on plain
    // HTTP (PROXY header, request line, h2c preface), Node's TLS server starts reading when it takes one, and
    // a connection a class holds back stays unread, so it can be handed to another worker (HeldSockets).
    const acceptor = net.createServer(
      { noDelay: true, allowHalfOpen: this.allowHalfOpen, pauseOnConnect: true },
      (socket) => this.onConnection(socket, i),
    );
    this.#acceptors[i] = acceptor;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      acceptor.once('error', onError);
      const done = () => {
        acceptor.off('error', onError);
        resolve();
      };
      const backlog = this.runtime.config.backlog;
      if (typeof target === 'number') {
        // The backlog as an argument: Node reads no `backlog` in the options of an `fd` listen (it used 511).
        acceptor.listen({ fd: target }, backlog, () => {
          learnNetInternals(acceptor);
          done();
        });
      } else if (isPipeHandle(target) && adoptPipe(acceptor, target, backlog)) {
        process.nextTick(done);
      } else {
        acceptor.listen(target, backlog, done);
      }
    });
  }

  /** The descriptor listener `i` accepts on in this process, or -1 (not accepting). */
  acceptorFd(i: number): number {
    const a = this.#acceptors[i];
    return a ? fdOf(a) : -1;
  }

  /** Stops accepting on listener `i` (closes this copy of the socket; other workers keep accepting). */
  closeAcceptor(i: number): void {
    const a = this.#acceptors[i];
    this.#acceptors[i] = null;
    a?.close();
  }

  /**
   * What the server would have given its own sockets: true for plain HTTP (Node's parser handles a client's
   * half-close), false for TLS and HTTP/2, whose sockets otherwise never close after the client's FIN.
   */
  private get allowHalfOpen(): boolean {
    return (this.http as unknown as net.Server & { allowHalfOpen?: boolean }).allowHalfOpen ?? true;
  }


  /**
   * A connection another process accepted, handed over by the master (it was held back, unread, in a worker
   * that timed out): admitted as if listener `listener` had just accepted it. `fd` is its descriptor in this
   * process (a gthread thread: the process's main thread received it). False once the stop has closed the
   * listeners: the worker is on its way out.
   */
  adopt(listener: number, fd: number): boolean {
    if (this.#acceptorsClosed) return false;
    const socket = new net.Socket({
      fd,
      readable: true,
      writable: true,
      allowHalfOpen: this.allowHalfOpen,
      // What net.Server passes for pauseOnConnect: the socket is created without reading.
      pauseOnCreate: true,
    } as unknown as net.SocketConstructorOpts);
    socket.setNoDelay(true);
    this.onConnection(socket, listener);
    return true;
  }

  /**
   * Lets go of a held connection that was handed to another process: no longer tracked or served here, and
   * not closed (its descriptor goes with this thread or process).
   */
  forget(socket: net.Socket): void {
    // Its 'close' listener stays; it finds the place empty (or another socket's) and does nothing.
    this.#closed(this.#open.indexOf(socket), socket, fdOf(socket));
  }

  /** Serves a connection now: the http.Server parses its requests. */
  readonly serve = (socket: net.Socket): void => {
    if (socket.destroyed) return;
    // Only the drain reads it, and it starts from the stop (no clock read per connection before that).
    if (this.#stopping !== null) this.#lastServed = performance.now();
    this.layer.connection(socket);
  };

  private onConnection(socket: net.Socket, listener: number): void {
    const fd = acceptTimes.accepted(socket, performance.now());
    this.#descriptors.accepted(fd);
    this.#accepted++;
    const slot = this.#open.put(socket);
    wakeSweeps();
    // A closure per connection keeps its places: nothing of ours is stored on Node's socket.
    socket.on('close', () => {
      this.#closed(slot, socket, fd);
      this.#onClose?.(socket);
    });
    this.#admit(socket, this.serve, listener);
  }

  /** A connection closed, or was handed to another process. `fd`: its key in `acceptTimes`. */
  #closed(slot: number, socket: net.Socket, fd: number): void {
    acceptTimes.forget(socket, fd);
    forgetPeer(socket, fd);
    if (this.#upgraded.size > 0) this.#upgraded.delete(socket);
    if (!this.#open.removeAt(slot, socket)) return;
    if (this.#open.size === 0) this.#drained?.();
    else if (this.#upgradesOnly !== null) this.checkUpgradesOnly();
  }

  /**
   * A graceful stop near its end (80 % of graceful_timeout): the upgraded connections the app left open are
   * closed (the accepted socket: a TLS one goes with it), so the worker exits by itself, its workerExit hook
   * run, rather than by the master's kill.
   */
  private closeUpgraded(): void {
    const n = this.#upgraded.size;
    if (n === 0) return;
    this.runtime.log.warning(`Graceful stop: closing ${n} upgraded connection(s) (WebSocket, CONNECT) the app left open at 80 % of graceful_timeout`);
    for (const socket of this.#upgraded) socket.destroy();
  }

  /**
   * Runs the stop's `upgradesOnly` once the listeners are closed and every connection still open is an
   * upgraded one or carries only event streams (runtime.eventStreamConnections): no request is left to
   * finish, and the app alone can end the rest. Marked handled here; the class that passed it awaits its
   * outcome.
   */
  private checkUpgradesOnly(): void {
    const run = this.#upgradesOnly;
    if (run === null || !this.#acceptorsClosed) return;
    if (this.#open.size > this.#upgraded.size && !this.streamsOnly()) return;
    this.#upgradesOnly = null;
    run().catch(() => {});
  }

  /** An event stream runs, and every connection still open carries one or is upgraded (drainSkipsStreams). */
  private streamsOnly(): boolean {
    const streams = this.runtime.eventStreamConnections();
    return streams > 0 && this.#open.size <= this.#upgraded.size + streams;
  }

  /** The stop's `peek` (closeIdleAfterPoll), made at its first use. */
  private idlePeek(): Peek | null {
    if (this.#peek === undefined) {
      const peek = openPeek();
      this.#peek = typeof peek === 'string' ? null : peek;
    }
    return this.#peek;
  }

  /**
   * Graceful: stop accepting (the other workers, or the backlog, take new connections), answer every
   * request still to come on open connections with `Connection: close`, close idle keep-alive connections
   * after a short grace, and resolve once every connection has ended. With `runtime.acceptDrain` (TERM) the
   * listeners stay open until the backlog is empty: closing the last copy of a listening socket resets the
   * connections queued in it. Not graceful: cut everything now.
   *
   * `upgradesOnly` (graceful only): run once no connection but upgraded ones (WebSockets, CONNECT tunnels) or
   * event streams is left open, which no drain ends: the app's shutdown, which can close them
   * (runtime.shutdownApp).
   */
  stop(graceful: boolean, upgradesOnly?: () => Promise<void>): Promise<void> {
    // An HTTP/2 server has no idle-connection calls: its sessions get a GOAWAY (closeSessions) instead.
    const h1 = this.http as Partial<Pick<http.Server, 'closeAllConnections' | 'closeIdleConnections'>>;
    if (!graceful) {
      h1.closeAllConnections?.();
      for (const s of this.#open.values()) s.destroy();
    }
    if (this.#stopping) return this.#stopping;
    if (graceful && upgradesOnly) this.#upgradesOnly = upgradesOnly;
    this.runtime.beginDrain();
    // HTTP/2 sessions get their GOAWAY now, as HTTP/1 responses say `Connection: close` from now on: not after
    // the backlog drain, which a class paused by the session itself (sync while it serves one) waits out.
    if (graceful) this.layer.closeSessions();
    this.#lastServed = this.#stopAt = performance.now();
    // A server that never listened (a gthread thread stopped between its load and `go`) has no backlog of
    // its own to drain: the others', or the next master's, take it. One that paused accepting (sync while it
    // serves, async at its cap) has closed its acceptors for now, not for good: it drains once it resumes.
    const listened = this.#listened || this.#acceptors.some((a) => a !== null);
    const drain = graceful && this.runtime.acceptDrain && listened ? this.drainBacklog(h1) : Promise.resolve();
    this.#stopping = drain.then(() => this.close(graceful, h1));
    return this.#stopping;
  }

  private close(graceful: boolean, h1: Partial<Pick<http.Server, 'closeIdleConnections'>>): Promise<void> {
    this.#acceptorsClosed = true;
    for (let i = 0; i < this.#acceptors.length; i++) this.closeAcceptor(i);
    if (graceful && this.runtime.acceptDrain) this.runtime.reportDrained();
    this.layer.closeSessions();
    return new Promise<void>((resolve) => {
      // Not http.Server.close(): it closes idle keep-alive connections at once, racing clients that are
      // sending a request on them right now (FACTS: 4-9 requests lost per reload).
      const timers: NodeJS.Timeout[] = [];
      this.#drained = () => {
        for (const t of timers) clearTimeout(t);
        resolve();
      };
      if (this.#open.size === 0) return this.#drained();
      if (!graceful) return;
      this.checkUpgradesOnly();
      const cut = setTimeout(() => this.closeUpgraded(), Math.max(0, this.#stopAt + this.runtime.config.gracefulTimeout * 800 - performance.now()));
      cut.unref();
      timers.push(cut);
      // A connection counts as idle until its first request is parsed: one that a class held back and serves
      // during the drain gets the same grace before idle connections are closed. The sweep also sees a request
      // that became an upgrade during the drain.
      const closeIdle = () => {
        if (performance.now() - this.#lastServed >= DRAIN_IDLE_GRACE_MS) closeIdleAfterPoll(h1, this.idlePeek());
        this.checkUpgradesOnly();
      };
      const grace = setTimeout(() => {
        closeIdle();
        const sweep = setInterval(closeIdle, 100);
        sweep.unref();
        timers.push(sweep);
      }, DRAIN_IDLE_GRACE_MS);
      grace.unref();
      timers.push(grace);
    });
  }

  /**
   * Accepts until one turn of the event loop accepts nothing, at most DRAIN_ACCEPT_MAX_MS. The check runs in
   * a setImmediate queued from a timer, i.e. after that turn's poll phase, where a listener with a queue is
   * readable and accepts (one connection per turn on libuv 1.46): a turn with no new connection, while every
   * acceptor listened, saw an empty backlog. A class that paused accepting (sync, while it holds a connection)
   * resumes during the drain, so a paused turn proves nothing. The connections accepted here are answered
   * with `Connection: close`.
   */
  private drainBacklog(h1: Partial<Pick<http.Server, 'closeIdleConnections'>>): Promise<void> {
    return new Promise((resolve) => {
      let end = Date.now() + DRAIN_ACCEPT_MAX_MS;
      const check = () => {
        // Busy with an event stream (paused, or on a kept-alive connection), and nothing else but upgraded
        // connections: whatever it accepted would wait behind the stream (drainSkipsStreams).
        if (this.drainSkipsStreams && this.streamsOnly()) return resolve();
        const before = this.#accepted;
        const listening = this.#acceptors.every((a) => a !== null);
        // Time spent paused does not count against the bound: the class is serving what it accepted. An async
        // worker paused at its cap by idle keep-alive connections resumes once they close: close them after
        // the same grace as at the end of a stop, or they would hold the drain until their keep-alive ends.
        if (!listening) {
          end += DRAIN_QUIET_MS;
          if (performance.now() - this.#lastServed >= DRAIN_IDLE_GRACE_MS) closeIdleAfterPoll(h1, this.idlePeek());
        }
        setImmediate(() => {
          const quiet = listening && this.#acceptors.every((a) => a !== null) && this.#accepted === before;
          if (quiet || Date.now() >= end) resolve();
          else setTimeout(check, DRAIN_QUIET_MS);
        });
      };
      setTimeout(check, DRAIN_QUIET_MS);
    });
  }
}
