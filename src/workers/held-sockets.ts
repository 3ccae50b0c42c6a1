/** Entries per thread: connections a thread can hold back and still hand over if it gets stuck. */
const PER_THREAD = 128;
const EMPTY = 0;
const CLAIMED = -1;
/** An entry is `listener * FD_SPAN + fd + 1` (never 0 or negative). */
const FD_SPAN = 1 << 24;

/** A connection a gthread thread accepted and holds back, untouched, behind the one it serves. */
export interface HeldEntry {
  readonly thread: number;
  readonly listener: number;
  readonly fd: number;
}

/** What OneAtATime records of each connection it holds back (see HeldSockets.writer). */
export interface HeldRegistry {
  /** Records a connection just queued; returns its token, or -1 when it cannot be handed over. */
  hold(fd: number, listener: number): number;
  /** The thread is about to serve (or drop) the connection: true while it is still the thread's to serve. */
  take(token: number): boolean;
}

/**
 * The connections each gthread thread holds back, by descriptor, in shared memory. A thread serves one
 * connection at a time. It stops accepting once a request of its own outlasts the loop turn that started it,
 * but may accept one connection in that turn, and without the native module it never stops (see
 * docs/design.md): so while its request awaits I/O, or before it is read, the thread may accept more and queue
 * them behind it, unread (paused since accept). If that request gets stuck and the master times the worker out (or the
 * worker is replaced), the process's main thread claims them here (a compare-and-swap, so exactly one side
 * wins each) and sends them to the master, which hands them to a live worker: their clients are served, not
 * reset. A thread skips a connection it finds claimed, without closing it.
 */
export class HeldSockets {
  readonly sab: SharedArrayBuffer;
  readonly #cells: Int32Array;

  constructor(
    readonly threads: number,
    sab?: SharedArrayBuffer,
  ) {
    this.sab = sab ?? new SharedArrayBuffer(4 * threads * PER_THREAD);
    this.#cells = new Int32Array(this.sab);
  }

  /** Thread `t`'s side. */
  writer(t: number): HeldRegistry {
    const cells = this.#cells;
    const base = t * PER_THREAD;
    let next = 0;
    return {
      hold(fd, listener) {
        if (fd < 0 || fd + 1 >= FD_SPAN) return -1;
        for (let k = 0; k < PER_THREAD; k++) {
          const i = base + ((next + k) % PER_THREAD);
          if (Atomics.compareExchange(cells, i, EMPTY, listener * FD_SPAN + fd + 1) === EMPTY) {
            next = (i - base + 1) % PER_THREAD;
            return i;
          }
        }
        return -1;
      },
      take(token) {
        if (token < 0) return true;
        const v = Atomics.load(cells, token);
        return v !== CLAIMED && Atomics.compareExchange(cells, token, v, EMPTY) === v;
      },
    };
  }

  /** How many connections thread `t` holds back now. */
  count(t: number): number {
    let n = 0;
    for (let i = t * PER_THREAD; i < (t + 1) * PER_THREAD; i++) if (Atomics.load(this.#cells, i) > 0) n++;
    return n;
  }

  /**
   * The main thread's side: claims every connection recorded by every thread (or by `threads` only); none is
   * served by its thread after.
   */
  claimAll(threads?: ReadonlySet<number>): HeldEntry[] {
    const out: HeldEntry[] = [];
    for (let i = 0; i < this.#cells.length; i++) {
      if (threads && !threads.has(Math.floor(i / PER_THREAD))) continue;
      const v = Atomics.load(this.#cells, i);
      if (v <= 0 || Atomics.compareExchange(this.#cells, i, v, CLAIMED) !== v) continue;
      out.push({ thread: Math.floor(i / PER_THREAD), listener: Math.floor((v - 1) / FD_SPAN), fd: (v - 1) % FD_SPAN });
    }
    return out;
  }
}
