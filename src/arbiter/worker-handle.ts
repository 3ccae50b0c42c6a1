import type { ChildProcess, SendHandle } from 'node:child_process';
import type { HookLog, HookWorker } from '../config/hook-types.js';
import { describeProcesses, signalEach, type Descendant, type ProcessTable } from '../process-tree.js';
import type { BeatFile } from '../protocol/beat-file.js';
import type { InflightRequest, MasterMessage } from '../protocol/messages.js';
import type { ExitReason, WorkerMetricsState } from './metrics.js';

/** What a send fails with when the worker has closed its end of the channel: it is on its way out. */
const CHANNEL_GONE = new Set(['EPIPE', 'ECONNRESET', 'ERR_IPC_CHANNEL_CLOSED']);

export type WorkerState = 'booting' | 'ready' | 'stopping';

/** The master's view of one worker process (the code that runs inside it is in src/workers/). */
export class WorkerHandle implements HookWorker {
  state: WorkerState = 'booting';
  /** Replaced by a newer worker (HUP, max_requests, max_worker_memory): not counted, stopped once its successor serves. */
  replaced = false;
  /** It reported ready (loaded the app and serves) at least once. */
  booted = false;
  /** When it reported ready (Date.now()); 0 before. */
  readyAt = 0;
  /**
   * max_worker_memory: its RSS when it reported ready, once the master has read it (null before). A worker
   * above the limit from its start is never recycled for memory: its replacement would be as big.
   */
  rssAtReady: number | null = null;
  /** When it last beat (Date.now()): a message from it, or its beat file as the master last read it. */
  lastBeat: number;
  /** Its beat file (see BeatFile); null: it beats by message. */
  beat: BeatFile | null = null;
  /** When a graceful stop must be over (then SIGKILL), also the one a worker began after an uncaught exception. */
  killAt = Infinity;
  /** Long-running requests the worker reported with its last heartbeat. */
  slow: readonly InflightRequest[] = [];
  /** Set when the worker told us why it is about to die before serving. */
  fatal: { code: number; message: string; detail: string } | null = null;
  timedOut = false;
  /** It said it is exiting after an uncaught exception (status 1), its replacement started. */
  crashed = false;
  /** It timed out before it was ready: a boot failure. */
  bootTimedOut = false;
  /** The server hook the boot runs now (see the `step` message); null while it loads the app. */
  bootStep: 'postFork' | 'postWorkerInit' | null = null;
  timeoutLogged = false;
  /** TERM: the worker has drained the backlog and closed its listeners. */
  drained = false;
  /** Its start time (orphans.ts workerStart()), when the master adopts what workers leave; null otherwise. */
  start: string | null = null;
  /** The processes it started that kill() killed with it: already ended, not asked again at its exit. */
  killedWith: readonly Descendant[] = [];
  /** Why the master stopped or replaced it (the `reason` of tunicorn_worker_exits_total); null: not asked to. */
  exitReason: ExitReason | null = null;
  /** The metrics setting: its last counts, as the master keeps them (see MetricsBook). */
  readonly metrics: WorkerMetricsState = { counts: null, cpuSeen: 0, folded: false };
  /** The watchdog thread's last report while the event loop was stalled. */
  stall: { at: number; requests: readonly InflightRequest[] } | null = null;

  constructor(
    readonly id: number,
    readonly age: number,
    readonly child: ChildProcess,
    readonly log: HookLog,
    readonly spawnedAt: number,
  ) {
    this.lastBeat = spawnedAt;
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Counts toward the wanted number of workers. */
  get counted(): boolean {
    return !this.replaced && this.state !== 'stopping';
  }

  onStallReport(line: string): void {
    try {
      const r = JSON.parse(line) as { requests?: InflightRequest[] };
      this.stall = { at: Date.now(), requests: Array.isArray(r.requests) ? r.requests : [] };
    } catch {
      /* not a report */
    }
  }

  /** The watchdog reported a stall since the last heartbeat. */
  get hasStallReport(): boolean {
    return this.stall !== null && this.stall.at >= this.lastBeat;
  }

  /** For the WORKER TIMEOUT line: what the worker was serving when its event loop stopped. */
  servingReport(now: number): string {
    const stalled = this.hasStallReport;
    const list = stalled ? this.stall!.requests.map((r) => ({ ...r, ms: r.ms + (now - this.stall!.at) })) : this.slow;
    if (!list.length) return stalled ? '; no request was running when its event loop stalled' : '; no request was running at its last heartbeat';
    // Math.max: a request that began in the millisecond of the report can read a hair below 0 (two clocks).
    return `; it was serving ${list.map((r) => `${r.method} ${r.url} (${(Math.max(0, r.ms) / 1000).toFixed(1)} s)`).join(', ')}`;
  }

  /**
   * Sends `m` to the worker; false when its channel is closed already. A worker may close it while a message
   * is on its way: it got the signal itself (a TERM or INT sent to the whole process group, as Ctrl-C does),
   * and its exit is handled like any other. That is not an error: it is logged at debug level. `sent` runs
   * once the message is written or has failed (a handle sent along may be closed then).
   */
  send(m: MasterMessage, handle?: SendHandle, sent?: () => void): boolean {
    if (!this.child.connected) return false;
    this.child.send(m, handle, undefined, (err) => {
      sent?.();
      if (!err) return;
      if (CHANNEL_GONE.has((err as NodeJS.ErrnoException).code ?? '')) {
        this.log.debug(`Worker ${this.pid} closed its channel before the '${m.t}' message reached it`);
      } else {
        this.log.error(`Worker ${this.pid}: ${err.message}`);
      }
    });
    return true;
  }

  /**
   * SIGKILL, to the worker and to the processes it started that still run in its session: a killed worker
   * cannot end them itself (src/workers/child.ts does at any other exit), and once it is gone they have
   * another parent and cannot be told from anyone's. They are found while it still lives, and killed after
   * it, so that it cannot start one again in between (an app that restarts its sidecar when it exits).
   * `table`: a read of /proc taken just now (null without /proc).
   */
  kill(table: ProcessTable | null): void {
    const below = table?.below(this.pid) ?? null;
    this.signal('SIGKILL');
    if (!below?.length) return;
    const sent = signalEach(below, 'SIGKILL');
    this.killedWith = sent;
    if (sent.length) this.log.warning(`Worker (pid:${this.pid}) killed with the processes it started that still ran: ${describeProcesses(sent)}`);
  }

  signal(sig: NodeJS.Signals): void {
    try {
      this.child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}
