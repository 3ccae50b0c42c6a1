import { spawn, type SendHandle } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { HookServer } from '../config/hook-types.js';
import type { Config } from '../config/registry.js';
import { serializableConfig, type Resolved } from '../config/resolve.js';
import { ErrorLog } from '../logging/error-log.js';
import { bindAll, closeListeners, type Listener } from '../listeners/bind.js';
import { primeListeners } from '../listeners/prime.js';
import { ExitCode, isWorkerMessage, listenerLayout, type MasterMessage, type WorkerMessage } from '../protocol/messages.js';
import { VERSION } from '../version.js';
import { Pidfile } from './pidfile.js';
import { WorkerHandle } from './worker-handle.js';

const CHILD_ENTRY = fileURLToPath(new URL('../workers/child.js', import.meta.url));

/** How often the run loop looks at its workers (timeouts, deadlines, count). */
const TICK_MS = 200;
/** A worker that never reported ready may take this long, whatever `timeout` says (TypeScript transforms). */
const MIN_BOOT_TIMEOUT_S = 30;
/** After SIGABRT, a timed-out worker gets this long to report before SIGKILL. */
const ABORT_GRACE_MS = 1000;
/** Consecutive boot failures before a server that never served gives up (a crash loop, not a hiccup). */
const MAX_BOOT_FAILURES = 5;
/** Backoff between respawns after boot failures: doubles from the first to the cap. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_CAP_MS = 10_000;

type SignalName = 'SIGHUP' | 'SIGTERM' | 'SIGINT' | 'SIGQUIT' | 'SIGTTIN' | 'SIGTTOU' | 'SIGUSR1' | 'SIGUSR2' | 'SIGWINCH';
const SIGNALS: readonly SignalName[] = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGTTIN', 'SIGTTOU', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

export interface ArbiterOptions {
  readonly resolved: Resolved;
  /** Re-resolves the configuration from the same command line and environment (HUP). */
  readonly reload: () => Promise<Resolved>;
}

/**
 * The master. It binds the sockets, keeps `workers` workers alive, and reacts to signals. Signal handlers only
 * enqueue; one loop dispatches them through the table in `handlers`. It never accepts a connection.
 */
export class Arbiter implements HookServer {
  cfg: Config;
  log: ErrorLog;
  numWorkers: number;
  readonly pid = process.pid;
  #resolved: Resolved;
  #listeners: Listener[] = [];
  readonly #workers = new Map<number, WorkerHandle>();
  readonly #queue: SignalName[] = [];
  readonly #pidfile = new Pidfile();
  #age = 0;
  #tick: NodeJS.Timeout | null = null;
  #stopping: 'graceful' | 'quick' | null = null;
  #exitCode: number = ExitCode.OK;
  #everReady = false;
  #bootFailures = 0;
  #nextSpawnAt = 0;
  #finish: ((code: number) => void) | null = null;
  readonly #onSignal = new Map<SignalName, () => void>();

  constructor(private readonly opts: ArbiterOptions) {
    this.#resolved = opts.resolved;
    this.cfg = opts.resolved.config;
    this.log = new ErrorLog(this.cfg.errorlog, this.cfg.loglevel);
    this.numWorkers = this.cfg.workers;
  }

  get name(): string {
    return this.cfg.procName ?? this.#resolved.app ?? 'app';
  }

