/**
 * `--log-format json`: the pieces both logs build their JSON lines from. A line is one JSON object, UTF-8,
 * ended by a newline; a value never holds a raw newline, so a stack or a multi-line message stays one line.
 *
 * Access-log values are byte strings (one character a byte, as Node's parser gives the request line and the
 * headers): JSON is UTF-8, and a client can send any bytes. A valid UTF-8 sequence is written as it came (a
 * UTF-8 User-Agent reads as itself); a byte that is not part of one is written `\u00XX`, the character Node
 * itself reads it as (latin1), so that the line stays valid JSON for every reader and the byte's value is
 * kept (U+FFFD would lose it). A character past 0xff, which only a value the app set can hold (a `req.url` it
 * decoded), is written as its UTF-8 bytes.
 */

export type LogFormat = 'text' | 'json';
/** Which process writes the line: the master (arbiter) or a worker (a gthread thread is its worker's). */
export type LogRole = 'master' | 'worker';

const HEX = '0123456789abcdef';

/**
 * The bytes of a byte string that a JSON string cannot hold as they are: controls, `"`, `\`, DEL (kept off
 * the reader's terminal, as the text log's escaping does), and every byte past 0x7f, which is checked as
 * UTF-8 (jsonBytesFrom). LogSink.putJson copies the others in the loop that checks them.
 */
export const JSON_ESCAPED = new Uint8Array(256);
for (let c = 0; c < 256; c++) if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x7f) JSON_ESCAPED[c] = 1;

/** The escape of an ASCII character (a control, `"`, `\`, DEL) inside a JSON string. */
function asciiEscape(c: number): string {
  switch (c) {
    case 0x22:
      return '\\"';
    case 0x5c:
      return '\\\\';
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
    default:
      return '\\u00' + HEX[c >> 4] + HEX[c & 15];
  }
}

const cont = (c: number): boolean => c >= 0x80 && c <= 0xbf;

/** How many bytes of `v` from `i` make one valid UTF-8 sequence (RFC 3629), or 0. */
function utf8Length(v: string, i: number): number {
  const c = v.charCodeAt(i);
  const c1 = v.charCodeAt(i + 1);
  if (c >= 0xc2 && c <= 0xdf) return cont(c1) ? 2 : 0;
  const c2 = v.charCodeAt(i + 2);
  if (c >= 0xe0 && c <= 0xef) {
    // No overlong form (E0 needs A0-BF next), no surrogate (ED needs 80-9F next).
    const ok1 = c === 0xe0 ? c1 >= 0xa0 && c1 <= 0xbf : c === 0xed ? c1 >= 0x80 && c1 <= 0x9f : cont(c1);
    return ok1 && cont(c2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    // No overlong form (F0 needs 90-BF next), nothing past U+10FFFF (F4 needs 80-8F next).
    const ok1 = c === 0xf0 ? c1 >= 0x90 && c1 <= 0xbf : c === 0xf4 ? c1 >= 0x80 && c1 <= 0x8f : cont(c1);
    return ok1 && cont(c2) && cont(v.charCodeAt(i + 3)) ? 4 : 0;
  }
  return 0;
}

/**
 * The inside of a JSON string for the byte string `v` from `from` on, as a byte string (its UTF-8 bytes, one
 * character each): see the module's comment. LogSink.putJson goes on with it from the first byte to escape.
 */
export function jsonBytesFrom(v: string, from: number): string {
  let out = '';
  for (let i = from; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x80) out += JSON_ESCAPED[c] === 1 ? asciiEscape(c) : v[i];
    else if (c > 0xff) {
      // Its UTF-8 bytes (a surrogate pair is one character; a lone surrogate is U+FFFD).
      const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < v.length && (v.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
      out += Buffer.from(v.slice(i, pair ? i + 2 : i + 1), 'utf8').toString('latin1');
      if (pair) i++;
    } else {
      const n = utf8Length(v, i);
      if (n === 0) out += '\\u00' + HEX[c >> 4] + HEX[c & 15];
      else {
        out += v.slice(i, i + n);
        i += n - 1;
      }
    }
  }
  return out;
}

/** The inside of a JSON string for the byte string `v` (a byte string too); `v` itself when nothing needs it. */
export function jsonBytes(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c > 0xff || JSON_ESCAPED[c] === 1) return v.slice(0, i) + jsonBytesFrom(v, i);
  }
  return v;
}

