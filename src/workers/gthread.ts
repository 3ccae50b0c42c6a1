import { Worker } from 'node:worker_threads';
import { AppLoadError } from '../app/errors.js';
import type { InflightRequest } from '../protocol/messages.js';
import { ThreadSlots } from './thread-slots.js';
import { heartbeatEvery } from './watchdog.js';
import type { WorkerClass, WorkerClassContext } from './worker-class.js';
import type { ThreadData, ThreadMessage, ToThread } from './gthread-thread.js';

const THREAD_ENTRY = new URL('./gthread-thread.js', import.meta.url);

/**
 * `gthread`: `threads` node:worker_threads threads per worker process, each with its own copy of the app and
 * event loop and its own descriptor of every listening socket, serving one request at a time. CPU-bound
 * requests of one process run on several cores; at most workers x threads requests run at once.
 *
 * What threads share in Node: the process (its memory limit, descriptors, environment, pid) and the listening
 * sockets. What they do not: a JavaScript heap. Each thread imports the app itself; module-level state is
 * per thread, and objects pass between threads only by copy (postMessage) or as SharedArrayBuffers.
 */
export class GthreadWorker implements WorkerClass {
  readonly #threads: Worker[] = [];
  readonly #exited: Promise<void>[] = [];
  #beats: Int32Array | null = null;
  #seen: number[] = [];
  #seenAt: number[] = [];
  #staleMs = 0;
  #stopping = false;
  #drained = 0;
  #slots: ThreadSlots | null = null;

  constructor(private readonly ctx: WorkerClassContext) {}

  async start(): Promise<void> {
    const { runtime, init, listeners } = this.ctx;
    const cfg = runtime.config;
    const n = cfg.threads;
    // Slots 0..n-1: each thread's heartbeat counter; slot n: the process's request count (max_requests).
    const sab = new SharedArrayBuffer(4 * (n + 1));
    this.#beats = new Int32Array(sab, 0, n);
    const every = cfg.timeout > 0 ? heartbeatEvery(cfg.timeout) : 0;
    this.#staleMs = 2 * every;
    this.#slots = new ThreadSlots(n);
    const ready: Promise<void>[] = [];
    for (let t = 0; t < n; t++) {
      const data: ThreadData = {
        thread: t,
        app: init.app,
        configPath: init.configPath,
        config: { ...cfg, maxRequests: runtime.maxRequests, maxRequestsJitter: 0 } as unknown as Record<string, unknown>,
        id: init.id,
        age: init.age,
        masterPid: init.masterPid,
        listeners: listeners.map((l) => ({ fd: l.fds[t]!, fds: [l.fds[t]!], url: l.url })),
        sab,
        slots: this.#slots.sab,
        threads: n,
        beatMs: every / 2,
      };
      const worker = new Worker(THREAD_ENTRY, { workerData: data });
      this.#threads.push(worker);
      this.#exited.push(new Promise((resolve) => worker.once('exit', () => resolve())));
      ready.push(
        new Promise<void>((resolve, reject) => {
          worker.on('message', (m: ThreadMessage) => {
            switch (m.t) {
              case 'ready':
                return resolve();
              case 'fatal':
                return reject(m.appLoad ? new AppLoadError(m.message, m.detail) : new Error(m.message));
              case 'retire':
                return runtime.retire(m.requests);
              case 'drained':
                // The process has drained once every thread has.
                if (++this.#drained === n) runtime.reportDrained();
                return;
            }
          });
          worker.once('error', (err) => {
            if (this.#stopping) return;
            runtime.log.exception(`Thread ${t} of worker ${process.pid} failed; exiting`, err);
            process.exit(1);
          });
          worker.once('exit', (code) => {
            if (this.#stopping) return;
            const why = `Thread ${t} of worker ${process.pid} exited (code ${code}) before it was asked to`;
            reject(new Error(why));
            runtime.log.error(`${why}; exiting`);
            process.exitCode = 1;
            setImmediate(() => process.exit(1));
          });
        }),
      );
    }
    this.#seen = Array.from({ length: n }, () => 0);
    this.#seenAt = Array.from({ length: n }, () => Date.now());
    await Promise.all(ready);
    await this.ctx.appLoaded();
  }

  healthy(): boolean {
    return this.stuckThreads().length === 0;
  }

  /** Threads that missed their beat for longer than two heartbeat periods. */
  private stuckThreads(): number[] {
    if (!this.#beats || this.#staleMs === 0) return [];
    const now = Date.now();
    const stuck: number[] = [];
    for (let t = 0; t < this.#beats.length; t++) {
      const b = Atomics.load(this.#beats, t);
      if (b !== this.#seen[t]) {
        this.#seen[t] = b;
        this.#seenAt[t] = now;
      } else if (now - this.#seenAt[t]! > this.#staleMs) stuck.push(t);
    }
    return stuck;
  }

  /**
   * Timed out: a thread is stuck. Cut only that thread (terminate() interrupts even a busy loop), and let the
   * others stop accepting and finish what they hold, so their clients lose nothing; the master's SIGKILL
   * after its grace bounds it all.
   */
  async abort(): Promise<void> {
    this.#stopping = true;
    const stuck = new Set(this.stuckThreads());
    await Promise.all(
      this.#threads.map((w, t) => {
        if (stuck.has(t)) return w.terminate();
        w.postMessage({ t: 'stop', graceful: true, drain: false } satisfies ToThread);
        return this.#exited[t];
      }),
    );
  }

  /** Every request a thread runs (sorted longest first): a stuck thread's is the first. */
  slowRequests(): InflightRequest[] {
    return this.#slots?.running() ?? [];
  }

  async stop(graceful: boolean): Promise<void> {
    this.#stopping = true;
    const drain = this.ctx.runtime.acceptDrain;
    for (const w of this.#threads) w.postMessage({ t: 'stop', graceful, drain } satisfies ToThread);
    await Promise.all(this.#exited);
  }

  reopenLogs(): void {
    for (const w of this.#threads) w.postMessage({ t: 'reopen' } satisfies ToThread);
  }
}

export const createGthreadWorker = (ctx: WorkerClassContext): WorkerClass => new GthreadWorker(ctx);