  /** Runs until the server stops; resolves with the exit code. */
  async run(): Promise<number> {
    await this.runHook('onStarting', this);
    this.log.info(`Starting tunicorn ${VERSION}`);
    this.#listeners = await bindAll(this.cfg.bind);
    await primeListeners(this.#listeners.map((l) => l.fd), this.cfg.backlog);
    for (const l of this.#listeners) this.log.info(`Listening at: ${l.url} (${process.pid})`);
    this.log.info(`Using worker: ${this.cfg.workerClass}`);
    if (this.cfg.pidfile) this.#pidfile.create(this.cfg.pidfile);
    process.title = `tunicorn: master [${this.name}]`;
    for (const sig of SIGNALS) {
      const h = () => this.enqueue(sig);
      this.#onSignal.set(sig, h);
      process.on(sig, h);
    }
    const done = new Promise<number>((resolve) => (this.#finish = resolve));
    await this.runHook('whenReady', this);
    await this.runHook('nworkersChanged', this, this.numWorkers, null);
    this.#tick = setInterval(() => this.step(), TICK_MS);
    this.manageWorkers();
    return done;
  }

  // ---- the loop ---------------------------------------------------------------------------------------

  private enqueue(sig: SignalName): void {
    // Like Gunicorn, keep at most a few pending signals: a storm of HUPs is one reload.
    if (this.#queue.length < 5) this.#queue.push(sig);
    setImmediate(() => this.step());
  }

  /** One turn: dispatch signals, enforce timeouts and deadlines, keep the worker count. */
  private step(): void {
    for (let sig = this.#queue.shift(); sig; sig = this.#queue.shift()) {
      this.log.info(`Handling signal: ${sig.slice(3).toLowerCase()}`);
      this.handlers[sig]();
    }
    this.murderWorkers();
    this.manageWorkers();
    this.maybeFinish();
  }

  private readonly handlers: Record<SignalName, () => void> = {
    SIGHUP: () => void this.reload(),
    SIGTERM: () => this.stop('graceful'),
    SIGINT: () => this.stop('quick'),
    SIGQUIT: () => this.stop('quick'),
    SIGTTIN: () => this.setWorkerCount(this.numWorkers + 1),
    SIGTTOU: () => {
      if (this.numWorkers <= 1) this.log.warning('TTOU ignored: at least one worker must run');
      else this.setWorkerCount(this.numWorkers - 1);
    },
    SIGUSR1: () => {
      this.log.reopen();
      this.broadcast({ t: 'reopen' });
    },
    SIGUSR2: () => this.log.warning('USR2 (binary upgrade) is not supported yet; ignored'),
    SIGWINCH: () => this.log.debug('WINCH ignored: tunicorn is not daemonized'),
  };

  // ---- workers -----------------------------------------------------------------------------------------

  private counted(): WorkerHandle[] {
    return [...this.#workers.values()].filter((w) => w.counted);
  }

  private manageWorkers(): void {
    if (this.#stopping) return;
    const live = this.counted();
    if (live.length < this.numWorkers) {
      if (Date.now() < this.#nextSpawnAt) return;
      for (let i = live.length; i < this.numWorkers; i++) this.spawnWorker();
    } else if (live.length > this.numWorkers) {
      // TTOU or a smaller count after HUP: stop the oldest first, as Gunicorn does.
      const excess = live.sort((a, b) => a.age - b.age).slice(0, live.length - this.numWorkers);
      for (const w of excess) this.stopWorker(w, true);
    }
  }

  private freeSlot(): number {
    const used = new Set(this.counted().map((w) => w.id));
    let id = 1;
    while (used.has(id)) id++;
    return id;
  }

  private spawnWorker(): void {
    const id = this.freeSlot();
    const age = ++this.#age;
    void this.runHook('preFork', this, { pid: 0, id, age, log: this.log });
    const copies = this.cfg.workerClass === 'gthread' ? this.cfg.threads : 1;
    const fds = Array.from({ length: copies }, () => this.#listeners.map((l) => l.fd)).flat();
    const child = spawn(process.execPath, [...process.execArgv, CHILD_ENTRY], {
      // The layout is listenerLayout()'s (src/protocol/messages.ts): IPC, watchdog pipe, listener copies.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe', ...fds],
      env: { ...process.env, ...this.cfg.rawEnv },
      serialization: 'json',
    });
    const w = new WorkerHandle(id, age, child, this.log, Date.now());
    if (!child.pid) {
      child.once('error', (err) => this.log.error(`Could not start a worker: ${err.message}`));
      this.#nextSpawnAt = Date.now() + BACKOFF_CAP_MS;
      return;
    }
    this.#workers.set(child.pid, w);
    this.log.info(`Booting worker with pid: ${child.pid}`);
    child.on('message', (m: unknown) => isWorkerMessage(m) && this.onWorkerMessage(w, m));
    const reports = child.stdio[4] as Readable;
    reports.setEncoding('utf8');
    createInterface({ input: reports }).on('line', (line) => w.onStallReport(line));
    child.on('error', (err) => this.log.error(`Worker ${w.pid}: ${err.message}`));
    child.once('exit', (code, signal) => this.onWorkerExit(w, code, signal));
    const init: MasterMessage = {
      t: 'init',
      id,
      age,
      app: this.#resolved.app!,
      configPath: this.#resolved.configPath,
      config: serializableConfig(this.cfg),
      listeners: listenerLayout(this.#listeners.map((l) => l.url), copies),
      masterPid: process.pid,
    };
    child.send(init);
  }

  private onWorkerMessage(w: WorkerHandle, m: WorkerMessage): void {
    if (m.t === 'stuck') {
      w.slow = m.slow;
      return;
    }
    w.lastBeat = Date.now();
    switch (m.t) {
      case 'ready':
        w.state = w.state === 'stopping' ? 'stopping' : 'ready';
        this.#everReady = true;
        this.#bootFailures = 0;
        this.retireReplaced();
        return;
      case 'hb':
        w.slow = m.slow ?? [];
        return;
      case 'retire':
        if (!w.replaced && !this.#stopping) {
          w.replaced = true;
          this.log.info(`Worker ${w.pid} handled ${m.requests} requests (max_requests): replacing it`);
          this.manageWorkers();
        }
        return;
      case 'lease': {
        const l = this.#listeners[m.listener];
        // The raw handle goes over the IPC channel as a new descriptor in the worker (Node sends a raw TCP or
        // Pipe handle as-is, its 'net.Native' kind; the typings only name Socket and Server); ours stays open.
        const handle = l?.handle as unknown as SendHandle;
        if (l && w.child.connected) w.child.send({ t: 'lease', listener: m.listener } satisfies MasterMessage, handle);
        return;
      }
      case 'fatal':
        w.fatal = { code: m.code, message: m.message, detail: m.detail };
        return;
    }
  }

  /**
   * Stops replaced workers (HUP, max_requests) once their successors serve: old workers keep serving until
   * ready new ones make up the wanted number, oldest stopped first. New workers serve before old ones stop.
   */
  private retireReplaced(): void {
    const replaced = [...this.#workers.values()].filter((w) => w.replaced && w.state !== 'stopping');
    const readyFresh = this.counted().filter((w) => w.state === 'ready').length;
    const keep = Math.max(0, this.numWorkers - readyFresh);
    const excess = replaced.sort((a, b) => a.age - b.age).slice(0, Math.max(0, replaced.length - keep));
    for (const w of excess) this.stopWorker(w, true);
  }

  private stopWorker(w: WorkerHandle, graceful: boolean): void {
    if (w.state === 'stopping' && graceful) return;
    w.state = 'stopping';
    w.killAt = Date.now() + (graceful ? this.cfg.gracefulTimeout * 1000 : Math.min(this.cfg.gracefulTimeout * 1000, 5000));
    if (w.child.connected) w.child.send({ t: 'stop', graceful } satisfies MasterMessage);
    else w.signal(graceful ? 'SIGTERM' : 'SIGQUIT');
  }

  private onWorkerExit(w: WorkerHandle, code: number | null, signal: NodeJS.Signals | null): void {
    this.#workers.delete(w.pid);
    const expected = w.state === 'stopping' && !w.timedOut;
    if (signal === 'SIGKILL' && !w.timedOut && !expected) {
      this.log.error(`Worker (pid:${w.pid}) was sent SIGKILL! Perhaps out of memory?`);
    } else if (signal && !expected && !w.timedOut) {
      this.log.error(`Worker (pid:${w.pid}) was killed by ${signal}`);
    } else if (code && !expected) {
      this.log.error(`Worker (pid:${w.pid}) exited with code ${code}`);
    } else {
      this.log.info(`Worker exited (pid: ${w.pid})`);
    }
    void this.runHook('childExit', this, w);
    if (w.state === 'booting' && !this.#stopping) this.onBootFailure(w, code);
    setImmediate(() => this.step());
  }

  private onBootFailure(w: WorkerHandle, code: number | null): void {
    const f = w.fatal;
    if (f) this.log.error(`${f.message}${f.detail && this.log.enabled('debug') ? `\n${f.detail}` : ''}`);
    this.#bootFailures++;
    const appError = code === ExitCode.APP_LOAD_ERROR || f?.code === ExitCode.APP_LOAD_ERROR;
    if (!this.#everReady && (appError || this.#bootFailures >= MAX_BOOT_FAILURES)) {
      if (f?.detail && !this.log.enabled('debug')) this.log.error(f.detail);
      this.halt(appError ? 'App failed to load.' : 'Worker failed to boot.', appError ? ExitCode.CONFIG : ExitCode.WORKER_BOOT_ERROR);
      return;
    }
    // A server that has served keeps its running workers; respawn with a growing pause, never a tight loop.
    const delay = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** (this.#bootFailures - 1));
    this.#nextSpawnAt = Date.now() + delay;
    this.log.warning(`Worker failed to boot (${this.#bootFailures} in a row); next try in ${(delay / 1000).toFixed(1)} s`);
  }

  /** Heartbeat timeouts and the deadlines of stopping workers. */
  private murderWorkers(): void {
    const now = Date.now();
    for (const w of this.#workers.values()) {
      if (w.state === 'stopping') {
        if (now >= w.killAt) {
          this.log.warning(`Worker (pid:${w.pid}) did not stop in time: killing it`);
          w.killAt = Infinity;
          w.signal('SIGKILL');
        }
        continue;
      }
      if (this.cfg.timeout <= 0) continue;
      const limit = (w.state === 'booting' ? Math.max(this.cfg.timeout, MIN_BOOT_TIMEOUT_S) : this.cfg.timeout) * 1000;
      if (now - w.lastBeat <= limit) continue;
      w.timedOut = true;
      w.state = 'stopping';
      const serving = w.servingReport(now);
      this.log.critical(`WORKER TIMEOUT (pid:${w.pid})${serving}`);
      w.signal('SIGABRT');
      w.killAt = now + ABORT_GRACE_MS;
    }
  }

  private broadcast(m: MasterMessage): void {
    for (const w of this.#workers.values()) if (w.child.connected) w.child.send(m);
  }

  private setWorkerCount(n: number): void {
    const old = this.numWorkers;
    this.numWorkers = n;
    this.log.info(`Number of workers: ${old} -> ${n}`);
    void this.runHook('nworkersChanged', this, n, old);
    this.manageWorkers();
  }

  // ---- reload and stop -----------------------------------------------------------------------------------

  private async reload(): Promise<void> {
    let next: Resolved;
    try {
      next = await this.opts.reload();
    } catch (err) {
      this.log.error(`Reload failed, keeping the running configuration: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (this.#stopping) return;
    const old = this.cfg;
    this.#resolved = next;
    this.cfg = next.config;
    if (old.errorlog !== this.cfg.errorlog || old.loglevel !== this.cfg.loglevel) {
      this.log.close();
      this.log = new ErrorLog(this.cfg.errorlog, this.cfg.loglevel);
    }
    if (old.bind.join() !== this.cfg.bind.join())
      this.log.warning('bind changed in the config: a reload keeps the bound sockets; restart to rebind');
    await this.runHook('onReload', this);
    if (this.cfg.workers !== old.workers) {
      const prev = this.numWorkers;
      this.numWorkers = this.cfg.workers;
      void this.runHook('nworkersChanged', this, this.numWorkers, prev);
    }
    for (const w of this.#workers.values()) if (w.state !== 'stopping') w.replaced = true;
    this.#nextSpawnAt = 0;
    this.#bootFailures = 0;
    this.manageWorkers();
  }

  private stop(mode: 'graceful' | 'quick'): void {
    if (this.#stopping === 'quick' || this.#stopping === mode) return;
    this.#stopping = mode;
    for (const w of this.#workers.values()) this.stopWorker(w, mode === 'graceful');
  }

  private halt(reason: string, code: number): void {
    this.log.info(`Reason: ${reason}`);
    this.#exitCode = code;
    this.stop('quick');
  }

  private maybeFinish(): void {
    if (!this.#stopping || this.#workers.size > 0 || !this.#finish) return;
    const finish = this.#finish;
    this.#finish = null;
    if (this.#tick) clearInterval(this.#tick);
    for (const [sig, h] of this.#onSignal) process.off(sig, h);
    closeListeners(this.#listeners);
    this.#pidfile.unlink();
    this.log.info('Shutting down: Master');
    void this.runHook('onExit', this).finally(() => {
      this.log.close();
      finish(this.#exitCode);
    });
  }

  /** Runs a master-side hook; a hook that throws is logged and does not take the master down. */
  private async runHook<K extends 'onStarting' | 'onReload' | 'whenReady' | 'preFork' | 'childExit' | 'nworkersChanged' | 'onExit'>(
    name: K,
    ...args: Parameters<NonNullable<Config[K]>>
  ): Promise<void> {
    const fn = this.cfg[name] as ((...a: unknown[]) => unknown) | null;
    if (!fn) return;
    try {
      await fn(...args);
    } catch (err) {
      this.log.exception(`Exception in ${name} hook`, err);
    }
  }
}
