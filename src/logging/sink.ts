import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import { ESCAPED, escapeFrom } from './log-escape.js';
import { JSON_ESCAPED, jsonBytesFrom } from './json-line.js';

/**
 * The gathering buffer's size: when a line does not fit, what is gathered is written at once, whatever the
 * delay. The lines are copied into it as they come. A string built by `+=` instead was a rope of every line's
 * pieces, kept alive until the write: flattening it, and the garbage collector copying it, were about a third
 * of the access log's cost at keep-alive load (profiled; docs/design.md, "Logs").
 */
const BUFFER_BYTES = 64 * 1024;
/**
 * How a sink turns lines into bytes. `latin1` is for lines of byte strings (one character per byte, as Node's
 * HTTP parser hands over what the client sent): each character is written as the byte it stands for.
 */
export type SinkEncoding = 'utf8' | 'latin1';

const nap = new Int32Array(new SharedArrayBuffer(4));
/** Sleeps a millisecond: the reader of a full pipe is given time to drain it (no poll(2) for pipes in Node). */
function waitForReader(): void {
  Atomics.wait(nap, 0, 0, 1);
}

/**
 * POSIX's PIPE_BUF on Linux: a write of at most this many bytes to a pipe is never split, and never has another
 * writer's bytes land inside it.
 */
const PIPE_BUF = 4096;

/**
 * How many bytes of whole lines one write(2) to this descriptor may carry and still arrive in one piece when
 * other processes write to it too: any number for a regular file (opened O_APPEND, each write lands whole at
 * the end), PIPE_BUF for a pipe, a socket or a terminal (the master and every worker share stderr).
 */
function atomicWriteBytes(fd: number): number {
  try {
    return fstatSync(fd).isFile() ? Infinity : PIPE_BUF;
  } catch {
    return PIPE_BUF;
  }
}

/**
 * Where the next write of `data` from `start` ends: after the last whole line that keeps it within `max`
 * bytes; a single line longer than that goes alone (it cannot be whole anyway), up to its newline.
 */
export function chunkEnd(data: Buffer, start: number, max: number): number {
  if (data.length - start <= max) return data.length;
  const last = data.lastIndexOf(10, start + max - 1);
  if (last >= start) return last + 1;
  const next = data.indexOf(10, start + max);
  return next < 0 ? data.length : next + 1;
}

/**
 * Told when a file sink's writes start failing (a full disk: ENOSPC, EIO, EDQUOT) and when they work again.
 * Each is called once per episode, not per line: the lines in between are dropped, and counted.
 */
export interface SinkTrouble {
  failed(err: NodeJS.ErrnoException): void;
  /** `lost`: the lines that could not be written, the one a failed write cut short included. */
  recovered(lost: number, err: NodeJS.ErrnoException): void;
}

const NEWLINE = Buffer.from('\n');

/** The sinks with text gathered, written out when the process exits (process.exit runs 'exit' listeners). */
const pending = new Set<LogSink>();
let exitHooked = false;

/** Writes what every sink has gathered: on exit, and before a process kills itself (a kill runs no 'exit'). */
export function flushPendingSinks(): void {
  for (const s of pending) s.flush();
}

/**
 * The standard stream a log path names, or null: `/dev/stdout`, `/dev/stderr` and their `/dev/fd/N` and
 * `/proc/self/fd/N` spellings are written through the descriptor the process has, as "-" is. Opened again
 * by path, a socket fails (ENXIO), and a socket is what systemd's journal gives a service as its stdout and
 * stderr: `--access-logfile /dev/stdout` would stop the start there.
 */
export function standardStream(target: string): 1 | 2 | null {
  switch (target) {
    case '/dev/stdout':
    case '/dev/fd/1':
    case '/proc/self/fd/1':
      return 1;
    case '/dev/stderr':
    case '/dev/fd/2':
    case '/proc/self/fd/2':
      return 2;
    default:
      return null;
  }
}

