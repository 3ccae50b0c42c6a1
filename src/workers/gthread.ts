import { constants } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { AppLoadError } from '../app/errors.js';
import type { InflightRequest } from '../protocol/messages.js';
import { FirstLine, firstLine } from '../http/connection.js';
import { openPeek } from '../http/peek.js';
import { TLS_MATERIAL } from '../http/tls.js';
import { lazy } from '../lazy.js';
import { shareStatsdWarning } from '../logging/statsd.js';
import { HeldSockets, type HeldEntry } from './held-sockets.js';
import { CELLS } from './request-metrics.js';
import { ThreadSlots } from './thread-slots.js';
import { threadOnlyHint } from './thread-hints.js';
import { ThreadBeats } from './thread-beats.js';
import { heartbeatEvery, idleBeatEvery } from './watchdog.js';
import type { WorkerClass, WorkerClassContext } from './worker-class.js';
import type { ThreadData, ThreadMessage, ToThread } from './gthread-thread.js';

const THREAD_ENTRY = new URL('./gthread-thread.js', import.meta.url);

/** SIGABRT: how long the hand-over of held connections may hold back the stop of the threads. */
const HAND_OVER_MAX_MS = 500;
const EAGAIN = constants.errno.EAGAIN;

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
  /**
   * Each thread's last beat and its pace (see ThreadBeats). A time rather than a count, so the threads beat once
   * a period: read as a count, at the process's own period, a live thread could show no change between two
   * reads and two in the next, so the threads beat twice a period (2026-12-07: an idle thread woke twice a
   * second for it).
   */
  #beats: ThreadBeats | null = null;
  /** The quick heartbeat period (heartbeatEvery); 0: the threads do not beat (timeout 0). */
  #everyMs = 0;
  /** The process's request count (max_requests), which every thread adds to, and its value at the last quiet(). */
  #count: Int32Array | null = null;
  #countSeen = -1;
  #stopping = false;
  /** A thread's load failed: the process ends through the boot's failure, whatever its threads do next. */
  #failed = false;
  /** A thread's end before the stop was logged: the first one says it for the process. */
  #exitSaid = false;
  #drained = 0;
  /** Each thread has loaded the app ('loaded'); once all have, every one is told to accept (`go`). */
  readonly #loaded: boolean[] = [];
  /** Every thread was told to accept: the worker serves. */
  #serving = false;
  #slots: ThreadSlots | null = null;
  #held: HeldSockets | null = null;
  /** Each thread's kept-alive connections while idle between two requests (see handOverKept). */
  #kept: HeldSockets | null = null;
  /**
   * Handles of connections handed over to this process and passed on to a thread by descriptor. The thread's
   * socket closes the descriptor; closing these too could close a later connection that reused the number,
   * and Node cannot let go of a descriptor without closing it. So they stay, unused, for the life of the
   * process: well under 1 KB per connection handed over (on a timeout, or when a worker is replaced).
   */
  readonly #adopted: object[] = [];
  /** --reload: the files already passed on to the master (every thread imports the same app). */
  readonly #reported = new Set<string>();

  /** The metrics setting: each thread's counter record (see request-metrics.ts); none when off. */
  #records: Float64Array[] = [];

  constructor(private readonly ctx: WorkerClassContext) {}

  metricRecords(): Float64Array[] {
    return this.#records;
  }

  async start(): Promise<void> {
    const { runtime, init, listeners } = this.ctx;
    const cfg = runtime.config;
    const n = cfg.threads;
    // Slot 0: the process's request count (max_requests); slot 1: StatsD's warning of failed sends was said
    // (once for the process and its threads).
    const sab = new SharedArrayBuffer(4 * 2);
    shareStatsdWarning(new Int32Array(sab, 4, 1));
    this.#count = new Int32Array(sab, 0, 1);
    this.#beats = new ThreadBeats(n);
    this.#beats.reset();
    const every = cfg.timeout > 0 ? heartbeatEvery(cfg.timeout) : 0;
    this.#everyMs = every;
    // As a worker process idles (child.ts), where a sixth of the timeout is longer than the quick period.
    const idle = every > 0 ? idleBeatEvery(cfg.timeout) : 0;
    // The metrics setting: a counter record per thread, in memory the process reads (metricRecords).
    const metrics = cfg.metrics ? new SharedArrayBuffer(8 * CELLS * n) : null;
    this.#records = metrics ? Array.from({ length: n }, (_, t) => new Float64Array(metrics, 8 * CELLS * t, CELLS)) : [];
    this.#slots = new ThreadSlots(n);
    this.#held = new HeldSockets(n);
    this.#kept = new HeldSockets(n);
    const ready: Promise<void>[] = [];
    for (let t = 0; t < n; t++) {
      const data: ThreadData = {
        thread: t,
        app: init.app,
        configPath: init.configPath,
        // The TLS material the master sent is not enumerable (keepTlsMaterial): named, or the spread drops it.
        config: { ...cfg, maxRequests: runtime.maxRequests, maxRequestsJitter: 0, [TLS_MATERIAL]: (cfg as unknown as Record<string, unknown>)[TLS_MATERIAL] } as unknown as Record<string, unknown>,
        id: init.id,
        age: init.age,
        masterPid: init.masterPid,
        listeners: listeners.map((l) => ({ fd: l.fds[t]!, fds: [l.fds[t]!], url: l.url })),
        sab,
        beats: this.#beats.sab,
        slots: this.#slots.sab,
        held: this.#held.sab,
        kept: this.#kept.sab,
        threads: n,
        beatMs: every,
        idleMs: idle > every ? idle : 0,
        ticketKeys: runtime.ticketKeys,
        metrics,
      };
      const threads = lazy.workerThreads();
      // One environment for the process, as a worker process has: by default each thread gets a copy, and an
      // app's write to process.env (a dotenv load, a setting made at startup) would be seen by its thread only.
      // trackUnmanagedFds off: a thread closes descriptors it did not open with fs (the duplicates of the listening
      // sockets it pauses accepting with, a connection handed over to it), and with tracking on Node printed
      // `Warning: File descriptor N closed but not opened in unmanaged mode` for each, on a HUP with requests
      // in flight. What tracking buys, closing a thread's files when it exits, the process's exit does: a
      // thread that exits ends its process.
      const worker = new threads.Worker(THREAD_ENTRY, { workerData: data, env: threads.SHARE_ENV, trackUnmanagedFds: false });
      this.#threads.push(worker);
      this.#exited.push(new Promise((resolve) => worker.once('exit', () => resolve())));
      ready.push(
        new Promise<void>((resolve, reject) => {
          worker.on('message', (m: ThreadMessage) => {
            switch (m.t) {
              case 'loaded':
                this.#loaded[t] = true;
                return resolve();
              case 'exiting':
                // Said once for the process: every thread runs the same top-level code.
                if (!this.#exitSaid) runtime.log.error(m.line);
                this.#exitSaid = true;
                return;
              case 'fatal': {
                this.#failed = true;
                const message = m.message + threadOnlyHint(m.message + m.detail);
                if (m.appLoad) return reject(new AppLoadError(message, m.detail));
                // The thread described its failure; this process's stack would only name tunicorn's code.
                const err = new Error(message);
                err.stack = m.detail;
                return reject(err);
              }
              case 'retire':
                // The thread whose request reached the limit logged it.
                return runtime.retire(m.requests, false);
              case 'crashed': {
                const err = new Error(m.message);
                err.stack = m.stack;
                // Stopping already (TERM, a reload, or the retirement of a first crash): the process exits once
                // every thread is done, and one thread's exception (a timer the app's shutdown left) is no reason
                // to cut the requests the others are finishing, nor their stop; the thread that threw goes on too.
                if (this.#stopping) return runtime.log.exception(`Uncaught exception in thread ${t} of worker ${process.pid} while it stops; the stop goes on`, err);
                return this.ctx.crashed(err, m.running);
              }
              case 'files': {
                const fresh = m.files.filter((f) => !this.#reported.has(f));
                for (const f of fresh) this.#reported.add(f);
                // Every thread's missing files go on: the master looks at each once.
                return runtime.reportFiles(fresh, m.missing);
              }
              case 'drained':
                // The process has drained once every thread has.
                if (++this.#drained === n) runtime.reportDrained();
                return;
            }
          });
          worker.once('error', (err) => {
            // The thread is gone (its exit settles the stop's wait for it): what it ran is lost, the others stop on.
            if (this.#stopping) return runtime.log.exception(`Thread ${t} of worker ${process.pid} died while it stopped; the other threads stop on`, err);
            // Once serving, a thread that died (its heap full: ERR_WORKER_OUT_OF_MEMORY) takes only what it
            // ran: the process retires as after an uncaught exception, and its other threads finish theirs.
            if (this.#serving) return this.ctx.crashed(err);
            runtime.log.exception(`Thread ${t} of worker ${process.pid} failed; exiting`, err);
            process.exit(1);
          });
          worker.once('exit', (code) => {
            // A failed load already ends the process, with its own status (child.ts).
            if (this.#stopping || this.#failed) return;
            // The process ends as the thread did, as it would had the app called process.exit() in a worker
            // process: the master reads the status (3 and 4 mean a failed boot and a failed load).
            if (!this.#exitSaid) runtime.log.error(`Thread ${t} of worker ${process.pid} exited (code ${code}) before it was asked to; exiting`);
            this.#exitSaid = true;
            process.exitCode = code;
            setImmediate(() => process.exit(code));
          });
        }),
      );
    }
    // Each thread has its own TLS server: rotated ticket keys go to all of them.
    runtime.onTicketKeys((keys) => {
      for (const w of this.#threads) w.postMessage({ t: 'ticketKeys', keys } satisfies ToThread);
    });
    await Promise.all(ready);
    await this.ctx.appLoaded();
    // Every thread has loaded the app: they accept from now on. The worker reports ready in this same turn,
    // before any thread can take a connection, so a request that crashes it is never a failed boot.
    this.#serving = true;
    // The threads beat once they listen: loading the app was no stall.
    this.#beats!.reset();
    for (const w of this.#threads) w.postMessage({ t: 'go' } satisfies ToThread);
  }

  healthy(): boolean {
    return this.stuckThreads().length === 0;
  }

  /**
   * Idle: every thread beats at its idle period (none runs a request, with timeout 0), and no request was counted
   * since the last call. The process's own beat then idles too (child.ts).
   */
  quiet(): boolean {
    const count = this.#count ? Atomics.load(this.#count, 0) : 0;
    const same = count === this.#countSeen;
    this.#countSeen = count;
    // With timeout 0 the threads do not beat: none runs a request.
    return same && (this.#everyMs > 0 ? this.#beats!.allIdle() : this.#slots!.runningThreads().length === 0);
  }

  /** The threads' oldest beat, which the process's beat file holds (ThreadBeats.fileTime). */
  beatTime(): bigint | null {
    return this.#serving && this.#everyMs > 0 ? this.#beats!.fileTime(this.#everyMs) : null;
  }

  /** Threads whose last beat is older than two of their heartbeat periods. */
  private stuckThreads(): number[] {
    if (!this.#beats || this.#everyMs === 0) return [];
    return this.#beats.stuck(this.#everyMs);
  }

  /**
   * Timed out: a thread is stuck. First the connections the threads hold back unread (queued behind the
   * stuck request, or behind others) go to the master, which hands them to a live worker. Then the other
   * threads stop accepting and finish the requests they run; the master's SIGKILL after its grace bounds it
   * all. The stuck thread is left as it is, and true tells the process to end without waking it. A thread
   * woken to stop (terminate(), or the thread teardown of any exit but a kill) finishes its loop's turn, I/O
   * included, and that turn accepted a connection waiting in the shared backlog, then closed it unread as the
   * thread ended: a reset for that client (strace: accept4, then close; docs/design.md, "gthread threads").
   */
  async abort(): Promise<boolean> {
    this.#stopping = true;
    const stuck = new Set(this.stuckThreads());
    await this.handOverHeld();
    await this.handOverKept(stuck);
    await Promise.all(
      this.#threads.map((w, t) => {
        if (stuck.has(t)) return undefined;
        w.postMessage({ t: 'stop', graceful: true, drain: false } satisfies ToThread);
        return this.#exited[t];
      }),
    );
    return stuck.size > 0;
  }

  /** Claims every connection the threads hold back and sends each to the master (see HeldSockets). */
  private handOverHeld(): Promise<void> {
    return this.send(this.#held?.claimAll() ?? [], 'waiting');
  }

  /** Sends claimed connections to the master, which hands them to live workers; `what` names them in the log. */
  private async send(entries: readonly HeldEntry[], what: string): Promise<void> {
    if (entries.length === 0) return;
    this.ctx.runtime.log.warning(`Handing ${entries.length} ${what} connection(s) over to the other workers`);
    const sent = Promise.allSettled(entries.map((h) => this.ctx.handOver(h.listener, h.fd)));
    // Sent before any thread ends: a thread that ends closes its descriptors.
    await Promise.race([sent, new Promise((resolve) => setTimeout(resolve, HAND_OVER_MAX_MS).unref())]);
  }

  /**
   * The idle kept-alive connections of the stuck threads go to the master too. A stuck thread reads nothing,
   * so a request sent on one since it got stuck waits unread in the kernel, and the next worker reads it as
   * if it had accepted the connection. Each is looked at first (native peek): one whose waiting bytes do not
   * start a request (its thread read the rest before it got stuck) or whose client has closed stays. Without
   * the native module none is handed over.
   */
  private handOverKept(stuck: ReadonlySet<number>): Promise<void> {
    const kept = stuck.size > 0 ? (this.#kept?.claimAll(stuck) ?? []) : [];
    if (kept.length === 0) return Promise.resolve();
    const peek = openPeek();
    if (typeof peek === 'string') return Promise.resolve();
    const bytes = new Uint8Array(peek.buffer);
    return this.send(kept.filter((k) => startsRequest(bytes, peek(k.fd))), 'idle kept-alive');
  }

  /** A connection handed over from a timed-out worker: to the thread with the least to do. */
  adopt(listener: number, handle: object): boolean {
    const fd = (handle as { fd?: unknown }).fd;
    if (this.#stopping || !this.#held || typeof fd !== 'number' || fd < 0) return false;
    const running = new Set(this.#slots?.runningThreads() ?? []);
    const load = (t: number) => this.#held!.count(t) + (running.has(t) ? 1 : 0);
    let best = 0;
    for (let t = 1; t < this.#threads.length; t++) if (load(t) < load(best)) best = t;
    this.#adopted.push(handle);
    this.#threads[best]!.postMessage({ t: 'adopt', listener, fd } satisfies ToThread);
    return true;
  }

  /** Every request a thread runs (sorted longest first): a stuck thread's is the first. */
  slowRequests(): InflightRequest[] {
    return this.#slots?.running() ?? [];
  }

  async stop(graceful: boolean): Promise<void> {
    this.#stopping = true;
    const drain = this.ctx.runtime.acceptDrain;
    // Other workers serve on (HUP, max_requests, TTOU): the connections waiting behind a request go to them
    // now, not after it; behind a stuck one they would wait for the SIGKILL at graceful_timeout and be lost.
    // Not when no worker will take them (TERM, WINCH): this one serves what it holds.
    if (graceful && this.ctx.runtime.handOverOnStop) await this.handOverHeld();
    // A thread still loading the app serves nothing, and hears messages only once loaded: it is ended now,
    // where a message would wait for the load (a stop during a slow import would take as long as it). A
    // loaded one stops as a serving one does: its app's close and TERM listeners run.
    this.#threads.forEach((w, t) => (this.#loaded[t] ? w.postMessage({ t: 'stop', graceful, drain } satisfies ToThread) : void w.terminate()));
    await Promise.all(this.#exited);
  }

  reopenLogs(): void {
    for (const w of this.#threads) w.postMessage({ t: 'reopen' } satisfies ToThread);
  }
}

/**
 * Whether what a peek found on an idle kept-alive connection can go to another worker: nothing yet
 * (`-EAGAIN`), or the start of a request: a whole request line, or as much of one as came (a method, then
 * a space or nothing more). 0 (the client closed) and errors cannot.
 */
export function startsRequest(b: Uint8Array, n: number): boolean {
  if (n === -EAGAIN) return true;
  return n > 0 && firstLine(b, n) !== FirstLine.Bad;
}

export const createGthreadWorker = (ctx: WorkerClassContext): WorkerClass => new GthreadWorker(ctx);
