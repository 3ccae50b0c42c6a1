import type net from 'node:net';
import type { ServedApp } from '../app/shapes.js';
import { AcceptSwitch } from './accept-switch.js';
import { Serving } from './serving.js';
import type { WorkerClass, WorkerClassContext } from './worker-class.js';

/**
 * `async`, the default: Node's event loop serves many connections at once (the analogue of gevent and of
 * Gunicorn's UvicornWorker), up to `worker_connections`. At the cap the worker stops accepting, so new
 * connections go to other workers or wait in the backlog; the few libuv accepted in the same wake-up wait
 * here for a free slot. A connection is never accepted and then dropped.
 */
export class AsyncWorker implements WorkerClass {
  #serving: Serving | null = null;
  #served: ServedApp | null = null;
  #active = 0;
  readonly #waiting: net.Socket[] = [];

  constructor(private readonly ctx: WorkerClassContext) {}

  async start(): Promise<void> {
    this.#served = await this.ctx.loadApp();
    await this.ctx.appLoaded();
    await this.#served.startup?.();
    const serving = new Serving(this.ctx.runtime, this.#served, this.ctx.listeners);
    this.#serving = serving;
    const cap = this.ctx.runtime.config.workerConnections;
    const accept = new AcceptSwitch(serving, this.ctx.leases, this.ctx.listeners.length);
    const admit = (socket: net.Socket) => {
      this.#active++;
      serving.serve(socket);
      if (this.#active >= cap) accept.pause();
    };
    // Run from Serving's 'close' listener, not a second listener of our own on every socket.
    const closed = (socket: net.Socket) => {
      const i = this.#waiting.length > 0 ? this.#waiting.indexOf(socket) : -1;
      if (i >= 0) return void this.#waiting.splice(i, 1);
      this.#active--;
      const next = this.#waiting.shift();
      if (next) admit(next);
      else if (this.#active < cap) accept.resume();
    };
    serving.setAdmit((socket) => {
      if (this.#active < cap) return admit(socket);
      this.#waiting.push(socket);
    }, closed);
    await serving.listen();
  }

  async stop(graceful: boolean): Promise<void> {
    // The app's shutdown (framework close(), the `shutdown` export) must run before the master's SIGKILL at
    // graceful_timeout: requests still running at 80 % of it no longer hold it back.
    const { runtime } = this.ctx;
    const shutdown = () => runtime.shutdownApp(graceful, () => this.#served?.close?.());
    await runtime.finishStop(this.#serving?.stop(graceful, shutdown) ?? Promise.resolve(), shutdown);
  }
}

export const createAsyncWorker = (ctx: WorkerClassContext): WorkerClass => new AsyncWorker(ctx);