/**
 * An append-only log destination: "-" (stderr, or stdout for the access log; see standardStream for their
 * paths) or a file, opened with O_APPEND
 * so that the master and all workers can write whole lines to one file. Lines are gathered and written
 * together: at the end of the event-loop turn (`delayMs` 0), or at most `delayMs` later, so a busy worker makes
 * one write(2) for many lines. Whatever is gathered is written when the process exits, by process.exit() or
 * at the end of its loop; only a kill (SIGKILL) loses it. reopen() serves USR1.
 */
export class LogSink {
  #fd: number;
  readonly #buf = Buffer.allocUnsafe(BUFFER_BYTES);
  #used = 0;
  /** Where the line being put() begins (see put). */
  #lineStart = 0;
  /** A line put() past the buffer's size: the rest of it gathers here, and endLine() writes it alone. */
  #long: string | null = null;
  #scheduled = false;
  readonly #owned: boolean;
  /** The most bytes one write(2) may carry without another process's write landing inside it. */
  #atomicBytes: number;
  /** The most bytes one UTF-16 unit of a line can take: 3 in UTF-8, 1 in latin1. */
  readonly #unitBytes: number;
  #trouble: SinkTrouble | null = null;
  /** Why the last write failed, while writes fail; null once one succeeds. */
  #failure: NodeJS.ErrnoException | null = null;
  /** Lines dropped since writes began to fail. */
  #lost = 0;
  /** The file ends inside a line (a write failed part way): the next write starts with a newline. */
  #cut = false;
  readonly #tick = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  constructor(
    readonly target: string,
    stdFd: 1 | 2,
    private readonly delayMs = 0,
    private readonly encoding: SinkEncoding = 'utf8',
  ) {
    this.#unitBytes = encoding === 'utf8' ? 3 : 1;
    const std = target === '-' ? stdFd : standardStream(target);
    this.#owned = std === null;
    this.#fd = std ?? openSync(target, 'a');
    this.#atomicBytes = atomicWriteBytes(this.#fd);
    if (!exitHooked) {
      exitHooked = true;
      process.on('exit', flushPendingSinks);
    }
  }

  /** Adds text, or bytes to write as they are (--capture-output's Buffers). */
  write(line: string | Uint8Array): void {
    const bytes = typeof line === 'string' ? line.length * this.#unitBytes : line.length;
    if (bytes > BUFFER_BYTES - this.#used) {
      this.flush();
      if (bytes > BUFFER_BYTES) return this.#writeOut(line);
    }
    if (this.#used === 0) pending.add(this);
    if (typeof line === 'string') this.#used += this.#buf.write(line, this.#used, this.encoding);
    else {
      this.#buf.set(line, this.#used);
      this.#used += line.length;
    }
    this.#lineStart = this.#used;
    this.#schedule();
  }

  /**
   * Adds a byte string to the line being built in place (latin1 sinks only): each character is stored as the
   * byte it stands for, the byte a latin1 write would give. A line made of parts this way is never a string:
   * joining its parts made a rope that the write then flattened and copied again (measured in a loop of the
   * default access-log format: 512-679 ns a line against 643-966; docs/design.md, "Logs").
   * endLine() ends the line; dropLine() takes it back. The line always goes out whole, in one write(2).
   */
  put(part: string): void {
    const n = part.length;
    let at = this.#used;
    if (at + n > BUFFER_BYTES || this.#long !== null) {
      if (this.#long === null) at = this.#makeRoom(n);
      if (this.#long !== null) {
        this.#long += part;
        return;
      }
    }
    const buf = this.#buf;
    for (let i = 0; i < n; i++) buf[at + i] = part.charCodeAt(i);
    this.#used = at + n;
  }

  /**
   * put() of a value the client, the app or the environment gave (a header, the request line, a Basic user),
   * escaped as escapeLogValue does (src/logging/log-escape.ts), so that it cannot end the line or a quoted
   * field. Each byte is checked in the loop that copies it, by a table (ESCAPED).
   */
  putValue(part: string): void {
    this.putEscaped(part, ESCAPED, escapeFrom);
  }

  /**
   * put() of text made once, as its bytes (a JSON line's field names). put()'s loop over each character of
   * them was the largest part of a JSON access line's cost (about 40 %, profiled): set() copies the longer
   * ones at once; for a few bytes, the loop costs less than set()'s call (measured in a loop of lines).
   */
  putBytes(bytes: Uint8Array): void {
    const at = this.#used;
    if (at + bytes.length > BUFFER_BYTES || this.#long !== null) return this.put(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1'));
    const buf = this.#buf;
    const n = bytes.length;
    if (n > 24) buf.set(bytes, at);
    else for (let i = 0; i < n; i++) buf[at + i] = bytes[i]!;
    this.#used = at + n;
  }

  /**
   * putValue() for a JSON line (--log-format json): the value as the inside of a JSON string, valid UTF-8
   * whatever bytes the client sent (jsonBytesFrom, src/logging/json-line.ts). The same loop as putValue's,
   * with JSON's table: printable ASCII is copied as it is checked.
   */
  putJson(part: string): void {
    this.putEscaped(part, JSON_ESCAPED, jsonBytesFrom);
  }

  /**
   * The loop of putValue() and putJson(): each byte is checked against `table` as it is copied; from the first
   * one to escape (rare: a quote, a backslash, a control character, or a character past 0xff), the rest is put
   * as `escape` gives it.
   */
  private putEscaped(part: string, table: Uint8Array, escape: (v: string, from: number) => string): void {
    const n = part.length;
    const at = this.#used;
    if (at + n > BUFFER_BYTES || this.#long !== null) return this.put(escape(part, 0));
    const buf = this.#buf;
    for (let i = 0; i < n; i++) {
      const c = part.charCodeAt(i);
      if (c > 0xff || table[c] === 1) {
        this.#used = at + i;
        return this.put(escape(part, i));
      }
      buf[at + i] = c;
    }
    this.#used = at + n;
  }

  /**
   * Where a whole line of at most `n` bytes (its newline included) can be stored in the buffer at once, or -1:
   * the access log's compiled line (see compileDirectWriter in access-log.ts) then stores its bytes itself,
   * with no call a part, and ends with commitLine(). -1 while a line is being put(), or when no buffer could
   * hold `n` (NaN too): the caller goes the put() way. When the lines gathered leave too little room, they are
   * written out first.
   */
  room(n: number): number {
    const at = this.#used;
    if (this.#lineStart !== at || this.#long !== null || !(n <= BUFFER_BYTES)) return -1;
    if (at + n <= BUFFER_BYTES) return at;
    this.flush();
    return 0;
  }

  /** The gathering buffer, for a line stored by room() and commitLine(). */
  get buffer(): Buffer {
    return this.#buf;
  }

  /** The line stored in the buffer from room()'s offset up to `end` is whole (its newline included). */
  commitLine(end: number): void {
    if (this.#lineStart === 0) pending.add(this);
    this.#used = end;
    this.#lineStart = end;
    this.#schedule();
  }

  /** Ends the line put() built, with a newline. */
  endLine(): void {
    if (this.#long === null && this.#used === BUFFER_BYTES) this.#makeRoom(1);
    if (this.#long !== null) {
      const line = this.#long + '\n';
      this.#long = null;
      this.#writeOut(line);
      return;
    }
    // The first line in the buffer (a line moved to the front by #makeRoom starts there too).
    if (this.#lineStart === 0) pending.add(this);
    this.#buf[this.#used++] = 10;
    this.#lineStart = this.#used;
    this.#schedule();
  }

  /** Takes back what put() added since the last whole line (the line could not be finished). */
  dropLine(): void {
    this.#used = this.#lineStart;
    this.#long = null;
  }

  /**
   * The line being built needs `n` more bytes than the buffer has left: the whole lines before it are written,
   * and its start moves to the front. Returns where its next part goes; if it cannot fit even then, it moves
   * into `#long`.
   */
  #makeRoom(n: number): number {
    const start = this.#lineStart;
    if (start > 0) {
      this.#writeOut(this.#buf.subarray(0, start));
      this.#buf.copyWithin(0, start, this.#used);
      this.#used -= start;
      this.#lineStart = 0;
      if (this.#used === 0) pending.delete(this);
    }
    if (this.#used + n > BUFFER_BYTES) {
      this.#long = this.#buf.toString('latin1', 0, this.#used);
      this.#used = 0;
    }
    return this.#used;
  }

  #schedule(): void {
    if (!this.#scheduled) {
      this.#scheduled = true;
      if (this.delayMs > 0) setTimeout(this.#tick, this.delayMs).unref();
      else setImmediate(this.#tick);
    }
  }

  /** Writes a line now (fatal errors, exit paths). */
  writeNow(line: string): void {
    this.flush();
    this.#writeOut(line);
  }

  /** Writes what is gathered now (a pending scheduled write then finds nothing). */
  flush(): void {
    pending.delete(this);
    if (this.#used === 0) return;
    const used = this.#used;
    this.#used = 0;
    this.#lineStart = 0;
    this.#writeOut(this.#buf.subarray(0, used));
  }

  /** Who hears of failing writes to the file or to stdout (never for stderr, which has no one to tell). */
  onTrouble(trouble: SinkTrouble): void {
    this.#trouble = trouble;
  }

  /**
   * Writes all of `data`, in writes of whole lines that another process's writes cannot split (see
   * atomicWriteBytes); a pipe may take part of one (a short write), and the rest follows. A full pipe (EAGAIN)
   * is waited for, as a blocking write would: stdout and stderr are often a pipe to a log collector, and Node
   * makes a pipe it writes to non-blocking for every process that shares it, the workers included. A reader
   * slower than the server slows the server; no line is dropped or cut. A write that fails otherwise (a
   * closed stderr, a full disk) must not take the server down: the lines are dropped and counted, and the
   * failure and the recovery are told once each (see SinkTrouble). A line a failed write cut short is ended
   * by the next write that succeeds, so the lines after it start on a line of their own.
   */
  #writeOut(text: string | Uint8Array): void {
    let data = typeof text === 'string' ? Buffer.from(text, this.encoding) : Buffer.isBuffer(text) ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
    const ending = this.#cut ? 1 : 0;
    if (ending) data = Buffer.concat([NEWLINE, data]);
    let off = 0;
    try {
      while (off < data.length) {
        const end = chunkEnd(data, off, this.#atomicBytes);
        while (off < end) {
          try {
            off += writeSync(this.#fd, data, off, end - off);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
            waitForReader();
          }
        }
      }
    } catch (err) {
      if (this.#fd === 2 && !this.#owned) return;
      if (off > 0) this.#cut = data[off - 1] !== 10;
      for (let i = data.indexOf(10, Math.max(off, ending)); i >= 0; i = data.indexOf(10, i + 1)) this.#lost++;
      if (this.#failure === null) {
        this.#failure = err as NodeJS.ErrnoException;
        this.#trouble?.failed(this.#failure);
      }
      return;
    }
    this.#cut = false;
    if (this.#failure !== null) {
      const [why, lost] = [this.#failure, this.#lost];
      this.#failure = null;
      this.#lost = 0;
      this.#trouble?.recovered(lost, why);
    }
  }

  /**
   * Opens the target again (USR1, after logrotate moved the file). If it cannot be opened, the lines go on
   * to the file already open, and the error is returned for the caller to report: a failed reopen must not
   * take the process down, nor lose the lines.
   */
  reopen(): NodeJS.ErrnoException | null {
    if (!this.#owned) return null;
    this.flush();
    let fd: number;
    try {
      fd = openSync(this.target, 'a');
    } catch (err) {
      return err as NodeJS.ErrnoException;
    }
    const old = this.#fd;
    this.#fd = fd;
    this.#atomicBytes = atomicWriteBytes(fd);
    this.#cut = false;
    closeSync(old);
    return null;
  }

  close(): void {
    this.flush();
    if (this.#owned) closeSync(this.#fd);
  }
}
