/**
 * What the wrappers of a response prototype's write() and end() share (the access log's body count,
 * logging/body-bytes.ts; the Content-Length hold, content-length.ts): each wraps the methods once per process
 * or thread, and weighs the chunks the app gives.
 */
import type { ServerResponse } from 'node:http';

/** Node's own fields of a response that the wrappers read. */
export type NodeResponse = ServerResponse & {
  /** False for a response that sends no body: a HEAD's from the start, a 204's or 304's once the head is made. */
  _hasBody?: boolean;
  /** The Content-Length of the head, once it is made (the app's, or the one a first end(body) computed), else null. */
  _contentLength?: number | null;
};

/** write() and end() as the app calls them. */
export type Write = (this: ServerResponse, chunk: unknown, encoding?: unknown, cb?: unknown) => unknown;

/** The bytes a chunk given to write() or end() makes: a string in its encoding (utf8 by default), or a view's. */
export function chunkBytes(chunk: unknown, encoding: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (ArrayBuffer.isView(chunk)) return chunk.byteLength;
  return 0;
}

/** Whether the response still sends what is written to it: not ended, not destroyed. */
export function stillSends(res: ServerResponse): boolean {
  return !res.destroyed && !res.writableEnded;
}

/**
 * Replaces write() and end() of `proto` with wrappers made from the originals (`end` left as it is when `wrap`
 * gives none for it). False, and nothing done, when `done` already holds the prototype.
 */
export function wrapWriteAndEnd(proto: ServerResponse, done: WeakSet<object>, wrap: (write: Write, end: Write) => { write: Write; end?: Write }): boolean {
  if (done.has(proto)) return false;
  done.add(proto);
  const made = wrap(proto.write as unknown as Write, proto.end as unknown as Write);
  for (const [name, value] of [['write', made.write], ['end', made.end]] as const) {
    if (value) Object.defineProperty(proto, name, { configurable: true, writable: true, value });
  }
  return true;
}
