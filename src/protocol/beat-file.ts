import fs from 'node:fs';
import path from 'node:path';
import { createProblem, describeCreateProblem } from '../fs-problem.js';

/**
 * Where the beat files live by default: memory (tmpfs), never a disk, where Gunicorn's heartbeat file can hold a
 * worker up (hence its `--worker-tmp-dir /dev/shm` advice). Where no file can be made there, the beats are
 * messages to the master, as they were before the files.
 */
export const DEFAULT_BEAT_DIR = '/dev/shm';

/** Why no beat file can be made in `dir`, as the end of a sentence; null when one can. */
export function beatDirProblem(dir: string): string | null {
  const p = createProblem(dir);
  return p && describeCreateProblem(p);
}

/**
 * One worker's heartbeat as a file: the worker writes the time of each beat into it (8 bytes, at offset 0) and
 * the master reads it when its tick checks the timeouts. A beat then wakes only the worker: a message would
 * wake the master too, once a second for every worker (docs/design.md, "An idle server").
 *
 * The file is unlinked as soon as it is open, so nothing is left behind whatever way the master ends; the
 * worker inherits the descriptor. The time is CLOCK_MONOTONIC (`process.hrtime`), one clock for every process
 * of the machine, so a change of the wall clock is no missed beat.
 */
export class BeatFile {
  readonly #buf = new BigInt64Array(1);
  readonly #bytes = new Uint8Array(this.#buf.buffer);
  #fd: number;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** A new beat file in `dir`, or the error that kept it from being made (no such directory, read-only, full). */
  static open(dir: string): BeatFile | NodeJS.ErrnoException {
    let file: string;
    let fd: number;
    for (let attempt = 1; ; attempt++) {
      // A name nobody else has: created only if nothing is there (O_EXCL, which follows no symbolic link either),
      // so another user who guessed it could only make this fail, and the beats be messages. Not from
      // node:crypto, which the master does not load otherwise: importing it took 18 ms of its start and 2 MB of
      // its memory (docs/design.md, "Start-up").
      file = path.join(dir, `tunicorn-beat-${process.pid}-${Math.floor(Math.random() * 2 ** 48).toString(16).padStart(12, '0')}`);
      try {
        fd = fs.openSync(file, 'wx+', 0o600);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt === 5) return err as NodeJS.ErrnoException;
      }
    }
    try {
      fs.unlinkSync(file);
    } catch (err) {
      fs.closeSync(fd);
      return err as NodeJS.ErrnoException;
    }
    return new BeatFile(fd);
  }

  /** The descriptor, for the worker's stdio. */
  get fd(): number {
    return this.#fd;
  }

  /**
   * When the worker last beat, as `Date.now()` would have said then; null before its first beat (or once
   * closed). `now` and `nowNs` are the master's clocks, read once for all its workers.
   */
  read(now: number, nowNs: bigint): number | null {
    if (this.#fd < 0) return null;
    let n: number;
    try {
      n = fs.readSync(this.#fd, this.#bytes, 0, 8, 0);
    } catch {
      return null;
    }
    if (n < 8) return null;
    const ageMs = Number(nowNs - this.#buf[0]!) / 1e6;
    return now - Math.max(0, ageMs);
  }

  close(): void {
    if (this.#fd < 0) return;
    try {
      fs.closeSync(this.#fd);
    } catch {
      // Closed already.
    }
    this.#fd = -1;
  }
}

/** The worker's side: writes the time of a beat into the file the master gave it. */
export class BeatWriter {
  readonly #buf = new BigInt64Array(1);
  readonly #bytes = new Uint8Array(this.#buf.buffer);

  constructor(readonly fd: number) {}

  /** Writes `at` (process.hrtime.bigint(); default now). False when the write failed: the caller beats by message instead. */
  beat(at: bigint | null = null): boolean {
    this.#buf[0] = at ?? process.hrtime.bigint();
    try {
      return fs.writeSync(this.fd, this.#bytes, 0, 8, 0) === 8;
    } catch {
      return false;
    }
  }
}
