import type { RequestSlots } from './runtime.js';

/** The thread side of ThreadBeats. */
export interface ThreadBeatWriter {
  /** Beats from now on: once the thread listens (loading the app was no stall). */
  start(): void;
  /** `slots`, with each request's begin and end seen: a request that begins on an idle thread ends its idle pace. */
  watching(slots: RequestSlots): RequestSlots;
}

/**
 * The beats of a gthread worker's threads, in memory the process shares with them: for each thread the time of
 * its last beat (`process.hrtime.bigint()`, CLOCK_MONOTONIC, the beat file's clock) and its pace, the period it
 * beats at now, in ms (0: the quick one, heartbeatEvery).
 *
 * A thread beats at the quick period while it serves. Once a beat finds it idle (no request running, none begun
 * since the beat before), it beats every `idleMs` (idleBeatEvery, a sixth of the timeout), as an idle worker
 * process does. A request that begins on an idle thread beats at once and puts the quick period back, so a loop
 * stuck on that request is seen two quick periods later, as on a thread that serves.
 *
 * The process calls a thread stuck once it has missed two of its periods (stuck()), and its beat file holds the
 * threads' oldest beat (fileTime()), so that the master's timeout runs from the last beat of a thread stuck on
 * a request, not from the process's (docs/design.md, "An idle server").
 */
export class ThreadBeats {
  readonly sab: SharedArrayBuffer;
  readonly #beats: BigInt64Array;
  readonly #paces: Int32Array;

  constructor(
    readonly threads: number,
    sab?: SharedArrayBuffer,
  ) {
    this.sab = sab ?? new SharedArrayBuffer(12 * threads);
    this.#beats = new BigInt64Array(this.sab, 0, threads);
    this.#paces = new Int32Array(this.sab, 8 * threads, threads);
  }

  /** Every thread beats now, at the quick period. */
  reset(now = process.hrtime.bigint()): void {
    for (let t = 0; t < this.threads; t++) {
      Atomics.store(this.#paces, t, 0);
      Atomics.store(this.#beats, t, now);
    }
  }

  /** The threads whose last beat is older than two of their periods: `everyMs`, or a longer idle one. */
  stuck(everyMs: number, now = process.hrtime.bigint()): number[] {
    const out: number[] = [];
    for (let t = 0; t < this.threads; t++) {
      // The pace before the beat: a thread puts the quick period back after the beat that goes with it.
      const periodMs = Math.max(everyMs, Atomics.load(this.#paces, t));
      if (now - Atomics.load(this.#beats, t) > BigInt(2 * periodMs) * 1_000_000n) out.push(t);
    }
    return out;
  }

  /** Whether every thread beats at its idle period. */
  allIdle(): boolean {
    for (let t = 0; t < this.threads; t++) if (Atomics.load(this.#paces, t) === 0) return false;
    return true;
  }

  /**
   * What the process's beat file holds: the earliest time a thread's next beat is due, less the quick period
   * `everyMs` (and at most `now`). A thread at the quick period counts from its last beat, as a worker process
   * does; an idle one from its next beat's due time less the quick period, so that an idle thread, which beats
   * seldom, does not make the file older than the last beat of a thread stuck on a request.
   */
  fileTime(everyMs: number, now = process.hrtime.bigint()): bigint {
    let min = now;
    for (let t = 0; t < this.threads; t++) {
      const pace = Atomics.load(this.#paces, t);
      const beat = Atomics.load(this.#beats, t);
      const from = pace > everyMs ? beat + BigInt(pace - everyMs) * 1_000_000n : beat;
      if (from < min) min = from;
    }
    return min;
  }

  /** Thread `t`'s beat: every `everyMs`, or `idleMs` while idle (0: never longer). */
  writer(t: number, everyMs: number, idleMs: number): ThreadBeatWriter {
    const beats = this.#beats;
    const paces = this.#paces;
    let running = 0;
    let begun = 0;
    let seen = 0;
    let idle = false;
    let timer: NodeJS.Timeout | undefined;
    const beat = () => Atomics.store(beats, t, process.hrtime.bigint());
    const tick = () => {
      const quiet = idleMs > 0 && running === 0 && begun === seen;
      seen = begun;
      // The longer period goes out before the beat, so the process never holds this one to the quick period
      // past the beat.
      if (quiet && !idle) Atomics.store(paces, t, idleMs);
      beat();
      if (!quiet && idle) Atomics.store(paces, t, 0);
      idle = quiet;
      timer = setTimeout(tick, idle ? idleMs : everyMs).unref();
    };
    const wake = () => {
      idle = false;
      beat();
      Atomics.store(paces, t, 0);
      clearTimeout(timer);
      timer = setTimeout(tick, everyMs).unref();
    };
    return {
      start: () => {
        timer ??= setTimeout(tick, everyMs).unref();
      },
      watching: (slots) => ({
        begin: (method, url, at) => {
          begun++;
          if (idle) wake();
          const slot = slots.begin(method, url, at);
          if (slot >= 0) running++;
          return slot;
        },
        end: (slot) => {
          running--;
          slots.end(slot);
        },
      }),
    };
  }
}
