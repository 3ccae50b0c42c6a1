import http from 'node:http';
import net from 'node:net';
import type { ServedApp } from '../app/shapes.js';
import { HttpLayer } from '../http/server.js';
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
  readonly layer: HttpLayer;
  readonly #acceptors: net.Server[] = [];
  #stopping: Promise<void> | null = null;

  constructor(
    private readonly runtime: WorkerRuntime,
    served: ServedApp,
    private readonly listeners: readonly ListenerInfo[],
  ) {
    if (served.server) {
      const own = served.server;
      const theirs = own.listeners('request') as ((req: http.IncomingMessage, res: http.ServerResponse) => void)[];
      this.layer = new HttpLayer(runtime.config, runtime.log, runtime.wrap((req, res) => {
        try {
          for (const l of theirs) l.call(own, req, res);
        } catch (err) {
          runtime.onAppError(err, req, res);
        }
      }), own);
    } else {
      this.layer = new HttpLayer(runtime.config, runtime.log, runtime.wrap(served.listener!));
    }
    this.http = this.layer.server as http.Server;
  }

  /** Accepts on every listener; resolves once all of them listen. */
  async listen(): Promise<void> {
    const backlog = this.runtime.config.backlog;
    const [first, ...rest] = this.listeners;
    if (!first) throw new Error('no listening sockets were handed to this worker');
    await listenOn(this.http, first.fd, backlog);
    for (const l of rest) {
      // Paused like the server's own, so that the connection gate reads the first bytes before Node's parser.
      const acceptor = net.createServer({ noDelay: true, pauseOnConnect: this.layer.gate !== null }, this.layer.connection);
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
    // An HTTP/2 server has no idle-connection calls: its sessions get a GOAWAY (closeSessions) instead.
    const h1 = this.http as Partial<Pick<http.Server, 'closeAllConnections' | 'closeIdleConnections'>>;
    if (!graceful) h1.closeAllConnections?.();
    if (this.#stopping) return this.#stopping;
    this.runtime.draining = true;
    const drain = graceful && this.runtime.acceptDrain ? this.drainBacklog() : Promise.resolve();
    this.#stopping = drain.then(() => this.close(graceful, h1));
    return this.#stopping;
  }

  private close(graceful: boolean, h1: Partial<Pick<http.Server, 'closeAllConnections' | 'closeIdleConnections'>>): Promise<void> {
    this.layer.closeSessions();
    const closed = (server: net.Server) =>
      new Promise<void>((resolve) => {
        // net.Server's close, not http.Server's: the latter also closes idle keep-alive connections at once,
        // racing clients that are sending a request on them right now (FACTS: 4-9 requests lost per reload).
        // An acceptor's close waits for the connections it accepted.
        net.Server.prototype.close.call(server, () => resolve());
      });
    const done = Promise.all([closed(this.http), ...this.#acceptors.map(closed)]).then(() => {});
    if (graceful) {
      const grace = setTimeout(() => {
        h1.closeIdleConnections?.();
        const sweep = setInterval(() => h1.closeIdleConnections?.(), 100);
        sweep.unref();
        void done.then(() => clearInterval(sweep));
      }, DRAIN_IDLE_GRACE_MS);
      grace.unref();
      void done.then(() => clearTimeout(grace));
    }
    return done;
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
