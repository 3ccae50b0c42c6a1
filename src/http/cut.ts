import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import net from 'node:net';

/**
 * How long a connection cut mid-response waits for the client to close its side before it is closed anyway:
 * what a client that reads gets in that time is whole (see lingerClose); one that never reads, or keeps
 * sending, holds its connection (a sync worker, a gthread thread) no longer than this.
 */
export const LINGER_MS = 1000;

/** RST_STREAM's INTERNAL_ERROR (RFC 9113 section 7): the stream failed on the server's side. */
const NGHTTP2_INTERNAL_ERROR = 2;

/** Connections cut and waiting for their client to close: the server's clientError handler leaves them be. */
const lingering = new WeakSet<net.Socket>();

export function isLingering(socket: net.Socket): boolean {
  return lingering.has(socket);
}

function discard(): void {}

function destroySocket(this: net.Socket): void {
  this.destroy();
}

/**
 * Makes what the app writes to `res` from now on go nowhere, without an error: the client has been given
 * the answer it gets (a cut, a 503), and nothing may follow it on the connection.
 */
export function mute(res: ServerResponse): void {
  const silence = res as unknown as Record<string, unknown>;
  for (const m of ['writeHead', 'setHeader', 'appendHeader', 'removeHeader', 'flushHeaders', 'write', 'end'])
    silence[m] = m === 'write' ? () => true : () => res;
}

/**
 * Ends a response whose head has gone out and which cannot be finished (the app threw, its body stream
 * failed, request_deadline passed): the client must get what was sent and see that the rest is missing.
 * HTTP/1.1: the connection is half-closed after what was written (a chunked body without its last chunk, or
 * fewer bytes than its Content-Length: see lingerClose). HTTP/2: the stream is reset with INTERNAL_ERROR after
 * its DATA frames, and the session's other streams go on.
 */
export function cutResponse(res: ServerResponse): void {
  mute(res);
  const stream = (res as unknown as { stream?: ServerHttp2Stream }).stream;
  if (stream !== undefined) {
    // close() sends RST_STREAM once the data written before it is out; destroy() would drop what is queued.
    if (!stream.destroyed && !stream.closed) stream.close(NGHTTP2_INTERNAL_ERROR);
    return;
  }
  const socket = res.socket as net.Socket | null;
  if (socket !== null) {
    // What the app wrote in this tick is sent first. Node 26 holds a corked response's chunked writes, head
    // included, in the response itself until it uncorks at the end of the tick: after the half-close below,
    // that write would be refused, and the client would get nothing. (Node 20 holds them in the socket, whose
    // end() sends them.)
    while (res.writableCorked > 0) res.uncork();
    return lingerClose(socket);
  }
  // Not on the connection yet: queued behind the response to an earlier pipelined request. Node writes its
  // head and body when that one is done, right after this event.
  if (!res.destroyed) res.once('socket', (s: net.Socket) => process.nextTick(lingerClose, s));
}

/**
 * Closes an HTTP/1 connection in the middle of a response, so that the client keeps what was sent: a lingering
 * close, as nginx's lingering_close. A plain close(2) with bytes from the client still unread (a pipelined
 * request, a request body the app did not read) sends an RST, and the client's kernel then drops what it had
 * received and not yet read: the client saw a reset, not the part of the response that was sent. Instead the
 * socket stops serving requests (Node's parser gets no more bytes), sends what was written and a FIN, then reads
 * and discards until the client closes its side, or LINGER_MS pass.
 */
