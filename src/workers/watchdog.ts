import { lazy } from '../lazy.js';
import { loadNative } from '../native.js';

/** Heartbeat period for a `timeout` in seconds: four beats per timeout, at most one a second. */
export const heartbeatEvery = (timeout: number): number => Math.max(50, Math.min(1000, (timeout * 1000) / 4));

/**
 * Heartbeat period while the worker idles (nothing running, nothing served since the last beat): a sixth of
 * the timeout, at most 10 s. The watcher then reads the counter at that period and calls a stall after two of
 * them, so it names a stuck loop's requests by half the timeout after its last beat, well before the master's
 * kill. Used only where it is longer than heartbeatEvery (a timeout of 7 s or more): 5 s at the default 30 s.
 */
export const idleBeatEvery = (timeout: number): number => Math.min(10_000, Math.floor((timeout * 1000) / 6));

/**
 * How often the watcher reads the beat counter: half the stall it watches for, at most once a second. A stall
 * is seen between `stallMs` and 1.5 x `stallMs` after the loop's last beat (3 s at the default timeout of 30 s,
 * whose master kills at 30 s), and a serving worker's watcher wakes once a second, not ten times as it did
 * when it read the counter every 100 ms; an idle worker's, once a beat period (Watchdog.pace; docs/design.md,
 * "An idle server").
 */
export const watchPollMs = (stallMs: number): number => Math.max(10, Math.min(1000, Math.floor(stallMs / 2)));

/** Requests tracked at once; beyond that a request is served but not named in a timeout report. */
const SLOTS = 64;
/** Bytes of "METHOD URL" kept per request. */
const TEXT = 240;

/**
 * The native watcher (native/watchdog.c, built by `npm install` where a C compiler is found; `TUNICORN_NATIVE=0`
 * turns it off, and the worker-thread watcher runs, as on a machine where it could not be built).
 */
interface NativeWatcher {
  start(reportFd: number, stallMs: number, pollMs: number, slots: number, text: number): ArrayBuffer;
}

/**
 * Starts the watcher thread: the native one where it loads and starts, else a worker thread. Returns the
 * memory it reads (the beat counter, then per slot a start time, a length and the request line: the views the
 * Watchdog makes over it) and which kind it is.
 */
function startWatcher(reportFd: number, stallMs: number): { buffer: ArrayBufferLike; kind: string; native: boolean } {
  const native = loadNative<NativeWatcher>('watchdog');
  let why: string;
  if (typeof native === 'string') {
    why = native;
  } else {
    try {
      return { buffer: native.start(reportFd, stallMs, watchPollMs(stallMs), SLOTS, TEXT), kind: 'a native thread', native: true };
    } catch (err) {
      why = `dist/native/watchdog.node did not start (${(err as Error).message})`;
    }
  }
  const buffer = new SharedArrayBuffer(8 + SLOTS * (8 + 4 + TEXT));
  // Loaded only here: node:worker_threads costs every worker about 1.3 MB of RSS, and the native thread needs none.
  const { Worker } = lazy.workerThreads();
  new Worker(new URL('./watchdog-thread.js', import.meta.url), {
    workerData: { sab: buffer, reportFd, stallMs, pollMs: watchPollMs(stallMs), slots: SLOTS, text: TEXT },
    stdout: false,
    stderr: false,
    resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2 },
  }).unref();
  return { buffer, kind: `a worker thread (no native watcher: ${why})`, native: false };
}

/**
 * Names the requests a stalled worker is serving. A blocked event loop cannot report anything itself, so
 * the main thread keeps its in-flight requests in memory that a watcher thread reads; that thread keeps
 * running while the main thread is stuck, and sends them to the master when the heartbeat counter stops
 * moving. The master puts them in its `WORKER TIMEOUT` line. Cost per request: a slot write of the request
 * line.
 *
 * The watcher is a plain POSIX thread from a small native module where one was built (no V8 isolate), else
 * a worker thread running watchdog-thread.ts (about 9 MB of RSS for its isolate). Both read the same layout.
 */
export class Watchdog {
  readonly #beat: Int32Array;
  /** The idle beat period in ms, 0 while the worker is busy (see pace()). */
  readonly #idle: Int32Array;
  readonly #starts: Float64Array;
  readonly #lens: Int32Array;
  readonly #text: Uint8Array;
  readonly #free: number[] = [];
  /** Which watcher runs, for the worker's debug log. */
  readonly kind: string;
  /** The native thread watches (it can wait for the master to go: untilMasterGone). */
  readonly native: boolean;

  constructor(reportFd: number, stallMs: number) {
    const { buffer, kind, native } = startWatcher(reportFd, stallMs);
    this.kind = kind;
    this.native = native;
    this.#beat = new Int32Array(buffer, 0, 1);
    this.#idle = new Int32Array(buffer, 4, 1);
    this.#starts = new Float64Array(buffer, 8, SLOTS);
    this.#lens = new Int32Array(buffer, 8 + SLOTS * 8, SLOTS);
    this.#text = new Uint8Array(buffer, 8 + SLOTS * 12, SLOTS * TEXT);
    for (let i = SLOTS - 1; i >= 0; i--) this.#free.push(i);
  }

  beat(): void {
    Atomics.add(this.#beat, 0, 1);
  }

  /**
   * The main thread beats every `idleMs` from now on (0: back to the period the watcher was started for). Set
   * before the beat that starts the new period: the watcher then waits for two of them before it calls a
   * stall, and sleeps one between its reads, so an idle worker's watcher wakes as rarely as its loop.
   */
  pace(idleMs: number): void {
    Atomics.store(this.#idle, 0, idleMs);
  }

  /**
   * The main thread stops beating until the master is gone: the native watcher sleeps until the master's end of
   * the report descriptor closes, then gives the loop the stall it was started for to beat again (from the
   * 'disconnect' that follows; see beatWhenMasterGone in child.ts). Only with the native watcher: the
   * worker-thread one cannot wait on a descriptor, and reads the counter at its period.
   */
  untilMasterGone(): void {
    Atomics.store(this.#idle, 0, -1);
  }

  /**
   * Node's parser decodes the request line as latin1, so one byte per char gives back what the client sent
   * (the thread decodes it as UTF-8). A plain loop: about 4 x faster here than Buffer#write and 2 x faster
   * than TextEncoder#encodeInto for a short request line (both cross into C++), and it allocates nothing.
   * `at`: when the request started, in epoch milliseconds.
   */
  begin(method: string | undefined, url: string | undefined, at: number): number {
    const i = this.#free.pop();
    if (i === undefined) return -1;
    this.#starts[i] = at;
    const t = this.#text;
    const base = i * TEXT;
    let n = base;
    const m = method ?? '?';
    for (let k = 0; k < m.length; k++) t[n++] = m.charCodeAt(k);
    t[n++] = 0x20;
    const u = url ?? '?';
    const end = Math.min(u.length, base + TEXT - n);
    for (let k = 0; k < end; k++) t[n++] = u.charCodeAt(k);
    // A plain store, like the text's: the watcher reads the slots only once this thread has stalled for
    // `timeout`, long after they were written, and clamps what it reads. Atomics.store is a call into a
    // builtin on every request (about 13 ns more a store, measured), for an ordering nobody needs.
    this.#lens[i] = n - base;
    return i;
  }

  end(i: number): void {
    if (i < 0) return;
    this.#lens[i] = 0;
    this.#free.push(i);
  }
}
