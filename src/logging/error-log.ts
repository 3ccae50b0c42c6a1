import type { HookLog } from '../config/hook-types.js';
import type { LogLevel } from '../config/sections/logging.js';
import { cannotWrite, ERROR_LOG, opening } from './output-file.js';
import { writeSync } from 'node:fs';
import { format } from 'node:util';
import { LogSink } from './sink.js';
import { appFrames, stackText, thrownText } from '../app/errors.js';
import { capturedJson, errorLogJson, type ErrField, type JsonHead, type LogFormat, type LogRole } from './json-line.js';

const WRITING_ERROR_LOG = { ...ERROR_LOG, verb: 'write' as const };

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warning: 30, error: 40, critical: 50 };

/** The error-log lines StatsD counts (gunicorn.log.*): `exception` is an error line with a stack. */
export type CountedLevel = 'warning' | 'error' | 'critical' | 'exception';

/**
 * With statsd_host set, told of each warning, error, critical and exception line of every error log in this
 * process (or thread), whatever the log level lets through, as Gunicorn counts them. Null: nothing is counted.
 */
let countLine: ((level: CountedLevel) => void) | null = null;

/** Installs (or, with null, removes) the counter of error-log lines (see src/logging/statsd.ts). */
export function countLogLines(count: ((level: CountedLevel) => void) | null): void {
  countLine = count;
}

