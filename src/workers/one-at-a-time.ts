import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import type { HeldRegistry } from './held-sockets.js';
import type { Serving } from './serving.js';

const kDone = Symbol('tunicorn.done');
/** The socket's entry in the HeldRegistry while it waits in the queue. */
const kHeld = Symbol('tunicorn.held');
type Tracked = net.Socket & { [kDone]?: () => void; [kHeld]?: number };

/** The descriptor under a socket (-1 when Node does not expose one). */
const fdOf = (socket: net.Socket): number => (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;

export interface Busy {
  /**
   * A connection was just accepted. Called synchronously from the 'connection' event: a class that stops
   * accepting here (closes its listening descriptors) accepts nothing more, not even on the next turn of
   * the loop (libuv accepts again on each turn while connections are pending).
   */
  onAdmit(): void;
  /** Nothing is running and nothing is queued. */
  onIdle(): void;
}

/**
 * Serves one connection at a time, each with one request answered `Connection: close` (Gunicorn's sync
 * worker). Connections accepted while one is served wait here, in order, and are served next: never dropped,
 * never served at once. `busy` lets the class stop accepting from the moment it holds a connection, so the
 * kernel keeps the others for idle workers (and a worker killed for a timeout takes no one else's connection
 * with it). Without it (a gthread thread), connections accepted while one is served queue here, unread,
 * each recorded in `held` so the process can hand them over if the thread gets stuck.
 */
export class OneAtATime {
  readonly #queue: net.Socket[] = [];
  #current: net.Socket | null = null;

  constructor(
    private readonly serving: Serving,
    private readonly busy: Busy | null,
    private readonly held: HeldRegistry | null = null,
  ) {
    serving.setAdmit((socket, _serve, listener) => this.admit(socket, listener));
    // Runs before the app's listener (and the request wrapper), for every request.
    serving.http.prependListener('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
  }

  private admit(socket: net.Socket, listener: number): void {
    this.busy?.onAdmit();
    if (this.held && this.#current) (socket as Tracked)[kHeld] = this.held.hold(fdOf(socket), listener);
    socket.once('close', () => {
      const i = this.#queue.indexOf(socket);
      if (i >= 0) {
        this.#queue.splice(i, 1);
        this.release(socket);
      }
      (socket as Tracked)[kDone]?.();
    });
    this.#queue.push(socket);
    if (!this.#current) this.next();
  }

  /** Takes a queued socket back from the HeldRegistry: false when the process claimed it (handed over). */
  private release(socket: net.Socket): boolean {
    const token = (socket as Tracked)[kHeld];
    if (token === undefined || !this.held) return true;
    delete (socket as Tracked)[kHeld];
    return this.held.take(token);
  }

  private next(): void {
    let socket = this.#queue.shift();
    while (socket && !this.release(socket)) {
      // Claimed by the process for another worker: not ours to serve, read or close any more.
      this.serving.forget(socket);
      socket = this.#queue.shift();
    }
    if (!socket) {
      this.#current = null;
      this.busy?.onIdle();
      return;
    }
    this.#current = socket;
    let done = false;
    (socket as Tracked)[kDone] = () => {
      if (done) return;
      done = true;
      if (this.#current === socket) this.next();
    };
    this.serving.serve(socket);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    res.shouldKeepAlive = false;
    const done = (req.socket as Tracked)[kDone];
    if (done) {
      res.once('finish', done);
      res.once('close', done);
    }
  }
}
