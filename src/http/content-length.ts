/**
 * Holds a (req, res) listener's response to the Content-Length it set, as Gunicorn's Response does: Node sends
 * whatever the app writes, so a body longer than its Content-Length puts the bytes past it where a keep-alive
 * client (or a proxy that pools its connections to the server) reads the next response, and a shorter one
 * makes it read the start of the next response as the rest of this body. One client's bytes would then be
 * read as another's answer.
 *
 * - The bytes past the Content-Length are not sent (Gunicorn's `write()` drops them too): the connection stays
 *   in step, and the error log says how many there were once the app ends the response.
 * - A response ended short of its Content-Length has its connection closed once what it sent is out (with
 *   `Connection: close` in its head when the head had not gone yet): the client sees a body cut short, never
 *   the next response in its place. The error log says so.
 *
 * Over HTTP/2 (Node's Http2ServerResponse) the body is held and the error log says so the same way: its frames
 * keep the connection in step whatever the length says, but a client fails a response whose body does not match
 * it (RFC 9113 section 8.1.1), with no word in the log of why.
 *
 * Not checked: responses that send no body whatever the length says (HEAD, 1xx, 204, 304), chunked ones, and
 * those whose `strictContentLength` is set (Node throws itself; the Fetch bridge's streams use that).
 * `write()` and `end()` of the response prototype are wrapped once per process or thread; a response without
 * a Content-Length costs a header lookup in `end()` (and one property read in each `write()`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { lingerClose } from './cut.js';
import { chunkBytes, stillSends, wrapWriteAndEnd, type NodeResponse, type Write } from './response-methods.js';

/** The Content-Length held to, and the body bytes written against it; null once known to be unchecked. */
interface Frame {
  readonly length: number;
  sent: number;
  /** Bytes the app wrote past the length (not sent). */
  dropped: number;
}

const kFrame = Symbol('tunicorn.frame');

type Held = NodeResponse & {
  [kFrame]?: Frame | null;
  strictContentLength?: boolean;
  req?: IncomingMessage;
};

/** Says what was wrong with a response (the worker's error log); set by each HTTP server made in the process. */
export type FramingReport = (req: IncomingMessage | undefined, message: string) => void;

let report: FramingReport = () => {};
const wrapped = new WeakSet<object>();

/** The first `n` bytes of a chunk, as bytes. */
function head(chunk: unknown, encoding: unknown, n: number): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8').subarray(0, n);
  const view = chunk as ArrayBufferView;
  return Buffer.from(view.buffer, view.byteOffset, n);
}

/** The HTTP/2 stream of a response (Node's compatibility one), whose `headRequest` says HEAD. */
function streamOf(res: Held): { headRequest?: boolean } | undefined {
  return (res as { stream?: { headRequest?: boolean } }).stream;
}

/** The Content-Length to hold `res` to, or null when none applies. */
function lengthOf(res: Held): number | null {
  const stream = streamOf(res);
  // HTTP/2: the response keeps its header fields once sent, and has none of Node's HTTP/1 fields.
  if (stream !== undefined) return stream.headRequest ? null : lengthInHead(res);
  // Node checks it, or sends no body: `_hasBody` is false from the start for a HEAD request (whatever a middleware
  // later made of `req.method`), and once the head is made for a 204 or a 304.
  if (res.strictContentLength || (res as { _hasBody?: boolean })._hasBody === false) return null;
  if (res.headersSent) return res._hasBody !== false && !res.chunkedEncoding ? asLength(res._contentLength) : null;
  return lengthInHead(res);
}

/** The Content-Length of the fields `res` has (not sent yet, or HTTP/2's), or null when none applies. */
function lengthInHead(res: Held): number | null {
  const value = res.getHeader('content-length');
  const status = res.statusCode;
  if (value === undefined || status < 200 || status === 204 || status === 304 || res.hasHeader('transfer-encoding')) return null;
  return asLength(Number(Array.isArray(value) ? value[0] : value));
}

