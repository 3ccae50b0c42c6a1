import { clientAddressOf } from '../http/forwarded.js';
import { sameName } from '../http/guard.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError } from '../config/setting.js';
import { accessFormatProblem, accessTokens } from './access-format.js';
import { sentBytes } from './body-bytes.js';
import { ESCAPED, escapeLogValue } from './log-escape.js';
import { IsoClock, JSON_ESCAPED, jsonBytes, THREE_DIGITS, type LogFormat } from './json-line.js';
import { DEFAULT_ACCESS_LOG_FORMAT } from '../config/sections/logging.js';
import { ACCESS_LOG, cannotWrite, opening } from './output-file.js';
import { LogSink, type SinkTrouble } from './sink.js';

export interface AccessEntry {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** performance.now() when the request reached the server. */
  readonly start: number;
  readonly end: number;
  /** Milliseconds the request waited before reaching the app (see WorkerRuntime.queueTime). */
  readonly queue?: number;
  /** The client's address, read when the request started (see peerAddress); else it is read now. */
  readonly peer?: string | undefined;
}

type Atom = (e: AccessEntry) => string;

/**
 * The atoms whose text the client, the app or the environment gave (the request line, headers, a Basic user):
 * they are put escaped (putValue, see log-escape.ts). The others (time, status, sizes, durations) are text
 * tunicorn makes, put as they are.
 */
const VALUES = new WeakSet<Atom>();
const value = (atom: Atom): Atom => (VALUES.add(atom), atom);

/** Atoms that also give their text as bytes, which the compiled line copies (see ClockCache.bytesAt). */
const BYTES = new WeakMap<Atom, (e: AccessEntry) => Uint8Array>();
const asBytes = (atom: Atom, bytes: (e: AccessEntry) => Uint8Array): Atom => (BYTES.set(atom, bytes), atom);

/**
 * How long access-log lines may wait to be written together. At keep-alive load one write(2) per event-loop
 * turn was the largest cost of the log (about 1.8 us of some 4 per request, profiled); gathering 20 ms of lines
 * gave 1.05-1.08 x the requests/s (two runs of 14 alternating rounds). The lines still go out on every exit but
 * a kill.
 */
const ACCESS_LOG_DELAY_MS = 20;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * `[26/Nov/2026:14:40:54 +0000]`, cached for the current second. `at(mono)` takes the entry's end, a
 * performance.now() already read, so a line costs no clock read of its own: the wall clock is read once a
 * second, when `mono` passes the end of the cached second.
 */
