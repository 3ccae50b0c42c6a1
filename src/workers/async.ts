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
    this.#serving = new Serving(this.ctx.runtime, this.#served, this.ctx.listeners);
    await this.#serving.listen();
  }

  async stop(graceful: boolean): Promise<void> {
    await this.#serving?.stop(graceful);
    await this.#served?.close?.();
  }
}

export const createAsyncWorker = (ctx: WorkerClassContext): WorkerClass => new AsyncWorker(ctx);
