import { closeSync, openSync, writeSync } from 'node:fs';

/**
 * An append-only log destination: "-" (stderr, or stdout for the access log) or a file, opened with O_APPEND
 * so that the master and all workers can write whole lines to one file. Lines are gathered and written once
 * per event-loop turn, so a busy worker makes one write(2) for many access-log lines. reopen() serves USR1.
 */
export class LogSink {
  #fd: number;
  #buf = '';
  #scheduled = false;
  readonly #owned: boolean;

  constructor(
    readonly target: string,
    stdFd: 1 | 2,
  ) {
    this.#owned = target !== '-';
    this.#fd = this.#owned ? openSync(target, 'a') : stdFd;
  }

  write(line: string): void {
    this.#buf += line;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes a line now (fatal errors, exit paths). */
  writeNow(line: string): void {
    this.#buf += line;
    this.flush();
  }

  flush(): void {
    this.#scheduled = false;
    if (!this.#buf) return;
    const data = this.#buf;
    this.#buf = '';
    try {
      writeSync(this.#fd, data);
    } catch {
      // A closed stderr (EPIPE) or a full disk must not take the server down.
    }
  }

  reopen(): void {
    if (!this.#owned) return;
    this.flush();
    const old = this.#fd;
    this.#fd = openSync(this.target, 'a');
    closeSync(old);
  }

  close(): void {
    this.flush();
    if (this.#owned) closeSync(this.#fd);
  }
}