/** `2026-11-26 14:40:54 +0000`, Gunicorn's error-log time. */
export function errorLogTime(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const a = Math.abs(off);
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:` +
    `${p(d.getSeconds())} ${sign}${p(Math.floor(a / 60))}${p(a % 60)}`
  );
}

/** Fields the code has for a line (`worker_pid` in the master's lines about a worker): JSON lines carry them. */
export type LogFields = Readonly<Record<string, string | number>>;

/** How an error log writes its lines (--log-format), and who writes them. Text with no options. */
export interface ErrorLogStyle {
  readonly format: LogFormat;
  readonly role: LogRole;
  /** Fields of every line (a gthread thread's number). */
  readonly fields?: LogFields;
}

/** One error-log line, with its newline, as `style` writes it. */
function logLine(style: ErrorLogStyle | undefined, level: LogLevel, msg: string, fields?: LogFields, err?: ErrField): string {
  if (style?.format === 'json') return errorLogJson(level, msg, style as JsonHead, fields, err);
  return `[${errorLogTime()}] [${process.pid}] [${level.toUpperCase()}] ${msg.replace(/\n+$/, '')}\n`;
}

/**
 * One error-log line straight to stderr: for what the error log file itself cannot be trusted to show (it
 * cannot be written, or its path no longer leads to it). Nothing when stderr is closed too.
 */
export function toStderr(level: LogLevel, msg: string, style?: ErrorLogStyle): void {
  try {
    writeSync(2, logLine(style, level, msg));
  } catch {
    /* no stderr either */
  }
}

/** A view of an error log whose lines carry fields (see ErrorLog.with). */
export type FieldLog = Pick<ErrorLog, 'debug' | 'info' | 'warning' | 'error' | 'critical'>;

/** The error log: `[TIME] [PID] [LEVEL] message`, one line each; or one JSON object a line (--log-format json). */
export class ErrorLog implements HookLog {
  #sink: LogSink;
  #rank: number;
  readonly style: ErrorLogStyle | undefined;

  /** Throws a ConfigError that says in words why the file cannot be opened. */
  constructor(target: string, level: LogLevel, style?: ErrorLogStyle) {
    this.#sink = opening(ERROR_LOG, target, () => new LogSink(target, 2));
    this.#rank = RANK[level];
    this.style = style;
    // A log that cannot take its lines says so where someone may read it: stderr, once; and in the log itself
    // once it can be written again, with what was lost.
    this.#sink.onTrouble({
      failed: (err) => toStderr('error', `${cannotWrite(WRITING_ERROR_LOG, target, err, true)}. Its lines are lost until it can be written again`, style),
      recovered: (lost, err) => this.warning(`The error log could be written again: ${lost} line(s) were lost while it could not (${err.code ?? err.message})`),
    });
  }

  get target(): string {
    return this.#sink.target;
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.#rank;
  }

  /**
   * With arguments, the message is a format, as Python's logging (and so Gunicorn's hooks) take one:
   * `server.log.info('Worker spawned (pid: %s)', worker.pid)`, in util.format's placeholders.
   */
  log(level: LogLevel, msg: string, ...args: unknown[]): void {
    this.#log(level, args.length ? format(msg, ...args) : msg);
  }

  #log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (countLine !== null && RANK[level] >= RANK.warning) countLine(level as CountedLevel);
    this.#write(level, msg, fields);
  }

  #write(level: LogLevel, msg: string, fields?: LogFields, err?: ErrField): void {
    if (RANK[level] < this.#rank) return;
    // Every line is written now: the error log is rare and must survive a crash that follows it.
    this.#sink.writeNow(logLine(this.style, level, msg, fields, err));
  }

  /**
   * The same log, its lines carrying `fields` where they are JSON: `log.with({ worker_pid: w.pid }).error(...)`
   * in the master's lines about a worker. A text line is the message alone, which says it already.
   */
  with(fields: LogFields): FieldLog {
    return {
      debug: (msg: string) => this.#log('debug', msg, fields),
      info: (msg: string) => this.#log('info', msg, fields),
      warning: (msg: string) => this.#log('warning', msg, fields),
      error: (msg: string) => this.#log('error', msg, fields),
      critical: (msg: string) => this.#log('critical', msg, fields),
    };
  }

  /** A line straight to stderr, as this log writes its lines (see toStderr). */
  toStderr(level: LogLevel, msg: string): void {
    toStderr(level, msg, this.style);
  }

  debug(msg: string, ...args: unknown[]): void {
    this.log('debug', msg, ...args);
  }
  info(msg: string, ...args: unknown[]): void {
    this.log('info', msg, ...args);
  }
  warning(msg: string, ...args: unknown[]): void {
    this.log('warning', msg, ...args);
  }
  error(msg: string, ...args: unknown[]): void {
    this.log('error', msg, ...args);
  }
  critical(msg: string, ...args: unknown[]): void {
    this.log('critical', msg, ...args);
  }
  /**
   * An error with its stack, for operators. Every caller logs what the app or a hook threw: below the debug
   * level the stack keeps the app's frames (and its packages'), and counts those of Node and tunicorn that
   * called it (appFrames), as a failed load's does.
   */
  exception(msg: string, err: unknown): void {
    // A stack some code assigned something else to (an object, a number) is no text to trim (stackText gives ''):
    // the name and message say it, and the logger must not throw where it reports what was thrown.
    const stack = stackText(err);
    const detail = stack ? (this.enabled('debug') ? stack : appFrames(stack)) : err instanceof Error ? `${thrownText(err.name)}: ${thrownText(err.message)}` : thrownText(err);
    // Counted as Gunicorn counts it: an exception, not an error.
    countLine?.('exception');
    if (this.style?.format !== 'json') return this.#write('error', `${msg}\n${detail}`);
    // pino's `err` field: the type, the message, and the stack as the text line has it. As text: an app may
    // have set a name or message that JSON.stringify throws on (a bigint, a circular object), which threw out
    // of the report, out of the worker, with the request left unanswered.
    const type = err instanceof Error ? thrownText(err.name) : typeof err;
    const message = thrownText(err instanceof Error ? err.message : err);
    this.#write('error', msg, undefined, stack ? { type, message, stack: detail } : { type, message });
  }

  /**
   * A line with a stack that was kept as text (a worker's failed load, an uncaught exception's stack): the
   * stack after `sep` in a text line, as pino's `err.stack` in a JSON one.
   */
  stacked(level: LogLevel, msg: string, stack: string, sep = '\n'): void {
    if (this.style?.format !== 'json') return this.log(level, `${msg}${sep}${stack}`);
    if (countLine !== null && RANK[level] >= RANK.warning) countLine(level as CountedLevel);
    this.#write(level, msg, undefined, { stack });
  }

  /**
   * Output written as it is (--capture-output): gathered with the other lines, each write whole. As JSON, each
   * write is one line of its own (see capturedJson).
   */
  raw(text: string | Uint8Array, stream: 'stdout' | 'stderr' = 'stdout'): void {
    if (this.style?.format !== 'json') return this.#sink.write(text);
    const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
    if (bytes.length > 0) this.#sink.write(capturedJson(bytes, stream, this.style));
  }

  /** USR1. Returns why the file could not be opened again, if it could not: the old one stays in use. */
  reopen(): string | null {
    const err = this.#sink.reopen();
    return err && cannotWrite(ERROR_LOG, this.#sink.target, err);
  }

  close(): void {
    this.#sink.close();
  }
}

/**
 * The app's own output (console.log, process.stdout.write) on a pipe whose reader has gone (`| head`, a log
 * shipper that exited or restarted): Node reports the EPIPE as an 'error' event of process.stdout that nothing
 * handles, so a worker would die of it at the app's next console.log, and each replacement after it, a crash
 * loop that pauses longer each time. Gunicorn's workers live on (Python ignores SIGPIPE; the write raises in
 * the request). Here the worker lives on, and what the app writes there is dropped, said once per stream in
 * the error log. Any other error of the stream is left as it was, uncaught. A gthread thread's output goes
 * through its process's streams, so the process's guard covers it.
 */
export function keepOnBrokenPipe(current: () => ErrorLog): void {
  for (const [stream, name] of [
    [process.stdout, 'standard output'],
    [process.stderr, 'standard error'],
  ] as const) {
    let said = false;
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      // Node never destroys its stdio streams: each later write fails the same way, and is dropped.
      if (said) return;
      said = true;
      current().warning(`The app's ${name} is a pipe that nothing reads any more (EPIPE: its reader exited); what the app writes there is dropped from now on`);
    });
  }
}

