/**
 * The worker process: entry point spawned by the master. It receives its settings over IPC, loads the
 * config file's hooks and the app, serves on the inherited sockets, and reports to the master.
 */
import type { SendHandle } from 'node:child_process';
import net from 'node:net';
import { AppLoadError, appFrames, stackText } from '../app/errors.js';
import { loadApp } from '../app/load.js';
import { guardLoading } from '../app/load-guard.js';
import type { ServedApp } from '../app/shapes.js';
import { describeLoadError, loadConfigFile } from '../config/file.js';
import { SETTINGS, type Config } from '../config/registry.js';
import { ConfigError } from '../config/setting.js';
import { openDup } from '../http/peek.js';
import { keepTlsMaterial } from '../http/tls.js';
import { captureStdio, keepOnBrokenPipe, type ErrorLog } from '../logging/error-log.js';
import { flushPendingSinks } from '../logging/sink.js';
import { flushStatsd } from '../logging/statsd.js';
import { describeProcesses, descendants, signalEach } from '../process-tree.js';
import { isMasterMessage, ExitCode, WATCHDOG_FD, type InflightRequest, type MasterMessage, type WorkerMessage } from '../protocol/messages.js';
import { Leases, type LeasedHandle } from './leases.js';
import { collectCounts, type WorkerCounts } from './request-metrics.js';
import { dropPrivileges, resolveIdentity } from './privileges.js';
import { loadHooks, WorkerRuntime, type WorkerHooks } from './runtime.js';
import { keepTickShape } from './tick-shape.js';
import { heartbeatEvery, idleBeatEvery, Watchdog } from './watchdog.js';
import { BeatWriter } from '../protocol/beat-file.js';
import { loadWatched } from './watched-load.js';
import { WORKER_CLASSES, type WorkerClass } from './worker-class.js';


type Init = Extract<MasterMessage, { t: 'init' }>;

/**
 * A message the master may no longer read: `process.connected` stays true until this worker's loop has run
 * the channel's close, so a worker busy when the master ended (loading the app, say) writes into a closed
 * channel. Without a callback Node emits that EPIPE as an uncaught exception; dropping it is right, as the
 * 'disconnect' that follows ends the worker (the master is gone).
 */
function dropIfGone(err: Error | null): void {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (err && code !== 'EPIPE' && code !== 'ECONNRESET' && code !== 'ERR_IPC_CHANNEL_CLOSED') throw err;
}

function send(m: WorkerMessage): void {
  if (process.connected) process.send!(m, undefined, undefined, dropIfGone);
}

/** How long a worker's exit waits for its last message to be written (at once, unless the master reads nothing). */
const LAST_MESSAGE_MS = 200;

/** Sends `m` and resolves once it is written, or after LAST_MESSAGE_MS: for a message the exit must not drop. */
function sendLast(m: WorkerMessage): Promise<void> {
  if (!process.connected) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, LAST_MESSAGE_MS);
    process.send!(m, undefined, undefined, () => {
      clearTimeout(t);
      resolve();
    });
  });
}

class FatalExit extends Error {}

/**
 * Whether an uncaught exception is the app's to handle: it added an `uncaughtException` listener of its own.
 * An error reporter's listener does not count: Sentry's (`@sentry/node`, marked `_errorHandler`) captures the
 * error and ends the process only when no other listener is there, so with tunicorn's it would not, and
 * tunicorn, counting Sentry's, would leave the worker to it: a worker that should be replaced served on.
 */
function appDecidesUncaught(ours: unknown): boolean {
  return process.listeners('uncaughtException').some((l) => l !== ours && (l as { _errorHandler?: unknown })._errorHandler !== true);
}

/**
 * Second handles on descriptors handed over: only for sending. The thread that accepted the connection still
 * owns the descriptor and closes it when it ends, so these are never closed (see GthreadWorker.adopt).
 */
const handedOver: net.Socket[] = [];