/**
 * A length to hold a body to, or null. Node's own `_contentLength` is `+value` of the head's field: NaN for a
 * value that is no number (`5, 5`, a list of one length; the app's own mistake otherwise), which held to would
 * send no byte of the body at all, the head claiming some.
 */
function asLength(n: number | null | undefined): number | null {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** The frame of `res`, made when the first body byte is written (or at end()), then kept. */
function frameOf(res: Held): Frame | null {
  let frame = res[kFrame];
  if (frame !== undefined) return frame;
  const length = lengthOf(res);
  frame = length === null ? null : { length, sent: 0, dropped: 0 };
  res[kFrame] = frame;
  return frame;
}

/**
 * The part of `chunk` that fits in the frame (the whole chunk, as it was, when it fits), counted.
 */
function fit(frame: Frame, chunk: unknown, encoding: unknown): unknown {
  const n = chunkBytes(chunk, encoding);
  const room = frame.length - frame.sent;
  if (n <= room) {
    frame.sent += n;
    return chunk;
  }
  frame.sent += room;
  frame.dropped += n - room;
  return head(chunk, encoding, room);
}

/**
 * Holds every response made from `proto` (http.ServerResponse.prototype, or HTTP/2's
 * Http2ServerResponse.prototype) to its Content-Length; idempotent.
 */
export function holdToContentLength(proto: ServerResponse, onMismatch: FramingReport): void {
  report = onMismatch;
  wrapWriteAndEnd(proto, wrapped, (write, end) => ({
    write: function write_(this: Held, chunk: unknown, encoding?: unknown, cb?: unknown): unknown {
      if (this[kFrame] === null || !stillSends(this) || chunk === null || chunk === undefined) return write.call(this, chunk, encoding, cb);
      const frame = frameOf(this);
      return write.call(this, frame ? fit(frame, chunk, encoding) : chunk, encoding, cb);
    } as Write,
    end: function end_(this: Held, chunk?: unknown, encoding?: unknown, cb?: unknown): unknown {
      if (this[kFrame] === null || !stillSends(this)) return end.call(this, chunk, encoding, cb);
      const body = chunk !== null && chunk !== undefined && typeof chunk !== 'function';
      if (this[kFrame] === undefined) {
        // Nothing written before (the usual `end(body)`): the whole body is this chunk, checked with no frame
        // made (no object, no property added to the response).
        const length = lengthOf(this);
        if (length === null || (body ? chunkBytes(chunk, encoding) : 0) === length) return end.call(this, chunk, encoding, cb);
      }
      const frame = frameOf(this);
      if (!frame) return end.call(this, chunk, encoding, cb);
      const req = this.req;
      const what = `the response's Content-Length is ${frame.length}`;
      const past = (): void =>
        report(req, `${what}, but the app wrote ${frame.length + frame.dropped} byte(s) of body: the ${frame.dropped} past it were not sent`);
      if (streamOf(this) !== undefined) {
        // HTTP/2: end(chunk) writes its chunk through write(), which fits it. The frames keep the connection in
        // step; a body short of the length is one the client fails (RFC 9113 section 8.1.1).
        const ended = end.call(this, chunk, encoding, cb);
        if (frame.dropped > 0) past();
        else if (frame.sent < frame.length) report(req, `${what}, but the app ended it after ${frame.sent} byte(s) of body: an HTTP/2 client fails such a response`);
        return ended;
      }
      const sent = body ? fit(frame, chunk, encoding) : chunk;
      if (frame.dropped > 0) {
        past();
      } else if (frame.sent < frame.length) {
        report(req, `${what}, but the app ended it after ${frame.sent} byte(s) of body: the connection was closed, so that the client does not read the next response as the rest of this one`);
        if (this.headersSent) {
          // Before Node's own 'finish' listener, which lets go of the socket (and may start the next response on it).
          // A lingering close: the client keeps the bytes that were sent, and sees that the rest never came.
          this.prependOnceListener('finish', () => {
            if (this.socket) lingerClose(this.socket);
          });
        } else {
          this.shouldKeepAlive = false;
        }
      }
      return end.call(this, sent, encoding, cb);
    } as Write,
  }));
}
