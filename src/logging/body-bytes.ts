/**
 * The body bytes a response sent, for the access log's `%(b)s` and `%(B)s` when no Content-Length says it: a
 * chunked response (a stream, Server-Sent Events, a Fetch Response with a stream body) and any HTTP/2 response
 * without one. Gunicorn logs the bytes its Response wrote (`resp.sent`); Node keeps no such count, so the
 * worker counts what the app writes.
 *
 * The count is kept by `write()` and `end()` of the response prototype (Node's ServerResponse and, when HTTP/2
 * serves, Http2ServerResponse), wrapped once per process or thread, and only when the access log's format
 * uses `b` or `B`. A response with a Content-Length costs three property reads in `end()` and counts nothing.
 * Bytes given to a response already ended or destroyed, or to a response that has no body (HEAD, 204, 304),
 * are not counted: Node does not send them.
 */
import type { ServerResponse } from 'node:http';
import { chunkBytes, stillSends, wrapWriteAndEnd, type NodeResponse, type Write } from '../http/response-methods.js';

/** The count on a response, once something was written with no length to go by. */
const kSent = Symbol('tunicorn.sent');

type Counted = NodeResponse & { [kSent]?: number };

const wrapped = new WeakSet<object>();

function add(res: Counted, chunk: unknown, encoding: unknown): void {
  if (res._hasBody === false || (res as { req?: { method?: string } }).req?.method === 'HEAD') return;
  res[kSent] = (res[kSent] ?? 0) + chunkBytes(chunk, encoding);
}

/**
 * Counts the body bytes of every response made from `proto` (ServerResponse.prototype, or HTTP/2's
 * Http2ServerResponse.prototype); idempotent. `endWrites`: the prototype's end(chunk) writes its chunk
 * through this.write() (HTTP/2's does), so end() only starts the count at 0.
 */
export function countBodyBytes(proto: ServerResponse, endWrites = false): void {
  wrapWriteAndEnd(proto, wrapped, (write, end) => ({
    write: function write_(this: Counted, chunk: unknown, encoding?: unknown, cb?: unknown): unknown {
      // Bytes given to a response already ended or destroyed are not sent (add() leaves out HEAD, 204, 304).
      const sent = stillSends(this);
      const r = write.call(this, chunk, encoding, cb);
      // After the call: the head (and with it _hasBody) is made by the first write.
      if (sent) add(this, chunk, encoding);
      return r;
    } as Write,
    end: endWrites
      ? // Its chunk is counted by write(); a body that ends with nothing written is 0 bytes, not unknown.
        (function end_(this: Counted, chunk?: unknown, encoding?: unknown, cb?: unknown): unknown {
          if (stillSends(this)) this[kSent] ??= 0;
          return end.call(this, chunk, encoding, cb);
        } as Write)
      : (function end_(this: Counted, chunk?: unknown, encoding?: unknown, cb?: unknown): unknown {
          // Counted once writes began, or when the head went out without a Content-Length (writeHead(), then
          // end(body)): the body is chunked, or runs to the connection's close (HTTP/1.0). Otherwise the length
          // is Node's `_contentLength` (from the app's header, or computed by a first end(body)): bodyLength
          // reads it, and the usual response costs three property reads here.
          if (this[kSent] !== undefined || (this._contentLength == null && this.headersSent)) {
            if (stillSends(this)) {
              if (chunk !== null && chunk !== undefined && typeof chunk !== 'function') add(this, chunk, encoding);
              // Nothing written: 0 bytes, as Gunicorn logs a response without a body.
              this[kSent] ??= 0;
            }
          }
          return end.call(this, chunk, encoding, cb);
        } as Write),
  }));
}

/** The body bytes counted for `res`, or undefined when the response's length is to be read from its head. */
export function sentBytes(res: ServerResponse): number | undefined {
  return (res as Counted)[kSent];
}

/** Whether an access-log format needs the body length (`%(b)s` or `%(B)s`). */
export function formatNeedsBodyBytes(format: string): boolean {
  return /%\([bB]\)s/.test(format);
}
