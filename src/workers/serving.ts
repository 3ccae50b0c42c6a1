import http from 'node:http';
import net from 'node:net';
import type { ServedApp } from '../app/shapes.js';
import { HttpLayer } from '../http/server.js';
import type { ListenerInfo } from '../protocol/messages.js';
import type { WorkerRuntime } from './runtime.js';

/** How long keep-alive clients get `Connection: close` answers before idle connections are closed. */
const DRAIN_IDLE_GRACE_MS = 1000;

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
   * after a short grace, and resolve once every connection has ended. Not graceful: cut everything now.
   */
  stop(graceful: boolean): Promise<void> {
    // An HTTP/2 server has no idle-connection calls: its sessions get a GOAWAY (closeSessions) instead.
    const h1 = this.http as Partial<Pick<http.Server, 'closeAllConnections' | 'closeIdleConnections'>>;
    if (!graceful) h1.closeAllConnections?.();
    if (this.#stopping) return this.#stopping;
    this.runtime.draining = true;
    this.layer.closeSessions();
    const closed = (server: net.Server) => new Promise<void>((resolve) => {
      // net.Server's close, not http.Server's: the latter also closes idle keep-alive connections at once,
      // racing clients that are sending a request on them right now (FACTS: 4-9 requests lost per reload).
      // An acceptor's close waits for the connections it accepted.
      net.Server.prototype.close.call(server, () => resolve());
    });
    this.#stopping = Promise.all([closed(this.http), ...this.#acceptors.map(closed)]).then(() => {});
    if (graceful) {
      const grace = setTimeout(() => {
        h1.closeIdleConnections?.();
        const sweep = setInterval(() => h1.closeIdleConnections?.(), 100);
        sweep.unref();
        void this.#stopping!.then(() => clearInterval(sweep));
      }, DRAIN_IDLE_GRACE_MS);
      grace.unref();
      void this.#stopping.then(() => clearTimeout(grace));
    }
    return this.#stopping;
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
