import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type net from 'node:net';
import type { RefusalLog } from '../logging/refused.js';
import type { Config } from '../config/registry.js';
import { maxHeaderSize, Rejected, UNLIMITED_FIELD, UNLIMITED_LINE, type RequestLimits } from './guard.js';

/**
 * What tunicorn answers when it refuses a request before the app sees it: a one-line `text/plain` body naming
 * the status and the reason (and the setting, with its value, when one is the cause), as Gunicorn does, for
 * whoever is debugging with curl. Every body is built once, from the config, when the worker starts: a
 * refusal costs no more than before, and a body never holds a byte the client sent.
 */
export class Refusal {
  /** `431 Request Header Fields Too Large: a header field is over ...`: the body without its newline, and the log's words. */
  readonly line: string;
  readonly body: string;
  readonly length: number;
  /** The whole response, for a socket no response object owns (it always closes the connection). */
  readonly raw: string;
  /** The same without the body: the answer to a HEAD request. */
  readonly rawHead: string;

  constructor(
    readonly status: number,
    reason: string,
  ) {
    const phrase = STATUS_CODES[status]!;
    this.line = `${status} ${phrase}: ${reason}`;
    this.body = `${this.line}\n`;
    this.length = Buffer.byteLength(this.body);
    this.rawHead =
      `HTTP/1.1 ${status} ${phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${this.length}\r\nConnection: close\r\n\r\n`;
    this.raw = this.rawHead + this.body;
  }
}

/** A refusal written to `socket` (its head only for a HEAD request), for the access log and StatsD. */
export function logRaw(log: RefusalLog | null, req: IncomingMessage | null, socket: net.Socket, r: Refusal, head: boolean): void {
  log?.raw(req, socket, r.status, r.rawHead, head ? 0 : r.length);
}

/** The headers of a refusal sent through a response object; HTTP/2 has no `Connection` field. */
export function refusalHeaders(r: Refusal, h2: boolean): Record<string, string | number> {
  return h2
    ? { 'content-type': 'text/plain; charset=utf-8', 'content-length': r.length }
    : { 'content-type': 'text/plain; charset=utf-8', 'content-length': r.length, connection: 'close' };
}

/** Whether the bytes of a request (from `start`) begin with the method HEAD. */
export function startsWithHead(b: Uint8Array | undefined, start = 0): boolean {
  if (!b) return false;
  // Empty lines before a request are allowed (RFC 9112 section 2.2).
  while (b[start] === 0x0d && b[start + 1] === 0x0a) start += 2;
  return b[start] === 0x48 && b[start + 1] === 0x45 && b[start + 2] === 0x41 && b[start + 3] === 0x44 && b[start + 4] === 0x20;
}

/** The first request line of a connection is malformed (see ConnectionGate); no setting is involved. */
export const INVALID_REQUEST_LINE = new Refusal(400, 'invalid request line');

const VERSION = 'the request line names a version other than HTTP/1.0 and HTTP/1.1';
const MALFORMED = new Refusal(400, 'malformed request');

/** What Node's parser (llhttp) reports, by error code, in words; the rest is MALFORMED. */
const PARSER_REASONS: Record<string, Refusal> = {
  HPE_INVALID_METHOD: new Refusal(400, 'invalid method'),
  HPE_INVALID_URL: new Refusal(400, 'invalid request target'),
  HPE_INVALID_HEADER_TOKEN: new Refusal(400, 'malformed header field'),
  HPE_UNEXPECTED_SPACE: new Refusal(400, 'unexpected whitespace in the header section'),
  HPE_CR_EXPECTED: new Refusal(400, 'bad line ending (CRLF expected)'),
  HPE_LF_EXPECTED: new Refusal(400, 'bad line ending (CRLF expected)'),
  HPE_INVALID_CONTENT_LENGTH: new Refusal(400, 'invalid Content-Length'),
  HPE_UNEXPECTED_CONTENT_LENGTH: new Refusal(400, 'conflicting Content-Length, or Content-Length with Transfer-Encoding'),
  HPE_INVALID_TRANSFER_ENCODING: new Refusal(400, 'unsupported Transfer-Encoding, or one with Content-Length'),
  HPE_INVALID_CHUNK_SIZE: new Refusal(400, 'invalid chunk size'),
  HPE_CHUNK_EXTENSIONS_OVERFLOW: new Refusal(400, 'chunk extensions too large'),
  HPE_PAUSED_H2_UPGRADE: new Refusal(400, 'HTTP/2 with prior knowledge is not served to this client'),
};
const BAD_VERSION = new Refusal(400, 'invalid HTTP version');
const UNSUPPORTED_VERSION = new Refusal(505, VERSION);

/** `name (value unit)`, or for 0 (no limit set) the ceiling tunicorn keeps anyway. */
const limit = (name: string, value: number, cap: number, unit: string): string =>
  value > 0 ? `${name} (${value}${unit})` : `${cap}${unit} (${name} is 0)`;

/**
 * The refusals whose words name a setting, built from one worker's config; the rest are constants here.
 * Looked up only once a request is refused.
 */
export class Refusals {
  /** By what rejectReason() or rejectReasonH2() found (guard.ts), the index being the Rejected value. */
  readonly rejected: readonly Refusal[];
  readonly headerTimeout: Refusal;
  readonly bodyTimeout: Refusal;
  readonly expectation = new Refusal(417, 'only "Expect: 100-continue" is supported');
  readonly connect = new Refusal(405, 'CONNECT is not served (this server is not a proxy)');
  /** A trusted proxy's secure scheme headers disagree (Gunicorn's InvalidSchemeHeaders). */
  readonly schemeHeaders = new Refusal(400, 'contradictory scheme headers (secure_scheme_headers: one says https, another not)');
  readonly #lineTooLong: Refusal;
  readonly #headerTooLarge: Refusal;
  readonly #fields: number;

