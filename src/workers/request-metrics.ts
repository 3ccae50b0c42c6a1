/**
 * The request counters behind the master's Prometheus `/metrics` (the `metrics` setting): kept in memory by the
 * worker (by each gthread thread), never sent per request. The master asks for them when it is scraped (and
 * they ride along with the heartbeat), so a request costs two increments and a bucket search, no message.
 *
 * One record is a fixed array of numbers (Float64Array): under gthread each thread's record is a part of one
 * SharedArrayBuffer, which the process's main thread adds up without asking the threads (a stuck thread is
 * read too). Each record has one writer; a reader may see a count one request old, never a wrong one.
 */

/** The methods that get a label value of their own; any other (WebDAV's, a made-up one) is `OTHER`. */
export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'OTHER'] as const;

/** Status codes 100-599 each have a label value; the rest share one: `other` (600-999) and `none` (nothing was sent). */
const FIRST_CODE = 100;
const LAST_CODE = 599;
const CODE_OTHER = LAST_CODE - FIRST_CODE + 1;
const CODE_NONE = CODE_OTHER + 1;
export const CODES = CODE_NONE + 1;

/** Upper bounds of the duration histogram's buckets, in seconds (Prometheus's default buckets); +Inf after them. */
export const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

// The layout of one record.
const INFLIGHT = 0;
const SECONDS = 1;
const FIRST_BUCKET = 2;
const FIRST_REQUEST = FIRST_BUCKET + BUCKETS.length + 1;
/** Numbers in one record. */
export const CELLS = FIRST_REQUEST + METHODS.length * CODES;

function methodIndex(method: string | undefined): number {
  switch (method) {
    case 'GET':
      return 0;
    case 'HEAD':
      return 1;
    case 'POST':
      return 2;
    case 'PUT':
      return 3;
    case 'DELETE':
      return 4;
    case 'PATCH':
      return 5;
    case 'OPTIONS':
      return 6;
    case 'CONNECT':
      return 7;
    case 'TRACE':
      return 8;
    default:
      return 9;
  }
}

function codeIndex(status: number | undefined): number {
  if (status === undefined) return CODE_NONE;
  return status >= FIRST_CODE && status <= LAST_CODE ? status - FIRST_CODE : CODE_OTHER;
}

/** The label values of request counter `i` (an index into WorkerCounts.requests' pairs). */
export function requestLabels(i: number): { method: string; code: string } {
  const m = Math.floor(i / CODES);
  const c = i % CODES;
  return { method: METHODS[m] ?? 'OTHER', code: c === CODE_NONE ? 'none' : c === CODE_OTHER ? 'other' : String(c + FIRST_CODE) };
}

/** One process's counts as it sends them to the master (cumulative since the process started). */
export interface WorkerCounts {
  /** Requests by method and status, the non-zero ones: index, count, index, count... (see requestLabels). */
  readonly requests: readonly number[];
  /** Requests per duration bucket (each bucket its own, not cumulative); the last is +Inf's. */
  readonly buckets: readonly number[];
  /** The durations' sum, in seconds. */
  readonly seconds: number;
  /** Requests running now. */
  readonly inflight: number;
  /** The process's CPU time (user + system, every thread), in seconds, and its RSS in bytes (null: unknown). */
  readonly cpu: number;
  readonly rss: number | null;
}

/** The counters of one process, or of one gthread thread. */
export class RequestMetrics {
  constructor(readonly cells: Float64Array = new Float64Array(CELLS)) {}

  /** A request reached the app. */
  begin(): void {
    this.cells[INFLIGHT]!++;
  }

  /** A request that began is over (its response sent, or cut): `status` undefined when none was sent. */
  end(method: string | undefined, status: number | undefined, seconds: number): void {
    this.cells[INFLIGHT]!--;
    this.count(method, status, seconds);
  }

  /** A request counted without having begun here (an upgrade, whose connection is the app's). */
  count(method: string | undefined, status: number | undefined, seconds: number): void {
    const c = this.cells;
    c[FIRST_REQUEST + methodIndex(method) * CODES + codeIndex(status)]!++;
    c[SECONDS]! += seconds;
    let b = 0;
    while (b < BUCKETS.length && seconds > BUCKETS[b]!) b++;
    c[FIRST_BUCKET + b]!++;
  }
}

/** The counts of a process from its records (one, or one per gthread thread), with its CPU time and RSS. */
export function collectCounts(records: readonly Float64Array[]): WorkerCounts {
  const requests: number[] = [];
  for (let i = 0; i < METHODS.length * CODES; i++) {
    let n = 0;
    for (const r of records) n += r[FIRST_REQUEST + i]!;
    if (n > 0) requests.push(i, n);
  }
  const buckets = BUCKETS.map(() => 0).concat(0);
  let seconds = 0;
  let inflight = 0;
  for (const r of records) {
    for (let b = 0; b < buckets.length; b++) buckets[b]! += r[FIRST_BUCKET + b]!;
    seconds += r[SECONDS]!;
    inflight += r[INFLIGHT]!;
  }
  const cpu = process.cpuUsage();
  return { requests, buckets, seconds, inflight: Math.max(0, inflight), cpu: (cpu.user + cpu.system) / 1e6, rss: residentBytes() };
}

/**
 * This process's RSS, or null when it cannot be read: libuv opens /proc/self/stat for it, which fails with every
 * descriptor taken (EMFILE: a worker at its open-file limit) or without /proc. Thrown from the heartbeat, that
 * ended the worker, and every connection it held, at the limit whenever the metrics setting was on.
 */
export function residentBytes(): number | null {
  try {
    return process.memoryUsage.rss();
  } catch {
    return null;
  }
}