/** Sends descriptor `fd` (a connection held back unread) to the master, as a `rescue` message's handle. */
function handOver(listener: number, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.connected) return reject(new Error('the master is gone'));
    const socket = new net.Socket({ fd, readable: false, writable: false });
    handedOver.push(socket);
    // The raw handle, not the Socket: Node sends it as-is ('net.Native'), and the master's side does not
    // start reading it (a Socket would arrive reading, its first bytes taken by the master).
    const handle = (socket as unknown as { _handle: SendHandle })._handle;
    process.send!({ t: 'rescue', listener } satisfies WorkerMessage, handle, undefined, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Set once tunicorn itself ends this process (a stop, the master gone, an abort, a crash): the exit is not
 * the app's, and the load guard says nothing of it (see WorkerProcess.loadApp).
 */
let leaving = false;

/** process.exit(), by tunicorn. */
function leave(code: number): never {
  leaving = true;
  return process.exit(code);
}

/** Set once the processes the app left running were asked to end: once per process. */
let leftoversEnded = false;

/**
 * The processes this worker started (the app's, a hook's) and left running in its session are sent SIGTERM
 * as it ends: at the end of a stop (before the logs close, so that it is said), or at any other exit (the
 * 'exit' listener in main()). Only a SIGKILL skips this; the master's own SIGKILL finds them itself
 * (WorkerHandle.kill). Runs once, at exit only: one read of /proc (src/process-tree.ts).
 */
function endLeftovers(log: ErrorLog | null): void {
  if (leftoversEnded) return;
  leftoversEnded = true;
  const found = descendants(process.pid);
  if (!found?.length) return;
  const sent = signalEach(found, 'SIGTERM');
  if (sent.length && log) {
    log.info(`Worker (pid: ${process.pid}) ending the processes it started that still run (SIGTERM): ${describeProcesses(sent)}`);
    flushPendingSinks();
  }
}

/**
 * With `timeout` 0: the stall after which a loop counts as stuck once its master is gone (the native watcher
 * counts it from the master's going, the worker-thread one from the loop's last beat).
 */
const ORPHAN_STALL_MS = 5000;

/**
 * `timeout` 0 with the native watcher: no master times a worker out, so only an orphan's stall matters (a loop
 * stuck when the master goes, whose 'disconnect' cannot end it). The loop does not beat at all while the master
 * lives: the watcher sleeps until the master's end of its report descriptor closes (Watchdog.untilMasterGone).
 * From the 'disconnect' on, which ends the worker within 5 s, the loop beats every `everyMs`, so the watcher
 * tells a loop that is leaving from one that is stuck. It had beaten every 2.5 s at rest, every second under load.
 */
function beatWhenMasterGone(watchdog: Watchdog, everyMs: number): void {
  watchdog.untilMasterGone();
  const beat = () => {
    watchdog.pace(0);
    watchdog.beat();
    setInterval(() => watchdog.beat(), everyMs).unref();
  };
  if (process.connected) process.once('disconnect', beat);
  else beat();
}

/** Dies with a reason the master can act on (halt instead of respawning, or back off). */
function fatal(code: number, message: string, detail: string): never {
  send({ t: 'fatal', code, message, detail });
  // Let the IPC message leave before exiting; the exit code carries the meaning if it does not.
  process.exitCode = code;
  setTimeout(() => leave(code), 50);
  throw new FatalExit(message);
}

class WorkerProcess {
  #cls: WorkerClass | null = null;
  #stopping = false;
  #interrupted = false;
  #exitCode = 0;
  #serving = false;
  /** The metrics setting: the last counts were sent (at the end of a stop, or by lastCounts()). */
  #lastCountsSent = false;
  readonly runtime: WorkerRuntime;

  constructor(
    readonly init: Init,
    hooks: WorkerHooks,
    private readonly leases: Leases,
  ) {
    this.runtime = new WorkerRuntime(init.config as unknown as Config, hooks, init.id, init.age, init.masterPid, send);
    this.runtime.setTicketKeys(init.ticketKeys);
    if (this.runtime.config.captureOutput) captureStdio(() => this.runtime.log);
    keepOnBrokenPipe(() => this.runtime.log);
  }

  async boot(): Promise<void> {
    const { runtime, init } = this;
    // From the start: a load that blocks the event loop (long synchronous top-level code) is watched too.
    this.startHeartbeat();
    await this.bootHook('postFork', () => runtime.runHook('postFork', runtime.server, runtime.self));
    // As in Gunicorn: post_fork runs with the master's identity, the app never does. The logs are open already.
    const identity = resolveIdentity(runtime.config.user, runtime.config.group);
    if (identity) {
      try {
        dropPrivileges(identity, runtime.config.initgroups);
      } catch (err) {
        fatal(ExitCode.WORKER_BOOT_ERROR, `worker failed to boot: ${(err as Error).message}`, '');
      }
    }
    const factory = await WORKER_CLASSES[runtime.config.workerClass]();
    const cwd = process.cwd();
    this.#cls = factory({
      runtime,
      listeners: init.listeners,
      loadApp: () => this.loadApp(cwd),
      appLoaded: () => this.bootHook('postWorkerInit', () => runtime.runHook('postWorkerInit', runtime.self)),
      leases: this.leases,
      handOver,
      crashed: (err, running) => this.crashed(err, running),
      init,
    });
    try {
      await this.#cls.start();
    } catch (err) {
      // As Gunicorn's worker_exit, in the finally of a worker's life: a worker whose app did not load exits too.
      await runtime.runHook('workerExit', runtime.server, runtime.self);
      if (err instanceof AppLoadError) {
        const detail = runtime.log.enabled('debug') ? err.detail : appFrames(err.detail);
        // A detail with no frame of the app's (a syntax error: the message again, file and line) says nothing
        // the first line does not.
        fatal(ExitCode.APP_LOAD_ERROR, err.message, /^\s+at /m.test(detail) ? detail : '');
      }
      fatal(ExitCode.WORKER_BOOT_ERROR, `worker failed to boot: ${describeLoadError(err)}`, stackText(err));
    }
    this.#serving = true;
    send({ t: 'ready' });
    // The app (or a server hook) ending the process itself: under plain Node nothing would say so, and the
    // master sees only a worker gone (`Worker exited` for a status 0). Under gthread the app runs in threads,
    // whose process.exit() ends only the thread: GthreadWorker names that.
    if (runtime.config.workerClass !== 'gthread') process.once('exit', (code) => this.exitedUnasked(code));
  }

  /**
   * process.exit() while serving, by someone other than tunicorn: said, with the requests it cuts. During a stop
   * (the app's SIGTERM or beforeExit listener that flushes, then exits, as under plain Node): said too, since it
   * skips the rest of the stop, the workerExit hook among it.
   */
  private exitedUnasked(code: number): void {
    if (leaving) return;
    if (this.#stopping) {
      this.runtime.log.warning(
        `Worker exiting (pid: ${process.pid}): process.exit(${code}) was called during the stop by the app (a SIGTERM or beforeExit listener?) or a hook, not by tunicorn: what was left of the stop is skipped (the workerExit hook, if it had not run)`,
      );
      return void flushPendingSinks();
    }
    const cut = [...this.runtime.slowRequests(0), ...this.slowInClass()].map((r) => `${r.method} ${r.url} (${(r.ms / 1000).toFixed(1)} s)`);
    this.runtime.log.error(
      `Worker exiting (pid: ${process.pid}): process.exit(${code}) was called by the app or a server hook, not by tunicorn${cut.length ? `; the requests it was serving are cut: ${cut.join(', ')}` : ''}`,
    );
    flushPendingSinks();
  }

  /** Runs a boot hook, telling the master while it runs: a boot timeout then names the hook, not the app. */
  private async bootHook(step: 'postFork' | 'postWorkerInit', run: () => Promise<void>): Promise<void> {
    if (this.runtime.hooks[step] === null) return;
    send({ t: 'step', step });
    await run();
    send({ t: 'step', step: null });
  }

  private loadApp(cwd: string): Promise<ServedApp> {
    const { runtime, init } = this;
    // A process.exit() in the app's top-level code is named in the log; a load that never ends meets the
    // master's boot timeout.
    // Not the worker's own exit: a stop while the app loads (TERM, the master gone) ends the process too.
    const say = (line: string) => {
      if (!this.#stopping && !leaving) runtime.log.error(line);
    };
    const load = () => guardLoading(`app ${init.app}`, loadApp(init.app, cwd, { onError: runtime.onAppError }), { say, fail: say, limitS: 0 });
    return loadWatched(runtime, init.app, cwd, load, init.id === 1);
  }

  /**
   * The watcher thread, and the beat it watches. It names the requests of a stalled worker for the master's
   * timeout, and it ends a worker whose loop is stuck once the master is gone (its 'disconnect' cannot run
   * then): so it runs from the start of the boot, and also with `timeout` 0, where only that second part
   * applies (a stall of ORPHAN_STALL_MS). The heartbeat to the master starts once the worker serves: until
   * then the master's boot timeout applies.
   */
  private startHeartbeat(): void {
    const { runtime } = this;
    const timeout = runtime.config.timeout;
    // Cheap, and a stall is seen within a quarter of the timeout.
    const every = timeout > 0 ? heartbeatEvery(timeout) : 1000;
    const watchdog = new Watchdog(WATCHDOG_FD, timeout > 0 ? 2 * every : ORPHAN_STALL_MS);
    // The request slots cost a write per request: kept for the timeout's report only.
    if (timeout > 0) runtime.watchdog = watchdog;
    runtime.log.debug(`Watching for a stalled event loop with ${watchdog.kind}`);
    if (timeout <= 0 && watchdog.native) return beatWhenMasterGone(watchdog, every);
    // The beat to the master goes into the file it gave (src/protocol/beat-file.ts), which wakes nobody; a
    // message only carries news: long-running requests, the first beat after they are gone, the counts.
    const file = this.init.beatFd !== null && timeout > 0 ? new BeatWriter(this.init.beatFd) : null;
    // While the worker idles it beats less often, and its watcher reads less often (Watchdog.pace): a beat
    // carries nothing then but the news that the loop runs. Under gthread, once every thread idles too.
    // 0: never (a timeout under 7 s, where a sixth of it is no longer than `every`).
    const idlePeriod = timeout > 0 ? idleBeatEvery(timeout) : ORPHAN_STALL_MS / 2;
    const idleEvery = idlePeriod > every ? idlePeriod : 0;
    let idle = false;
    let served = -1;
    let slowSaid = false;
    // The metrics setting: the request counts last sent, as JSON. When they have not changed, the counts are
    // not sent again, though the CPU time and RSS beside them move: a scrape asks the workers for all of it,
    // and what a beat sends is what the master keeps of a worker killed before its next answer (an idle
    // spell's CPU time at most).
    let countsSent = '';
    const beat = (): void => {
      // This loop runs, so the watchdog must not report it stalled; but a class part of which is stuck (a
      // gthread thread) gives the master no beat newer than that part's last, and its timeout then applies.
      watchdog.beat();
      if (!this.#serving || timeout <= 0) return;
      const own = runtime.slowRequests(every);
      const inClass = this.#cls?.slowRequests?.() ?? [];
      // The metrics setting: the counts ride along, so a worker killed later (a timeout) loses a beat's worth.
      const all = runtime.config.metrics ? this.counts() : undefined;
      const json = all ? JSON.stringify([all.requests, all.buckets, all.seconds, all.inflight]) : '';
      if (this.#cls?.healthy?.() === false) {
        // The file keeps the stuck part's last beat (a gthread thread's, ThreadBeats.fileTime), from which the
        // master's timeout runs; never now.
        const at = this.#cls.beatTime?.();
        if (typeof at === 'bigint') file?.beat(at);
        // Every request the class runs, longest (the stuck thread's) first.
        send({ t: 'stuck', slow: [...own, ...inClass], ...(all ? { counts: all } : {}) });
        countsSent = json;
        slowSaid = true;
        return;
      }
      // As for the loop's own, only those running longer than a beat period: under load a gthread worker's
      // threads run a request at most of its beats (a CPU-bound app's take a few hundred ms each), and each of
      // those beats was a message that woke the master.
      const slow = inClass.length ? [...own, ...inClass.filter((r) => r.ms > every)] : own;
      const counts = json !== countsSent ? all : undefined;
      countsSent = json;
      const written = file?.beat(this.#cls?.beatTime?.()) === true;
      if (written && !slow.length && !slowSaid && !counts) return;
      slowSaid = slow.length > 0;
      send({ t: 'hb', ...(slow.length ? { slow } : {}), ...(counts ? { counts } : {}), ...(written ? { filed: true } : {}) });
    };
    const tick = (): void => {
      // Idle: serving, nothing running, nothing served since the last beat. A request that comes during an
      // idle period is seen at its end; a loop stuck on it is still named by half the timeout (idleBeatEvery).
      const cls = this.#cls;
      const quiet =
        idleEvery > 0 && this.#serving && !slowSaid && (cls?.quiet ? cls.quiet() : runtime.inflight.size === 0 && runtime.requests === served);
      served = runtime.requests;
      if (quiet !== idle) {
        idle = quiet;
        watchdog.pace(quiet ? idleEvery : 0);
      }
      beat();
      setTimeout(tick, idle ? idleEvery : every).unref();
    };
    setTimeout(tick, every).unref();
  }

  async stop(graceful: boolean, why: string, drain = false, handOver = false): Promise<void> {
    if (this.#stopping && graceful) return;
    this.#stopping = true;
    const { runtime } = this;
    runtime.acceptDrain = drain;
    runtime.handOverOnStop = handOver;
    if (graceful && !this.#interrupted) runtime.termListeners = { stoppedAt: Date.now(), own: this.onTerm };
    runtime.log.info(`Worker exiting (pid: ${process.pid})${why ? `: ${why}` : ''}`);
    try {
      await this.#cls?.stop(graceful);
      // Done by the class already (a no-op then), except under gthread, whose threads run the app: this runs
      // the TERM listeners of the process's main thread (a config file's).
      if (graceful) await runtime.shutdownApp(true);
    } catch (err) {
      runtime.logStopError(err);
    }
    await runtime.runHook('workerExit', runtime.server, runtime.self);
    endLeftovers(runtime.log);
    runtime.closeLogs();
    // The metrics setting: the last counts (the requests cut by the stop included), so that none is lost.
    if (runtime.config.metrics) {
      this.#lastCountsSent = true;
      await sendLast({ t: 'metrics', counts: this.counts() });
    }
    leave(this.#exitCode);
  }

  /** A SIGTERM to this worker: the app's own listeners run at the stop's end (see main()), not in the signal's emit. */
  readonly onTerm = (): void => {
    void this.stop(true, 'SIGTERM');
  };

  /**
   * An exception nothing caught (a throw in a timer, a rejection nothing handled). The worker is no longer
   * trusted with new connections, but the requests of other clients it is serving need not fail with it: it
   * asks the master for a replacement, stops accepting, lets those requests finish (within the graceful
   * stop's bound), and exits with status 1. One during a stop, or before the worker serves, ends it at once.
   */
  crashed(err: unknown, running: string = this.runtime.runningList()): void {
    const { runtime } = this;
    if (this.#stopping || !this.#serving) {
      runtime.log.exception('Uncaught exception in worker; exiting', err);
      leave(1);
    }
    // The requests running then: one of them may be the one whose code threw (a timer, a rejection nothing
    // handled carries no trace of its request).
    const during = running ? ` while it ran ${running}` : '';
    runtime.log.exception(`Uncaught exception in worker${during}; it finishes the requests it has, takes no new one, and exits`, err);
    this.#exitCode = 1;
    send({ t: 'crashed' });
    void this.stop(true, 'after an uncaught exception');
  }

  /** A stop has begun: the process exits once it is done. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /**
   * A quick stop (INT or QUIT, to this worker or to the master, which passes it on): the worker_int hook runs
   * first, as in Gunicorn, then the requests in flight are cut.
   */
  quickStop(why: string): void {
    // Also during a graceful stop, which it cuts short; the hook runs once.
    if (this.#interrupted) return;
    this.#interrupted = true;
    this.runtime.termListeners = null;
    void this.runtime.runHook('workerInt', this.runtime.self).finally(() => void this.stop(false, why));
  }

  /** SIGABRT: what the class can save before the master's SIGKILL (see WorkerClass.abort). */
  abortClass(): Promise<boolean> {
    return this.#cls?.abort?.() ?? Promise.resolve(false);
  }

  /** A connection handed over by the master (`adopt`): served here, or closed if the class cannot take it. */
  adopt(listener: number, handle: LeasedHandle | undefined): void {
    if (!handle) return;
    if (this.#cls?.adopt?.(listener, handle)) return;
    handle.close();
    this.runtime.log.warning('A connection handed over from a timed-out worker cannot be served here (stopping, or not gthread): closed');
  }

  /**
   * The metrics setting, at an exit that is not a stop's end (the app's process.exit(), a gthread thread that
   * exited, which ends its process): the last counts, or what was served since the last heartbeat would be
   * lost (all of it with `timeout` 0). Nothing can wait in an 'exit' listener, but libuv tries a write to the
   * IPC pipe at once when nothing is queued before it, so the message is in the kernel before the process
   * ends (checked: 301 requests, then the app's process.exit(), 301 counted under each class).
   */
  lastCounts(): void {
    if (this.#lastCountsSent || !this.#serving || !this.runtime.config.metrics) return;
    this.#lastCountsSent = true;
    send({ t: 'metrics', counts: this.counts() });
  }

  /** The metrics setting: this process's counts, from the main thread's record or the class's (gthread threads). */
  counts(): WorkerCounts {
    const records = this.#cls?.metricRecords?.() ?? (this.runtime.metrics ? [this.runtime.metrics.cells] : []);
    return collectCounts(records);
  }

  slowInClass(): InflightRequest[] {
    return this.#cls?.slowRequests?.() ?? [];
  }

  onMessage(m: MasterMessage): void {
    switch (m.t) {
      case 'init':
        return;
      case 'stop':
        if (m.graceful) void this.stop(true, '', m.drain ?? false, m.handOver ?? false);
        else this.quickStop('');
        return;
      case 'reopen': {
        // Run as --user, a worker may not open what the master could (a file logrotate made for root): the
        // master, whose error log is the one that was just opened again, says so.
        const problems = this.runtime.reopenLogs();
        this.#cls?.reopenLogs?.();
        if (problems.length > 0) send({ t: 'reopenFailed', problems });
        return;
      }
      case 'ticketKeys':
        // The TLS server (or each gthread thread's) takes them; while it is not made yet, it will read them.
        this.runtime.setTicketKeys(m.keys);
        return;
      case 'metrics':
        send({ t: 'metrics', counts: this.counts() });
        return;
      case 'lease':
      case 'adopt':
        return; // routed with its handle in main()
    }
  }
}

function main(): void {
  let worker: WorkerProcess | null = null;
  /** A stop that arrived while the worker was still booting: carried out once it can be. */
  let pendingStop: { graceful: boolean; drain: boolean } | null = null;
  let booting = false;
  /**
   * The worker while it loads the app (and until it is ready). A stop then is carried out at once, as a
   * SIGTERM to the worker would be: it serves nothing yet, and the load can take long (a slow import, a
   * database that does not answer) where the master's stop should not wait for it.
   */
  let loading: WorkerProcess | null = null;
  /** Ticket keys rotated while the config file's hooks load, before there is a WorkerProcess to take them. */
  let rotatedKeys: string | null = null;
  const stopEarly = (graceful: boolean, drain: boolean, handOver = false) => {
    if (worker) worker.onMessage({ t: 'stop', graceful, drain, handOver });
    else if (loading) loading.onMessage({ t: 'stop', graceful, drain, handOver: false });
    else if (booting) pendingStop = { graceful, drain };
    else leave(0);
  };
  // Closing a terminal sends SIGHUP to its whole process group: the workers get it with the master, whose
  // HUP is a reload that replaces them gracefully. Node's default action for it (exit) would cut the requests
  // each worker runs (as Gunicorn's workers, left to SIG_DFL, are cut); a worker has no use of its own for HUP.
  process.on('SIGHUP', () => {});
  // A SIGTERM sent to the worker itself (a supervisor that signals the whole group: systemd's
  // KillMode=control-group, `kill -TERM -PGID`) is the same graceful stop as the master's message, and the app's
  // own SIGTERM listeners run as they do then: at the stop's end, awaited (WorkerRuntime.runAppTermListeners).
  // Left to the signal's emit they would run at once, and nothing would wait for the promise an async one
  // returns: the worker exited under it (Apollo Server's drain, a pool's close). Node binds process.emit to a
  // signal when its first listener is added, so this comes before any.
  let onTerm: (() => void) | null = null;
  const emit = process.emit;
  process.emit = function (this: NodeJS.Process, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'SIGTERM' && onTerm !== null) {
      onTerm();
      return true;
    }
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as typeof process.emit;
  // A module preloaded with --import or --require (NODE_OPTIONS: OpenTelemetry's register, an APM agent) may
  // have a SIGTERM listener already, so the signal is bound to the emit of then: the listeners would run in the
  // signal's emit, and once more at the stop's end. Without listeners Node unbinds the signal; added again, they
  // bind it to this emit (the signal's default action, an exit, applies for the few statements between).
  const preloaded = process.rawListeners('SIGTERM') as (() => void)[];
  if (preloaded.length > 0) {
    process.removeAllListeners('SIGTERM');
    for (const l of preloaded) process.on('SIGTERM', l);
  }
  // Until the app is up, a signal from the terminal (Ctrl-C reaches the whole process group) just exits.
  const early = () => leave(0);
  process.on('SIGINT', early);
  process.on('SIGTERM', early);
  process.on('SIGQUIT', early);
  // Any exit but a SIGKILL: what the app started ends with the worker, and the master gets its last counts.
  const onExit = () => {
    endLeftovers(worker?.runtime.log ?? loading?.runtime.log ?? null);
    worker?.lastCounts();
  };
  process.on('exit', onExit);
  // The master went away (even by SIGKILL): the IPC channel closes. No orphans.
  process.on('disconnect', () => {
    // Its copies of the sockets went with it: drain the backlog before closing ours.
    if (worker) void worker.stop(true, 'the master is gone', true);
    else leave(0);
    setTimeout(() => leave(0), 5000).unref();
  });
  const dup = openDup();
  const leases = new Leases(send, typeof dup === 'string' ? null : dup);
  process.on('message', (m: unknown, handle: unknown) => {
    if (!isMasterMessage(m)) return;
    if (m.t === 'lease') return leases.deliver(m.listener, handle as LeasedHandle | undefined);
    if (m.t === 'adopt') return worker ? worker.adopt(m.listener, handle as LeasedHandle | undefined) : (handle as LeasedHandle | undefined)?.close();
    if (m.t === 'init') {
      if (!worker && !booting) {
        booting = true;
        void boot(m);
      }
      return;
    }
    if (m.t === 'stop') return stopEarly(m.graceful, m.drain ?? false, m.handOver ?? false);
    if (m.t === 'ticketKeys') {
      rotatedKeys = m.keys;
      return (worker ?? loading)?.onMessage(m);
    }
    worker?.onMessage(m);
  });

  async function boot(init: Init): Promise<void> {
    keepTickShape();
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
    keepTlsMaterial(init.config as Record<string, unknown>);
    let w: WorkerProcess;
    try {
      w = new WorkerProcess(init, hooks, leases);
    } catch (err) {
      // A log file the master checked but this process could not open (gone, or its directory, since): one line.
      if (!(err instanceof ConfigError)) throw err;
      try {
        fatal(ExitCode.WORKER_BOOT_ERROR, err.message, '');
      } catch {
        return;
      }
    }
    w.runtime.setTicketKeys(rotatedKeys);
    process.off('SIGINT', early).off('SIGTERM', early).off('SIGQUIT', early);
    process.on('SIGTERM', w.onTerm);
    onTerm = w.onTerm;
    process.on('SIGINT', () => w.quickStop('SIGINT'));
    process.on('SIGQUIT', () => w.quickStop('SIGQUIT'));
    process.on('SIGUSR1', () => w.onMessage({ t: 'reopen' }));
    process.on('SIGABRT', () => {
      const slow = [...w.runtime.slowRequests(0), ...w.slowInClass()].map((r) => `${r.method} ${r.url} (${Math.round(r.ms)} ms)`);
      w.runtime.log.critical(`Worker aborted (pid: ${process.pid})${slow.length ? `; serving ${slow.join(', ')}` : ''}`);
      // worker_abort, then worker_exit, as Gunicorn's worker exits after its abort (both within the master's grace).
      const hooks = w.runtime.runHook('workerAbort', w.runtime.self).then(() => w.runtime.runHook('workerExit', w.runtime.server, w.runtime.self));
      void Promise.allSettled([hooks, w.abortClass()]).then(([, cls]) => {
        if (cls.status === 'fulfilled' && cls.value) {
          // A stuck thread is still there: any exit but a kill would wake it (see GthreadWorker.abort). What
          // the logs and StatsD gathered goes out first, as an exit would send it.
          endLeftovers(w.runtime.log);
          flushPendingSinks();
          flushStatsd();
          process.kill(process.pid, 'SIGKILL');
        } else {
          leave(1);
        }
      });
    });
    const onUncaught = (err: Error) => {
      // An app with a listener of its own decides, as it would under plain Node (its listener runs after this).
      if (appDecidesUncaught(onUncaught)) {
        w.runtime.log.warning(`Uncaught exception in worker, left to the app's uncaughtException listener: ${describeLoadError(err)}`);
        return;
      }
      w.crashed(err);
    };
    process.on('uncaughtException', onUncaught);
    // A stop that came while the hooks loaded: nothing was started, nothing is.
    if (pendingStop !== null) return void w.stop(pendingStop.graceful, '', pendingStop.drain);
    loading = w;
    try {
      await w.boot();
    } catch (err) {
      // A stop during the boot ends the process its own way; what failed with it is not news.
      if (!(err instanceof FatalExit) && !w.stopping) throw err;
      return; // fatal() already reported and scheduled the exit
    } finally {
      loading = null;
    }
    if (w.stopping) return;
    worker = w;
    // Moved behind the listener the boot added, so that the log says an app's process.exit() first.
    process.off('exit', onExit).on('exit', onExit);
  }
}

main();