/**
 * --capture-output: what this process (or gthread thread: each installs it on its own streams) writes to
 * stdout and stderr from JavaScript (console.log, the app's process.stdout.write, a logger such as pino, which
 * writes to descriptor 1 itself unless it finds process.stdout.write replaced) goes to the error log that
 * `current()` returns, when that is a file (or, as JSON lines, stderr). Output written below JavaScript (a native
 * addon's printf, Node's own fatal errors) still goes to the descriptors the process inherited.
 */
export function captureStdio(current: () => ErrorLog): void {
  for (const [stream, name] of [
    [process.stdout, 'stdout'],
    [process.stderr, 'stderr'],
  ] as const) {
    const original = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, encoding?: unknown, cb?: unknown): boolean => {
      const log = current();
      // With the error log on stderr, text output goes there as it is (Gunicorn's capture changes nothing then);
      // JSON output is made JSON lines, so that stderr holds nothing else.
      if (log.target === '-' && log.style?.format !== 'json') return original(chunk, encoding, cb);
      // The bytes as written, as Gunicorn's capture_output (a descriptor redirected) keeps them: a Buffer is not
      // decoded (a UTF-8 character split across two writes, a pipe's chunks, stays whole; other bytes stay
      // themselves), and a string given with its encoding ('hex', 'latin1') is encoded by it.
      const enc = typeof encoding === 'string' ? encoding : 'utf8';
      if (typeof chunk !== 'string') log.raw(chunk instanceof Uint8Array ? chunk : Buffer.from(chunk as Uint8Array), name);
      else log.raw(enc === 'utf8' || enc === 'utf-8' ? chunk : Buffer.from(chunk, enc as BufferEncoding), name);
      const done = typeof encoding === 'function' ? encoding : cb;
      if (typeof done === 'function') process.nextTick(done as () => void);
      return true;
    }) as typeof stream.write;
  }
}
