import { spawn, type ChildProcess, type SendHandle } from 'node:child_process';
import { chownSync, closeSync, existsSync, fchownSync, openSync, readFileSync } from 'node:fs';
import { loadTls, TLS_MATERIAL, type TlsMaterial } from '../http/tls.js';
import { checkCanSwitch, parseUmask, resolveIdentity } from '../workers/privileges.js';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { HookServer } from '../config/hook-types.js';
import type { Config } from '../config/registry.js';
import { serializableConfig, type Resolved } from '../config/resolve.js';
import { captureStdio, ErrorLog } from '../logging/error-log.js';
import { ACCESS_LOG, checkLogFiles, checkWritable } from '../logging/output-file.js';
import { openStatsd, type StatsdClient } from '../logging/statsd.js';
import { METRIC } from '../logging/statsd-lines.js';
import { upgradeNodeBinary } from './node-binary.js';
import { adoptUpgradeListeners, bindAll, bindRetrying, closeListeners, listenerHolding, resolveHost, sameAddressBefore, unlinkUnixSockets, type BindRetry, type Listener } from '../listeners/bind.js';
import { inheritedSockets, UPGRADE_FD_ENV, UPGRADE_FILES_ENV, UPGRADE_PID_ENV, workerEnv, type Inherited } from '../listeners/inherit.js';
import { formatAddress, parseAddress } from '../listeners/address.js';
import { backlogCap, primeListeners } from '../listeners/prime.js';
import { BindError } from '../listeners/handle.js';
import { autoWorkersLine, memoryLimit } from '../cgroup.js';
import { ConfigError } from '../config/setting.js';
import { ExitCode, FIRST_LISTENER_FD, isWorkerMessage, listenerLayout, type MasterMessage, type WorkerMessage } from '../protocol/messages.js';
import { BeatFile, beatDirProblem, DEFAULT_BEAT_DIR } from '../protocol/beat-file.js';
import { workerExecArgv, workerInspectPort } from '../cli/node-flags.js';
import { VERSION } from '../version.js';
import { openFileLimit } from '../open-files.js';
import { ProcessTable } from '../process-tree.js';
import { ageMark, WORKER_AGE_ENV, type Adopter, type OrphansNote } from './orphans.js';
import { nativeFallbackLine } from '../native.js';
import { transformCacheLine } from '../app/import.js';
import { parseAppSpec } from '../app/spec.js';
import type { HealthServer, HealthState } from './health.js';
import type { Command } from '../control/commands.js';
import type { ControlServer } from '../control/server.js';
import path from 'node:path';
import { SystemdNotifier } from './notify.js';
import type { LeasedHandle } from '../workers/leases.js';
import { Reloader } from './reloader.js';
import { Pidfile } from './pidfile.js';
import { workDirProblem } from './work-dir.js';
import { procUsage } from './proc-usage.js';
import { exitReason, MetricsBook } from './metrics.js';
import { residentBytes } from '../workers/request-metrics.js';
import { checkMemoryLimit, formatSize, memoryPeriodMs, QUICK_MEMORY_IN_A_ROW, QUICK_MEMORY_MS, readRss } from './memory.js';
import { applyReload } from './start-only.js';
import { TicketKeys, ticketKeyPeriodMs } from './ticket-keys.js';
import { WorkerHandle } from './worker-handle.js';

/**
 * Checks, creating nothing, that the files the server writes can be written: the error log, the access log, the
 * pidfile (which must not name another live server) and the beat files in worker_tmp_dir. run() calls it before
 * anything is bound or forked, and --check-config calls it too. A failure is a ConfigError naming the setting, the path and the cause, which the CLI
 * prints as one line. The access log is opened by each worker: checked here, a bad path is that line instead of a
 * crash in every worker.
 */
export function checkOutputFiles(cfg: Config, checkOnly = false): void {
  checkLogFiles(cfg);
  checkBeatDir(cfg);
  // --check-config: a pidfile that names the running server is how a check before a HUP finds it, not an error.
  if (cfg.pidfile && checkOnly) Pidfile.checkWritable(cfg.pidfile);
  // A master started by USR2 writes PIDFILE.2: PIDFILE names the old master, alive and meant to be.
  else if (cfg.pidfile) Pidfile.check(process.env[UPGRADE_PID_ENV] ? `${cfg.pidfile}.2` : cfg.pidfile);
}

/** worker_tmp_dir, when set: a directory where the master can make the workers' beat files (BeatFile). */
function checkBeatDir(cfg: Config): void {
  const problem = cfg.workerTmpDir && cfg.timeout > 0 ? beatDirProblem(cfg.workerTmpDir) : null;
  if (problem)
    throw new ConfigError(
      `cannot make heartbeat files in ${JSON.stringify(cfg.workerTmpDir)} (--worker-tmp-dir): ${problem}; choose another directory, or leave the setting out (the default, /dev/shm)`,
    );
}

const CHILD_ENTRY = fileURLToPath(new URL('../workers/child.js', import.meta.url));

/** How often the run loop looks at its workers (timeouts, deadlines, count) while any of them is changing. */
const TICK_MS = 200;
/**
 * The least period of the tick while nothing changes (steady()): Gunicorn's arbiter wakes once a second. What
 * changes the workers is acted on at once (a signal or an exit runs a step of its own, a max_requests retire
 * spawns the replacement), so while steady the tick has only the timed checks to run: the workers' timeouts,
 * max_worker_memory's reads, the TLS ticket keys' rotation. It sleeps until the first of them is due
 * (restingTickMs), at least this long and at most RESTING_TICK_MS: a hung worker is killed at its `timeout`,
 * and an idle master wakes about once in 10 s (docs/design.md, "An idle server").
 */
const IDLE_TICK_MS = 1000;
/** The longest the tick sleeps while steady(): a bound on what a check nobody foresaw would wait. */
const RESTING_TICK_MS = 10_000;
/**
 * A gap this much longer than the tick between two timeout checks means the master itself could not run (a log
 * pipe whose reader stalled, a preloaded app busy in the master): the heartbeats it could not read are not the
 * workers' fault.
 */
const MASTER_STALL_MS = 800;
/**
 * The longest resting tick: RESTING_TICK_MS, and less than half the timeout by MASTER_STALL_MS. A stop of
 * the whole process group (Ctrl-Z) that ends within MASTER_STALL_MS of a tick's due time goes unseen by the
 * stall check in murderWorkers, so it lasted at most a tick and that much; the workers, stopped with the
 * master, then show beats as old as the stop plus their beat period (a sixth of the timeout while idle). Kept
 * under half the timeout, such a stop can never make a stopped worker look timed out. Never under IDLE_TICK_MS,
 * the steady tick before there was a resting one (so a timeout under 3.6 s keeps the margin it had then).
 */
export const restingCapMs = (timeout: number): number =>
  timeout > 0 ? Math.max(IDLE_TICK_MS, Math.min(RESTING_TICK_MS, (timeout * 1000) / 2 - MASTER_STALL_MS)) : RESTING_TICK_MS;
/** A worker that never reported ready may take this long, whatever `timeout` says (TypeScript transforms). */
const MIN_BOOT_TIMEOUT_S = 30;
/** How long an app may take to load, in a worker or in the master (`--preload`, `--check-config`); 0: no limit. */
export const bootLimitS = (timeout: number): number => (timeout > 0 ? Math.max(timeout, MIN_BOOT_TIMEOUT_S) : 0);
/** After SIGABRT, a timed-out worker gets this long to report before SIGKILL. */
const ABORT_GRACE_MS = 1000;
/** Consecutive boot failures before a server that never served gives up (a crash loop, not a hiccup). */
const MAX_BOOT_FAILURES = 5;
/** Tries of an address that is in use before the start fails (Gunicorn's 5, 1 s apart). */
const BIND_ATTEMPTS = 5;
/** Backoff between respawns after boot failures: doubles from the first to the cap. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_CAP_MS = 10_000;
/**
 * A worker that dies unasked this soon after it reported ready counts as a quick death: in a row, they space
 * the replacements as boot failures do (an app that crashes every worker at once, say from a rejection its
 * top-level code left unhandled, would otherwise respawn in a tight loop, a stack trace each time).
 */
const QUICK_DEATH_MS = 10_000;
/**
 * --reload: quick deaths in a row after which no worker starts until a watched file changes (or HUP). Code
 * that kills every worker it starts (a timer that throws, a port taken at import) waits for the developer's
 * fix, as a dev server's "waiting for file changes", instead of a stack trace every 10 s (BACKOFF_CAP_MS) for
 * as long as the server runs.
 */
const RELOAD_QUICK_DEATHS = 5;

type SignalName = 'SIGHUP' | 'SIGTERM' | 'SIGINT' | 'SIGQUIT' | 'SIGTTIN' | 'SIGTTOU' | 'SIGUSR1' | 'SIGUSR2' | 'SIGWINCH';
export const SIGNALS: readonly SignalName[] = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGTTIN', 'SIGTTOU', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
/** Set by a master for the new one it starts (USR2) when it serves the control socket, which the new one takes over. */
const CONTROL_HANDOVER_ENV = 'TUNICORN_CONTROL_HANDOVER';
/** The signals still handled while the master stops. */
const STOPPING_SIGNALS: ReadonlySet<SignalName> = new Set(['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGUSR1']);

export interface ArbiterOptions {
  readonly resolved: Resolved;
  /** Re-resolves the configuration from the same command line and environment (HUP). */
  readonly reload: () => Promise<Resolved>;
  /** The directory tunicorn was started in: a USR2 successor starts there with the same command line. */
  readonly startCwd?: string;
  /**
   * The directory the workers start in, symlinks unresolved (work-dir.ts): each new worker enters what the
   * path names then, the next release after a deploy switched a symlink.
   */
  readonly workDir?: string;
  /** The program a USR2 successor runs (process.argv[1], named from startCwd: work-dir.ts's upgradeProgram). */
  readonly program?: string;
  /**
   * Node's own listeners of the master's signals (a terminal's SIGWINCH, which refreshes its size): kept. Any
   * other is removed when the master installs its handlers.
   */
  readonly ownSignalListeners?: ReadonlySet<unknown>;
  /** The listeners of the master's signals that a module preloaded before tunicorn added (main.ts): removed, and said so. */
  readonly preloadedSignalListeners?: ReadonlySet<unknown>;
  /** What startOrphanReaper() said (PID 1, or a child subreaper), logged once the master starts. */
  readonly orphans?: OrphansNote | null;
  /** The master adopts what its workers leave (a child subreaper, or PID 1): told of each worker. */
  readonly adopter?: Adopter | null;
}

/** The log files of `cfg` that do not exist yet: those the master and the workers are about to make. */
function logsToMake(cfg: Config): string[] {
  return [cfg.errorlog, cfg.accesslog].filter((f): f is string => !!f && f !== '-' && !existsSync(f));
}

