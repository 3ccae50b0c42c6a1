import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import type { Serving } from './serving.js';

const kDone = Symbol('tunicorn.done');
type Tracked = net.Socket & { [kDone]?: () => void };

export interface Busy {
  /** A request is running past the event-loop turn it arrived in (it awaits something). */
  onBusy(): void;
  /** Nothing is running and nothing is queued. */
  onIdle(): void;
}

/**
 * Serves one connection at a time, each with one request answered `Connection: close` (Gunicorn's sync
 * worker). libuv accepts every connection pending at one wake-up, so connections that arrive while one is
 * served wait here, in order, and are served next: never dropped, never served at once. `busy` lets the class
 * stop accepting while a request awaits I/O, so the kernel gives new connections to idle workers.
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
    // A handler that answers within this turn (CPU-bound) kept the loop busy: nothing else was accepted.
    // One that awaits I/O leaves the loop free to accept, so stop accepting until it is done.
    if (this.busy) setImmediate(() => !res.writableEnded && this.busy!.onBusy());
  }
}
