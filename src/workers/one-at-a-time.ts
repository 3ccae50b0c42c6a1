import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import { fdOf } from '../http/peek.js';
import type { HeldRegistry } from './held-sockets.js';
import type { Serving } from './serving.js';

/** A connection waiting for its turn; `held`: its entry in the HeldRegistry, if it has one. */
interface Queued {
  readonly socket: net.Socket;
  held: number | undefined;
}

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
  readonly #queue: Queued[] = [];
  #current: net.Socket | null = null;
  /** Ends the current connection's turn (once): its response finished, or it closed. */
  #finished: (() => void) | null = null;

  constructor(
    private readonly serving: Serving,
    private readonly busy: Busy | null,
    private readonly held: HeldRegistry | null = null,
  ) {
    serving.setAdmit((socket, _serve, listener) => this.admit(socket, listener));
    // Runs before the app's listener (and the request wrapper), for every request.
    serving.http.prependListener('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
  }

  // Nothing of ours is stored on the socket (see SlotTable.put): the queue entry and the closures keep it.
  private admit(socket: net.Socket, listener: number): void {
    this.busy?.onAdmit();
    const entry: Queued = { socket, held: this.held && this.#current ? this.held.hold(fdOf(socket), listener) : undefined };
    socket.once('close', () => {
      const i = this.#queue.indexOf(entry);
      if (i >= 0) {
        this.#queue.splice(i, 1);
        this.release(entry);
      }
      if (this.#current === socket) this.#finished?.();
    });
    this.#queue.push(entry);
    if (!this.#current) this.next();
  }

  /** Takes a queued socket back from the HeldRegistry: false when the process claimed it (handed over). */
  private release(entry: Queued): boolean {
    const token = entry.held;
    if (token === undefined || !this.held) return true;
    entry.held = undefined;
    return this.held.take(token);
  }

  private next(): void {
    let entry = this.#queue.shift();
    while (entry && !this.release(entry)) {
      // Claimed by the process for another worker: not ours to serve, read or close any more.
      this.serving.forget(entry.socket);
      entry = this.#queue.shift();
    }
    if (!entry) {
      this.#current = null;
      this.#finished = null;
      this.busy?.onIdle();
      return;
    }
    const socket = entry.socket;
    this.#current = socket;
    let done = false;
    this.#finished = () => {
      if (done) return;
      done = true;
      if (this.#current === socket) this.next();
    };
    this.serving.serve(socket);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    res.shouldKeepAlive = false;
    // (Over TLS the request's socket is the TLS socket, not the one accepted: its turn ends when it closes.)
    const done = req.socket === this.#current ? this.#finished : null;
    if (done) {
      res.once('finish', done);
      res.once('close', done);
    }
  }
}
