import type { ServedApp } from '../app/shapes.js';
import { Serving } from './serving.js';
import type { WorkerClass, WorkerClassContext } from './worker-class.js';

/**
 * `async`, the default: Node's event loop serves many connections at once (the analogue of gevent and of
 * Gunicorn's UvicornWorker).
 */
export class AsyncWorker implements WorkerClass {
  #serving: Serving | null = null;
  #served: ServedApp | null = null;

  constructor(private readonly ctx: WorkerClassContext) {}

  async start(): Promise<void> {
    this.#served = await this.ctx.loadApp();
    await this.ctx.appLoaded();
    await this.#served.startup?.();
    this.#serving = new Serving(this.ctx.runtime, this.#served, this.ctx.listeners);
    await this.#serving.listen();
  }

  async stop(graceful: boolean): Promise<void> {
    // The app's shutdown (framework close(), the `shutdown` export) must run before the master's SIGKILL at
    // graceful_timeout: requests still running at 80 % of it no longer hold it back.
    const drainMs = this.ctx.runtime.config.gracefulTimeout * 800;
    await Promise.race([this.#serving?.stop(graceful), new Promise((r) => setTimeout(r, drainMs).unref())]);
    await this.#served?.close?.();
  }
}

export const createAsyncWorker = (ctx: WorkerClassContext): WorkerClass => new AsyncWorker(ctx);