/** Is a process still running (a zombie waiting to be reaped is not)? */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: kill(0) said it exists
  }
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
  /** When murderWorkers last ran (0: never). */
  #lastCheck = 0;
  /** A beat file could not be made: the workers beat by message from then on (see openBeatFile). */
  #beatFilesFailed = false;
  /** When the master was last continued (SIGCONT) after a stop (Ctrl-Z, SIGSTOP); 0: never. */
  #continuedAt = 0;
  readonly #onContinue = (): void => void (this.#continuedAt = Date.now());
  /** Master hooks whose promise has not settled yet: one that never does is named if the master stalls on it. */
  readonly hooksRunning = new Set<string>();
  readonly #queue: SignalName[] = [];
  readonly #pidfile = new Pidfile();
  #age = 0;
  #tick: NodeJS.Timeout | null = null;
  /** The period of `#tick`: TICK_MS, or restingTickMs() while steady(). */
  #tickMs = TICK_MS;
  /**
   * The longest tick period in effect since murderWorkers last looked: a stop or a reload sets the quick tick
   * in the middle of a step (pace), and the gap since a resting tick's last look is no stall.
   */
  #checkPeriodMs = TICK_MS;
  /** The certificate and key (and CA) checked at start or by the last HUP that took: what new workers serve. */
  #tlsMaterial: TlsMaterial | null = null;
  /** A graceful stop said it waits for the processes the workers left (maybeFinish). */
  #waitSaid = false;
  #stopping: 'graceful' | 'quick' | null = null;
  #exitCode: number = ExitCode.OK;
  #everReady = false;
  /** run() has not finished starting: signals wait in the queue. */
  #starting = true;
  /** stopStuckStart ended the process itself: its exit is tunicorn's, not an app's or a hook's process.exit(). */
  stoppedDuringStart = false;
  /** A stop signal came during the start: ends a start that a hook holds up (see stopStuckStart). */
  #startStop: NodeJS.Timeout | null = null;
  #bootFailures = 0;
  /** Workers in a row that died unasked within QUICK_DEATH_MS of their ready. */
  #quickDeaths = 0;
  /** No worker is spawned before this (Date.now()): the pause after quick deaths in a row. */
  #deathPauseUntil = 0;
  /** When the last quick death was (Date.now()). */
  #lastQuickDeathAt = 0;
  #nextSpawnAt = 0;
  #finish: ((code: number) => void) | null = null;
  readonly #onSignal = new Map<SignalName, () => void>();
  /** Sockets handed over by an old master (USR2) or by systemd, instead of bound here. */
  #inherited: Inherited | null = null;
  /** The master's copies of the listening sockets are closed (a TERM drain began). */
  #listenersClosed = false;
  /** While a USR2 upgrade runs, in the old master: the new master. */
  #newMaster: ChildProcess | null = null;
  /** In a master started by USR2: the old master, until it exits and this one takes over. */
  #oldMasterPid: number | null = null;
  readonly #notifier = new SystemdNotifier(process.env, () => this.log);
  readonly #notifications = new Set<Promise<void>>();
  #health: HealthServer | null = null;
  #healthPending = false;
  /** The metrics setting's counts and exits (kept with it off too: a HUP may turn it on). */
  readonly #metrics = new MetricsBook();
  /** A graceful stop was asked for with --shutdown-delay: not ready, still serving, until this time. */
  #stopAt = 0;
  /** --reload: the file watcher. */
  #reloader: Reloader | null = null;
  /** What the last USR1 said could not be opened again: said once, not once per worker. */
  #reopenSaid = new Set<string>();
  /** Ready was announced (systemd READY=1, the "Ready:" line) for the current set of workers. */
  #announcedReady = false;
  /** Connections handed over by timed-out workers, waiting for a live worker (see placeOrphans). */
  readonly #orphans: { readonly listener: number; readonly handle: LeasedHandle; readonly from: number }[] = [];
  #orphanTurn = 0;
  /** StatsD (statsd_host): the master's client, for gunicorn.workers and its own error-log lines. */
  #statsd: StatsdClient | null = null;
  /** The worker count last sent as gunicorn.workers (-1: none yet). */
  #countSent = -1;
  /** --control-socket: the master's control interface (src/control/). */
  #control: ControlServer | null = null;
  /** src/control/commands.js, loaded with the control socket (nothing of it while it is off). */
  #commands: typeof import('../control/commands.js') | null = null;
  /** The Prometheus text format, loaded with the health endpoint: a scrape opens no file (see startHealth). */
  #prometheus: typeof import('./prometheus.js') | null = null;
  /** A master started by USR2: the old master served the control socket and hands it over. */
  #controlHandover = false;
  /** For the control socket's `show stats`: set when run() begins. */
  #startedAt = 0;
  readonly #stats = { spawned: 0, killed: 0, reloads: 0 };
  /** TLS session-ticket keys shared by the workers (see ticket-keys.ts). */
  readonly #ticketKeys = new TicketKeys(ticketKeyPeriodMs(process.env));
  /** max_worker_memory: how often the workers' RSS is read (see memory.ts). */
  readonly #memoryPeriodMs = memoryPeriodMs(process.env);
  /** When the next round of RSS reads is due (Date.now()). */
  #memoryDueAt = 0;
  /** A round of RSS reads is on its way: the next waits for it. */
  #memoryReading = false;
  /** The limit the "below what a worker uses as it starts" warning was given for: said once per value. */
  #memoryTooLowSaid = 0;
  /** Workers in a row that went above the limit within QUICK_MEMORY_MS of their ready. */
  #memoryQuick = 0;
  /** Recycling for memory stopped after QUICK_MEMORY_IN_A_ROW quick ones, until the next reload. */
  #memoryPaused = false;

  constructor(private readonly opts: ArbiterOptions) {
    this.#resolved = opts.resolved;
    this.cfg = opts.resolved.config;
    // stderr until run() opens the error log: a file that cannot be opened is then a ConfigError from run(),
    // which the CLI states in one line.
    this.log = new ErrorLog('-', this.cfg.loglevel, { format: this.cfg.logFormat, role: 'master' });
    this.numWorkers = this.cfg.workers;
  }

  get name(): string {
    return this.cfg.procName ?? this.#resolved.app ?? 'app';
  }

  /**
   * Said once at start when the app is TypeScript (or JSX) and no directory can hold the transforms the
   * workers compile (import.ts's transformCacheLine); a JavaScript app is imported natively, without them.
   */
  private transformCacheLine(): string | null {
    const app = this.#resolved.app;
    if (!app) return null;
    const cwd = this.opts.workDir ?? process.cwd();
    let file: string;
    try {
      const spec = parseAppSpec(app, cwd);
      if (!spec.isFile) return null;
      file = spec.target;
    } catch {
      return null; // the workers say what is wrong with it
    }
    return /\.([cm]?ts|[jt]sx)$/.test(file) ? transformCacheLine(cwd, resolveIdentity(this.cfg.user, this.cfg.group)) : null;
  }

  /** Runs until the server stops; resolves with the exit code. */
  async run(): Promise<number> {
    this.#startedAt = Date.now();
    checkOutputFiles(this.cfg);
    checkMemoryLimit(this.cfg);
    const made = logsToMake(this.cfg);
    this.log = new ErrorLog(this.cfg.errorlog, this.cfg.loglevel, { format: this.cfg.logFormat, role: 'master' });
    // The master's handlers from the start: a signal during the start (a TERM from a service manager that
    // gave up waiting, a logrotate's USR1) would otherwise take the default action and kill the master, its
    // pidfile and sockets left behind. Until the start is done a signal waits in the queue.
    for (const sig of SIGNALS) {
      const h = () => this.enqueue(sig);
      this.#onSignal.set(sig, h);
      process.on(sig, h);
    }
    // Only to tell a stopped master from a stalled one (murderWorkers): a CONT listener changes nothing else.
    process.on('SIGCONT', this.#onContinue);
    this.#statsd = this.openStatsd();
    await this.runHook('onStarting', this);
    this.log.info(`Starting tunicorn ${VERSION} on Node.js ${process.version}`);
    const tls = loadTls(this.cfg);
    for (const w of tls.warnings) this.log.warning(w);
    this.#tlsMaterial = tls.material;
    const identity = resolveIdentity(this.cfg.user, this.cfg.group);
    checkCanSwitch(identity);
    // As after a USR1: the log files made now (the access log by the first worker, before it switches) would
    // be root's, which the workers could not open again on the next USR1 (one without a rotation, or after a
    // logrotate that left a file as it was: notifempty, a size not reached), an error line for each.
    this.prepareLogsForWorkers(made);
    this.#inherited = inheritedSockets(process.env, process.pid);
    this.#controlHandover = this.#inherited?.source === 'upgrade' && process.env[CONTROL_HANDOVER_ENV] === '1';
    delete process.env[CONTROL_HANDOVER_ENV];
    if (this.#inherited) {
      const from = this.#inherited.source === 'systemd' ? 'systemd (socket activation)' : `the old master (pid ${this.#inherited.parentPid})`;
      this.log.info(`Using ${this.#inherited.fds.length} listening socket(s) from ${from}; bind is ignored`);
      const inherited = await bindAll(this.#inherited.fds.map((fd) => `fd://${fd}`)).catch((err: unknown) => {
        // fd://N names nothing the user wrote: say where the number came from.
        if (this.#inherited?.source !== 'systemd' || !(err instanceof BindError)) throw err;
        const fds = this.#inherited.fds;
        throw new BindError(
          `${err.message}; LISTEN_FDS=${fds.length} says systemd passed ${fds.length} socket(s), as fds ${fds[0]} to ${fds[fds.length - 1]}: check the unit's .socket file, or the LISTEN_FDS of whatever started tunicorn`,
          err.code,
          err.index,
        );
      });
      // The socket files the old master would have removed become ours; systemd's stay systemd's.
      this.#listeners = this.#inherited.source === 'upgrade' ? adoptUpgradeListeners(inherited, this.#inherited.files) : inherited;
      this.#oldMasterPid = this.#inherited.parentPid;
      // Not for our workers, nor for a later successor of ours (it gets its own).
      delete process.env[UPGRADE_FD_ENV];
      delete process.env[UPGRADE_PID_ENV];
      delete process.env[UPGRADE_FILES_ENV];
    } else {
      this.#listeners = await bindAll(this.cfg.bind, parseUmask(this.cfg.umask), this.bindRetry());
    }
    if (identity && !this.#inherited) {
      // The socket files bound here go to the workers' user, as Gunicorn chowns them at its bind. Not those it
      // inherited: systemd's carry the unit's SocketUser=/SocketGroup=/SocketMode= (the proxy's access), and an
      // old master's were chowned when it bound them.
      for (const l of this.#listeners) if (l.file) chownSync(l.file, identity.uid, identity.gid);
    }
    // Also for inherited sockets: listen() again on a listening socket only sets its backlog.
    this.checkBacklogCap();
    let healthLine: string | null = null;
    try {
      const by = await primeListeners(this.#listeners.map((l) => l.fd), this.cfg.backlog, this.#listeners.map((l) => l.url));
      this.log.debug(`Sockets in listen state (backlog ${this.cfg.backlog}), by ${by}`);
      // Bound with the others, before "Listening at:": a health endpoint that cannot bind stops the start
      // as a bind does, leaving no socket file and no pidfile behind.
      if (this.cfg.healthBind) healthLine = await this.startHealth(this.cfg.healthBind, this.bindRetry());
    } catch (err) {
      closeListeners(this.#listeners, this.ownsSocketFiles());
      // The kernel's "address already in use" for two names of one address: tunicorn's own, said so.
      const same = err instanceof BindError && err.code === 'EADDRINUSE' && err.index !== undefined ? sameAddressBefore(this.#listeners, err.index) : undefined;
      if (same) {
        const i = (err as BindError).index!;
        const name = (l: Listener, j: number) => JSON.stringify(this.#inherited ? l.url : (this.cfg.bind[j] ?? l.url));
        throw new ConfigError(
          `invalid value for bind (--bind): ${name(this.#listeners[i]!, i)} and ${name(same, this.#listeners.indexOf(same))} are one address (${this.#listeners[i]!.url}, or one that covers it); bind each address once`,
        );
      }
      throw err;
    }
    // As Gunicorn's: https:// when the binds serve TLS.
    const scheme = this.cfg.certfile ? 'https' : 'http';
    for (const l of this.#listeners) this.log.info(`Listening at: ${formatAddress(l.address, scheme)} (${process.pid})`);
    this.log.info(`Using worker: ${this.cfg.workerClass}`);
    if (this.#resolved.workersAuto) this.log.info(autoWorkersLine(this.cfg.workers));
    for (const w of this.#resolved.warnings) this.log.warning(w);
    if (this.opts.orphans) this.log[this.opts.orphans.level](this.opts.orphans.message);
    // The log of the moment: a reload may replace it.
    this.opts.adopter?.setLog({ info: (m) => this.log.info(m), warning: (m) => this.log.warning(m) });
    // Back to the quick tick, which runs dueKills(), once there is something to end (see steady()).
    this.opts.adopter?.setWake(() => this.pace());
    const native = nativeFallbackLine();
    if (native) this.log.info(native);
    const transforms = this.transformCacheLine();
    if (transforms) this.log.info(transforms);
    if (this.cfg.captureOutput) {
      // As JSON the output is wrapped into the error log's lines, on stderr too: a text line would break them.
      if (this.cfg.errorlog === '-' && this.cfg.logFormat !== 'json') this.log.warning('capture_output (--capture-output) does nothing while the error log is stderr: set --error-logfile FILE');
      captureStdio(() => this.log);
    }
    this.checkWorkerSettings();
    this.checkMemoryLimitFits();
    if (this.cfg.reloadExtraFile.length > 0 && !this.cfg.reload) {
      this.log.warning('reload_extra_file (--reload-extra-file) is watched only with --reload, which is off: no file is watched');
    }
    // Gunicorn's upgrade protocol: the new master writes PIDFILE.2 and renames it when the old one is gone.
    if (this.cfg.pidfile) {
      try {
        this.#pidfile.create(this.#oldMasterPid ? `${this.cfg.pidfile}.2` : this.cfg.pidfile);
      } catch (err) {
        // Checked before binding (checkOutputFiles), yet the file can change since, or name a live server.
        closeListeners(this.#listeners, this.ownsSocketFiles());
        throw err;
      }
    }
    if (healthLine) this.log.info(healthLine);
    if (this.cfg.controlSocket && !this.cfg.controlSocketDisable) await this.startControl(this.cfg.controlSocket);
    if (this.cfg.reload) this.startReloader();
    process.title = `tunicorn: master [${this.name}]`;
    this.dropForeignSignalListeners();
    const done = new Promise<number>((resolve) => (this.#finish = resolve));
    await this.runHook('whenReady', this);
    await this.runHook('nworkersChanged', this, this.numWorkers, null);
    this.#tick = setInterval(() => this.step(), TICK_MS);
    this.#tickMs = TICK_MS;
    this.#starting = false;
    if (this.#startStop !== null) clearTimeout(this.#startStop);
    // Signals that came during the start are handled now, before any worker is spawned.
    if (this.#queue.length > 0) this.step();
    else this.manageWorkers();
    return done;
  }

  /** As Gunicorn: a port still held (a server that is stopping) is tried 5 times, 1 s apart, each retry logged. */
  private bindRetry(): BindRetry {
    return { attempts: BIND_ATTEMPTS, delayMs: 1000, say: (line) => this.log.error(line) };
  }

  /** At start, and on a reload that changes them (the new workers follow them). */
  private checkWorkerSettings(): void {
    this.checkOpenFileLimit();
    if (this.cfg.threads > 1 && this.cfg.workerClass !== 'gthread') {
      this.log.warning(`threads (--threads ${this.cfg.threads}) applies to gthread workers only; ${this.cfg.workerClass} workers ignore it`);
    }
  }

  /**
   * max_worker_memory is a recycling point; a container's memory limit (cgroup) is a cap, and the kernel kills
   * (SIGKILL) in the cgroup when its processes together pass it. Workers that may each grow to the recycling
   * point before they are replaced can pass the cap first: then the recycling never happens, and requests are
   * cut instead. At start and on a reload that changes the count or the limit (not on TTIN).
   */
  private checkMemoryLimitFits(): void {
    if (this.cfg.maxWorkerMemory <= 0) return;
    const cap = memoryLimit();
    const total = this.cfg.maxWorkerMemory * this.cfg.workers;
    if (cap === null || total <= cap.value) return;
    const each = Math.floor(cap.value / this.cfg.workers / 2 ** 20) * 2 ** 20;
    this.log.warning(
      `max_worker_memory (${formatSize(this.cfg.maxWorkerMemory)}) x ${this.cfg.workers} workers is ${formatSize(total)}, above the memory limit of its cgroup (a container's), ${formatSize(cap.value)} in ${cap.file}: ` +
        `workers growing toward it are killed by the kernel (SIGKILL, out of memory) before max_worker_memory recycles them; ` +
        (each >= 2 ** 20 ? `set --max-worker-memory below ${formatSize(each)} (the limit / workers, less what the master uses), or run fewer workers` : 'run fewer workers'),
    );
  }

  /** Not of the default (2048, Gunicorn's), which kernels before 5.4 (somaxconn 128) cap on every start. */
  private checkBacklogCap(): void {
    const cap = this.#resolved.sources.backlog === 'default' ? null : backlogCap();
    if (cap !== null && this.cfg.backlog > cap) {
      this.log.warning(`backlog ${this.cfg.backlog} is above the kernel's net.core.somaxconn (${cap}), which caps it: at most ${cap} connections wait in each queue; raise it (sysctl -w net.core.somaxconn=${this.cfg.backlog}) or lower backlog`);
    }
  }

  /**
   * A worker that runs out of descriptors accepts and closes connections at once (libuv's answer to EMFILE):
   * clients see resets and nothing reaches the log. When `worker_connections` cannot fit under the open-file
   * limit with what a worker holds itself, one line says so at start, and what to change.
   */
  private checkOpenFileLimit(): void {
    if (this.cfg.workerClass === 'sync') return;
    const limit = openFileLimit();
    if (limit === null) return;
    const threads = this.cfg.workerClass === 'gthread' ? this.cfg.threads : 1;
    // Measured: an idle async worker on one socket holds 22 descriptors; a gthread worker about 5 more per
    // thread, and a copy of each socket per thread.
    const own = 32 + (threads > 1 ? threads * 5 : 0) + threads * this.#listeners.length;
    const fits = limit - own;
    if (this.cfg.workerConnections <= fits) return;
    const raise = `Raise the limit (ulimit -n, systemd's LimitNOFILE=)`;
    this.log.warning(
      `worker_connections (${this.cfg.workerConnections}) does not fit under the open-file limit (${limit}, ulimit -n), ` +
        `of which a worker needs about ${own} itself: ` +
        (fits > 0
          ? `past about ${fits} connections a worker resets new ones, and the log does not show it. ${raise} or lower --worker-connections to ${fits}`
          : `a worker has no descriptors left for connections. ${raise}`),
    );
  }

  // ---- the loop ---------------------------------------------------------------------------------------

  private enqueue(sig: SignalName): void {
    // Like Gunicorn, keep at most a few pending signals: a storm of HUPs is one reload.
    if (this.#queue.length < 5) this.#queue.push(sig);
    if (!this.#starting) setImmediate(() => this.step());
    else if (sig === 'SIGTERM' || sig === 'SIGINT' || sig === 'SIGQUIT') this.stopStuckStart(sig);
  }

  /**
   * A stop signal during the start waits for the start to end, as every signal does. A start held up by a
   * server hook that never returns (onStarting, whenReady, nworkersChanged, with a timer keeping the process
   * up) would hold it forever, and a service manager would end with SIGKILL, its pidfile and socket files
   * left behind. So after graceful_timeout (at once for INT and QUIT) the master stops without the hook; no
   * worker has started before those hooks return.
   */
  private stopStuckStart(sig: SignalName): void {
    if (this.#startStop !== null && sig === 'SIGTERM') return;
    if (this.#startStop !== null) clearTimeout(this.#startStop);
    const waitS = sig === 'SIGTERM' ? this.cfg.gracefulTimeout : 0;
    if (waitS > 0) {
      // Said now: its 'Handling signal' line comes when the start ends or the wait does, up to graceful_timeout
      // (30 s) later, and a `systemctl stop` would show nothing until then.
      const hooks = [...this.hooksRunning];
      this.log.info(`TERM during the start: waiting up to ${waitS} s (graceful_timeout) for ${hooks.length > 0 ? `the ${hooks.join(' and ')} hook to return` : 'the start to finish'}`);
    }
    this.#startStop = setTimeout(() => {
      if (!this.#starting) return;
      const hooks = [...this.hooksRunning];
      const what = hooks.length > 0 ? `the ${hooks.join(' and ')} hook has not returned` : 'the start has not finished';
      // The signal is handled now, never by step(): its line comes first, as for any signal.
      this.log.info(`Handling signal: ${sig.slice(3).toLowerCase()}`);
      this.log.warning(`${sig.slice(3)} during the start: ${what}${waitS > 0 ? ` after ${waitS} s (graceful_timeout)` : ''}; stopping without it`);
      this.#starting = false;
      this.closeAll();
      this.log.info('Shutting down: Master');
      this.#statsd?.close();
      this.log.close();
      this.stoppedDuringStart = true;
      process.exit(0);
    }, waitS * 1000);
  }

  /** One turn: dispatch signals, enforce timeouts and deadlines, keep the worker count. */
  private step(): void {
    for (let sig = this.#queue.shift(); sig; sig = this.#queue.shift()) {
      this.log.info(`Handling signal: ${sig.slice(3).toLowerCase()}`);
      // Once stopping, only a quicker stop or a log reopen still means something.
      if ((this.#stopping || this.#stopAt) && !STOPPING_SIGNALS.has(sig)) {
        this.log.warning(`${sig.slice(3)} ignored: the master is stopping`);
        continue;
      }
      this.handlers[sig]();
    }
    this.checkPromotion();
    if (this.#stopAt && Date.now() >= this.#stopAt) this.beginStop('graceful');
    this.murderWorkers();
    this.opts.adopter?.dueKills(Date.now());
    this.checkMemory();
    this.rotateTicketKeys();
    this.manageWorkers();
    this.announceReady();
    this.maybeFinish();
    this.pace();
  }

  /** The tick's period for what the step left: a resting one once steady(), the quick one again on any change. */
  private pace(): void {
    if (this.#tick === null || this.#finish === null) return;
    const ms = this.steady() ? this.restingTickMs(Date.now()) : TICK_MS;
    if (ms === this.#tickMs) return;
    clearInterval(this.#tick);
    this.#tick = setInterval(() => this.step(), ms);
    this.#tickMs = ms;
    this.#checkPeriodMs = Math.max(this.#checkPeriodMs, ms);
  }

  /**
   * While steady(): until the first timed check is due. A worker's timeout is due `timeout` after the last beat
   * the master has read; the tick then reads the beat files again, and only a worker that has not beaten since
   * is killed. At least IDLE_TICK_MS, at most restingCapMs(timeout), rounded to the 100 ms so that a step at a
   * slightly different moment does not set the timer again.
   */
  private restingTickMs(now: number): number {
    let due = now + restingCapMs(this.cfg.timeout);
    // murderWorkers kills past the timeout, not at it: 1 ms past.
    if (this.cfg.timeout > 0) for (const w of this.#workers.values()) due = Math.min(due, w.lastBeat + this.cfg.timeout * 1000 + 1);
    if (this.cfg.maxWorkerMemory > 0) due = Math.min(due, this.#memoryDueAt);
    due = Math.min(due, this.#ticketKeys.dueAt);
    return Math.max(IDLE_TICK_MS, Math.ceil((due - now) / 100) * 100);
  }

  /**
   * Nothing the tick times is due within a second: every wanted worker serves, none boots or stops, no stop,
   * upgrade or signal is under way, nothing the workers left waits to be killed, and max_worker_memory (if
   * set) reads no more often than the slower tick.
   */
  private steady(): boolean {
    if (this.#queue.length > 0 || this.#stopping || this.#stopAt || this.upgrading() || !this.#announcedReady) return false;
    if (this.#workers.size !== this.numWorkers) return false;
    for (const w of this.#workers.values()) if (w.state !== 'ready' || w.replaced || w.crashed || w.killAt !== Infinity) return false;
    if (this.cfg.maxWorkerMemory > 0 && this.#memoryPeriodMs < IDLE_TICK_MS) return false;
    return this.opts.adopter?.busy !== true;
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
      // A log that cannot be opened again stays open as it is: one line says so. The access log is opened by
      // the workers, which keep theirs quietly: the master checks its path, for one line instead of one each.
      // Rotated away: the files the reopen creates (see prepareLogsForWorkers).
      const created = logsToMake(this.cfg);
      const failed = this.log.reopen();
      this.#reopenSaid = new Set();
      if (failed) {
        this.#reopenSaid.add(failed);
        // Into the file already open, which logrotate may have moved or deleted: on stderr too.
        const line = `USR1: ${failed}. Logging goes on to the file already open`;
        this.log.error(line);
        if (this.log.target !== '-') this.log.toStderr('error', line);
      }
      this.prepareLogsForWorkers(created);
      if (this.cfg.accesslog && this.cfg.accesslog !== '-') {
        try {
          checkWritable(ACCESS_LOG, this.cfg.accesslog);
        } catch (err) {
          this.#reopenSaid.add((err as Error).message);
          this.log.error(`USR1: ${(err as Error).message}. The workers go on writing to the file already open`);
        }
      }
      this.broadcast({ t: 'reopen' });
    },
    SIGUSR2: () => this.reexec(),
    SIGWINCH: () => {
      // Terminals send WINCH on every resize: only honoured during an upgrade or without a terminal.
      if (!this.#newMaster && process.stderr.isTTY) {
        this.log.debug('WINCH ignored: no upgrade is running and the master has a terminal');
        return;
      }
      this.log.info('Graceful stop of workers (WINCH)');
      if (!this.#newMaster) this.log.warning('WINCH outside an upgrade: no worker will serve, and connections wait in the backlog, until HUP or TTIN');
      this.setWorkerCount(0);
    },
  };

  /**
   * USR1 after a rotation: workers that run as --user reopen the logs with that user's rights, which rarely
   * include creating files in the log directory, and a worker whose reopen fails writes on to the rotated file
   * (it tells the master, which logs it once: `reopenFailed`). As Gunicorn, the master (root) makes the new
   * files and gives them to the workers' user; so too those made at the start and by a reload that names new
   * paths. Only files it makes: an existing file (or /dev/null) keeps its owner.
   */
  private prepareLogsForWorkers(created: readonly string[]): void {
    let identity: ReturnType<typeof resolveIdentity>;
    try {
      identity = resolveIdentity(this.cfg.user, this.cfg.group);
    } catch {
      return;
    }
    if (!identity) return;
    for (const f of created) {
      try {
        // The error log was just made by the master's own open; the access log is made here.
        // Through the descriptor: a path swapped for a link meanwhile cannot redirect the chown.
        const fd = openSync(f, 'a');
        try {
          fchownSync(fd, identity.uid, identity.gid);
        } finally {
          closeSync(fd);
        }
      } catch {
        // Said already: the master checked the path (checkWritable) or its own reopen failed.
      }
    }
  }

  // ---- workers -----------------------------------------------------------------------------------------

  private counted(): WorkerHandle[] {
    return [...this.#workers.values()].filter((w) => w.counted);
  }

  private manageWorkers(): void {
    if (this.#stopping) return;
    const live = this.counted();
    // A worker that started serving after the last quick death and has served QUICK_DEATH_MS since ends the
    // streak, and its pause (one serving from before proves nothing about the code that keeps dying).
    if (this.#quickDeaths > 0 && live.some((w) => w.readyAt >= this.#lastQuickDeathAt && Date.now() - w.readyAt >= QUICK_DEATH_MS)) {
      this.#quickDeaths = 0;
      this.#deathPauseUntil = 0;
    }
    if (live.length < this.numWorkers) {
      if (Date.now() >= Math.max(this.#nextSpawnAt, this.#deathPauseUntil)) for (let i = live.length; i < this.numWorkers; i++) if (!this.spawnWorker()) break;
    } else if (live.length > this.numWorkers) {
      // TTOU (a smaller count after HUP replaces every worker instead): stop the highest numbers first, where
      // Gunicorn stops the oldest, so that the workers left have the numbers 1..N (TUNICORN_WORKER_ID, which
      // an app reads to run a job in one worker only). A TTOU after a TTIN stops the worker the TTIN added.
      const excess = live.sort((a, b) => b.id - a.id).slice(0, live.length - this.numWorkers);
      for (const w of excess) {
        w.exitReason ??= 'scale_down';
        this.stopWorker(w, true);
      }
      // One stopped may be the booting replacement of a worker that reached max_requests (it has its number):
      // that worker served on until a replacement's ready, which now never comes.
      this.retireReplaced();
    }
    this.sendWorkerCount();
  }

  /**
   * StatsD's gunicorn.workers, when it changed: as Gunicorn, the workers counted once the master has started
   * or stopped what the wanted number asks for (booting ones too; not those stopping or replaced).
   */
  private sendWorkerCount(): void {
    if (!this.#statsd) return;
    const n = this.counted().length;
    if (n === this.#countSent) return;
    this.#countSent = n;
    this.#statsd.gauge(METRIC.workers, n);
  }

  /** The master's StatsD client, when statsd_host is set. */
  private openStatsd(): StatsdClient | null {
    this.#countSent = -1;
    // The log as it is when a line is due: a reload may replace it.
    return openStatsd(this.cfg, { warning: (m) => this.log.warning(m), debug: (m) => this.log.debug(m) });
  }

  /** The lowest number no counted worker has: a replacement (crash, HUP, recycle) takes its predecessor's. */
  private freeSlot(): number {
    const used = new Set(this.counted().map((w) => w.id));
    let id = 1;
    while (used.has(id)) id++;
    return id;
  }

  /** Starts one worker; false when none can start now (the next try waits for #nextSpawnAt). */
  private spawnWorker(): boolean {
    // Its code is read from disk at each spawn: a master started from a release's node_modules, whose release
    // was deleted since, would otherwise log Node's MODULE_NOT_FOUND stack at every try.
    if (!existsSync(CHILD_ENTRY)) {
      this.log.error(
        `Could not start a worker: tunicorn's worker code ${CHILD_ENTRY} is gone (the folder this master was started from was deleted); USR2 starts a new master from the files there now, or restart; retrying in 10 s`,
      );
      this.#nextSpawnAt = Date.now() + BACKOFF_CAP_MS;
      return false;
    }
    const id = this.freeSlot();
    const age = ++this.#age;
    void this.runHook('preFork', this, { pid: 0, id, age, log: this.log });
    const copies = this.cfg.workerClass === 'gthread' ? this.cfg.threads : 1;
    const fds = Array.from({ length: copies }, () => this.#listeners.map((l) => l.fd)).flat();
    const inspectPort = workerInspectPort(process.execArgv, process.env.NODE_OPTIONS, age);
    const beat = this.openBeatFile();
    const child = spawn(process.execPath, [...workerExecArgv(inspectPort), CHILD_ENTRY], {
      // The layout is listenerLayout()'s (src/protocol/messages.ts): IPC, watchdog pipe, listener copies,
      // then the beat file.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe', ...fds, ...(beat ? [beat.fd] : [])],
      // Its age, which the processes the app starts inherit: the master knows whose they are (orphans.ts). Its
      // number for the app (workerNumberEnv).
      env: workerNumberEnv({ ...workerEnv(process.env, this.cfg.rawEnv), [WORKER_AGE_ENV]: ageMark(age) }, id, this.cfg.rawEnv),
      serialization: 'json',
      ...(this.opts.workDir ? { cwd: this.opts.workDir } : {}),
    });
    const w = new WorkerHandle(id, age, child, this.log, Date.now());
    w.beat = beat;
    if (!child.pid) {
      beat?.close();
      child.once('error', (err) => {
        // EAGAIN from fork: the user's or the cgroup's process limit, not a fault of the app.
        const code = (err as NodeJS.ErrnoException).code;
        const hint = code === 'EAGAIN' ? ': the process limit is reached (ulimit -u, systemd\'s TasksMax=, a container\'s pids limit); retrying in 10 s' : '';
        // ENOENT from spawn names the program ("spawn /usr/bin/node ENOENT") when it is the directory that is missing.
        const gone = code === 'ENOENT' && this.opts.workDir ? workDirProblem(this.opts.workDir) : null;
        this.log.error(gone ? `Could not start a worker: ${gone}; retrying in 10 s` : `Could not start a worker: ${err.message}${hint}`);
      });
      this.#nextSpawnAt = Date.now() + BACKOFF_CAP_MS;
      return false;
    }
    this.#workers.set(child.pid, w);
    w.start = this.opts.adopter?.workerStart(child.pid, age) ?? null;
    this.#stats.spawned++;
    this.#metrics.started();
    const inspector = inspectPort === undefined ? '' : `, inspector on ${inspectPort === 0 ? 'a free port' : `port ${inspectPort}`}`;
    this.log.with({ worker_pid: w.pid }).info(`Booting worker with pid: ${child.pid}${inspector}`);
    child.on('message', (m: unknown, handle: unknown) => isWorkerMessage(m) && this.onWorkerMessage(w, m, handle as LeasedHandle | undefined));
    const reports = child.stdio[4] as Readable;
    reports.setEncoding('utf8');
    onLines(reports, (line) => w.onStallReport(line));
    child.on('error', (err) => this.log.with({ worker_pid: w.pid }).error(`Worker ${w.pid}: ${err.message}`));
    child.once('exit', (code, signal) => this.onWorkerExit(w, code, signal));
    const init: MasterMessage = {
      t: 'init',
      id,
      age,
      app: this.#resolved.app!,
      configPath: this.#resolved.configPath,
      // The count wanted now (TTIN/TTOU change it): the worker's hooks see it as server.numWorkers.
      config: { ...serializableConfig(this.cfg), workers: this.numWorkers, [TLS_MATERIAL]: this.#tlsMaterial },
      listeners: listenerLayout(this.#listeners.map((l) => l.url), copies),
      masterPid: process.pid,
      ticketKeys: this.#ticketKeys.forWorker(Boolean(this.cfg.certfile)),
      beatFd: beat ? FIRST_LISTENER_FD + fds.length : null,
    };
    w.send(init);
    return true;
  }

  private onWorkerMessage(w: WorkerHandle, m: WorkerMessage, handle?: LeasedHandle): void {
    if (m.t === 'stuck') {
      w.slow = m.slow;
      if (m.counts) this.#metrics.received(w, m.counts);
      return;
    }
    // Not a heartbeat either: a gthread process answers from its main thread while a thread of it is stuck.
    if (m.t === 'metrics') {
      this.#metrics.received(w, m.counts);
      return;
    }
    if (m.t === 'step') {
      w.bootStep = m.step;
      return;
    }
    // A beat in the file: its time is the worker's (for gthread, its threads' oldest), read at the tick.
    if (m.t !== 'hb' || !m.filed) w.lastBeat = Date.now();
    switch (m.t) {
      case 'ready':
        w.booted = true;
        w.readyAt = Date.now();
        w.state = w.state === 'stopping' ? 'stopping' : 'ready';
        this.#everReady = true;
        this.#bootFailures = 0;
        if (this.cfg.maxWorkerMemory > 0) void this.measureAtReady(w);
        this.retireReplaced();
        this.placeOrphans();
        return;
      case 'hb':
        w.slow = m.slow ?? [];
        if (m.counts) this.#metrics.received(w, m.counts);
        return;
      case 'retire':
        if (!w.replaced && !this.#stopping) {
          w.replaced = true;
          w.exitReason ??= 'max_requests';
          this.log.with({ worker_pid: w.pid }).info(`Worker ${w.pid} reached max_requests (${m.requests}): replacing it; it serves on until its replacement is ready`);
          this.manageWorkers();
        }
        return;
      case 'crashed':
        if (!w.replaced && !this.#stopping) {
          w.replaced = true;
          w.crashed = true;
          w.exitReason ??= 'crash';
          // Its stop began now, and gets the bound any graceful stop gets: its own requests may keep it, and
          // its worker_exit hook runs after them, both unbounded in the worker. Without this, it would be
          // stopped only once its replacement serves (retireReplaced), and a replacement that never does
          // (a boot that hangs, with `timeout` 0) would leave it running for good.
          w.killAt = Date.now() + this.cfg.gracefulTimeout * 1000;
          this.log.with({ worker_pid: w.pid }).info(`Worker ${w.pid} is exiting after an uncaught exception: replacing it`);
          this.noteDeath(w);
          this.manageWorkers();
          this.pace();
        }
        return;
      case 'files':
        this.#reloader?.add(m.files, m.missing);
        return;
      case 'drained':
        w.drained = true;
        this.closeListenersOnceDrained();
        return;
      case 'lease': {
        const l = this.#listeners[m.listener];
        // The raw handle goes over the IPC channel as a new descriptor in the worker (Node sends a raw TCP or
        // Pipe handle as-is, its 'net.Native' kind; the typings only name Socket and Server); ours stays open.
        const handle = l?.handle as unknown as SendHandle;
        if (l) w.send({ t: 'lease', listener: m.listener }, handle);
        return;
      }
      case 'rescue':
        if (!handle) return;
        this.#orphans.push({ listener: m.listener, handle, from: w.pid });
        this.placeOrphans();
        return;
      case 'fatal':
        w.fatal = { code: m.code, message: m.message, detail: m.detail };
        return;
      case 'reopenFailed':
        // What the workers' user may not open (the master's check above ran with the master's rights).
        for (const p of m.problems) {
          if (this.#reopenSaid.has(p)) continue;
          this.#reopenSaid.add(p);
          this.log.with({ worker_pid: w.pid }).error(`USR1: worker ${w.pid}: ${p}. The workers go on writing to the file already open`);
        }
        return;
    }
  }

  /** Workers that may take connections handed over: serving, and not being replaced or stopped. */
  private takers(): WorkerHandle[] {
    return this.counted().filter((w) => w.state === 'ready' && w.child.connected);
  }

  /**
   * Hands the connections a timed-out or replaced worker held back (unread) to live workers, in turn; with none
   * ready (a single worker), they wait for its replacement. Our descriptor closes once the worker has its own.
   */
  private placeOrphans(): void {
    const live = this.takers();
    while (live.length > 0 && this.#orphans.length > 0) {
      const o = this.#orphans.shift()!;
      const to = live[this.#orphanTurn++ % live.length]!;
      this.log.with({ worker_pid: to.pid }).debug(`Handing a connection held by worker ${o.from} to worker ${to.pid}`);
      const close = () => o.handle.close();
      if (!to.send({ t: 'adopt', listener: o.listener }, o.handle as unknown as SendHandle, close)) close();
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
    if (w.state !== 'stopping') this.#stats.killed++;
    w.state = 'stopping';
    // Never later than a deadline it has already (a worker stopping after an uncaught exception).
    w.killAt = Math.min(w.killAt, Date.now() + (graceful ? this.cfg.gracefulTimeout * 1000 : Math.min(this.cfg.gracefulTimeout * 1000, 5000)));
    // TERM: the master's copies of the sockets are closed; the workers drain the backlog before closing theirs.
    const drain = this.#stopping === 'graceful';
    // Held connections may be handed over only if some worker will take them (not on TERM or WINCH).
    const handOver = graceful && !this.#stopping && this.numWorkers > 0 && this.takers().some((o) => o !== w);
    if (!w.send({ t: 'stop', graceful, drain, handOver })) w.signal(graceful ? 'SIGTERM' : 'SIGQUIT');
    // Called from a worker's message too (retireReplaced, max_requests), between steps: its kill is due at
    // graceful_timeout, not at the next resting tick (up to 10 s later).
    this.pace();
  }

  private onWorkerExit(w: WorkerHandle, code: number | null, signal: NodeJS.Signals | null): void {
    this.#workers.delete(w.pid);
    w.beat?.close();
    this.closeListenersOnceDrained();
    if (w.timedOut) this.logTimeout(w, Date.now());
    // A worker that said it exits after an uncaught exception, with the status it said: its exit is no news,
    // whether or not its replacement was ready first (and stopped it).
    const expected = (w.state === 'stopping' && !w.timedOut) || (w.crashed && code === 1);
    // The exit's own line, then the child_exit hook.
    const exited = (): void => {
      if (signal === 'SIGKILL' && !w.timedOut && !expected) {
        this.log.with({ worker_pid: w.pid }).error(`Worker (pid:${w.pid}) was sent SIGKILL! Perhaps out of memory?`);
      } else if (signal && !expected && !w.timedOut) {
        // V8 aborts a process whose heap reached its limit: SIGABRT that the master did not send (a timeout's).
        const hint = signal === 'SIGABRT' ? ': perhaps its JavaScript heap ran out (V8 aborts then; --max-old-space-size in NODE_OPTIONS raises the limit)' : '';
        this.log.with({ worker_pid: w.pid }).error(`Worker (pid:${w.pid}) was killed by ${signal}${hint}`);
      } else if (code && !expected) {
        this.log.with({ worker_pid: w.pid }).error(`Worker (pid:${w.pid}) exited with code ${code}`);
      } else {
        this.log.with({ worker_pid: w.pid }).info(`Worker exited (pid: ${w.pid})`);
      }
      void this.runHook('childExit', this, w);
    };
    const bootFailed = (w.state === 'booting' || w.bootTimedOut) && !this.#stopping;
    this.#metrics.exited(w, exitReason(w, bootFailed, expected, code, signal));
    // A failed boot says why before the exit it caused, as the worker's own traceback comes first in Gunicorn's log.
    if (bootFailed) this.onBootFailure(w, exited);
    else exited();
    // What it left running, given to the master by the kernel (a child subreaper), is ended now, and killed
    // graceful_timeout later, or when the worker's own stop would have ended (at least a second on), so that a
    // stop of the master ends within the graceful_timeout it was given.
    if (this.opts.adopter) {
      const left = Number.isFinite(w.killAt) ? Math.ceil((w.killAt - Date.now()) / 1000) : this.#stopping ? 1 : this.cfg.gracefulTimeout;
      const boundS = Math.max(1, Math.min(this.cfg.gracefulTimeout, left));
      this.opts.adopter.workerExited(w.pid, w.age, w.start, boundS, w.killedWith);
    }
    // A worker the master did not stop (a crash already noted when it said so).
    if (!bootFailed && !expected && !w.replaced && !this.#stopping) this.noteDeath(w);
    setImmediate(() => this.step());
  }

  /** A worker that exited before it served: its report, its exit (`exited`), then a retry or the end. */
  private onBootFailure(w: WorkerHandle, exited: () => void): void {
    const f = w.fatal;
    this.#bootFailures++;
    // From the worker's fatal report, not its exit status: an app's process.exit(4) at import is the app's
    // own status, whatever number tunicorn gives a failed load.
    const appError = f?.code === ExitCode.APP_LOAD_ERROR;
    const halting = !this.#everReady && (appError || this.#bootFailures >= MAX_BOOT_FAILURES);
    const debug = this.log.enabled('debug');
    if (f) {
      if (f.detail && debug) this.log.stacked('error', f.message, f.detail);
      else this.log.error(f.message);
    }
    // The detail (the stack) at the default level only when the server gives up: one copy, not one a retry.
    if (halting && f?.detail && !debug) this.log.error(f.detail);
    exited();
    if (halting) {
      this.halt(appError ? 'App failed to load.' : 'Worker failed to boot.', appError ? ExitCode.CONFIG : ExitCode.WORKER_BOOT_ERROR);
      return;
    }
    // A server that has served keeps its running workers; respawn with a growing pause, never a tight loop.
    const delay = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** (this.#bootFailures - 1));
    this.#nextSpawnAt = Date.now() + delay;
    this.log.warning(`Worker failed to boot (${this.#bootFailures} in a row); next try in ${(delay / 1000).toFixed(1)} s`);
  }

  /**
   * A worker that served died unasked: one within QUICK_DEATH_MS of its ready makes the next spawn wait, the
   * pause growing with each such death in a row; one that lived longer ends the streak.
   */
  private noteDeath(w: WorkerHandle): void {
    const lived = Date.now() - w.readyAt;
    if (w.readyAt === 0 || lived >= QUICK_DEATH_MS) {
      this.#quickDeaths = 0;
      this.#deathPauseUntil = 0;
      return;
    }
    this.#lastQuickDeathAt = Date.now();
    // One is replaced at once (an OOM kill, a crash); from the second in a row on, the pause grows.
    if (++this.#quickDeaths === 1) return;
    if (this.cfg.reload && this.#quickDeaths >= RELOAD_QUICK_DEATHS) {
      if (this.#deathPauseUntil !== Infinity)
        this.log.with({ worker_pid: w.pid }).warning(
          `Worker (pid:${w.pid}) died ${(lived / 1000).toFixed(1)} s after it started serving (${this.#quickDeaths} in a row); --reload: no new worker until a watched file changes`,
        );
      this.#deathPauseUntil = Infinity;
      return;
    }
    const delay = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** (this.#quickDeaths - 2));
    this.#deathPauseUntil = Date.now() + delay;
    const pause = (delay / 1000).toFixed(1);
    // A worker killed for its timeout was replaced as it was killed: the pause is for the workers after it.
    const next = this.counted().length < this.numWorkers ? `next worker in ${pause} s` : `its replacement started already; new workers wait ${pause} s from now`;
    this.log.with({ worker_pid: w.pid }).warning(`Worker (pid:${w.pid}) died ${(lived / 1000).toFixed(1)} s after it started serving (${this.#quickDeaths} in a row); ${next}`);
  }

  /**
   * A beat file for a new worker when `timeout` asks for beats, in worker_tmp_dir or /dev/shm; null where none
   * can be made (then the worker's beats are messages, and later workers are not offered one either, until a
   * HUP names another directory).
   */
  private openBeatFile(): BeatFile | null {
    if (this.cfg.timeout <= 0 || this.#beatFilesFailed) return null;
    const dir = this.cfg.workerTmpDir ?? DEFAULT_BEAT_DIR;
    const beat = BeatFile.open(dir);
    if (beat instanceof BeatFile) return beat;
    this.#beatFilesFailed = true;
    // The default directory may be missing where there is no tmpfs there: said at debug level only.
    const said = `No heartbeat file can be made in ${dir}${this.cfg.workerTmpDir ? ' (--worker-tmp-dir)' : ''}: ${beatDirProblem(dir) ?? beat.message}; the workers' heartbeats are messages to the master from now on`;
    if (this.cfg.workerTmpDir) this.log.warning(said);
    else this.log.debug(said);
    return null;
  }

  /** The workers' beats written into their beat files since the last look (see BeatFile). */
  private readBeats(now: number): void {
    const nowNs = process.hrtime.bigint();
    for (const w of this.#workers.values()) {
      const at = w.beat?.read(now, nowNs) ?? null;
      if (at !== null && at > w.lastBeat) w.lastBeat = at;
    }
  }

  /** Heartbeat timeouts and the deadlines of stopping workers. */
  private murderWorkers(): void {
    const now = Date.now();
    const last = this.#lastCheck;
    this.#lastCheck = now;
    // The longest tick period since the last check (pace() may have shortened it since, in this very step).
    const period = this.#checkPeriodMs;
    this.#checkPeriodMs = this.#tickMs;
    if (last !== 0 && now - last > period + MASTER_STALL_MS) {
      // The workers' beats from that span are still on their way: each gets a full timeout from now.
      for (const w of this.#workers.values()) w.lastBeat = Math.max(w.lastBeat, now);
      // The line waits for this turn's poll: after a stop, the CONT that ended it may be read there, after
      // this timer. A stopped master (Ctrl-Z, SIGSTOP) is not the fault a stalled one may be.
      const secs = ((now - last) / 1000).toFixed(1);
      setImmediate(() =>
        this.log.warning(
          this.#continuedAt >= last
            ? `The master was stopped for ${secs} s (Ctrl-Z or SIGSTOP) and continued; worker timeouts count from now`
            : `The master could not run for ${secs} s (a log reader that stopped reading, or a busy preloaded app?); worker timeouts count from now`,
        ),
      );
    }
    this.readBeats(now);
    // Read at the first kill of this pass, once for all (see WorkerHandle.kill): 20 ms or more a read on a
    // machine with thousands of processes, and the end of a stop can kill every worker at once.
    let processes: ProcessTable | null | undefined;
    const table = () => (processes === undefined ? (processes = ProcessTable.read()) : processes);
    for (const w of this.#workers.values()) {
      if (w.state === 'stopping') {
        if (now >= w.killAt) {
          if (w.timedOut) this.logTimeout(w, now);
          else this.log.with({ worker_pid: w.pid }).warning(`Worker (pid:${w.pid}) did not stop in time: killing it`);
          w.killAt = Infinity;
          w.kill(table());
        }
        continue;
      }
      if (w.crashed && now >= w.killAt) {
        this.log.with({ worker_pid: w.pid }).warning(
          `Worker (pid:${w.pid}) did not exit within ${this.cfg.gracefulTimeout} s (graceful_timeout) of its uncaught exception ` +
            `(a request still running, or a worker_exit hook that has not returned): killing it`,
        );
        w.state = 'stopping';
        this.#stats.killed++;
        w.killAt = Infinity;
        w.kill(table());
        continue;
      }
      if (this.cfg.timeout <= 0) continue;
      const booting = w.state === 'booting';
      const limit = (booting ? bootLimitS(this.cfg.timeout) : this.cfg.timeout) * 1000;
      if (now - w.lastBeat <= limit) continue;
      w.timedOut = true;
      w.bootTimedOut = booting;
      w.state = 'stopping';
      this.#stats.killed++;
      // The watchdog thread's report of what the stuck loop was serving may still be on its way (a loaded
      // machine): without it, the line waits for the SIGKILL a second later.
      if (w.hasStallReport) this.logTimeout(w, now);
      w.signal('SIGABRT');
      w.killAt = now + ABORT_GRACE_MS;
    }
  }

  /**
   * max_worker_memory: every period, reads the RSS of each serving worker (from /proc, so a worker whose event
   * loop is stuck is measured too) and recycles those above the limit as max_requests does: the replacement
   * starts, the old worker serves on until it is ready. One round of reads at a time, judged against the limit
   * as it is when they return (a HUP may have changed it).
   */
  private checkMemory(): void {
    const now = Date.now();
    if (this.cfg.maxWorkerMemory <= 0 || this.#stopping || this.#memoryReading || now < this.#memoryDueAt) return;
    this.#memoryDueAt = now + this.#memoryPeriodMs;
    // Once measured at its ready (measureAtReady), which judges a worker above the limit from its start.
    const serving = this.counted().filter((w) => w.state === 'ready' && w.rssAtReady !== null);
    if (serving.length === 0) return;
    this.#memoryReading = true;
    void Promise.all(serving.map(async (w) => ({ w, rss: await readRss(w.pid) })))
      .then((read) => {
        for (const { w, rss } of read) if (rss !== null) this.recycleIfOver(w, rss);
      })
      .finally(() => (this.#memoryReading = false));
  }

  private recycleIfOver(w: WorkerHandle, rss: number): void {
    const limit = this.cfg.maxWorkerMemory;
    if (this.log.enabled('debug')) this.log.with({ worker_pid: w.pid }).debug(`Worker ${w.pid} uses ${formatSize(rss)} (RSS; max_worker_memory ${formatSize(limit)})`);
    // Replaced already (max_requests, a HUP, an earlier round): never twice. Above the limit from its start: its
    // replacement would be too (said once by measureAtReady).
    if (limit <= 0 || rss <= limit || !w.counted || this.#stopping || (w.rssAtReady ?? 0) > limit || this.#memoryPaused) return;
    const lived = Date.now() - w.readyAt;
    this.#memoryQuick = lived < QUICK_MEMORY_MS ? this.#memoryQuick + 1 : 0;
    if (this.#memoryQuick >= QUICK_MEMORY_IN_A_ROW) {
      this.#memoryPaused = true;
      this.log.warning(
        `max_worker_memory (${formatSize(limit)}) is too close to what a worker needs: ${this.#memoryQuick} workers in a row went above it within ` +
          `${QUICK_MEMORY_MS / 1000} s of their start (worker ${w.pid}: ${formatSize(rss)} after ${(lived / 1000).toFixed(1)} s); ` +
          `recycling for memory stops until the next HUP, rather than replace every worker as soon as it serves; raise it well above ${formatSize(rss)}`,
      );
      return;
    }
    w.replaced = true;
    w.exitReason ??= 'max_worker_memory';
    this.log.with({ worker_pid: w.pid }).warning(
      `Worker ${w.pid} uses ${formatSize(rss)} (RSS), above max_worker_memory (${formatSize(limit)}): replacing it; it serves on until its replacement is ready`,
    );
    this.manageWorkers();
  }

  /**
   * A worker's RSS as it reports ready, before it has served much. Above the limit, every replacement would be
   * too, and recycling would never end: it is left alone, and the first such worker for a limit says so.
   */
  private async measureAtReady(w: WorkerHandle): Promise<void> {
    const rss = await readRss(w.pid);
    if (rss === null) return;
    w.rssAtReady = rss;
    const limit = this.cfg.maxWorkerMemory;
    if (this.log.enabled('debug')) this.log.with({ worker_pid: w.pid }).debug(`Worker ${w.pid} uses ${formatSize(rss)} (RSS) as it starts; max_worker_memory ${formatSize(limit)}`);
    if (limit <= 0 || rss <= limit || this.#memoryTooLowSaid === limit) return;
    this.#memoryTooLowSaid = limit;
    this.log.warning(
      `max_worker_memory (${formatSize(limit)}) is below what a worker uses as it starts (worker ${w.pid}: ${formatSize(rss)} when ready): ` +
        `workers above it from their start are not recycled, since each replacement would be as big; raise it well above ${formatSize(rss)}`,
    );
  }

  private logTimeout(w: WorkerHandle, now: number): void {
    if (w.timeoutLogged) return;
    w.timeoutLogged = true;
    const during = w.bootStep === null ? 'loading the app' : `in its ${w.bootStep} hook (the app is not at fault)`;
    const what = w.bootTimedOut ? ` while ${during}: not ready ${bootLimitS(this.cfg.timeout)} s after it started` : w.servingReport(now);
    this.log.with({ worker_pid: w.pid }).critical(`WORKER TIMEOUT (pid:${w.pid})${what}`);
  }

  /** Every worker changes to new ticket keys at once, when the current ones are a period old. */
  private rotateTicketKeys(): void {
    if (!this.cfg.certfile) return;
    const keys = this.#ticketKeys.rotated();
    if (keys === null) return;
    this.log.debug('TLS session-ticket keys rotated: tickets issued before now need a full handshake');
    this.broadcast({ t: 'ticketKeys', keys });
  }

  private broadcast(m: MasterMessage): void {
    for (const w of this.#workers.values()) w.send(m);
  }

  private setWorkerCount(n: number): void {
    const old = this.numWorkers;
    this.numWorkers = n;
    this.log.info(`Number of workers: ${old} -> ${n}`);
    void this.runHook('nworkersChanged', this, n, old);
    this.manageWorkers();
  }

  // ---- reload and stop -----------------------------------------------------------------------------------

  /**
   * The master's signals are its own, as Gunicorn's master replaces the handlers of a preloaded app: a listener
   * the app (--preload) or the config file added would run beside ours, and a common one, `process.exit()` on
   * TERM, would cut the graceful stop short. In the workers the app keeps them. At start, and after a HUP has
   * read the config file again (its code runs again, in the master).
   */
  private dropForeignSignalListeners(): void {
    for (const sig of SIGNALS) {
      const ours = this.#onSignal.get(sig);
      const foreign = process.listeners(sig).filter((l) => l !== ours && !this.opts.ownSignalListeners?.has(l));
      for (const l of foreign) process.off(sig, l as () => void);
      const preloaded = foreign.filter((l) => this.opts.preloadedSignalListeners?.has(l)).length;
      if (preloaded > 0) {
        this.log.warning(
          `The master handles ${sig.slice(3)} itself: ${preloaded} ${sig} listener(s) added by a module preloaded with --import or --require (NODE_OPTIONS; an APM agent?) will not run in the master; -e NODE_OPTIONS='--import ...' preloads it in the workers only`,
        );
      }
      if (foreign.length > preloaded) {
        this.log.warning(`The master handles ${sig.slice(3)} itself: ${foreign.length - preloaded} ${sig} listener(s) added by the app (--preload) or the config file will not run in the master`);
      }
    }
  }

  private async reload(): Promise<void> {
    let next: Resolved;
    try {
      next = await this.opts.reload();
    } catch (err) {
      this.log.error(`Reload failed, keeping the running configuration: ${err instanceof Error ? err.message : String(err)}`);
      return;
    } finally {
      this.dropForeignSignalListeners();
    }
    if (this.#stopping) return;
    const started = this.#resolved.configPath;
    if (started !== null && next.configPath === null) {
      // The default config file (found, not named with -c) is gone: reading on would put every setting it
      // held back to its default (the worker count to 1) without a word.
      this.log.error(
        `Reload failed, keeping the running configuration: the config file ${started} is gone (deleted or moved); put it back and send HUP again, or restart the server to run without it`,
      );
      return;
    }
    let log = this.log;
    let tls: ReturnType<typeof loadTls> = { warnings: [], material: null };
    const made = logsToMake(next.config);
    try {
      // New workers open the logs: a path they cannot open would crash each of them.
      checkLogFiles(next.config);
      checkBeatDir(next.config);
      // And the certificate: new workers load it, and a bad one would crash each of them.
      tls = loadTls(next.config);
      // A user the master cannot switch to (it does not run as root) would fail every new worker's boot, again
      // and again, as at the start (run()).
      checkCanSwitch(resolveIdentity(next.config.user, next.config.group));
      checkMemoryLimit(next.config);
      // The pidfile is written again, at the path the config names now: one that cannot be, or that names
      // another live server, fails the reload as it fails the start.
      if (next.config.pidfile && !this.upgrading()) Pidfile.check(next.config.pidfile);
      if (next.config.errorlog !== this.cfg.errorlog || next.config.loglevel !== this.cfg.loglevel || next.config.logFormat !== this.cfg.logFormat)
        log = new ErrorLog(next.config.errorlog, next.config.loglevel, { format: next.config.logFormat, role: 'master' });
    } catch (err) {
      this.log.error(`Reload failed, keeping the running configuration: ${(err as Error).message}`);
      return;
    }
    const old = this.cfg;
    // What was checked is what new workers serve, until the next HUP that checks another pair.
    this.#tlsMaterial = tls.material;
    const applied = applyReload(this.opts.resolved.config, next.config);
    this.#resolved = { ...next, config: applied.config };
    // A beat file that could not be made is tried again where the reload names another directory.
    if (applied.config.workerTmpDir !== this.cfg.workerTmpDir) this.#beatFilesFailed = false;
    this.cfg = applied.config;
    this.prepareLogsForWorkers(made);
    // As Gunicorn's reload: the title follows a changed proc_name (the new workers take it from the config).
    process.title = `tunicorn: master [${this.name}]`;
    if (log !== this.log) {
      this.log.close();
      this.log = log;
    }
    // A certificate outside its validity is served (OpenSSL loads it), but clients refuse it.
    for (const w of tls.warnings) this.log.warning(w);
    for (const line of applied.warnings) this.log.warning(line);
    this.movePidfile(old);
    // The new workers listen() again on the shared sockets with the new backlog, which sets it: capped as at start.
    if (old.backlog !== this.cfg.backlog) this.checkBacklogCap();
    if (old.workerClass !== this.cfg.workerClass) this.log.info(`Using worker: ${this.cfg.workerClass} (from the new workers on)`);
    if (old.workerClass !== this.cfg.workerClass || old.threads !== this.cfg.threads || old.workerConnections !== this.cfg.workerConnections)
      this.checkWorkerSettings();
    if (old.statsdHost !== this.cfg.statsdHost || old.statsdPrefix !== this.cfg.statsdPrefix || old.dogstatsdTags !== this.cfg.dogstatsdTags) {
      // The new workers read the new settings; the master's own client is replaced here.
      this.#statsd?.close();
      this.#statsd = this.openStatsd();
    }
    this.#stats.reloads++;
    // The new workers start afresh, perhaps with a new limit or a leaner app.
    this.#memoryQuick = 0;
    this.#memoryPaused = false;
    await this.runHook('onReload', this);
    this.#notify({ RELOADING: 1, MONOTONIC_USEC: (process.hrtime.bigint() / 1000n).toString(), STATUS: 'Reloading' });
    // As Gunicorn: the config's count again (also after TTIN/TTOU, or WINCH during an upgrade rollback).
    if (this.cfg.workers !== this.numWorkers) {
      const prev = this.numWorkers;
      this.numWorkers = this.cfg.workers;
      this.log.info(`Number of workers: ${prev} -> ${this.numWorkers}`);
      void this.runHook('nworkersChanged', this, this.numWorkers, prev);
    }
    if (old.workers !== this.cfg.workers || old.maxWorkerMemory !== this.cfg.maxWorkerMemory) this.checkMemoryLimitFits();
    this.replaceAllWorkers();
  }

  /** Whether a USR2 upgrade is under way: this master started a new one, or is the new one. */
  private upgrading(): boolean {
    return this.#oldMasterPid !== null || this.#newMaster !== null;
  }

  /**
   * As Gunicorn's reload: the pidfile is written afresh at the path the config names now (one deleted since is
   * back) and removed from the old path, if it moved. During a USR2 upgrade the masters' files follow the
   * upgrade's protocol (the new master's PIDFILE.2, renamed when the old one is gone), so it stays put.
   */
  private movePidfile(old: Config): void {
    if (this.upgrading()) {
      if (old.pidfile === this.cfg.pidfile) return;
      this.log.warning('pidfile changed in the config: it stays in place during an upgrade (USR2); send HUP again once the upgrade is done');
      this.cfg = Object.freeze({ ...this.cfg, pidfile: old.pidfile });
      this.#resolved = { ...this.#resolved, config: this.cfg };
      return;
    }
    try {
      this.#pidfile.moveTo(this.cfg.pidfile);
      if (old.pidfile !== this.cfg.pidfile) this.log.info(this.cfg.pidfile ? `Pidfile moved to ${this.cfg.pidfile}` : `Pidfile ${old.pidfile} removed: the config names none now`);
    } catch (err) {
      this.log.error(`Could not write the pidfile ${this.cfg.pidfile}: ${(err as Error).message}`);
    }
  }

  /** TERM (graceful) or INT/QUIT (quick). With --shutdown-delay, a graceful stop first serves on, not ready. */
  private stop(mode: 'graceful' | 'quick'): void {
    if (mode === 'graceful' && !this.#stopping && !this.#stopAt && this.cfg.shutdownDelay > 0) {
      this.#stopAt = Date.now() + this.cfg.shutdownDelay * 1000;
      this.#notify({ STOPPING: 1, STATUS: 'Shutdown delay' });
      this.log.info(`Shutdown delay: serving ${this.cfg.shutdownDelay} s more, reporting not ready, before the graceful stop`);
      return;
    }
    this.beginStop(mode);
  }

  private beginStop(mode: 'graceful' | 'quick'): void {
    this.#stopAt = 0;
    if (this.#stopping === 'quick' || this.#stopping === mode) return;
    this.#stopping = mode;
    this.#notify({ STOPPING: 1, STATUS: mode === 'graceful' ? 'Stopping gracefully' : 'Stopping' });
    if (this.#newMaster?.pid) this.#notify({ MAINPID: this.#newMaster.pid, STATUS: 'Handing over to the new master' });
    // Our copies close once every worker has drained the backlog (or now, for a quick stop): the socket
    // then lives exactly as long as the last worker listens on it, and nothing is left queued in it when it
    // goes (closing a listening socket resets what is queued). Until then a worker that paused accepting
    // can resume on a duplicate of ours.
    if (mode === 'quick') this.closeOwnListeners();
    else this.closeListenersOnceDrained();
    if (mode === 'graceful') this.log.info(`Graceful stop: draining ${this.#workers.size} worker(s) within ${this.cfg.gracefulTimeout} s`);
    for (const w of this.#workers.values()) {
      w.exitReason ??= 'shutdown';
      this.stopWorker(w, mode === 'graceful');
    }
  }

  private closeListenersOnceDrained(): void {
    if (!this.#stopping || this.#listenersClosed) return;
    if ([...this.#workers.values()].every((w) => w.drained)) this.closeOwnListeners();
  }

  private closeOwnListeners(): void {
    if (this.#listenersClosed) return;
    this.#listenersClosed = true;
    // libuv unlinks a Unix socket's path when the handle that bound it closes: while a new master (USR2)
    // serves that socket, leave those handles to close with this process, which unlinks nothing.
    const handedOver = this.#newMaster ? this.#listeners.filter((l) => l.address.kind === 'unix') : [];
    closeListeners(this.#listeners.filter((l) => !handedOver.includes(l)), false);
  }

  /** Unix socket files are ours to remove unless systemd made them or another master still serves them. */
  private ownsSocketFiles(): boolean {
    return this.#inherited?.source !== 'systemd' && !this.#newMaster && !this.#oldMasterPid;
  }

  private halt(reason: string, code: number): void {
    this.log.info(`Reason: ${reason}`);
    this.#exitCode = code;
    this.stop('quick');
  }

  /** The files a stop removes, removed at once: the app (--preload) or a hook ended the process. */
  removeFilesNow(): void {
    // Only while the file is still this master's: a new master (USR2) may have taken the path over.
    this.#control?.close();
    if (this.ownsSocketFiles()) unlinkUnixSockets(this.#listeners);
    this.#pidfile.unlink();
  }

  /**
   * The master's last release: its listening sockets, its files (our own socket files, or those an old master
   * handed over with USR2; never systemd's nor a plain fd://'s), the health endpoint and the reloader.
   */
  private closeAll(): void {
    this.closeOwnListeners();
    this.removeFilesNow();
    this.#health?.close();
    this.#reloader?.close();
  }

  private maybeFinish(): void {
    if (!this.#stopping || this.#workers.size > 0 || !this.#finish) return;
    // A graceful stop lets what the workers left end within graceful_timeout (see orphans.ts); a quick one
    // kills it now.
    const adopter = this.opts.adopter;
    if (adopter && this.#stopping === 'quick') adopter.dueKills(Date.now(), true);
    else if (adopter && adopter.endingCount() > 0) {
      if (!this.#waitSaid) this.log.info(`Waiting for ${adopter.endingCount()} process(es) the workers left to end (SIGKILL after graceful_timeout)`);
      this.#waitSaid = true;
      return;
    }
    const finish = this.#finish;
    this.#finish = null;
    if (this.#tick) clearInterval(this.#tick);
    for (const [sig, h] of this.#onSignal) process.off(sig, h);
    process.off('SIGCONT', this.#onContinue);
    this.closeAll();
    this.log.info('Shutting down: Master');
    // systemd must read STOPPING / the new MAINPID before it sees this process exit.
    const sent = Promise.race([Promise.all(this.#notifications), new Promise((r) => setTimeout(r, 2000).unref())]);
    void sent
      .then(() => this.onExitWithin())
      .finally(() => {
        this.#statsd?.close();
        this.log.close();
        finish(this.#exitCode);
      });
  }

  /**
   * The on_exit hook, for graceful_timeout at most: a hook that never returns (a telemetry flush to a host that
   * is gone) would keep the master for good after TERM, past what a service manager waits before its SIGKILL.
   */
  private onExitWithin(): Promise<void> {
    if (this.cfg.onExit === null) return Promise.resolve();
    const s = this.cfg.gracefulTimeout;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.log.warning(`The onExit hook has not returned after ${s} s (graceful_timeout): exiting without it`);
        resolve();
      }, s * 1000);
    });
    return Promise.race([this.runHook('onExit', this).finally(() => clearTimeout(timer)), late]);
  }

  // ---- upgrade (USR2), readiness, health ---------------------------------------------------------------

  /**
   * USR2, as Gunicorn: start a new master with the same command line, the listening sockets inherited
   * (TUNICORN_FD names their fds) and TUNICORN_PID naming us. It writes PIDFILE.2 and serves alongside us;
   * WINCH stops our workers, TERM ends us and the new master takes over the pidfile. Rolling back: HUP to
   * us (workers again), TERM to it.
   */
  private reexec(): void {
    if (this.#newMaster) {
      this.log.warning(`USR2 ignored: a new master (pid ${this.#newMaster.pid}) is already running`);
      return;
    }
    if (this.#oldMasterPid) {
      this.log.warning(`USR2 ignored: the old master (pid ${this.#oldMasterPid}) still runs; stop it first`);
      return;
    }
    if (this.#stopping || this.#stopAt) return;
    const fds = this.#listeners.map((l) => l.fd);
    const cwd = this.opts.startCwd ?? process.cwd();
    // The program we were started as, named through the start directory (a `current` symlink's path), and that
    // directory: either gone (a deleted release, tunicorn not installed in the new one yet) fails the spawn with
    // Node's ENOENT or MODULE_NOT_FOUND stack, which names neither.
    const main = this.opts.program || process.argv[1];
    // A --chdir (a `current` symlink to a release deleted since) is the new master's to enter too: it would exit
    // at once, its reason only on the stderr it shares with us. One from the config file is left to the new
    // master, which reads the file afresh and may name another.
    const missing =
      workDirProblem(cwd) ??
      (this.#resolved.sources.chdir !== 'config file' && this.opts.workDir ? workDirProblem(this.opts.workDir) : null) ??
      (main && !existsSync(main) ? `${main}, the program this master was started as, does not exist now; install tunicorn there (npm ci) and send USR2 again` : null);
    if (missing) {
      this.log.error(`USR2: cannot start a new master: ${missing}`);
      return;
    }
    // The Node.js binary the command names now, which may be a newer release than ours (node-binary.ts).
    const node = upgradeNodeBinary(process.argv0, process.env, cwd);
    const child = spawn(node, [...process.execArgv, ...(main ? [main] : []), ...process.argv.slice(2)], {
      cwd,
      env: {
        ...process.env,
        [UPGRADE_FD_ENV]: fds.map((_, i) => 3 + i).join(','),
        [UPGRADE_PID_ENV]: String(process.pid),
        // Which socket files it takes over from us (those we bound or took over), and only those.
        [UPGRADE_FILES_ENV]: JSON.stringify(this.#listeners.map((l) => l.file)),
        ...(this.#control?.owned() ? { [CONTROL_HANDOVER_ENV]: '1' } : {}),
      },
      stdio: ['ignore', 'inherit', 'inherit', ...fds],
    });
    if (!child.pid) {
      child.once('error', (err) => this.log.error(`USR2: could not start a new master: ${err.message}`));
      return;
    }
    this.#newMaster = child;
    this.log.info(`USR2: started a new master (pid ${child.pid}) on the same sockets, with ${node}; WINCH then TERM to this one completes the upgrade`);
    child.once('exit', (code, signal) => {
      this.#newMaster = null;
      this.log.warning(`The new master (pid ${child.pid}) exited (${signal ?? `code ${code}`}); this master stays in charge`);
      // Its PIDFILE.2, if a kill left it there: a script waiting for that file would take a dead pid for the new
      // master.
      if (this.cfg.pidfile && Pidfile.removeStale(`${this.cfg.pidfile}.2`, child.pid!)) this.log.info(`Removed ${this.cfg.pidfile}.2, which named it`);
      // It had taken the control socket over and removed it at exit: this master serves it again.
      if (this.#control && !this.#control.owned() && !this.#stopping && this.cfg.controlSocket) void this.startControl(this.cfg.controlSocket);
      if (!this.#stopping) this.#notify({ MAINPID: process.pid, READY: 1, STATUS: 'Upgrade rolled back' });
      setImmediate(() => this.step());
    });
  }

  /** In a master started by USR2: once the old master is gone, take its place (pidfile, systemd's MAINPID). */
  private checkPromotion(): void {
    if (!this.#oldMasterPid || running(this.#oldMasterPid)) return;
    this.log.info(`Master has been promoted: the old master (pid ${this.#oldMasterPid}) is gone`);
    this.#oldMasterPid = null;
    if (this.cfg.pidfile) {
      try {
        this.#pidfile.rename(this.cfg.pidfile);
      } catch (err) {
        this.log.error(`Could not rename the pidfile to ${this.cfg.pidfile}: ${(err as Error).message}`);
      }
    }
    this.#announcedReady = false;
    if (this.#healthPending && this.cfg.healthBind)
      void this.startHealth(this.cfg.healthBind).then(
        (line) => line && this.log.info(line),
        (err: Error) => this.log.error(`Could not take over the health endpoint: ${err.message}`),
      );
  }

  /**
   * --control-socket. A master started by USR2 takes the path over from the old one (whose file it replaces);
   * any failure is a warning and the master goes on without it (ControlServer.listen).
   */
  private async startControl(file: string): Promise<void> {
    const [{ ControlServer }, commands] = await Promise.all([import('../control/server.js'), import('../control/commands.js')]);
    this.#commands = commands;
    // After a rolled-back upgrade: the handle on the file the new master replaced is left to this process's exit.
    this.#control?.close();
    this.#control = null;
    const control = new ControlServer(path.resolve(file), parseInt(this.cfg.controlSocketMode, 8), (c) => this.control(c), (line) => this.log.warning(line));
    // Only a file the old master served: not another server's that it too found at the path.
    const takeOver = Boolean(this.#oldMasterPid) && this.#controlHandover;
    const line = await control.listen(takeOver);
    if (!line) return;
    this.#control = control;
    this.log.info(takeOver ? `${line}; taken over from the old master (pid ${this.#oldMasterPid})` : line);
  }

  /** One control-socket command: the answer's data, or a CommandError for an error answer. */
  private control(c: Command): unknown {
    const { CommandError } = this.#commands!;
    if (c.name === 'help') return this.show('help');
    if (c.name === 'show') return this.show(c.what);
    // As the signals: once stopping, only a quicker stop or a log reopen still means something.
    const stillMeant = c.name === 'reopen' || (c.name === 'shutdown' && c.mode === 'quick');
    if ((this.#stopping || this.#stopAt) && !stillMeant) throw new CommandError('the master is stopping');
    const words = c.name === 'worker add' || c.name === 'worker remove' ? `${c.name} ${c.count}` : c.name === 'worker kill' ? `${c.name} ${c.pid}` : c.name === 'shutdown' ? `shutdown ${c.mode}` : c.name;
    // A command refused changes nothing, and is not logged as done (as one refused while the master stops).
    if (c.name === 'worker remove' && this.numWorkers <= 1) throw new CommandError('at least one worker must run');
    if (c.name === 'worker kill') {
      const w = this.#workers.get(c.pid);
      if (!w) throw new CommandError(`no worker with pid ${c.pid} (see "show workers")`);
      if (w.state === 'stopping') throw new CommandError(`worker ${c.pid} is stopping already`);
    }
    this.log.info(`Control socket: ${words}`);
    switch (c.name) {
      case 'worker add': {
        const previous = this.numWorkers;
        this.setWorkerCount(previous + c.count);
        return { added: c.count, previous, total: this.numWorkers };
      }
      case 'worker remove': {
        // As TTOU: never below one (nor up to one, after WINCH made it 0): refused above.
        const previous = this.numWorkers;
        const total = Math.max(1, previous - c.count);
        this.setWorkerCount(total);
        return { removed: previous - total, previous, total };
      }
      case 'worker kill': {
        const w = this.#workers.get(c.pid)!;
        w.exitReason ??= 'control';
        this.stopWorker(w, true);
        setImmediate(() => this.step());
        return { killed: c.pid };
      }
      // The signals' own code paths, through the same queue.
      case 'reload':
        this.enqueue('SIGHUP');
        return { status: 'reloading' };
      case 'reopen':
        this.enqueue('SIGUSR1');
        return { status: 'reopening' };
      case 'shutdown':
        this.enqueue(c.mode === 'quick' ? 'SIGINT' : 'SIGTERM');
        return { status: 'shutting_down', mode: c.mode };
    }
  }

  private show(what: 'all' | 'workers' | 'config' | 'stats' | 'listeners' | 'help'): unknown {
    const now = Date.now();
    const workers = () => {
      this.readBeats(now);
      return [...this.#workers.values()]
        .sort((a, b) => a.age - b.age)
        .map((w) => ({
          pid: w.pid,
          age: w.age,
          booted: w.booted,
          last_heartbeat: Math.round((now - w.lastBeat) / 10) / 100,
          state: w.replaced && w.state !== 'stopping' ? 'replaced' : w.state,
          // Read from /proc now, for this answer only (as `pm2 ls`): the master samples nothing in between.
          ...procUsage(w.pid),
        }));
    };
    switch (what) {
      case 'workers': {
        const list = workers();
        return { workers: list, count: list.length };
      }
      case 'all': {
        const list = workers();
        const cpu = process.cpuUsage();
        const master = {
          pid: process.pid,
          workers_target: this.numWorkers,
          stopping: Boolean(this.#stopping || this.#stopAt),
          rss: residentBytes(),
          cpu: Math.round((cpu.user + cpu.system) / 1e4) / 100,
        };
        return { master, workers: list, count: list.length };
      }
      case 'stats':
        return {
          uptime: Math.round((now - this.#startedAt) / 10) / 100,
          pid: process.pid,
          workers_current: this.#workers.size,
          workers_target: this.numWorkers,
          workers_spawned: this.#stats.spawned,
          workers_killed: this.#stats.killed,
          reloads: this.#stats.reloads,
        };
      case 'config':
        // The current count (TTIN, TTOU, worker add): what the config's figure became. The values of -e
        // (rawEnv) are often secrets: their names only.
        return {
          ...serializableConfig(this.cfg),
          workers: this.numWorkers,
          rawEnv: Object.fromEntries(Object.keys(this.cfg.rawEnv).map((k) => [k, '(hidden)'])),
        };
      case 'listeners': {
        const listeners = this.#listeners.map((l) => ({
          address: l.url,
          fd: l.fd,
          type: l.address.kind === 'tcp' ? (l.address.host.includes(':') ? 'tcp6' : 'tcp') : l.address.kind,
        }));
        return { listeners, count: listeners.length };
      }
      case 'help':
        return { commands: this.#commands!.COMMANDS };
    }
  }

  private startReloader(): void {
    this.#reloader = new Reloader(
      (files) => {
        if (this.#stopping || this.#stopAt) return;
        // The config file (-c, or the one found): its settings are the master's, which HUP reads again.
        const config = this.#resolved.configPath;
        if (config !== null && files.includes(config)) {
          this.log.info(`Reloading: ${config} changed; reading the configuration again, as on HUP`);
          this.enqueue('SIGHUP');
          return;
        }
        this.log.info(`Reloading: ${files[0]} changed; restarting the workers`);
        this.replaceAllWorkers();
      },
      (message) => this.log.warning(`--reload: ${message}`),
    );
    const cwd = this.opts.startCwd ?? process.cwd();
    for (const g of this.cfg.reloadExtraFile) this.#reloader.addGlob(g, cwd);
    if (this.#resolved.configPath !== null) this.#reloader.add([this.#resolved.configPath]);
    this.log.info('Reload mode: restarting the workers when a file of the app changes (development only)');
  }

  /** HUP and --reload: new workers start; the old ones stop once the new ones serve (retireReplaced). */
  private replaceAllWorkers(): void {
    this.#announcedReady = false;
    for (const w of this.#workers.values())
      if (w.state !== 'stopping') {
        w.replaced = true;
        w.exitReason ??= 'reload';
      }
    this.#nextSpawnAt = 0;
    this.#bootFailures = 0;
    this.#quickDeaths = 0;
    this.#deathPauseUntil = 0;
    this.manageWorkers();
    // HUP's reload ends after the step that took the signal: the quick tick again, for the boots and stops.
    this.pace();
  }

  private wantedServing(): boolean {
    const ready = this.counted().filter((w) => w.state === 'ready').length;
    const retiring = [...this.#workers.values()].some((w) => w.replaced);
    return this.numWorkers > 0 && ready >= this.numWorkers && !retiring;
  }

  private healthState(): HealthState {
    // Replaced workers (HUP, max_requests) serve until their successors do: they count, so a recycle does
    // not flap readiness.
    const ready = [...this.#workers.values()].filter((w) => w.state === 'ready').length;
    const stopping = Boolean(this.#stopping || this.#stopAt);
    const isReady = !stopping && this.numWorkers > 0 && ready >= this.numWorkers;
    return { live: true, ready: isReady, detail: stopping ? 'stopping' : `${ready} of ${this.numWorkers} workers serving` };
  }

  /**
   * Binds --health-bind; resolves with the line to log. A failure is a BindError or ConfigError worded as a
   * --bind one (HealthServer.listen). With `retry` (at start), a port in use is tried again as --bind's are: a
   * restart while the old server still stops meets its health port too. Not in a master started by USR2,
   * where the port is the old master's, taken over when it exits.
   */
  private async startHealth(raw: string, retry?: BindRetry): Promise<string> {
    // node:http loads only when health checks are on: the master keeps every module it imports in memory.
    // The metrics' format too, now rather than at the first scrape: in the master's bundle it is a file of its own
    // (scripts/bundle.mjs), which a scrape with every descriptor of the master taken could not open (EMFILE).
    const [{ HealthServer }, prometheus] = await Promise.all([import('./health.js'), import('./prometheus.js')]);
    this.#prometheus = prometheus;
    // One of our own sockets, which no retry frees and the kernel's "another process listens there" misnames.
    const a = parseAddress(raw);
    const own = a.kind === 'tcp' && a.port !== 0 ? listenerHolding(this.#listeners, await resolveHost(a.host, 'healthBind (--health-bind)'), a.port) : undefined;
    if (own)
      throw new ConfigError(
        `invalid value for healthBind (--health-bind): ${JSON.stringify(raw)} is an address the server binds for the app (${own.url}); give the health endpoint a port of its own`,
      );
    const health = new HealthServer(
      () => this.healthState(),
      () => (this.cfg.metrics ? this.scrape() : null),
    );
    try {
      const url = await bindRetrying(raw, () => health.listen(raw, parseUmask(this.cfg.umask)), this.#oldMasterPid ? undefined : retry);
      this.#health = health;
      this.#healthPending = false;
      return `Health checks at: ${url}/health/ready and /health/live${this.cfg.metrics ? ', Prometheus metrics at /metrics' : ''}`;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (code === 'EADDRINUSE' && this.#oldMasterPid) {
        // The old master still answers there; ours takes over when it exits (checkPromotion).
        this.#healthPending = true;
        return `Health endpoint ${raw} is still the old master's; taking it over when it exits`;
      }
      throw err;
    }
  }

  /** GET /metrics (the metrics setting): the workers' counts, asked for now (at most COLLECT_MS), and the master's. */
  private async scrape(): Promise<string> {
    const { exposition } = this.#prometheus!;
    const unanswered = await this.#metrics.collect([...this.#workers.values()]);
    const cap = backlogCap();
    return exposition(
      this.#metrics.families(
        {
          workers: [...this.#workers.values()],
          wanted: this.numWorkers,
          listeners: this.#listenersClosed ? [] : this.#listeners.map((l) => ({ url: l.url, fd: l.fd, tcp: l.address.kind === 'tcp' })),
          backlog: cap === null ? this.cfg.backlog : Math.min(this.cfg.backlog, cap),
          started: Math.round(performance.timeOrigin) / 1000,
        },
        unanswered,
      ),
    );
  }

  /** The "Ready" line and systemd's READY=1, once the wanted workers serve (at start, after each reload). */
  private announceReady(): void {
    if (this.#announcedReady || this.#stopping || this.#stopAt || !this.wantedServing()) return;
    this.#announcedReady = true;
    const status = `${this.numWorkers} worker(s) serving`;
    this.log.info(`Ready: ${status}`);
    // A master started by USR2 is not systemd's main process until the old one is gone.
    if (!this.#oldMasterPid) this.#notify({ READY: 1, STATUS: status });
  }

  #notify(fields: Record<string, string | number>): void {
    if (!this.#notifier.enabled) return;
    if (this.#oldMasterPid && !('MAINPID' in fields)) return;
    const p = this.#notifier.notify(fields);
    this.#notifications.add(p);
    void p.finally(() => this.#notifications.delete(p));
  }

  /** Runs a master-side hook; a hook that throws is logged and does not take the master down. */
  private async runHook<K extends 'onStarting' | 'onReload' | 'whenReady' | 'preFork' | 'childExit' | 'nworkersChanged' | 'onExit'>(
    name: K,
    ...args: Parameters<NonNullable<Config[K]>>
  ): Promise<void> {
    const fn = this.cfg[name] as ((...a: unknown[]) => unknown) | null;
    if (!fn) return;
    this.hooksRunning.add(name);
    try {
      await fn(...args);
    } catch (err) {
      this.log.exception(`Exception in ${name} hook`, err);
    } finally {
      this.hooksRunning.delete(name);
    }
  }
}

/** Calls `each` with every line of a text stream (node:readline does the same, for ~1 MB more master RSS). */
function onLines(input: Readable, each: (line: string) => void): void {
  let rest = '';
  input.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const line of lines) each(line);
  });
}

/**
 * A worker's environment with its number for the app: TUNICORN_WORKER_ID (its slot, 1..N) and, as PM2's cluster
 * mode sets it, NODE_APP_INSTANCE (0..N-1), unless the environment or raw_env has one already. An app runs a
 * cron job or a migration in one worker only with `process.env.TUNICORN_WORKER_ID === '1'`. A master run by PM2
 * (`pm2 start tunicorn`: `pm_id` in its environment) has PM2's NODE_APP_INSTANCE, the master's number (`0`):
 * left to every worker, an app's `=== '0'` job would run in each, so the workers get theirs unless raw_env sets it;
 * so does the variable PM2's `instance_var` names instead (`instance_var` in the master's environment).
 */
export function workerNumberEnv(env: NodeJS.ProcessEnv, id: number, rawEnv: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  env.TUNICORN_WORKER_ID = String(id);
  const pm2s = pm2NumberVars(env, rawEnv);
  if (env.NODE_APP_INSTANCE === undefined) env.NODE_APP_INSTANCE = String(id - 1);
  for (const name of pm2s) env[name] = String(id - 1);
  return env;
}

/**
 * The variables in which PM2, running the master, put the master's number (`0`), and which each worker gets
 * its own in (workerNumberEnv): NODE_APP_INSTANCE, or the one PM2's instance_var names instead (INSTANCE_ID:
 * node-config reads NODE_APP_INSTANCE), unless raw_env sets it. The master's copy of the app (--preload) loads
 * without them, as it does outside PM2: a job gated on `'0'` would otherwise run in the master beside worker 1.
 */
export function pm2NumberVars(env: NodeJS.ProcessEnv, rawEnv: Readonly<Record<string, string>> = {}): string[] {
  if (env.pm_id === undefined) return [];
  const name = env.instance_var ?? 'NODE_APP_INSTANCE';
  if (name !== 'NODE_APP_INSTANCE' && (!/^[A-Za-z_]\w*$/.test(name) || name.startsWith('TUNICORN_'))) return [];
  return rawEnv[name] === undefined ? [name] : [];
}