/**
 * `2026-12-06T06:01:02.123Z` for a performance.now() already read (an access log entry's end), the wall clock
 * read once a second as the text log's ClockCache does: a line costs no clock read and no Date of its own.
 */
/** `000` to `999`. */
export const THREE_DIGITS: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));

export class IsoClock {
  #from = Infinity;
  #until = -Infinity;
  /** The milliseconds past the second at `#from`. */
  #ms = 0;
  #prefix = '';
  /** `#prefix` as bytes: a line copies these (a slice of the ISO text is a sliced string, slow to read). */
  #prefixBytes = new Uint8Array(20);
  at(mono: number): string {
    const ms = this.millis(mono);
    return this.#prefix + THREE_DIGITS[ms] + 'Z';
  }

  /**
   * The milliseconds of `mono`'s second; the second itself, `2026-12-06T06:01:02.`, is `prefix` after this
   * call. In two parts so that a line copies the cached text as it is, with no string made for it.
   */
  millis(mono: number): number {
    if (mono >= this.#until || mono < this.#from) {
      const now = Date.now();
      this.#ms = now % 1000;
      this.#from = mono;
      this.#until = mono + 1000 - this.#ms;
      this.#prefix = new Date(now - this.#ms).toISOString().slice(0, 20);
      this.#prefixBytes = Buffer.from(this.#prefix, 'latin1');
    }
    return Math.min(999, this.#ms + Math.floor(mono - this.#from));
  }

  get prefix(): string {
    return this.#prefix;
  }

  /** `prefix` as its bytes, 20 of them (until the year 10000). */
  get prefixBytes(): Uint8Array {
    return this.#prefixBytes;
  }
}

/** What an error-log line carries besides its message: who wrote it, and the fields the code has. */
export interface JsonHead {
  readonly role: LogRole;
  /** Fields of every line of this log (a gthread thread's number). */
  readonly fields?: Readonly<Record<string, string | number>> | undefined;
}

/** `,"key":value` for each field. */
function fieldsText(fields: Readonly<Record<string, string | number>> | undefined): string {
  let out = '';
  if (fields) for (const k in fields) out += `,${JSON.stringify(k)}:${JSON.stringify(fields[k])}`;
  return out;
}

/** The thrown value as pino's `err` field: its type, message and stack (the stack as the text log shows it). */
export interface ErrField {
  /** Unknown where only the stack's text is at hand (a worker's failed boot, as it reported it). */
  readonly type?: string;
  readonly message?: string;
  readonly stack?: string;
}

/**
 * One error-log line as JSON (with its newline): time, level, pid, role and msg first, as pino orders its
 * own (so a pipeline made for pino reads them), then the fields, then `err`. Text (a JavaScript string), not
 * a byte string: JSON.stringify escapes it (a lone surrogate as `\udXXX`).
 */
export function errorLogJson(
  level: string,
  msg: string,
  head: JsonHead,
  fields?: Readonly<Record<string, string | number>>,
  err?: ErrField,
): string {
  return (
    `{"time":"${new Date().toISOString()}","level":"${level}","pid":${process.pid},"role":"${head.role}","msg":${JSON.stringify(msg)}` +
    `${fieldsText(head.fields)}${fieldsText(fields)}${err ? `,"err":${JSON.stringify(err)}` : ''}}\n`
  );
}

/**
 * What the app wrote to stdout or stderr (--capture-output) as one JSON line, given as bytes: one write is one
 * line (a multi-line console.error, a stack, stays one), its final newline dropped. stdout's lines are `info`
 * and stderr's `error`, as log collectors (Datadog's agent, for one) take a container's streams.
 */
export function capturedJson(bytes: Uint8Array, stream: 'stdout' | 'stderr', head: JsonHead): Buffer {
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 10 || bytes[end - 1] === 13)) end--;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('latin1');
  const level = stream === 'stdout' ? 'info' : 'error';
  const line =
    `{"time":"${new Date().toISOString()}","level":"${level}","pid":${process.pid},"role":"${head.role}","msg":"${jsonBytes(text)}"` +
    `${fieldsText(head.fields)},"stream":"${stream}"}\n`;
  return Buffer.from(line, 'latin1');
}
