import http from 'node:http';
import net from 'node:net';
import type { ServedApp } from '../app/shapes.js';
import type { ListenerInfo } from '../protocol/messages.js';
import type { WorkerRuntime } from './runtime.js';

/** How long keep-alive clients get `Connection: close` answers before idle connections are closed. */
const DRAIN_IDLE_GRACE_MS = 1000;
/** TERM drain: how often to look for connections still queued in the backlog, and for how long at most. */
const DRAIN_QUIET_MS = 50;
const DRAIN_ACCEPT_MAX_MS = 2000;

/**
 * The HTTP server of one worker (or one gthread thread) on the inherited listening sockets.
 *
 * One http.Server serves every listener: it listens on the first fd itself, and a plain net.Server per
 * further fd hands it its connections. The app's own http.Server, when it made one, is served as it is.
 */
export class Serving {
  readonly http: http.Server;
  readonly #acceptors: net.Server[] = [];
  #stopping: Promise<void> | null = null;

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
  }

  /** Accepts on every listener; resolves once all of them listen. */
  async listen(): Promise<void> {
    const backlog = this.runtime.config.backlog;
    const [first, ...rest] = this.listeners;
    if (!first) throw new Error('no listening sockets were handed to this worker');
    await listenOn(this.http, first.fd, backlog);
    for (const l of rest) {
      const acceptor = net.createServer({ noDelay: true }, (socket) => this.http.emit('connection', socket));
      await listenOn(acceptor, l.fd, backlog);
      this.#acceptors.push(acceptor);
    }
  }

  /** Every net.Server that accepts for this worker (worker classes pause and resume them). */
  get acceptors(): net.Server[] {
    return [this.http, ...this.#acceptors];
  }

  /**
   * Graceful: stop accepting (the other workers, or the backlog, take new connections), answer every
   * request still to come on open connections with `Connection: close`, close idle keep-alive connections
   * after a short grace, and resolve once every connection has ended. With `runtime.acceptDrain` (TERM) the
   * listeners stay open until the backlog is empty: closing the last copy of a listening socket resets the
   * connections queued in it. Not graceful: cut everything now.
   */
  stop(graceful: boolean): Promise<void> {
    if (!graceful) {
      this.http.closeAllConnections();
    }
    if (this.#stopping) return this.#stopping;
    this.runtime.draining = true;
    const drain = graceful && this.runtime.acceptDrain ? this.drainBacklog() : Promise.resolve();
    this.#stopping = drain.then(() => this.close(graceful));
    return this.#stopping;
  }

  private close(graceful: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      for (const a of this.#acceptors) a.close();
      // net.Server's close, not http.Server's: the latter also closes idle keep-alive connections at once,
      // racing clients that are sending a request on them right now (FACTS: 4-9 requests lost per reload).
      net.Server.prototype.close.call(this.http, () => resolve());
      if (!graceful) return;
      const grace = setTimeout(() => {
        this.http.closeIdleConnections();
        const sweep = setInterval(() => this.http.closeIdleConnections(), 100);
        sweep.unref();
        this.http.once('close', () => clearInterval(sweep));
      }, DRAIN_IDLE_GRACE_MS);
      grace.unref();
      this.http.once('close', () => clearTimeout(grace));
    });
  }

  /**
   * Accepts until one turn of the event loop accepts nothing, at most DRAIN_ACCEPT_MAX_MS. The check runs in
   * a setImmediate queued from a timer, i.e. after that turn's poll phase, where libuv accepts every
   * connection pending on a readable listener (FACTS): a turn with no new connection saw an empty backlog.
   * The connections accepted here are answered with `Connection: close`.
   */
  private drainBacklog(): Promise<void> {
    return new Promise((resolve) => {
      let accepted = 0;
      const onConnection = () => accepted++;
      this.http.on('connection', onConnection);
      const end = Date.now() + DRAIN_ACCEPT_MAX_MS;
      const check = () => {
        const before = accepted;
        setImmediate(() => {
          if (accepted === before || Date.now() >= end) {
            this.http.off('connection', onConnection);
            resolve();
          } else {
            setTimeout(check, DRAIN_QUIET_MS);
          }
        });
      };
      setTimeout(check, DRAIN_QUIET_MS);
    });
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

function listenOn(server: net.Server, fd: number, backlog: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ fd, backlog }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