class ClockCache {
  #from = Infinity;
  #until = -Infinity;
  #text = '';
  #bytes = new Uint8Array(0);
  at(mono: number): string {
    if (mono >= this.#until || mono < this.#from) this.#read(mono);
    return this.#text;
  }

  /**
   * The same text as bytes, for the compiled line (compileDirectWriter): copied from a byte array, the 28
   * characters cost a third of what they did read one by one from the string, which is a rope of its parts
   * (measured in a loop: 24 against 84 ns).
   */
  bytesAt(mono: number): Uint8Array {
    if (mono >= this.#until || mono < this.#from) this.#read(mono);
    return this.#bytes;
  }

  #read(mono: number): void {
    const ms = Date.now();
    this.#from = mono;
    this.#until = mono + 1000 - (ms % 1000);
    const d = new Date(ms);
    const p = (n: number) => String(n).padStart(2, '0');
    const off = -d.getTimezoneOffset();
    const a = Math.abs(off);
    this.#text =
      `[${p(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${p(d.getHours())}:${p(d.getMinutes())}:` +
      `${p(d.getSeconds())} ${off >= 0 ? '+' : '-'}${p(Math.floor(a / 60))}${p(a % 60)}]`;
    this.#bytes = Buffer.from(this.#text, 'latin1');
  }
}

/**
 * Text as a byte string: its UTF-8 bytes, one character each. The access log is written in latin1, one byte
 * per character, because what it mostly holds, the request line and header values, Node's parser gives as
 * byte strings: so the log holds the bytes the client sent (UTF-8 in a User-Agent stays UTF-8, where a UTF-8
 * write would encode it twice), and writing a line takes one copy instead of two (no UTF-8 encoding pass).
 * The format's own text and environment values, real text, come through here to be written as UTF-8.
 */
const bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

/**
 * Set on a response whose answer tunicorn wrote to the socket itself, leaving the response object unfinished:
 * its status was sent though `headersSent` says otherwise. The value is the answer's body bytes.
 */
const kAnsweredRaw = Symbol('tunicorn.answeredRaw');
/** The status of that answer, kept apart from `statusCode`, which the app may still set after it. */
const kAnsweredStatus = Symbol('tunicorn.answeredStatus');

/**
 * A request's answer that tunicorn wrote to the socket itself (request_deadline's 503, body_timeout's 408, a
 * parser error in its body), its response object left unsent: the access log and StatsD still report the
 * status the client got, and the log the `body` bytes sent with it (0 for a HEAD request).
 */
export function answeredRaw(res: ServerResponse, status: number, body: number): void {
  res.statusCode = status;
  (res as unknown as { [kAnsweredRaw]: number })[kAnsweredRaw] = body;
  // An app that answers the request's 'aborted' sets statusCode again (res.statusCode = 400): the log says
  // what the client got.
  (res as unknown as { [kAnsweredStatus]: number })[kAnsweredStatus] = status;
}

/**
 * The status the client was sent; undefined when none was (the client left, or the connection was cut, before
 * the app answered: Node's default 200 was never said). An upgrade's answer has no `headersSent`.
 */
export function sentStatus(res: ServerResponse): number | undefined {
  // tunicorn's own answer went out and the connection closed: nothing the app wrote after it was sent.
  const raw = (res as { [kAnsweredStatus]?: number })[kAnsweredStatus];
  if (raw !== undefined) return raw;
  return res.headersSent === false ? undefined : res.statusCode;
}

const dash = (v: unknown): string => (typeof v === 'string' ? (v === '' ? '-' : v) : v === undefined || v === null ? '-' : String(v));

function path(req: IncomingMessage): string {
  return targetParts(req.url ?? '')[0];
}

/**
 * A request target's path and query (undefined: none), as Gunicorn's PATH_INFO and QUERY_STRING have them: an
 * absolute-form target (`GET http://host/p?x=1`, to a proxy) without its scheme and authority, and a fragment
 * (which no client should send) left out.
 */
export function targetParts(url: string): [path: string, query: string | undefined] {
  let start = 0;
  if (url.charCodeAt(0) !== 0x2f /* / */) {
    const scheme = url.indexOf('://');
    if (scheme > 0) {
      const after = url.slice(scheme + 3).search(/[/?#]/);
      start = after < 0 ? url.length : scheme + 3 + after;
    }
  }
  let end = url.indexOf('#', start);
  if (end < 0) end = url.length;
  const q = url.indexOf('?', start);
  if (q < 0 || q > end) return [start === 0 && end === url.length ? url : url.slice(start, end), undefined];
  return [url.slice(start, q), url.slice(q + 1, end)];
}

/**
 * A request header's first value, from rawHeaders: `req.headers` is built on first use, and an app that never
 * reads it should not pay for it in the log. For Referer, User-Agent and Authorization, Node's `req.headers`
 * keeps the first value too.
 */
export function firstHeader(req: IncomingMessage, lower: string): string | undefined {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (sameName(raw[i]!, lower)) return raw[i + 1];
  return undefined;
}

/** The user name of a Basic Authorization value, or `-`. */
function basicUser(auth: string | undefined): string {
  // The scheme's name is case-insensitive (RFC 9110 11.1): `basic` too, as Gunicorn reads it.
  if (!auth || auth.charCodeAt(5) !== 32 || auth.slice(0, 5).toLowerCase() !== 'basic') return '-';
  // The user name's bytes as sent (a byte string, like the rest of the line).
  const decoded = Buffer.from(auth.slice(6), 'base64').toString('latin1');
  const i = decoded.indexOf(':');
  return i > 0 ? decoded.slice(0, i) : '-';
}

/**
 * The header block Node wrote for an HTTP/1 response, or undefined. An HTTP/2 response (Node's compatibility
 * Http2ServerResponse) has `_header` too, as a getter for `headersSent`: a boolean, no header block.
 */
function headerBlock(res: ServerResponse): string | undefined {
  const head = (res as unknown as { _header?: unknown })._header;
  return typeof head === 'string' && head !== '' ? head : undefined;
}

/**
 * The response body length. Node keeps the Content-Length it wrote (from the app's headers, or the one it
 * computed for `end(body)`) as `_contentLength`, a number (so since Node 18 at least); reading it spares the
 * header block, which is a rope of the header lines that a search first copies flat (profiled: `WriteToFlat`
 * and `StringSearch` under the log). Otherwise: a length given to setHeader(), else the header block Node
 * wrote (`_header`, stable since Node 0.x); a chunked response has none (its bytes are counted, see bodyLength).
 */
function length(res: ServerResponse): string | undefined {
  const n = (res as unknown as { _contentLength?: unknown })._contentLength;
  if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) return String(n);
  const v = res.getHeader('content-length');
  // Text the app set, which may be any (a proxy copies its upstream's): only digits are a count, and the rest
  // would be put in the line as it is, unescaped (a `"` ended a JSON template's string, and forged a field).
  if (v !== undefined) return digits(String(v));
  const head = headerBlock(res);
  if (head === undefined) return undefined;
  // The two usual spellings by indexOf first: a case-insensitive regex over the header block was 2.7 % of a
  // worker's CPU with the access log on (profiled, hello app); the regex stays for any other spelling.
  let i = head.indexOf('\r\ncontent-length:');
  if (i < 0) i = head.indexOf('\r\nContent-Length:');
  if (i >= 0) {
    let j = i + 17;
    while (head.charCodeAt(j) === 32) j++;
    let k = j;
    while (head.charCodeAt(k) >= 48 && head.charCodeAt(k) <= 57) k++;
    if (k > j) return head.slice(j, k);
  }
  const m = /\r\ncontent-length: *(\d+)/i.exec(head);
  return m ? m[1] : undefined;
}

/**
 * `%(b)s`: the body bytes sent, as Gunicorn logs them. Counted as the app wrote them where no Content-Length
 * gives them (a chunked or HTTP/2 stream, see body-bytes.ts); else the Content-Length.
 */
export function bodyLength(e: AccessEntry): string | undefined {
  const res = e.res;
  const raw = (res as { [kAnsweredRaw]?: number })[kAnsweredRaw];
  if (raw !== undefined) return String(raw);
  const sent = sentBytes(res);
  if (sent !== undefined) return String(sent);
  // A response that has no body (HEAD, 204, 304) sends none, whatever its Content-Length says (RFC 9110
  // section 9.3.2): Node drops a body given to it. `_hasBody` is Node's HTTP/1 flag for it.
  if (e.req.method === 'HEAD' || (res as { _hasBody?: boolean })._hasBody === false) return res.headersSent ? '0' : undefined;
  return length(res);
}

/**
 * The request headers a line can name by atom (`%(u)s`'s Authorization, `%(f)s`'s Referer, `%(a)s`'s
 * User-Agent; the JSON line's user, referer and user_agent), each the first of its name, found in one pass over
 * rawHeaders a line: Gunicorn's default format names all three, and a pass for each was a tenth of a line's
 * cost (profiled, bench/log-instructions.sh).
 */
class LineHeaders {
  #req: IncomingMessage | null = null;
  referer: string | undefined;
  agent: string | undefined;
  authorization: string | undefined;

  /** A line begins: the next of() reads its request's headers, even if the request is the last line's. */
  begin(): void {
    this.#req = null;
  }

  of(req: IncomingMessage): this {
    if (this.#req === req) return this;
    this.#req = req;
    this.referer = this.agent = this.authorization = undefined;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      // Told apart by length first: most names a client sends are none of the three. The usual spelling is
      // compared whole (one comparison of the string), any other case letter by letter.
      switch (name.length) {
        case 7:
          if (this.referer === undefined && (name === 'Referer' || sameName(name, 'referer'))) this.referer = raw[i + 1];
          break;
        case 10:
          if (this.agent === undefined && (name === 'User-Agent' || sameName(name, 'user-agent'))) this.agent = raw[i + 1];
          break;
        case 13:
          if (this.authorization === undefined && (name === 'Authorization' || sameName(name, 'authorization'))) this.authorization = raw[i + 1];
          break;
      }
    }
    return this;
  }
}

function atoms(clock: ClockCache, heads: LineHeaders): Record<string, Atom | (string | Atom)[]> {
  return {
    h: value((e) => dash(e.peer ?? clientAddressOf(e.req))),
    l: () => '-',
    u: value((e) => basicUser(heads.of(e.req).authorization)),
    t: asBytes((e) => clock.at(e.end), (e) => clock.bytesAt(e.end)),
    // Atoms of several parts are put() part by part: no string is made to join them. A request never parsed
    // (answered 400, 408, 431 before Node made one: see refused.ts) has `-` for its request line.
    r: [
      value((e) => dash(e.req.method)),
      (e) => (e.req.method === undefined ? '' : ' '),
      value((e) => e.req.url ?? ''),
      (e) => (e.req.method === undefined ? '' : ' HTTP/'),
      value((e) => e.req.httpVersion ?? ''),
    ],
    m: value((e) => dash(e.req.method)),
    U: value((e) => dash(path(e.req))),
    q: value((e) => targetParts(e.req.url ?? '')[1] ?? ''),
    H: value((e) => (e.req.httpVersion === undefined ? '-' : `HTTP/${e.req.httpVersion}`)),
    // No status: a request whose client left (or whose connection was cut) before any answer, or an upgraded
    // connection on which the app wrote none (see WorkerRuntime.upgrading).
    s: (e) => dash(sentStatus(e.res)),
    B: (e) => bodyLength(e) ?? '0',
    b: (e) => dash(bodyLength(e)),
    f: value((e) => dash(heads.of(e.req).referer)),
    a: value((e) => dash(heads.of(e.req).agent)),
    // T, M and D count whole seconds, milliseconds and microseconds of one time, as Gunicorn's timedelta
    // does: M truncated (a round M said 1000 for a request T counted as 0 s and D as 999,600 us).
    T: (e) => String(Math.floor(Math.round((e.end - e.start) * 1000) / 1e6)),
    M: (e) => String(Math.floor(Math.round((e.end - e.start) * 1000) / 1000)),
    D: (e) => String(Math.round((e.end - e.start) * 1000)),
    L: (e) => ((e.end - e.start) / 1000).toFixed(6),
    p: () => `<${process.pid}>`,
    // Not Gunicorn's: queue time in milliseconds, from the connection's accept (or the proxy's
    // X-Request-Start) to the request reaching the app.
    Q: (e) => (e.queue === undefined ? '-' : String(Math.round(e.queue))),
  };
}

/** Where a compiled format puts a line's parts: a LogSink (in place), or a string for the tests. */
export interface LineTarget {
  /** The format's own text, and text tunicorn makes. */
  put(part: string): void;
  /** A value from the client, the app or the environment: escaped (see log-escape.ts). */
  putValue(part: string): void;
  /** The same value as the inside of a JSON string (--log-format json; see json-line.ts). */
  putJson(part: string): void;
  /** Text made once, given as its bytes (a JSON line's field names). */
  putBytes(bytes: Uint8Array): void;
}

/**
 * Compiles a Gunicorn access_log_format once into a function that puts a request's line, part by part, into
 * a target (a LogSink, which stores each part's bytes in its buffer). The parts are byte strings (see bytes).
 * `json`: the format is a JSON template (--log-format json), whose values are put JSON-escaped.
 */
export function compileAccessWriter(format: string, json = false): (e: AccessEntry, to: LineTarget) => void {
  const { parts, begin } = formatParts(format);
  return sequence(parts, begin, json ? 'putJson' : 'putValue');
}

/**
 * A format's parts in order: its own text (as a byte string, adjacent text merged) and the atoms between;
 * `begin`, to be called as each line begins (see LineHeaders).
 */
function formatParts(format: string): { parts: (string | Atom)[]; begin: () => void } {
  const heads = new LineHeaders();
  const table = atoms(new ClockCache(), heads);
  const parts: (string | Atom)[] = [];
  const re = accessTokens();
  let last = 0;
  for (let m = re.exec(format); m; m = re.exec(format)) {
    if (m.index > last) parts.push(bytes(format.slice(last, m.index)));
    last = m.index + m[0].length;
    const name = m[1];
    if (name === undefined) {
      parts.push('%'); // `%%`, as Gunicorn's Python formatting reads it
      continue;
    }
    if (name.startsWith('{')) {
      const braced = name.slice(1, name.indexOf('}'));
      const key = braced.toLowerCase();
      const kind = name.at(-1);
      if (kind === 'i') parts.push(value((e) => dash(headerText(e.req.headers[key]))));
      else if (kind === 'o') parts.push(value((e) => dash(responseHeader(e.res, key))));
      else parts.push(value(() => dash(bytes(process.env[braced] ?? ''))));
      continue;
    }
    const atom = table[name];
    if (!atom) throw new ConfigError(`invalid value for accessLogFormat (--access-logformat): ${accessFormatProblem(format) ?? `unknown atom %(${name})s`}`);
    if (Array.isArray(atom)) parts.push(...atom);
    else parts.push(atom);
  }
  if (last < format.length) parts.push(bytes(format.slice(last)));
  return { parts: mergeText(parts), begin: () => heads.begin() };
}

/**
 * A LogSink as the compiled line (compileDirectWriter) writes to it: the line's bytes stored in its buffer at
 * once, or part by part through LineTarget when that cannot be.
 */
export interface LineBuffer extends LineTarget {
  /** Where a whole line of at most `n` bytes can be stored in `buffer`, or -1 (see LogSink.room). */
  room(n: number): number;
  readonly buffer: Uint8Array;
  /** The line stored from room()'s offset up to `end` (its newline included) is whole. */
  commitLine(end: number): void;
  endLine(): void;
  dropLine(): void;
}

/** A line put part by part by `write`, then ended; taken back if `write` throws. */
function putLine(write: (e: AccessEntry, to: LineTarget) => void, e: AccessEntry, to: LineBuffer): void {
  try {
    write(e, to);
  } catch (err) {
    to.dropLine();
    throw err;
  }
  to.endLine();
}

/** Stores bytes from `at` (set(): one copy); returns their end. */
function storeBytes(b: Uint8Array, at: number, v: Uint8Array): number {
  b.set(v, at);
  return at + v.length;
}

/**
 * Code of a generated line (compileDirectWriter, compileJsonLine) that stores the line's own text `t` at `b[i]`
 * and moves `i` past it: constant stores for short text, for longer text a copy by storeBytes of the bytes
 * `args` is given (as `cN`).
 */
function textCode(t: Uint8Array, args: Map<string, unknown>): string {
  if (t.length <= 32) return Array.from(t, (c, j) => `b[i + ${j}] = ${c};`).join(' ') + ` i += ${t.length};`;
  const name = `c${args.size}`;
  args.set(name, t);
  return `i = storeBytes(b, i, ${name});`;
}

/**
 * Code of a generated line that copies the string `v` one byte a character: checked against the table `E`
 * (a value the client, the app or the environment gave: the line then goes the slow way from the first byte
 * to escape), or not (text tunicorn made).
 */
function copyCode(v: string, checked: boolean): string {
  return checked
    ? `for (let j = 0, n = ${v}.length; j < n; j++) { const c = ${v}.charCodeAt(j); if (c > 0xff || E[c] === 1) return slow(e, to); b[i++] = c; }`
    : `for (let j = 0, n = ${v}.length; j < n; j++) b[i++] = ${v}.charCodeAt(j);`;
}

/**
 * The format compiled into one function that stores a request's whole line, its newline included, in a LogSink's
 * buffer: the atoms' values are read first, room() is asked once for their length and the format's text, then
 * the format's text is stored by constant stores written into the function's code, each value by a loop of
 * its own there (a value the client, the app or the environment gave is checked by ESCAPED as it is copied),
 * and the line is committed. put() and putValue() a part each cost a call, their own room checks and a loop
 * that V8 does not inline into the line; the clock's text was read one character at a time from a rope of its
 * parts (ClockCache.bytesAt), and each of three header atoms scanned rawHeaders (LineHeaders). Counted in a
 * loop of Gunicorn's default format (bench/log-instructions.sh): 7.06 k instructions a line before, 3.58 k
 * after. A value with a byte to escape (rare: a quote, a backslash, a control byte, a character past 0xff)
 * and a line that no buffer holds go part by part, as compileAccessWriter's function puts them: the same bytes.
 * `json`: a JSON template's line (--log-format json), its values checked by JSON_ESCAPED (any byte past 0x7f
 * too: jsonBytesFrom checks it as UTF-8 on the way part by part). Null where code generation from strings is
 * off: the access log then puts its lines part by part.
 */
export function compileDirectWriter(format: string, json = false): ((e: AccessEntry, to: LineBuffer) => void) | null {
  const { parts, begin } = formatParts(format);
  const write = sequence(parts, begin, json ? 'putJson' : 'putValue');
  const slow = (e: AccessEntry, to: LineBuffer): void => putLine(write, e, to);
  const read: string[] = [];
  const lengths: string[] = [];
  const store: string[] = [];
  let fixed = 1; // the newline
  // What the function is made with: the atoms (pK), the byte forms of atoms that have one (qK), the format's
  // longer text as bytes (cN, see textCode).
  const args = new Map<string, unknown>([
    ['E', json ? JSON_ESCAPED : ESCAPED],
    ['storeBytes', storeBytes],
    ['slow', slow],
    ['begin', begin],
  ]);
  parts.forEach((p, k) => {
    if (typeof p === 'string') {
      // Text of the format (bytes already, see bytes()).
      fixed += p.length;
      store.push(textCode(Buffer.from(p, 'latin1'), args));
      return;
    }
    lengths.push(`v${k}.length`);
    const asBytes = BYTES.get(p);
    if (asBytes) {
      args.set(`q${k}`, asBytes);
      read.push(`const v${k} = q${k}(e);`);
      store.push(`i = storeBytes(b, i, v${k});`);
      return;
    }
    args.set(`p${k}`, p);
    read.push(`const v${k} = p${k}(e);`);
    // Text tunicorn made is stored as put() stores it; a value as putValue() (a JSON template's: putJson()) does,
    // or the line goes part by part.
    store.push(copyCode(`v${k}`, VALUES.has(p)));
  });
  const body = `begin(); ${read.join(' ')}
    let i = to.room(${[String(fixed), ...lengths].join(' + ')});
    if (i < 0) return slow(e, to);
    const b = to.buffer;
    ${store.join(' ')}
    b[i] = 10;
    to.commitLine(i + 1);`;
  try {
    return new Function(...args.keys(), `return (e, to) => { ${body} };`)(...args.values()) as (e: AccessEntry, to: LineBuffer) => void;
  } catch {
    return null;
  }
}

/**
 * The same format, giving the line as a string (without its newline). With --log-format json, Gunicorn's
 * default format gives tunicorn's JSON line (jsonAccessWriter), another format is a JSON template.
 */
export function compileAccessFormat(format: string, logFormat: LogFormat = 'text'): (e: AccessEntry) => string {
  const write = accessWriter(format, logFormat);
  return (e) => {
    const out = {
      text: '',
      put(part: string) {
        this.text += part;
      },
      putValue(part: string) {
        this.text += escapeLogValue(part);
      },
      putJson(part: string) {
        this.text += jsonBytes(part);
      },
      putBytes(bytes: Uint8Array) {
        this.text += Buffer.from(bytes).toString('latin1');
      },
    };
    write(e, out);
    return out.text;
  };
}

/** Adjacent text parts (an atom's own text next to the format's) as one. */
function mergeText(parts: (string | Atom)[]): (string | Atom)[] {
  const out: (string | Atom)[] = [];
  for (const p of parts) {
    const prev = out.at(-1);
    if (typeof p === 'string' && typeof prev === 'string') out[out.length - 1] = prev + p;
    else out.push(p);
  }
  return out;
}

/**
 * One function made for the format, `(e, to) => { to.put(p0(e)); to.put(" - "); ... }`: each call in it
 * always meets the same atom, so V8 inlines them, where a loop over the parts calls every atom from one site
 * and inlines none. Measured in one process, alternating blocks of 50,000 lines of the default format (when
 * the parts were still joined into a string): 1,470 against 1,620 ns a line. Where code generation from
 * strings is off (`--disallow-code-generation-from-strings`), the loop. `begin` is called first, as a line
 * begins (see LineHeaders).
 */
function sequence(parts: (string | Atom)[], begin: () => void, escaped: 'putValue' | 'putJson'): (e: AccessEntry, to: LineTarget) => void {
  const names = parts.map((_, i) => `p${i}`);
  const body = 'begin(); ' + parts.map((p, i) => (typeof p === 'string' ? `to.put(${JSON.stringify(p)});` : `to.${VALUES.has(p) ? escaped : 'put'}(p${i}(e));`)).join(' ');
  try {
    return new Function('begin', ...names, `return (e, to) => { ${body} };`)(begin, ...parts) as (e: AccessEntry, to: LineTarget) => void;
  } catch {
    return (e, to) => {
      begin();
      for (const p of parts) {
        if (typeof p === 'string') to.put(p);
        else if (VALUES.has(p)) to[escaped](p(e));
        else to.put(p(e));
      }
    };
  }
}

/**
 * A response header as sent. Headers given to setHeader() are kept by name; those given to writeHead() (and so
 * every Fetch Response's) are only in the header block Node wrote (`_header`), read here line by line. Values
 * of a repeated header are joined with ", ".
 */
function responseHeader(res: ServerResponse, name: string): string | undefined {
  const kept = headerText(res.getHeader(name));
  if (kept !== undefined) return kept;
  const head = headerBlock(res);
  if (head === undefined) return undefined;
  const lower = name.toLowerCase();
  const values: string[] = [];
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).toLowerCase() === lower) values.push(line.slice(colon + 1).trim());
  }
  return values.length ? values.join(', ') : undefined;
}

