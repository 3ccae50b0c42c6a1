import { closeSync, openSync, writeSync } from 'node:fs';

/** Gathered text past this size is written at once, whatever the delay. */
const FLUSH_AT = 64 * 1024;

/** The sinks with text gathered, written out when the process exits (process.exit runs 'exit' listeners). */
const pending = new Set<LogSink>();
let exitHooked = false;

/**
 * An append-only log destination: "-" (stderr, or stdout for the access log) or a file, opened with O_APPEND
 * so that the master and all workers can write whole lines to one file. Lines are gathered and written
 * together: at the end of the event-loop turn (`delayMs` 0), or at most `delayMs` later, so a busy worker makes
 * one write(2) for many lines. Whatever is gathered is written when the process exits, by process.exit() or
 * at the end of its loop; only a kill (SIGKILL) loses it. reopen() serves USR1.
 */
export class LogSink {
  #fd: number;
  #buf = '';
  #scheduled = false;
  readonly #owned: boolean;
  readonly #tick = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  constructor(
    readonly target: string,
    stdFd: 1 | 2,
    private readonly delayMs = 0,
  ) {
    this.#owned = target !== '-';
    this.#fd = this.#owned ? openSync(target, 'a') : stdFd;
    if (!exitHooked) {
      exitHooked = true;
      process.on('exit', () => {
        for (const s of pending) s.flush();
      });
    }
  }

  write(line: string): void {
    if (!this.#buf) pending.add(this);
    this.#buf += line;
    if (this.#buf.length >= FLUSH_AT) return this.flush();
    if (!this.#scheduled) {
      this.#scheduled = true;
      if (this.delayMs > 0) setTimeout(this.#tick, this.delayMs).unref();
      else setImmediate(this.#tick);
    }
  }

  /** Writes a line now (fatal errors, exit paths). */
  writeNow(line: string): void {
    this.#buf += line;
    this.flush();
  }

  /** Writes what is gathered now (a pending scheduled write then finds less, or nothing). */
  flush(): void {
    pending.delete(this);
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
