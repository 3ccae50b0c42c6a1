import net from 'node:net';
import { joinHostPort, splitHostPort } from '../listeners/address.js';

/**
 * StatsD's lines, as Gunicorn's `statsd_host` sends them, and the datagrams that carry them: what does not
 * touch a socket (src/logging/statsd.ts sends them). Also the checks of the three settings.
 */

/** Gunicorn's port when `statsd_host` names none. */
export const STATSD_DEFAULT_PORT = 8125;

/**
 * The most bytes of lines in one datagram: with an IPv6 header (40 bytes) and UDP's (8) it fits an Ethernet
 * MTU of 1500, so no datagram is split into fragments, one lost fragment losing all of it.
 */
export const DATAGRAM_BYTES = 1400;

/**
 * How long lines may wait to be sent together. A StatsD server adds up what it gets over its own flush
 * interval (10 s by default), so the wait does not show there. Counters are summed in the process over the
 * wait (one `gunicorn.requests:N` line, not N lines of 1); each timing is a line of its own.
 */
export const STATSD_DELAY_MS = 100;

export const METRIC = {
  requests: 'gunicorn.requests',
  duration: 'gunicorn.request.duration',
  workers: 'gunicorn.workers',
} as const;

/** The counter each counted error-log level adds to (Gunicorn's names). */
export const LOG_METRIC: Readonly<Record<'critical' | 'error' | 'warning' | 'exception', string>> = {
  critical: 'gunicorn.log.critical',
  error: 'gunicorn.log.error',
  warning: 'gunicorn.log.warning',
  exception: 'gunicorn.log.exception',
};

const statusNames: string[] = [];
/** `gunicorn.request.status.404`, made once per status code. */
export function statusMetric(code: number): string {
  if (code >= 0 && code < 1000 && Number.isInteger(code)) return (statusNames[code] ??= `gunicorn.request.status.${code}`);
  return `gunicorn.request.status.${code}`;
}

export interface StatsdAddress {
  readonly host: string;
  readonly port: number;
}

export const STATSD_HOST_FORM = 'expected HOST:PORT, [IPv6]:PORT, or HOST for port 8125';

/**
 * `statsd_host` as Gunicorn reads it: HOST:PORT, [IPv6]:PORT, or a HOST alone for port 8125. Returns why
 * not, as a phrase, when it is none of these; Gunicorn's `unix://PATH` (a Unix datagram socket) is one.
 */
