import { closeLease, type Lease, type Leases } from './leases.js';
import type { Serving } from './serving.js';

type State = 'listening' | 'closed' | 'opening';

/**
 * Pauses and resumes accepting on every listener of a Serving, so the kernel gives new connections to other
 * workers or threads (or keeps them in the backlog) while this one is busy. Pausing closes this worker's copy of
 * each socket; resuming listens on a duplicate: made just before the close where native dup() is built, else
 * from the master, asked for at the pause (and again after each resume) so it is usually there by the time the
 * worker resumes. A gthread thread has no master to ask: it pauses only where it can make the duplicate. A
 * socket stays in LISTEN state while any process holds it, so connections already queued in the kernel are
 * not affected.
 */
export class AcceptSwitch {
  readonly #state: State[];
  readonly #spare: (Promise<Lease> | null)[];
  #paused = false;

  constructor(
    private readonly serving: Serving,
    private readonly leases: Leases,
    listeners: number,
  ) {
    this.#state = Array.from({ length: listeners }, () => 'listening');
    this.#spare = Array.from({ length: listeners }, () => null);
  }

  get paused(): boolean {
    return this.#paused;
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.reconcile();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.reconcile();
  }

  /**
   * The stop closed the listeners for good while this was paused (a drain that did not wait for it to
   * resume): the duplicates kept to resume on are listening sockets too, and would stay open in this process
   * (a thread's, until the whole process exits). Resolves once they are closed.
   */
  dropSpares(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (let i = 0; i < this.#spare.length; i++) {
      const spare = this.#spare[i];
      this.#spare[i] = null;
      // A close that fails (EBADF) must not fail the stop: the descriptor is gone either way.
      if (spare) closing.push(spare.then(closeLease).catch(() => {}));
    }
    return Promise.all(closing).then(() => {});
  }

  private reconcile(): void {
    if (this.serving.acceptorsClosed) {
      void this.dropSpares();
      return;
    }
    for (let i = 0; i < this.#state.length; i++) {
      if (this.#paused && this.#state[i] === 'listening') {
        // The duplicate first: made here, it is a copy of the descriptor about to be closed.
        const spare = this.#spare[i] ?? this.leases.request(i, this.serving.acceptorFd(i));
        // None to resume on (a gthread thread, with no master to ask, whose dup() failed): it keeps accepting.
        if (spare === null) continue;
        this.#spare[i] = spare;
        this.serving.closeAcceptor(i);
        this.#state[i] = 'closed';
      } else if (!this.#paused && this.#state[i] === 'closed') {
        // A closed listener always has its spare where the duplicates are made here (a thread's case).
        const spare = this.#spare[i] ?? this.leases.request(i);
        if (spare === null) continue;
        this.#spare[i] = null;
        this.#state[i] = 'opening';
        void spare.then((h) => this.opened(i, h));
      }
    }
  }

  private async opened(i: number, handle: Lease): Promise<void> {
    if (this.serving.acceptorsClosed) {
      closeLease(handle);
      return;
    }
    if (this.#paused) {
      // Paused again while the duplicate was on its way: keep it for the next resume.
      this.#spare[i] = Promise.resolve(handle);
      this.#state[i] = 'closed';
      return;
    }
    await this.serving.listenAcceptor(i, handle);
    this.#state[i] = 'listening';
    // From the master: ask for the next duplicate now, so the next resume finds it here instead of waiting.
    if (!this.leases.local) this.#spare[i] ??= this.leases.request(i) ?? null;
    if (this.#paused) this.reconcile();
  }
}