export function lingerClose(socket: net.Socket): void {
  if (socket.destroyed || lingering.has(socket)) return;
  lingering.add(socket);
  // Node's parser reads the socket's handle itself (it consumes the stream). Adding a 'data' listener makes
  // Node hand the reading back to the socket (its listener wrapper unconsumes the parser), and without Node's
  // own 'data' listener the bytes reach no parser: a pipelined request is never served.
  for (const l of socket.listeners('data')) socket.off('data', l as (...a: unknown[]) => void);
  socket.on('data', discard);
  // Node's own close once a response that closes the connection is sent (destroySoon: a close as soon as the
  // FIN is out) would reset what the client has not read yet: the timer and the client's FIN close it instead.
  (socket as net.Socket & { destroySoon: () => void }).destroySoon = discard;
  socket.on('end', destroySocket);
  socket.resume();
  // Paused by Node's server while the request's body went unread, the handle stays stopped through resume()
  // (the stream's own state never saw those reads): started as Node's server itself does (onSocketResume).
  const handle = (socket as net.Socket & { _handle?: { reading?: boolean; readStart?: () => number } | null })._handle;
  if (handle && handle.reading === false && handle.readStart) {
    handle.reading = true;
    handle.readStart();
  }
  socket.end();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('close', () => clearTimeout(timer));
}

/** What lingerWhileReceiving reads of a socket: set by Node's HTTP server on the connections it serves. */
type ServedSocket = net.Socket & { server?: unknown; parser?: { incoming?: { complete: boolean } | null } | null };

const wrapped = new WeakSet<object>();

/** Replaces `proto[key]` with what `make` builds around the original, once per prototype. */
function wrapOnce<P extends object, K extends keyof P>(proto: P, key: K, make: (original: P[K]) => P[K]): void {
  if (wrapped.has(proto)) return;
  wrapped.add(proto);
  Object.defineProperty(proto, key, { configurable: true, writable: true, value: make(proto[key]) });
}

/**
 * Makes Node's close of a served HTTP/1 connection a lingering one (lingerClose) while a request on it is still
 * coming in: a response the app gave without reading the request body (a 413, a redirect, a 401) on a
 * connection that closes after it (the sync class, the client's `Connection: close` or HTTP/1.0, `keepalive` 0,
 * a worker stopping or at max_requests) lost the whole response to a client that read it a moment later, as a
 * cut one did. Node closes such a connection with destroySoon() once the response is sent (resOnFinish, Node 20
 * to 26); its parser keeps the request it is reading as `parser.incoming` until that request's last byte came,
 * and it is that request's unread bytes, or a pipelined one's, that turn the close into a reset. Any other
 * close (a request whole, the usual case) is Node's own.
 *
 * Wraps the socket prototype's destroySoon once per process or thread: nothing is stored on a socket and no
 * request pays anything; a close costs a few property reads. Only the sockets of a server (`server`, set by
 * net.Server and by Node's HTTP server) with an HTTP parser: the app's own outgoing connections, whose `server`
 * is null (undefined for a TLS client), are left alone (Node's HTTP client closes with destroySoon too, once a
 * response is whole).
 */
export function lingerWhileReceiving(proto: net.Socket = net.Socket.prototype): void {
  wrapOnce(proto, 'destroySoon', (destroySoon) =>
    function destroySoonLingering(this: ServedSocket): void {
      if (this.server != null && this.parser?.incoming?.complete === false) return lingerClose(this);
      destroySoon.call(this);
    },
  );
}

/**
 * An app's `res.destroy()` of an HTTP/2 response it has not finished resets the stream with INTERNAL_ERROR, as a
 * cut one is (cutResponse). Node's compatibility layer resets it with NO_ERROR, which RFC 9113 (section 8.1)
 * gives a server for after a complete response (to stop the request body): Node's client and others took the
 * part sent for the whole response, and the truncation went unseen. INTERNAL_ERROR, not CANCEL: the response
 * failed on the server's side (section 7), where CANCEL says the stream is no longer needed, which is the
 * requester's word. A destroy with an error, or once the response is whole, is Node's own. Wraps the prototype's
 * destroy once per process or thread: responses that are not destroyed pay nothing.
 */
export function resetUnfinished(proto: Http2ServerResponse): void {
  wrapOnce(proto, 'destroy', (destroy) =>
    function destroyUnfinished(this: Http2ServerResponse, err?: Error): Http2ServerResponse {
      const stream = this.stream as ServerHttp2Stream | undefined;
      if (err == null && stream && !stream.closed && !stream.destroyed && !stream.writableFinished) stream.close(NGHTTP2_INTERNAL_ERROR);
      return destroy.call(this, err);
    },
  );
}