export function parseStatsdHost(raw: string): StatsdAddress | string {
  const s = raw.trim();
  if (s === '') return `the address is empty (${STATSD_HOST_FORM})`;
  // `unix:8125` is the host "unix" on port 8125 for Gunicorn too (its guard against reading it as a path).
  if (/^unix:/i.test(s) && !/^unix:\d+$/i.test(s))
    return "a Unix socket (Gunicorn's unix://PATH) cannot be used: Node has no Unix datagram sockets (node:dgram is UDP only); give the StatsD server's UDP address, HOST:PORT";
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return `drop the scheme: StatsD is sent over UDP (${STATSD_HOST_FORM})`;
  if (/\s/.test(s)) return `the address contains a space (${STATSD_HOST_FORM})`;
  const split = splitHostPort(s, STATSD_DEFAULT_PORT);
  if (typeof split === 'string') return `${split} (${STATSD_HOST_FORM})`;
  const { host, portText } = split;
  if (!s.startsWith('[')) {
    if (host === '') return `the host is empty (${STATSD_HOST_FORM})`;
    // `8125` alone meant a port: as a host, the resolver reads it as the address 0.0.31.189.
    if (/^\d+$/.test(host)) return `${JSON.stringify(host)} is read as a host, not a port: give 127.0.0.1:${host} (${STATSD_HOST_FORM})`;
    if (!net.isIPv4(host) && !/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/.test(host))
      return `${JSON.stringify(host)} is not a host name or an IP address (${STATSD_HOST_FORM})`;
  }
  if (!/^\d+$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
    return `the port ${JSON.stringify(portText)} is not 1..65535 (${STATSD_HOST_FORM})`;
  return { host: host.toLowerCase(), port: Number(portText) };
}

/** The address as the log names it: `127.0.0.1:8125`, `[::1]:8125`. */
export function formatStatsdAddress(a: StatsdAddress): string {
  return joinHostPort(a.host, a.port);
}

/** Printable ASCII but the characters that end a metric's name in a line. */
const PREFIX_CHARS = /^[\x21-\x7e]*$/;
const PREFIX_FORBIDDEN = /[:|@#]/;

/** Why a `statsd_prefix` cannot start metric names, or undefined. */
export function prefixProblem(raw: string): string | undefined {
  if (!PREFIX_CHARS.test(raw) || PREFIX_FORBIDDEN.test(raw))
    return 'expected printable ASCII without spaces, ":", "|", "@" or "#", as service.app';
  return undefined;
}

/** The prefix as Gunicorn uses it: with one "." at its end ("app" and "app..." are "app."), or none. */
export function statsdPrefix(raw: string): string {
  const p = raw.replace(/\.+$/, '');
  return p ? `${p}.` : '';
}

/** The tags of a `dogstatsd_tags` list: trimmed, the empty ones left out. */
function tagList(raw: string): string[] {
  return raw
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}

/** Why a `dogstatsd_tags` list cannot be sent, or undefined. */
export function tagsProblem(raw: string): string | undefined {
  for (const t of tagList(raw)) {
    if (!/^[\x21-\x7e]+$/.test(t) || t.includes('|'))
      return `the tag ${JSON.stringify(t)} is not printable ASCII without spaces and "|" (expected KEY:VALUE,TAG,...)`;
  }
  return undefined;
}

/** What every line ends with: `|#k:v,tag` (DogStatsD's tags), or nothing. */
export function statsdTags(raw: string): string {
  const tags = tagList(raw);
  return tags.length ? `|#${tags.join(',')}` : '';
}

/**
 * A timing in milliseconds with at most three decimals, as Gunicorn sends it (microseconds): `12.345`, `12.3`.
 * Gunicorn's Python writes a whole number as `7000.0`; this writes `7000`, the same number to a StatsD server.
 */
export function formatMs(ms: number): string {
  const us = micros(ms);
  const buf = Buffer.allocUnsafe(microsLength(us));
  return buf.toString('latin1', 0, putMicros(buf, 0, us));
}

/** Whole microseconds of `ms` (0 for a negative or NaN one). */
const micros = (ms: number): number => (ms > 0 ? Math.round(ms * 1000) : 0);

/** The digits of a whole number >= 0. */
function digitCount(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** How many characters putMicros writes for `us`. */
function microsLength(us: number): number {
  const frac = us % 1000;
  return digitCount(Math.floor(us / 1000)) + (frac === 0 ? 0 : frac % 100 === 0 ? 2 : frac % 10 === 0 ? 3 : 4);
}

/**
 * Writes `us` microseconds as milliseconds, the decimals' trailing zeros left out, straight into `buf`: making
 * the number's string instead (String(ms)) was about 110 ns, nearly half of a request's lines (measured in a
 * loop). Returns where it ends.
 */
function putMicros(buf: Buffer, at: number, us: number): number {
  let whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  let end = at + digitCount(whole);
  let p = end;
  do {
    buf[--p] = 48 + (whole % 10);
    whole = Math.floor(whole / 10);
  } while (whole > 0);
  if (frac !== 0) {
    buf[end++] = 46;
    buf[end++] = 48 + Math.floor(frac / 100);
    if (frac % 100 !== 0) {
      buf[end++] = 48 + (Math.floor(frac / 10) % 10);
      if (frac % 10 !== 0) buf[end++] = 48 + (frac % 10);
    }
  }
  return end;
}

/** How many status codes have a counter of their own (0-999: Node allows 100-999). */
const STATUS_CODES = 1000;

/**
 * The lines of one process (or gthread thread) and their datagrams, without the socket: counters are summed
 * until flush(); timings and gauges are written into the datagram being filled at once. A datagram goes to
 * `out` when the next line would not fit in DATAGRAM_BYTES (a single longer line goes alone), or on flush().
 * Each datagram is a Buffer of its own: a send may still hold it after `out` returns.
 */
export class StatsdBatch {
  readonly #prefix: string;
  // A line's fixed parts as bytes, copied in with one set() each: four times as fast as a loop over a string's
  // characters for a 32-byte name (measured in a loop: 15 against 57 ns).
  readonly #counterTail: Buffer;
  readonly #timingTail: Buffer;
  readonly #gaugeTail: Buffer;
  /** `PREFIX` + name + `:`, by name. */
  readonly #heads = new Map<string, Buffer>();
  readonly #counts = new Map<string, number>();
  /** request(): the requests, and each status code's, since the last flush (a Map was 20 ns a request more). */
  #requests = 0;
  readonly #statuses: number[] = new Array<number>(STATUS_CODES).fill(0);
  readonly #statusesSeen: number[] = [];
  readonly #durationHead: Buffer;
  #buf: Buffer;
  #used = 0;

  constructor(
    prefix: string,
    tags: string,
    private readonly out: (datagram: Buffer) => void,
    private readonly max = DATAGRAM_BYTES,
  ) {
    this.#prefix = prefix;
    // As Gunicorn's: a counter says its sample rate (all of them, 1.0).
    this.#counterTail = Buffer.from(`|c|@1.0${tags}`, 'latin1');
    this.#timingTail = Buffer.from(`|ms${tags}`, 'latin1');
    this.#gaugeTail = Buffer.from(`|g${tags}`, 'latin1');
    this.#durationHead = this.#head(METRIC.duration);
    this.#buf = Buffer.allocUnsafe(max);
  }

  /** Nothing waits to be sent. */
  get empty(): boolean {
    return this.#used === 0 && this.#counts.size === 0 && this.#requests === 0;
  }

  /**
   * A request finished: gunicorn.request.duration (a line now), and the gunicorn.requests and
   * gunicorn.request.status.CODE counters (`status`: none for an upgrade the app did not answer).
   */
  request(status: number | undefined, ms: number): void {
    this.#requests++;
    if (status !== undefined) {
      if (status >= 0 && status < STATUS_CODES && Number.isInteger(status)) {
        if (this.#statuses[status]!++ === 0) this.#statusesSeen.push(status);
      } else this.count(statusMetric(status));
    }
    this.#timingLine(this.#durationHead, ms);
  }

  /** Adds `n` to a counter, sent on the next flush() as one line. */
  count(name: string, n = 1): void {
    const counts = this.#counts;
    counts.set(name, (counts.get(name) ?? 0) + n);
  }

  timing(name: string, ms: number): void {
    this.#timingLine(this.#head(name), ms);
  }

  gauge(name: string, value: number): void {
    this.#line(this.#head(name), String(value), this.#gaugeTail);
  }

  /** The counters as lines, then what is gathered, to `out`. */
  flush(): void {
    if (this.#requests > 0) {
      this.#line(this.#head(METRIC.requests), String(this.#requests), this.#counterTail);
      this.#requests = 0;
      for (const code of this.#statusesSeen) {
        this.#line(this.#head(statusMetric(code)), String(this.#statuses[code]), this.#counterTail);
        this.#statuses[code] = 0;
      }
      this.#statusesSeen.length = 0;
    }
    if (this.#counts.size > 0) {
      for (const [name, n] of this.#counts) this.#line(this.#head(name), String(n), this.#counterTail);
      this.#counts.clear();
    }
    this.#emit();
  }

  #head(name: string): Buffer {
    let head = this.#heads.get(name);
    if (head === undefined) {
      head = Buffer.from(`${this.#prefix}${name}:`, 'latin1');
      this.#heads.set(name, head);
    }
    return head;
  }

  /** `head`, the milliseconds, the timing's tail: the number written as digits, with no string made for it. */
  #timingLine(head: Buffer, ms: number): void {
    const us = micros(ms);
    const tail = this.#timingTail;
    let at = this.#start(head.length + microsLength(us) + tail.length);
    if (at < 0) return this.#line(head, formatMs(ms), tail);
    const buf = this.#buf;
    buf.set(head, at);
    at = putMicros(buf, at + head.length, us);
    buf.set(tail, at);
    this.#used = at + tail.length;
  }

  /** One line, `head value tail`, into the datagram being filled; a newline separates it from the one before. */
  #line(head: Buffer, value: string, tail: Buffer): void {
    let at = this.#start(head.length + value.length + tail.length);
    if (at < 0) {
      this.out(Buffer.concat([head, Buffer.from(value, 'latin1'), tail]));
      return;
    }
    const buf = this.#buf;
    buf.set(head, at);
    at = put(buf, at + head.length, value);
    buf.set(tail, at);
    this.#used = at + tail.length;
  }

  /**
   * Makes room for a line of `length` bytes: sends the datagram being filled if the line would not fit in it,
   * and writes the newline before the line. Returns where the line goes, or -1 for a line longer than a
   * datagram (it goes alone).
   */
  #start(length: number): number {
    if (this.#used > 0 && this.#used + 1 + length > this.max) this.#emit();
    if (length > this.max) return -1;
    let at = this.#used;
    if (at > 0) this.#buf[at++] = 10;
    return at;
  }

  #emit(): void {
    if (this.#used === 0) return;
    const datagram = this.#buf.subarray(0, this.#used);
    this.#buf = Buffer.allocUnsafe(this.max);
    this.#used = 0;
    this.out(datagram);
  }
}

/**
 * Copies an ASCII string's characters into `buf` from `at`; returns where it ends. For a counter's or a gauge's
 * few digits a loop here is cheaper than a call into C++ (Buffer.write).
 */
function put(buf: Buffer, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) buf[at + i] = s.charCodeAt(i);
  return at + s.length;
}
