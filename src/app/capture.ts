import http from 'node:http';
import net from 'node:net';
import { lazy } from '../lazy.js';
import { appFrames } from './errors.js';

/**
 * Whether `v` is an http.Server or an https.Server. node:https is loaded only once a TLS server exists (an
 * https.Server is a tls.Server, which has `addContext`): loading it brings tls and crypto, 2.7 MB of RSS in
 * a bare process, into every worker of an app that never uses them.
 */
export function isHttpServer(v: unknown): v is http.Server {
  if (v instanceof http.Server) return true;
  if (!(v instanceof net.Server) || !('addContext' in v)) return false;
  return v instanceof lazy.https().Server;
}

type Listen = (this: net.Server, ...args: unknown[]) => net.Server;

/**
 * A server the app listens on itself (a metrics endpoint, a second HTTP server) that fails to listen, with no
 * 'error' listener of the app's: Node's uncaught `listen EADDRINUSE: address already in use 127.0.0.1:9464`,
 * with only Node's frames, reads as tunicorn's own bind failing. The error says whose listen() it was, and
 * where it was called. Each worker runs the app, so a fixed port is had by one worker at most, and every other
 * worker fails on it: the usual cause.
 */
function explainListenFailure(server: net.Server, calledAt: string): void {
  const onError = (err: NodeJS.ErrnoException) => {
    server.off('listening', onListening);
    // The app's own listener (added after its listen() call) handles it, as it would under plain Node.
    if (server.listenerCount('error') > 0) return;
    if (err.syscall !== 'listen') throw err;
    const inUse = err.code === 'EADDRINUSE' ? ', so a fixed port is had by one of them at most' : '';
    const own = new Error(
      `${err.message}: a server the app listen()s on itself, beside the one tunicorn serves (only the first HTTP server the app listen()s on is tunicorn's; any other listens as the app asks, in each worker and gthread thread, and with --preload in the master too${inUse})`,
    );
    Object.assign(own, { code: err.code, syscall: err.syscall, address: (err as { address?: string }).address, port: (err as { port?: number }).port });
    own.stack = `Error: ${own.message}\n${appFrames(calledAt.split('\n').slice(1).join('\n'))}`;
    throw own;
  };
  const onListening = () => server.off('error', onError);
  server.once('error', onError);
  server.once('listening', onListening);
}

/**
 * Catches the app module calling `listen()` itself (`app.listen(3000)`, `server.listen(PORT)`) while it is
 * imported: the call opens no port, and tunicorn serves that server on its own sockets instead.
 *
 * http.Server and https.Server inherit `listen` from net.Server (neither overrides it), so wrapping
 * net.Server.prototype.listen sees every call. Only the first HTTP(S) server is taken; any other server
 * (a plain TCP server, a second HTTP server such as a metrics endpoint) listens as the module asked.
 * The callback given to listen() runs on the server's 'listening' event, once tunicorn has made it listen,
 * so code that awaits it (Fastify's `await app.listen()`) goes on then.
 */
export class ListenCapture {
  #server: http.Server | null = null;
  #original: Listen | null = null;
  #notify: (() => void) | null = null;
  /** Resolves when a server is captured. */
  readonly captured: Promise<http.Server>;

  constructor() {
    this.captured = new Promise((resolve) => {
      this.#notify = () => resolve(this.#server!);
    });
  }

  get server(): http.Server | null {
    return this.#server;
  }

  start(): void {
    if (this.#original) return;
    const original = net.Server.prototype.listen as unknown as Listen;
    this.#original = original;
    const self = this;
    net.Server.prototype.listen = function listen(this: net.Server, ...args: unknown[]): net.Server {
      if (!isHttpServer(this) || (self.#server !== null && self.#server !== this)) {
        explainListenFailure(this, new Error().stack ?? '');
        return original.apply(this, args);
      }
      const last = args[args.length - 1];
      if (typeof last === 'function') this.once('listening', last as () => void);
      if (self.#server === null) {
        self.#server = this as http.Server;
        self.#notify!();
      }
      return this;
    } as unknown as typeof net.Server.prototype.listen;
  }

  /** Puts the real listen() back; later calls open their ports as usual. */
  stop(): void {
    if (!this.#original) return;
    net.Server.prototype.listen = this.#original as unknown as typeof net.Server.prototype.listen;
    this.#original = null;
  }
}
