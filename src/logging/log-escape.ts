/**
 * The access log's escaping of what the client, the app or the environment gave: every value between the
 * format's own text. `"` becomes `\"` (as Gunicorn's SafeAtoms has it), `\` becomes `\\` (as Apache's: else a
 * `\"` sent would end a quoted field for a reader that undoes the escapes), and a control character (0x00-0x1f,
 * 0x7f) `\xHH` (as Apache's and nginx's). A line break or a terminal escape in a value (a Basic user is any
 * bytes the client base64-encoded) must not forge a line, nor reach the terminal of whoever reads the log.
 * Every other byte stays as sent: UTF-8 in a header stays UTF-8.
 *
 * The values are byte strings (one character a byte, as Node's parser gives them), but one the app set itself
 * can hold characters past 0xff (a `req.url` it decoded in place, `%C4%8A` being U+010A): those are written as
 * their UTF-8 bytes. Stored as the byte of their low 8 bits, U+010A would be a raw line feed, U+0122 a quote.
 */

const HEX = '0123456789abcdef';

/** Whether the character `c` (a UTF-16 unit; a byte, in the log's byte strings) is written escaped. */
export const needsEscape = (c: number): boolean => c < 0x20 || c === 0x22 || c === 0x5c || c === 0x7f;

/**
 * The bytes needsEscape() names, as a table (LogSink.putValue, and the access log's compiled line): looking a
 * byte up cost less than the comparisons (about 20 ns against 70 for a 100-byte User-Agent; the copy alone,
 * 220-320). A character past 0xff (never in Node's byte strings, but in a value the app set: a `req.url` it
 * decoded) is not stored as its low byte (U+010A would be a line feed): escapeFrom writes it as its UTF-8 bytes.
 */
export const ESCAPED = new Uint8Array(256);
for (let c = 0; c < 256; c++) if (needsEscape(c)) ESCAPED[c] = 1;

/** `v` escaped; `v` itself when nothing in it needs escaping (nor any character past 0xff). */
export function escapeLogValue(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c > 0xff || needsEscape(c)) return v.slice(0, i) + escapeFrom(v, i);
  }
  return v;
}

/** The escaped text of `v` from `from` on (LogSink.putValue goes on with it from the first such character). */
export function escapeFrom(v: string, from: number): string {
  let out = '';
  for (let i = from; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += '\\' + v[i];
    else if (c < 0x20 || c === 0x7f) out += '\\x' + HEX[c >> 4] + HEX[c & 15];
    else if (c > 0xff) {
      // Its UTF-8 bytes, as a byte string (a surrogate pair is one character; a lone surrogate is U+FFFD).
      const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < v.length && (v.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
      out += Buffer.from(v.slice(i, pair ? i + 2 : i + 1), 'utf8').toString('latin1');
      if (pair) i++;
    } else out += v[i];
  }
  return out;
}
