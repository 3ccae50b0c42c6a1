import type { ServedApp } from '../app/shapes.js';
import { AcceptSwitch } from './accept-switch.js';
import { OneAtATime } from './one-at-a-time.js';
import { Serving } from './serving.js';
import type { WorkerClass, WorkerClassContext } from './worker-class.js';

/**
 * `sync`: one request at a time per worker, as Gunicorn's sync worker. While it holds a connection the
 * worker takes no other, even when the handler awaits I/O: it stops accepting the moment it accepts one, so
 * the kernel hands new connections to idle workers (or keeps them in the backlog). Responses carry
 * `Connection: close`. For CPU-bound handlers and apps that are not safe to run concurrently.
 */
export class SyncWorker implements WorkerClass {
  #serving: Serving | null = null;
  #served: ServedApp | null = null;

  constructor(private readonly ctx: WorkerClassContext) {}

  async start(): Promise<void> {
    this.#served = await this.ctx.loadApp();
    await this.ctx.appLoaded();
    await this.#served.startup?.();
    const serving = new Serving(this.ctx.runtime, this.#served, this.ctx.listeners);
    this.#serving = serving;
    const accept = new AcceptSwitch(serving, this.ctx.leases, this.ctx.listeners.length);
    const { log, config } = this.ctx.runtime;
    new OneAtATime(serving, { busy: { onAdmit: () => accept.pause(), onIdle: () => accept.resume() }, log, deadlineMs: config.requestDeadline * 1000 });
    await serving.listen();
  }

  async stop(graceful: boolean): Promise<void> {
    const shutdown = () => this.ctx.runtime.shutdownApp(graceful, () => this.#served?.close?.());
    await this.ctx.runtime.finishStop(this.#serving?.stop(graceful, shutdown) ?? Promise.resolve(), shutdown);
  }
}

export const createSyncWorker = (ctx: WorkerClassContext): WorkerClass => new SyncWorker(ctx);
