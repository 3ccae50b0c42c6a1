import { closeLease, type Lease, type Leases } from './leases.js';
import type { Serving } from './serving.js';

type State = 'listening' | 'closed' | 'opening';

/**
 * Pauses and resumes accepting on every listener of a Serving, so the kernel gives new connections to other
 * workers (or keeps them in the backlog) while this one is busy. Pausing closes this worker's copy of each
 * socket; resuming listens on a duplicate: made just before the close where native dup() is built, else from
 * the master, asked for at the pause (and again after each resume) so it is usually there by the time the
 * worker resumes. A socket stays in LISTEN state while any process holds it, so connections already queued in
 * the kernel are not affected.
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

  private reconcile(): void {
    for (let i = 0; i < this.#state.length; i++) {
      if (this.serving.acceptorsClosed) return;
      if (this.#paused && this.#state[i] === 'listening') {
        // The duplicate first: made here, it is a copy of the descriptor about to be closed.
        this.#spare[i] ??= this.leases.request(i, this.serving.acceptorFd(i));
        this.serving.closeAcceptor(i);
        this.#state[i] = 'closed';
      } else if (!this.#paused && this.#state[i] === 'closed') {
        const spare = this.#spare[i] ?? this.leases.request(i);
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
    if (!this.leases.local) this.#spare[i] ??= this.leases.request(i);
    if (this.#paused) this.reconcile();
  }
}
