/**
 * The worker process: entry point spawned by the master. It receives its settings over IPC, loads the
 * config file's hooks and the app, serves on the inherited sockets, and reports to the master.
 */
import { AppLoadError } from '../app/errors.js';
import { loadApp } from '../app/load.js';
import { describeLoadError } from '../config/file.js';
import type { Config } from '../config/registry.js';
import { isMasterMessage, ExitCode, WATCHDOG_FD, type InflightRequest, type MasterMessage, type WorkerMessage } from '../protocol/messages.js';
import { Leases } from './leases.js';
import { loadHooks, WorkerRuntime, type WorkerHooks } from './runtime.js';
import { heartbeatEvery, Watchdog } from './watchdog.js';
import { WORKER_CLASSES, type WorkerClass } from './worker-class.js';


type Init = Extract<MasterMessage, { t: 'init' }>;

function send(m: WorkerMessage): void {
  if (process.connected) process.send!(m);
}

class FatalExit extends Error {}

/** Dies with a reason the master can act on (halt instead of respawning, or back off). */
function fatal(code: number, message: string, detail: string): never {
  send({ t: 'fatal', code, message, detail });
  // Let the IPC message leave before exiting; the exit code carries the meaning if it does not.
  process.exitCode = code;
  setTimeout(() => process.exit(code), 50);
  throw new FatalExit(message);
}

class WorkerProcess {
  #cls: WorkerClass | null = null;
  #stopping = false;
  readonly runtime: WorkerRuntime;

  constructor(
    readonly init: Init,
    hooks: WorkerHooks,
    private readonly leases: Leases,
  ) {
    this.runtime = new WorkerRuntime(init.config as unknown as Config, hooks, init.id, init.age, init.masterPid, send);
  }

