import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import type { Serving } from './serving.js';

const kDone = Symbol('tunicorn.done');
type Tracked = net.Socket & { [kDone]?: () => void };

export interface Busy {
  /**
   * A connection was just accepted. Called synchronously from the 'connection' event: a class that stops
   * accepting here (closes its listening descriptors) also ends libuv's accept loop for this wake-up, which
   * would otherwise accept every connection pending on the socket.
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
 * with it). Without it (a gthread thread), libuv accepts every connection pending at one wake-up and they
 * queue here.
 */
export class OneAtATime {
  readonly #queue: net.Socket[] = [];
  #current: net.Socket | null = null;

  constructor(
    private readonly serving: Serving,
    private readonly busy: Busy | null,
  ) {
    serving.setAdmit((socket) => this.admit(socket));
    // Runs before the app's listener (and the request wrapper), for every request.
    serving.http.prependListener('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
  }

  private admit(socket: net.Socket): void {
    this.busy?.onAdmit();
    socket.once('close', () => {
      const i = this.#queue.indexOf(socket);
      if (i >= 0) this.#queue.splice(i, 1);
      (socket as Tracked)[kDone]?.();
    });
    this.#queue.push(socket);
    if (!this.#current) this.next();
  }

  private next(): void {
    const socket = this.#queue.shift();
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
