import type { WorkerMessage } from '../protocol/messages.js';

/** A raw listening handle received over IPC (Node's TCP or Pipe wrap): a new descriptor in this process. */
export interface LeasedHandle {
  close(cb?: () => void): void;
}

/**
 * Fresh duplicates of the listening sockets, from the master. Node cannot stop accepting on a listening
 * handle without closing it (libuv's uv_read_stop is a no-op on a listening socket: checked, see
 * docs/design.md), and closing it closes the descriptor; Node has no dup(). So a worker that wants to pause
 * accepting closes its copy and resumes on a duplicate the master sends it over the IPC channel.
 */
export class Leases {
  readonly #waiting = new Map<number, ((h: LeasedHandle) => void)[]>();

  constructor(private readonly send: (m: WorkerMessage) => void) {}

  /** Asks the master for a duplicate of listener `listener`; resolves when it arrives. */
  request(listener: number): Promise<LeasedHandle> {
    return new Promise((resolve) => {
      const q = this.#waiting.get(listener) ?? [];
      q.push(resolve);
      this.#waiting.set(listener, q);
      this.send({ t: 'lease', listener });
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
