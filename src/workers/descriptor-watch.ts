import { openDescriptors, openFileLimit } from '../open-files.js';

/** An accepted descriptor this close to the open-file limit: the table is full, or nearly. */
const NEAR_LIMIT = 2;
/** While at the limit, how often the open descriptors are counted, to see the episode end. */
const RECHECK_MS = 5000;
/** The episode is over once fewer than this share of the limit is open. */
const BACK_UNDER = 0.9;

/**
 * Tells the operator when a worker runs out of file descriptors. Past the open-file limit, accept() fails
 * with EMFILE and libuv answers with its "EMFILE trick": it accepts each pending connection on a descriptor
 * it keeps in reserve and closes it at once. Node emits nothing, so clients see their connections closed
 * without an answer, and the log shows nothing.
 *
 * The signal is the descriptor number of each accepted connection, which the worker has anyway: the kernel
 * gives the lowest one free, so a connection accepted on descriptor N means N others are open. One at the
 * limit is one line, counted from /proc/self/fd; then, while at the limit, a count every RECHECK_MS (no cost
 * per connection) sees the episode end, and the next one is said again. What it cannot see: a table filled
 * by something else than accepted connections (files or outgoing sockets the app opens) while no connection
 * is accepted at the top.
 */
export class DescriptorWatch {
  /** An accepted descriptor at or above this starts an episode (Infinity: off, or in one). */
  #alarm: number;

  constructor(
    private readonly say: (open: number, limit: number) => void,
    private readonly limit: number | null = openFileLimit(),
  ) {
    this.#alarm = limit === null ? Infinity : limit - NEAR_LIMIT;
  }

  /** A connection was accepted on descriptor `fd` (per connection: one comparison). */
  accepted(fd: number): void {
    if (fd >= this.#alarm) this.atLimit(fd);
  }

  private atLimit(fd: number): void {
    const limit = this.limit!;
    this.#alarm = Infinity;
    this.say(Math.max(openDescriptors() ?? 0, fd + 1), limit);
    const recheck = setInterval(() => {
      const open = openDescriptors();
      if (open !== null && open >= limit * BACK_UNDER) return;
      clearInterval(recheck);
      this.#alarm = limit - NEAR_LIMIT;
    }, RECHECK_MS);
    recheck.unref();
  }
}
