import { closeSync } from 'node:fs';
import type { WorkerMessage } from '../protocol/messages.js';

/** A raw listening handle received over IPC (Node's TCP or Pipe wrap): a new descriptor in this process. */
export interface LeasedHandle {
  close(cb?: () => void): void;
}

/** A duplicate of a listening socket: a handle from the master, or a descriptor made here. */
export type Lease = LeasedHandle | number;

/** Closes a duplicate nobody will listen on. */
export function closeLease(lease: Lease): void {
  if (typeof lease === 'number') closeSync(lease);
  else lease.close();
}

/**
 * Fresh duplicates of the listening sockets. Node cannot stop accepting on a listening handle without
 * closing it (libuv's uv_read_stop is a no-op on a listening socket: checked, see docs/design.md), and closing
 * it closes the descriptor; Node has no dup(). So a worker that wants to pause accepting closes its copy and
 * resumes on a duplicate: made here, before the close, with native/peek.c's dup() where it is built; else
 * sent by the master over the IPC channel.
 */
export class Leases {
  readonly #waiting = new Map<number, ((h: LeasedHandle) => void)[]>();

  /** `send`: null in a gthread thread, which has no master to ask (a handle it sent would be the main thread's). */
  constructor(
    private readonly send: ((m: WorkerMessage) => void) | null,
    private readonly dup: ((fd: number) => number) | null = null,
  ) {}

  /** Duplicates are made here, at once: the caller need not ask for one ahead of time. */
  get local(): boolean {
    return this.dup !== null;
  }

  /**
   * A duplicate of listener `listener`, whose descriptor in this process is `fd` (-1: unknown): made here
   * when it can be, else asked of the master; resolves when it is there. Null when it can be neither (a
   * thread whose dup() failed).
   */
  request(listener: number, fd = -1): Promise<Lease> | null {
    if (this.dup && fd >= 0) {
      const copy = this.dup(fd);
      if (copy >= 0) return Promise.resolve(copy);
    }
    const send = this.send;
    if (send === null) return null;
    return new Promise((resolve) => {
      const q = this.#waiting.get(listener) ?? [];
      q.push(resolve);
      this.#waiting.set(listener, q);
      send({ t: 'lease', listener });
    });
  }

  /** A `lease` message arrived with its handle. */
  deliver(listener: number, handle: LeasedHandle | undefined): void {
    if (!handle) return;
    const next = this.#waiting.get(listener)?.shift();
    if (next) next(handle);
    else handle.close();
  }
}