function headerText(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : String(v);
}

export class AccessLog {
  readonly #sink: LogSink;
  /** Writes a request's line into the sink (see lineWriter). */
  readonly #line: (e: AccessEntry, to: LineBuffer) => void;
  /**
   * The format names the client (`%(h)s`). The line is written when the response closes, and a connection
   * the client cut is gone by then: its peer address must be read while the request starts (see peerAddress).
   */
  readonly needsPeer: boolean;

  /** `trouble`: told when writing the file starts failing (a full disk) and when it works again. */
  constructor(target: string, format: string, trouble?: SinkTrouble, logFormat: LogFormat = 'text') {
    this.#line = lineWriter(format, logFormat);
    this.#sink = opening(ACCESS_LOG, target, () => new LogSink(target, 1, ACCESS_LOG_DELAY_MS, 'latin1'));
    if (trouble) this.#sink.onTrouble(trouble);
    this.needsPeer = format.includes('%(h)s');
  }

  log(e: AccessEntry): void {
    this.#line(e, this.#sink);
  }

  /**
   * USR1. Returns why the file could not be opened again, if it could not: the old one stays in use. The
   * workers that call this leave the reporting to the master, which checks the path (checkLogFiles): one
   * line, not one per worker.
   */
  reopen(): string | null {
    const err = this.#sink.reopen();
    return err && cannotWrite(ACCESS_LOG, this.#sink.target, err);
  }

  close(): void {
    this.#sink.close();
  }
}

/**
 * How an AccessLog writes a line: stored at once, by the format compiled (compileDirectWriter; a JSON template
 * too) or, for --log-format json with Gunicorn's default format, by compileJsonLine's; where code generation
 * from strings is off, a format's line is put part by part by accessWriter's function.
 */
function lineWriter(format: string, logFormat: LogFormat): (e: AccessEntry, to: LineBuffer) => void {
  const direct = logFormat === 'json' && format === DEFAULT_ACCESS_LOG_FORMAT ? compileJsonLine() : compileDirectWriter(format, logFormat === 'json');
  if (direct !== null) return direct;
  const write = accessWriter(format, logFormat);
  return (e, to) => putLine(write, e, to);
}

/**
 * The writer of a log's lines: the format compiled, or with --log-format json, tunicorn's JSON line for
 * Gunicorn's default format (jsonAccessWriter) and a JSON template for any other (its check at the start:
 * jsonTemplateProblem in access-format.ts).
 */
function accessWriter(format: string, logFormat: LogFormat): (e: AccessEntry, to: LineTarget) => void {
  if (logFormat === 'text') return compileAccessWriter(format);
  return format === DEFAULT_ACCESS_LOG_FORMAT ? jsonAccessWriter() : compileAccessWriter(format, true);
}

/**
 * A field's text before its value, as bytes (see LogSink.putBytes), in the six forms a line needs:
 * `[after * 3 + kind]`, `after` 1 when the value before was a string (its closing quote comes first), `kind`
 * 0 for a number (put after it), 1 for a string (its opening quote ends it), 2 for null: the name and the quotes
 * around it in one copy, where a put() each made the calls a large part of a line's cost (profiled).
 */
function jsonKey(name: string): Buffer[] {
  const forms: Buffer[] = [];
  for (const before of ['', '"']) for (const after of ['', '"', 'null']) forms.push(Buffer.from(`${before},"${name}":${after}`));
  return forms;
}

/** Puts a string field (null for none or ''); returns 1: the line is inside a string, or 0. */
function jsonStringField(to: LineTarget, key: Buffer[], q: number, v: string | undefined): number {
  if (v === undefined || v === '') {
    to.putBytes(key[q * 3 + 2]!);
    return 0;
  }
  to.putBytes(key[q * 3 + 1]!);
  to.putJson(v);
  return 1;
}

/** Puts a number field, given as its text (null for none); returns 0. */
function jsonNumberField(to: LineTarget, key: Buffer[], q: number, v: string | undefined): number {
  if (v === undefined) to.putBytes(key[q * 3 + 2]!);
  else {
    to.putBytes(key[q * 3]!);
    to.put(v);
  }
  return 0;
}

/** A count tunicorn read as text (a Content-Length the app set may be any text): itself if digits, else none. */
function digits(v: string | undefined): string | undefined {
  if (v === undefined || v === '') return undefined;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  return v;
}

/** `.001` to `.999`, without trailing zeros (`.25`); '' for 0. */
const FRACTION: readonly string[] = Array.from({ length: 1000 }, (_, i) => (i === 0 ? '' : `.${String(i).padStart(3, '0').replace(/0+$/, '')}`));

/** Microseconds as milliseconds with their decimals (`1.25`, `0.007`): integer work, no double printed. */
function millisText(us: number): string {
  const ms = Math.floor(us / 1000);
  return String(ms) + FRACTION[us - ms * 1000]!;
}

const K = {
  remote: jsonKey('remote_addr'),
  user: jsonKey('user'),
  method: jsonKey('method'),
  path: jsonKey('path'),
  query: jsonKey('query'),
  // Node's parser gives the version as digits and a dot: put as it is after `HTTP/`. After a string (the
  // query) or after null; null (protocolNone) for a request never parsed.
  protocol: Buffer.from('","protocol":"HTTP/'),
  protocolAfterNull: Buffer.from(',"protocol":"HTTP/'),
  protocolNone: jsonKey('protocol'),
  status: jsonKey('status'),
  bytes: jsonKey('bytes'),
  duration: jsonKey('duration_ms'),
  referer: jsonKey('referer'),
  agent: jsonKey('user_agent'),
  id: jsonKey('request_id'),
  queue: jsonKey('queue_ms'),
  time: Buffer.from('{"time":"'),
  end: [Buffer.from('}'), Buffer.from('"}')],
};

/**
 * --log-format json with the default access_log_format: one JSON object a line, its fields named for what
 * Gunicorn's atoms give (docs/operations.md, "JSON logs"). time, level, pid, role and msg as in the error
 * log's JSON lines (pino's names: a pipeline made for pino, or for pino-http's "request completed", reads
 * them); null where the text line has `-`; status, bytes and the times as numbers.
 */
export function jsonAccessWriter(clock = new IsoClock(), heads = new LineHeaders()): (e: AccessEntry, to: LineTarget) => void {
  // Up to remote_addr's value, after the time: one copy.
  const head = Buffer.from(`Z","level":"info","pid":${process.pid},"role":"worker","msg":"request completed"`);
  return (e, to) => {
    const { req, res } = e;
    to.putBytes(K.time);
    const ms = clock.millis(e.end);
    to.put(clock.prefix);
    to.put(THREE_DIGITS[ms]!);
    to.putBytes(head);
    // q: 1 while the last value put is a string not yet closed (see jsonKey).
    let q = jsonStringField(to, K.remote, 0, e.peer ?? clientAddressOf(req));
    heads.begin();
    const { authorization, referer, agent } = heads.of(req);
    const who = basicUser(authorization);
    q = jsonStringField(to, K.user, q, who === '-' ? undefined : who);
    q = jsonStringField(to, K.method, q, req.method);
    const [path, query] = targetParts(req.url ?? '');
    q = jsonStringField(to, K.path, q, path);
    q = jsonStringField(to, K.query, q, query);
    // After the query's value: it was a string (q 1) or null.
    // A request never parsed (a refusal: refused.ts) has none.
    if (req.httpVersion === undefined) q = jsonStringField(to, K.protocolNone, q, undefined);
    else {
      to.putBytes(q === 1 ? K.protocol : K.protocolAfterNull);
      to.put(req.httpVersion);
      q = 1;
    }
    const status = sentStatus(res);
    q = jsonNumberField(to, K.status, q, status === undefined ? undefined : String(status));
    q = jsonNumberField(to, K.bytes, q, digits(bodyLength(e)));
    q = jsonNumberField(to, K.duration, q, millisText(Math.round((e.end - e.start) * 1000)));
    q = jsonStringField(to, K.referer, q, referer);
    q = jsonStringField(to, K.agent, q, agent);
    q = jsonStringField(to, K.id, q, firstHeader(req, 'x-request-id'));
    q = jsonNumberField(to, K.queue, q, e.queue === undefined ? undefined : String(Math.round(e.queue)));
    to.putBytes(K.end[q]!);
  };
}

/**
 * jsonAccessWriter's line stored at once in a LogSink's buffer, as compileDirectWriter stores a text format's,
 * by one function made for it: the values read first, room() asked once for all of them, the field names and
 * the text between them as constant stores written into the function's code (the 70 or so bytes after the time by
 * one set()), each string value by a loop that checks it (JSON_ESCAPED), `null` for none, the newline, and
 * commitLine(). Put part by part, a call or two a field, the line cost 13.0 k instructions
 * (bench/log-instructions.sh with LOG_FORMAT=json), where the text line costs 3.6 k; the same stores made as
 * a function for each field name, called from a hand-written line, 8.6 k: V8 stops inlining calls into one
 * function past a budget, and the line has some thirty. A value with a byte to escape (or past 0x7f, checked as
 * UTF-8 on that way) and a line no buffer holds go part by part, by jsonAccessWriter: the same bytes. Null where
 * code generation from strings is off.
 */
export function compileJsonLine(): ((e: AccessEntry, to: LineBuffer) => void) | null {
  // One clock for the lines stored at once and those put part by part: each reads the second once, from the
  // first line that needs it, and two would give two neighbouring lines different milliseconds.
  const clock = new IsoClock();
  const heads = new LineHeaders();
  const write = jsonAccessWriter(clock, heads);
  const args = new Map<string, unknown>([
    ['E', JSON_ESCAPED],
    ['storeBytes', storeBytes],
    ['slow', (e: AccessEntry, to: LineBuffer): void => putLine(write, e, to)],
    ['clock', clock],
    ['heads', heads],
    ['clientAddressOf', clientAddressOf],
    ['basicUser', basicUser],
    ['sentStatus', sentStatus],
    ['digits', digits],
    ['bodyLength', bodyLength],
    ['millisText', millisText],
    ['firstHeader', firstHeader],
    ['targetParts', targetParts],
    ['THREE_DIGITS', THREE_DIGITS],
  ]);
  // The bytes the line holds besides its values' own: its text, and 4 a value (`null`, or two quotes).
  let fixed = 1;
  const text = (t: string): string => {
    const v = Buffer.from(t);
    fixed += v.length;
    return textCode(v, args);
  };
  const none = 'b[i] = 110; b[i + 1] = 117; b[i + 2] = 108; b[i + 3] = 108; i += 4;';
  const made = (v: string): string => copyCode(v, false);
  const string = (name: string, v: string): string => {
    fixed += 4;
    return `${text(`,"${name}":`)} if (${v} === undefined || ${v} === '') { ${none} } else { b[i++] = 34; ${copyCode(v, true)} b[i++] = 34; }`;
  };
  const number = (name: string, v: string): string => {
    fixed += 4;
    return `${text(`,"${name}":`)} if (${v} === undefined) { ${none} } else ${made(v)}`;
  };
  const values = ['peer', 'user', 'method', 'path', 'query', 'version', 'status', 'bytes', 'took', 'referer', 'agent', 'id', 'queue'];
  const stores = [
    text('{"time":"'),
    // The second's text, then its milliseconds (3 digits).
    'b.set(second, i); i += second.length; b[i] = ms3.charCodeAt(0); b[i + 1] = ms3.charCodeAt(1); b[i + 2] = ms3.charCodeAt(2); i += 3;',
    text(`Z","level":"info","pid":${process.pid},"role":"worker","msg":"request completed"`),
    string('remote_addr', 'peer'),
    string('user', 'user'),
    string('method', 'method'),
    string('path', 'path'),
    string('query', 'query'),
    // `"HTTP/1.1"` from the version Node's parser gives (digits and a dot); null for a request never parsed
    // (a refusal).
    `${text(',"protocol":')} if (version === undefined) { ${none} } else { ${text('"HTTP/')} ${made('version')} b[i++] = 34; }`,
    number('status', 'status'),
    number('bytes', 'bytes'),
    number('duration_ms', 'took'),
    string('referer', 'referer'),
    string('user_agent', 'agent'),
    string('request_id', 'id'),
    number('queue_ms', 'queue'),
  ];
  // The milliseconds, and the protocol's `null` (or its closing quote).
  fixed += 3 + 4;
  const body = `
    const { req, res } = e;
    const ms3 = THREE_DIGITS[clock.millis(e.end)];
    const second = clock.prefixBytes;
    const peer = e.peer ?? clientAddressOf(req);
    heads.begin();
    const h = heads.of(req);
    const who = basicUser(h.authorization);
    const user = who === '-' ? undefined : who;
    const method = req.method;
    const [path, query] = targetParts(req.url ?? '');
    const version = req.httpVersion;
    const sent = sentStatus(res);
    const status = sent === undefined ? undefined : String(sent);
    const bytes = digits(bodyLength(e));
    const took = millisText(Math.round((e.end - e.start) * 1000));
    const referer = h.referer;
    const agent = h.agent;
    const id = firstHeader(req, 'x-request-id');
    const queue = e.queue === undefined ? undefined : String(Math.round(e.queue));
    let i = to.room(${fixed} + second.length + ${values.map((v) => `(${v}?.length ?? 0)`).join(' + ')});
    if (i < 0) return slow(e, to);
    const b = to.buffer;
    ${stores.join('\n    ')}
    b[i] = 125;
    b[i + 1] = 10;
    to.commitLine(i + 2);`;
  try {
    return new Function(...args.keys(), `return (e, to) => { ${body} };`)(...args.values()) as (e: AccessEntry, to: LineBuffer) => void;
  } catch {
    return null;
  }
}