  constructor(cfg: Config, limits: RequestLimits) {
    const line = limit('limit_request_line', cfg.limitRequestLine, UNLIMITED_LINE, ' bytes');
    this.#lineTooLong = new Refusal(414, `the request line is over ${line}`);
    this.#fields = limits.fields;
    const byReason: Refusal[] = [];
    byReason[Rejected.Version] = UNSUPPORTED_VERSION;
    byReason[Rejected.LineTooLong] = this.#lineTooLong;
    byReason[Rejected.BadTarget] = new Refusal(
      400,
      'the request target is not a path, an http(s) URL with a valid host, * (OPTIONS) or host:port (CONNECT)',
    );
    byReason[Rejected.TooManyFields] = new Refusal(431, `more header fields than ${limit('limit_request_fields', cfg.limitRequestFields, limits.fields, '')}`);
    byReason[Rejected.FieldTooLarge] = new Refusal(
      431,
      `a header field is over ${limit('limit_request_field_size', cfg.limitRequestFieldSize, UNLIMITED_FIELD, ' bytes')}`,
    );
    byReason[Rejected.BadHost] = new Refusal(400, 'invalid Host header (not a host[:port] a URL can hold)');
    byReason[Rejected.TwoHosts] = new Refusal(400, 'more than one Host header');
    byReason[Rejected.NoHost] = new Refusal(400, 'no Host header (HTTP/1.1 requires one)');
    byReason[Rejected.ChunkedHttp10] = new Refusal(400, 'Transfer-Encoding in an HTTP/1.0 request');
    byReason[Rejected.Underscore] = new Refusal(400, 'Content_Length or Transfer_Encoding (an underscore for the dash)');
    byReason[Rejected.HostNotAuthority] = new Refusal(400, 'the Host header names another host than :authority');
    this.rejected = byReason;
    this.#headerTooLarge = new Refusal(
      431,
      `the header section is over ${maxHeaderSize(limits)} bytes ` +
        '(limit_request_line, limit_request_fields and limit_request_field_size added up)',
    );
    this.headerTimeout = headerTimeoutRefusal(cfg);
    this.bodyTimeout = new Refusal(408, `the request body stalled for longer than body_timeout (${cfg.bodyTimeout} s)`);
  }

  /**
   * The answer to what Node's parser (or its header timer) rejected. `flushed`: how many header fields of the
   * request the parser had handed to JavaScript (its `_headers`), when known.
   */
  forParserError(err: ParserError, flushed?: number): Refusal {
    switch (err.code) {
      case 'ERR_HTTP_REQUEST_TIMEOUT':
        return this.headerTimeout;
      case 'HPE_HEADER_OVERFLOW': {
        // Still in the request line: Gunicorn's 414; else the header section is too large.
        const raw = err.rawPacket;
        if (raw && raw.indexOf(0x0a) < 0 && /^[A-Za-z]+ /.test(raw.toString('latin1', 0, 16))) return this.#lineTooLong;
        return this.#overCount(err, flushed) ? this.rejected[Rejected.TooManyFields]! : this.#headerTooLarge;
      }
      case 'HPE_INVALID_VERSION': {
        const line = err.rawPacket?.toString('latin1', 0, 256).split('\n')[0] ?? '';
        return /HTTP\/\d\.\d\r$/.test(line) ? UNSUPPORTED_VERSION : BAD_VERSION;
      }
      default:
        return (err.code !== undefined && PARSER_REASONS[err.code]) || MALFORMED;
    }
  }

  /**
   * Whether a header overflow is Node's count of fields rather than its byte limit. Since Node 22.23.2,
   * 24.18.1 and 26.5.1 (CVE-2026-58044) the parser refuses a request with more fields than the server's
   * maxHeadersCount (limit_request_fields + 1, see HttpLayer) with the same error as a header section over
   * maxHeaderSize; Node 20 kept the first fields and rejectReason counted them. The count stops the parser
   * just after the name of the field one too many, its colon; and by then the parser has handed JavaScript
   * all but at most one batch of the fields before it.
   */
  #overCount(err: ParserError, flushed: number | undefined): boolean {
    const raw = err.rawPacket;
    const at = err.bytesParsed;
    if (!raw || at === undefined || at < 1 || raw[at - 1] !== 0x3a) return false;
    if (flushed !== undefined && flushed + PARSER_BATCH <= this.#fields) return false;
    // A name that takes the section over maxHeaderSize stops it at its colon too: when the packet holds the
    // request from its request line, its fields before the colon are counted.
    const head = raw.toString('latin1', 0, at);
    const before = head.lastIndexOf('\r\n\r\n');
    const from = before < 0 ? 0 : before + 4;
    if (!/^[A-Za-z]+ \S+ HTTP\/\d\.\d\r?\n/.test(head.slice(from, head.indexOf('\n', from) + 1))) return true;
    return head.slice(from).split('\n').length - 2 > this.#fields;
  }
}

/** What Node's parser reports in a 'clientError'. */
export type ParserError = NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number };

/** How many header fields Node's parser collects before it hands them to JavaScript (kMaxHeaderFieldsCount). */
const PARSER_BATCH = 32;

/** header_timeout's 408: Node's header timer, and the gate's clock on a connection's first request. */
export const headerTimeoutRefusal = (cfg: Config): Refusal =>
  new Refusal(408, `the request header section was not complete within header_timeout (${cfg.headerTimeout} s)`);

/** request_deadline's 503 (see WorkerRuntime.deadlineExceeded). */
export const deadlineRefusal = (cfg: Config): Refusal =>
  new Refusal(503, `the request ran longer than request_deadline (${cfg.requestDeadline} s)`);