  async boot(): Promise<void> {
    const { runtime, init } = this;
    await runtime.runHook('postFork', runtime.server, runtime.self);
    const factory = await WORKER_CLASSES[runtime.config.workerClass]();
    const cwd = process.cwd();
    this.#cls = factory({
      runtime,
      listeners: init.listeners,
      loadApp: async () => {
        const { served } = await loadApp(init.app, cwd, { onError: runtime.onAppError });
        runtime.log.debug(`Serving ${init.app} as ${served.kind}`);
        return served;
      },
      appLoaded: () => runtime.runHook('postWorkerInit', runtime.self),
      leases: this.leases,
      init,
    });
    try {
      await this.#cls.start();
    } catch (err) {
      if (err instanceof AppLoadError) fatal(ExitCode.APP_LOAD_ERROR, err.message, err.detail);
      fatal(ExitCode.WORKER_BOOT_ERROR, `worker failed to boot: ${describeLoadError(err)}`, err instanceof Error ? (err.stack ?? '') : '');
    }
    this.startHeartbeat();
    send({ t: 'ready' });
  }

  private startHeartbeat(): void {
    const timeout = this.runtime.config.timeout;
    if (timeout <= 0) return;
    // Cheap, and a stall is seen within a quarter of the timeout.
    const every = heartbeatEvery(timeout);
    const watchdog = new Watchdog(WATCHDOG_FD, 2 * every);
    this.runtime.watchdog = watchdog;
    setInterval(() => {
      // This loop runs, so the watchdog must not report it stalled; but a class part of which is stuck (a
      // gthread thread) misses its beat to the master, whose timeout then applies.
      watchdog.beat();
      const slow = [...this.runtime.slowRequests(every), ...(this.#cls?.slowRequests?.() ?? [])];
      if (this.#cls?.healthy?.() === false) send({ t: 'stuck', slow });
      else send(slow.length ? { t: 'hb', slow } : { t: 'hb' });
    }, every).unref();
  }

  async stop(graceful: boolean, why: string): Promise<void> {
    if (this.#stopping && graceful) return;
    this.#stopping = true;
    const { runtime } = this;
    runtime.log.info(`Worker exiting (pid: ${process.pid})${why ? `: ${why}` : ''}`);
    try {
      await this.#cls?.stop(graceful);
    } catch (err) {
      runtime.log.exception('Error while stopping', err);
    }
    await runtime.runHook('workerExit', runtime.server, runtime.self);
    runtime.closeLogs();
    process.exit(0);
  }

  slowInClass(): InflightRequest[] {
    return this.#cls?.slowRequests?.() ?? [];
  }

  onMessage(m: MasterMessage): void {
    switch (m.t) {
      case 'init':
        return;
      case 'stop':
        void this.stop(m.graceful, '');
        return;
      case 'reopen':
        this.runtime.reopenLogs();
        this.#cls?.reopenLogs?.();
        return;
      case 'lease':
        return; // routed to Leases with its handle in main()
    }
  }
}

function main(): void {
  let worker: WorkerProcess | null = null;
  /** A stop that arrived while the worker was still booting: carried out once it can be. */
  let pendingStop: boolean | null = null;
  let booting = false;
  const stopEarly = (graceful: boolean) => {
    if (worker) void worker.stop(graceful, '');
    else if (booting) pendingStop = graceful;
    else process.exit(0);
  };
  // Until the app is up, a signal from the terminal (Ctrl-C reaches the whole process group) just exits.
  const early = () => process.exit(0);
  process.on('SIGINT', early);
  process.on('SIGTERM', early);
  process.on('SIGQUIT', early);
  // The master went away (even by SIGKILL): the IPC channel closes. No orphans.
  process.on('disconnect', () => {
    if (worker) void worker.stop(true, 'the master is gone');
    else process.exit(0);
    setTimeout(() => process.exit(0), 5000).unref();
  });
  const leases = new Leases(send);
  process.on('message', (m: unknown, handle: unknown) => {
    if (!isMasterMessage(m)) return;
    if (m.t === 'lease') return leases.deliver(m.listener, handle as Parameters<Leases['deliver']>[1]);
    if (m.t === 'init') {
      if (!worker && !booting) {
        booting = true;
        void boot(m);
      }
      return;
    }
    if (m.t === 'stop') return stopEarly(m.graceful);
    worker?.onMessage(m);
  });

  async function boot(init: Init): Promise<void> {
    const name = (init.config.procName as string | null) ?? init.app;
    process.title = `tunicorn: worker [${name}]`;
    let hooks: WorkerHooks;
    try {
      hooks = await loadHooks(init.configPath);
    } catch (err) {
      try {
        fatal(ExitCode.WORKER_BOOT_ERROR, `config file failed to load in the worker: ${describeLoadError(err)}`, '');
      } catch {
        return;
      }
    }
    const w = new WorkerProcess(init, hooks, leases);
    process.off('SIGINT', early).off('SIGTERM', early).off('SIGQUIT', early);
    process.on('SIGTERM', () => void w.stop(true, 'SIGTERM'));
    const quick = (sig: string) => {
      void w.runtime.runHook('workerInt', w.runtime.self).finally(() => void w.stop(false, sig));
    };
    process.on('SIGINT', () => quick('SIGINT'));
    process.on('SIGQUIT', () => quick('SIGQUIT'));
    process.on('SIGUSR1', () => w.onMessage({ t: 'reopen' }));
    process.on('SIGABRT', () => {
      const slow = [...w.runtime.slowRequests(0), ...w.slowInClass()].map((r) => `${r.method} ${r.url} (${r.ms} ms)`);
      w.runtime.log.critical(`Worker aborted (pid: ${process.pid})${slow.length ? `; serving ${slow.join(', ')}` : ''}`);
      void w.runtime.runHook('workerAbort', w.runtime.self).finally(() => process.exit(1));
    });
    process.on('uncaughtException', (err) => {
      w.runtime.log.exception('Uncaught exception in worker; exiting', err);
      process.exit(1);
    });
    try {
      await w.boot();
    } catch (err) {
      if (!(err instanceof FatalExit)) throw err;
      return; // fatal() already reported and scheduled the exit
    }
    worker = w;
    if (pendingStop !== null) void w.stop(pendingStop, '');
  }
}

main();
