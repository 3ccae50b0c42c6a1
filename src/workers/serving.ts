import http from 'node:http';
import net from 'node:net';
import type { ServedApp } from '../app/shapes.js';
import type { ListenerInfo } from '../protocol/messages.js';
import type { WorkerRuntime } from './runtime.js';

/** How long keep-alive clients get `Connection: close` answers before idle connections are closed. */
const DRAIN_IDLE_GRACE_MS = 1000;

/** When the server was given a connection: the start of its queue time (see runtime.ts). */
export const kAcceptedAt = Symbol('tunicorn.acceptedAt');
export type AcceptedSocket = net.Socket & { [kAcceptedAt]?: number };

/**
 * Decides when an accepted connection is served. The default serves it at once; a worker class that runs one
 * request at a time (sync, a gthread thread) or caps its connections (async) holds connections back here.
 * `serve` must be called exactly once per admitted socket, unless the socket closed first.
 */
export type Admit = (socket: net.Socket, serve: (socket: net.Socket) => void) => void;

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
  readonly #acceptors: (net.Server | null)[];
  /** Every connection accepted and not yet closed (served or held back by `admit`). */
  readonly #open = new Set<net.Socket>();
  #admit: Admit = (socket, serve) => serve(socket);
  #stopping: Promise<void> | null = null;
  /** When a connection was last handed to the http.Server (the drain must not close it before its request). */
  #lastServed = 0;
  #drained: (() => void) | null = null;

  constructor(
    private readonly runtime: WorkerRuntime,
    served: ServedApp,
    private readonly listeners: readonly ListenerInfo[],
  ) {
    const cfg = runtime.config;
    if (served.server) {
      this.http = served.server;
      const own = this.http.listeners('request') as ((req: http.IncomingMessage, res: http.ServerResponse) => void)[];
      this.http.removeAllListeners('request');
      const server = this.http;
      this.http.on('request', runtime.wrap((req, res) => {
        for (const l of own) l.call(server, req, res);
      }));
    } else {
      this.http = http.createServer({ noDelay: true }, runtime.wrap(served.listener!));
    }
    this.http.keepAliveTimeout = cfg.keepalive * 1000;
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => this.onClientError(err, socket));
    this.#acceptors = listeners.map(() => null);
  }

  get stopping(): boolean {
    return this.#stopping !== null;
  }

  /** Connections accepted and not closed yet. */
  get connections(): number {
    return this.#open.size;
  }

  /** Installs the class's admission policy (before `listen`). */
  setAdmit(admit: Admit): void {
    this.#admit = admit;
  }

  /** Accepts on every listener; resolves once all of them listen. */
  async listen(): Promise<void> {
    if (this.listeners.length === 0) throw new Error('no listening sockets were handed to this worker');
    for (let i = 0; i < this.listeners.length; i++) await this.listenAcceptor(i, this.listeners[i]!.fd);
  }

  /**
   * Accepts on listener `i` again, on `target`: an inherited descriptor, or a raw handle the master sent
   * (a fresh duplicate: closing an acceptor closes its descriptor).
   */
  listenAcceptor(i: number, target: number | object): Promise<void> {
    const acceptor = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.onConnection(socket));
    this.#acceptors[i] = acceptor;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      acceptor.once('error', onError);
      const done = () => {
        acceptor.off('error', onError);
        resolve();
      };
      if (typeof target === 'number') acceptor.listen({ fd: target, backlog: this.runtime.config.backlog }, done);
      else acceptor.listen(target, this.runtime.config.backlog, done);
    });
  }

  /** Stops accepting on listener `i` (closes this copy of the socket; other workers keep accepting). */
  closeAcceptor(i: number): void {
    const a = this.#acceptors[i];
    this.#acceptors[i] = null;
    a?.close();
  }

  /** Serves a connection now: the http.Server parses its requests. */
  readonly serve = (socket: net.Socket): void => {
    if (socket.destroyed) return;
    this.#lastServed = performance.now();
    this.http.emit('connection', socket);
  };

  private onConnection(socket: net.Socket): void {
    (socket as AcceptedSocket)[kAcceptedAt] = performance.now();
    this.#open.add(socket);
    socket.once('close', () => {
      this.#open.delete(socket);
      if (this.#open.size === 0) this.#drained?.();
    });
    this.#admit(socket, this.serve);
  }

  /**
   * Graceful: stop accepting (the other workers, or the backlog, take new connections), answer every
   * request still to come on open connections with `Connection: close`, close idle keep-alive connections
   * after a short grace, and resolve once every connection has ended. Not graceful: cut everything now.
   */
  stop(graceful: boolean): Promise<void> {
    if (!graceful) {
      this.http.closeAllConnections();
      for (const s of this.#open) s.destroy();
    }
    if (this.#stopping) return this.#stopping;
    this.runtime.draining = true;
    for (let i = 0; i < this.#acceptors.length; i++) this.closeAcceptor(i);
    this.#stopping = new Promise<void>((resolve) => {
      // Not http.Server.close(): it closes idle keep-alive connections at once, racing clients that are
      // sending a request on them right now (FACTS: 4-9 requests lost per reload).
      const timers: NodeJS.Timeout[] = [];
      this.#drained = () => {
        for (const t of timers) clearTimeout(t);
        resolve();
      };
      if (this.#open.size === 0) return this.#drained();
      if (!graceful) return;
      // A connection counts as idle until its first request is parsed: one that a class held back and serves
      // during the drain gets the same grace before idle connections are closed.
      const closeIdle = () => {
        if (performance.now() - this.#lastServed >= DRAIN_IDLE_GRACE_MS) this.http.closeIdleConnections();
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
    return this.#stopping;
  }

  private onClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    if (!socket.writable || (err.code === 'ECONNRESET')) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const reason = http.STATUS_CODES[status];
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }
}
