import type { IncomingMessage } from 'node:http';

/**
 * A request line as RFC 9112 spells it: token SP target SP HTTP-version CR. llhttp lets some others through
 * (two spaces, FACTS: HTTP/0.9 `GET /` which it then waits on), so the first one of a connection is checked.
 */
const REQUEST_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^\x00-\x20\x7f]+ HTTP\/\d\.\d\r$/;

/** False when `buf` begins (after empty lines) with a whole request line that is not well-formed. */
export function firstLineOk(buf: Buffer): boolean {
  let start = 0;
  while (buf[start] === 0x0d && buf[start + 1] === 0x0a) start += 2; // empty lines before a request
  const eol = buf.indexOf(0x0a, start);
  return eol < 0 || REQUEST_LINE.test(buf.toString('latin1', start, eol));
}

type ParsingSocket = { parser?: { getCurrentBuffer?: () => Buffer } | null };

/**
 * The first line of a connection's first request, checked from the request event instead of by reading the
 * connection's first bytes in JavaScript (which costs every new connection a trip through the stream
 * machinery). During the 'request' event Node's parser is still inside the chunk that ended the header
 * section, and its `getCurrentBuffer()` (internal: HTTPParser, kept to this function) gives a copy of it.
 * When that chunk does not start with this request (the request line came in an earlier chunk) there is
 * nothing to check, as when the line is not all there.
 */
export function requestLineOk(req: IncomingMessage): boolean {
  const parser = (req.socket as unknown as ParsingSocket).parser;
  const buf = parser?.getCurrentBuffer?.();
  if (!buf) return true;
  const method = req.method ?? '';
  let start = 0;
  while (buf[start] === 0x0d && buf[start + 1] === 0x0a) start += 2;
  if (buf.toString('latin1', start, start + method.length) !== method) return true;
  return firstLineOk(buf);
}
