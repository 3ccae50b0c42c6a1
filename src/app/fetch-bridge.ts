import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { appWork } from './app-work.js';
import { AppResultError } from './errors.js';
import { headersFromRaw, lazyHeaders, standardHeaders } from './fetch-headers.js';
import { forwardMembers } from './forward.js';
import { connectionField, sendPlain } from './fetch-response.js';
import { clientAddressOf, isSecure } from '../http/forwarded.js';
import { ABSOLUTE_TARGET, sameName } from '../http/guard.js';

/** A Fetch handler: Bun, Deno, Cloudflare Workers and Hono style. */
export type FetchHandler = (request: Request, ...rest: unknown[]) => Response | Promise<Response>;

/**
 * Where `clientAddress(request)` finds the Node request. A registered symbol: the app may import `tunicorn`
 * through jiti, which gives it its own copy of this module.
 */
const kIncoming = Symbol.for('tunicorn.incoming');
const kResponse = Symbol('tunicorn.response');
const kReal = Symbol('tunicorn.real');
const kHeaders = Symbol('tunicorn.headers');
const kAbort = Symbol('tunicorn.abort');
const kUrl = Symbol('tunicorn.url');
const kUsed = Symbol('tunicorn.used');

interface LazyRequest {
  [kIncoming]: IncomingMessage;
  [kResponse]: ServerResponse;
  [kReal]?: Request;
  [kHeaders]?: Headers;
  [kAbort]?: AbortController;
  [kUrl]?: string;
  /** The body was read whole by one of the readers below, without the standard Request. */
  [kUsed]?: boolean;
}

/**
 * `request.url`: the URL as the standard Request serializes it (WHATWG URL), which is what `request.clone()`
 * and any Request made from this one say too. The usual target (a path and query of plain characters, no
 * `.` or `..` segment) is appended as it is to the connection's origin, serialized once per host (HostOrigin);
 * any other goes through the URL parser: dot segments removed, characters percent-encoded, a Host in upper
 * case, with its default port or an IPv4 address in another spelling (`127.1`) canonicalized.
 */
function fullUrl(req: IncomingMessage): string {
  const target = req.url ?? '/';
  const scheme = isSecure(req) ? 'https' : 'http';
  if (target.charCodeAt(0) !== 47) return serialized(otherFormUrl(req, target, scheme));
  const origin = originOf(scheme, hostOf(req));
  return PLAIN_TARGET.test(target) ? origin + target : serialized(origin + target);
}

/**
 * An origin-form target the URL parser serializes unchanged: segments that do not start with `.` or `%2e`
 * (so none is a dot segment), then any query; none of the characters the parser percent-encodes (controls,
 * space, non-ASCII, `"` `<` `>` everywhere, `'` in the query; `?` `^` `` ` `` `{` `}` in the path), nor `\`
 * (a `/` to it), `#` or `|`. Anything else is left to the parser.
 */
const PLAIN_TARGET = /^(?:\/(?!\.|%2[eE])[^\x00-\x20"#<>?\\^`{|}\x7f-\uffff/]*)+(?:\?[^\x00-\x20"#'<>\\\x7f-\uffff]*)?$/;

/** `url` as the URL parser serializes it; as it is should it not parse (the guard lets no such request by). */
function serialized(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}

/** The last scheme and Host seen by this worker (nearly every request names the same) and their origin. */
const lastOrigin = { scheme: '', host: '', origin: '' };

/** `scheme://host` serialized: lower case, default port dropped, an IP address canonical. */
function originOf(scheme: string, host: string): string {
  const m = lastOrigin;
  if (host !== m.host || scheme !== m.scheme) {
    let origin = `${scheme}://${host}`;
    try {
      const u = new URL(`${origin}/`);
      origin = `${u.protocol}//${u.host}`;
    } catch {
      // Left as it is.
    }
    m.scheme = scheme;
    m.host = host;
    m.origin = origin;
  }
  return m.origin;
}

/**
 * The URL for a target that is not origin-form, always with the scheme of the connection (or of a trusted
 * proxy's headers), never one the client wrote. Absolute-form (`GET http://host/p`, RFC 9112 section 3.2.2):
 * the target's authority (not the Host header's) without any userinfo, and its path. Asterisk-form
 * (`OPTIONS *`): the server itself, `scheme://host/` (RFC 9112 section 3.3: the path is empty). The guard
 * (src/http/guard.ts) refuses other forms and bad hosts before the app; what is left anyway gets `/`.
 */
function otherFormUrl(req: IncomingMessage, target: string, scheme: string): string {
  const m = ABSOLUTE_TARGET.exec(target);
  if (m === null || m[1] === '') return `${scheme}://${hostOf(req)}/`;
  const rest = target.slice(m[0].length);
  return `${scheme}://${m[1]}${rest.charCodeAt(0) === 47 ? rest : `/${rest}`}`;
}

/** The Host header (HTTP/2: :authority) from the raw list, without building `req.headers`. */
function hostOf(req: IncomingMessage): string {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (sameName(name, 'host')) return raw[i + 1] || localHost(req);
    if (name === ':authority') return raw[i + 1]!;
  }
  return localHost(req);
}

/**
 * The server's own address and port, for a request that names no host (HTTP/1.0 without Host, an empty Host:
 * RFC 9112 section 3.3); an IPv6 address in brackets, without a zone. `localhost` on a Unix socket.
 */
function localHost(req: IncomingMessage): string {
  const s = req.socket;
  const address = s?.localAddress;
  if (!address) return 'localhost';
  const host = address.includes(':') ? `[${address.replace(/%.*$/, '')}]` : address;
  return s.localPort ? `${host}:${s.localPort}` : host;
}

function abortOf(self: LazyRequest): AbortController {
  let ac = self[kAbort];
  if (!ac) {
    ac = new AbortController();
    self[kAbort] = ac;
    const res = self[kResponse];
    const fire = () => {
      if (!res.writableEnded) ac!.abort(new DOMException('The client closed the connection', 'AbortError'));
    };
    if (isClosed(res) || res.socket?.destroyed) fire();
    else res.once('close', fire);
  }
  return ac;
}

function urlOf(self: LazyRequest): string {
  return (self[kUrl] ??= fullUrl(self[kIncoming]));
}

function realRequest(self: LazyRequest): Request {
  let r = self[kReal];
  if (!r) {
    const req = self[kIncoming];
    const method = req.method ?? 'GET';
    const init: RequestInit & { duplex?: 'half' } = {
      method,
      headers: self[kHeaders] ? standardHeaders(self[kHeaders]) : headersFromRaw(req.rawHeaders),
      signal: abortOf(self).signal,
    };
    if (self[kUsed]) {
      // Read already: the standard Request gets an empty body that is read at once, so `bodyUsed`, `body`
      // and `clone()` answer as they would after any other read.
      init.body = new ReadableStream({ start: (c) => c.close() });
      init.duplex = 'half';
    } else if (bodyGone(self)) {
      // Its body stream fails every read with the reason, where undici's own error named neither.
      init.body = new ReadableStream({ start: (c) => c.error(new TypeError(BODY_GONE)) });
      init.duplex = 'half';
    } else if (hasBody(method)) {
      init.body = Readable.toWeb(req) as unknown as ReadableStream;
      init.duplex = 'half';
    }
    r = new Request(urlOf(self), init);
    self[kReal] = r;
    if (self[kUsed]) r.arrayBuffer().catch(() => {});
  }
  return r;
}

function hasBody(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD';
}

const BODY_GONE =
  'the request body is gone: it was not read before the Response was sent, and Node discards an unread body then; read it (await request.text(), .json(), ...) before returning the Response';

/**
 * A body nobody read before the response was sent: Node's server drops it once the response finishes
 * (`_dumped`, a field since Node 0.x), to keep the connection usable, and a read then could only fail.
 */
function bodyGone(self: LazyRequest): boolean {
  const req = self[kIncoming];
  return hasBody(req.method ?? 'GET') && !self[kUsed] && ((req as { _dumped?: boolean })._dumped === true || self[kResponse].writableFinished === true);
}

type Convert<T> = (chunks: Buffer[], size: number) => T;

/**
 * `await request.json()` and its kin, straight from Node's request: the chunks are gathered as they come and
 * converted once, where the standard Request would pipe them through a web stream (5 times the CPU for a
 * 15 KB JSON body, see docs/design.md). Only for a body nothing has read yet; otherwise, and for GET and HEAD,
 * the standard Request answers. Reading twice fails as it does there.
 */
function readWhole<T>(self: LazyRequest, name: string, convert: Convert<T>): Promise<T> {
  const req = self[kIncoming];
  if (self[kUsed]) return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
  if (self[kReal] === undefined && bodyGone(self)) return Promise.reject(new TypeError(BODY_GONE));
  if (self[kReal] !== undefined || !hasBody(req.method ?? 'GET') || req.readableDidRead || req.readableEnded || req.destroyed) {
    return (realRequest(self) as unknown as Record<string, () => Promise<T>>)[name]!();
  }
  self[kUsed] = true;
  return new Promise<T>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let ended = false;
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
    });
    req.once('end', () => {
      ended = true;
      try {
        resolve(convert(chunks, size));
      } catch (err) {
        reject(err);
      }
    });
    req.once('error', reject);
    // 'close' follows 'end' on every request; before it, the client went away mid-body. (An Error made on
    // every 'close' cost 4 us of CPU a request: V8 captures its stack.)
    req.once('close', () => {
      if (!ended) reject(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    });
  });
}

function toArrayBuffer(chunks: Buffer[], size: number): ArrayBuffer {
  // A fresh buffer of exactly the body (Node's chunks may be views into a larger shared one), not zeroed
  // first: every byte is written below (zeroing it cost more than the copy, `perf`).
  const out = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out.buffer as ArrayBuffer;
}

function toText(chunks: Buffer[], size: number): string {
  const b = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
  // Fetch's UTF-8 decode drops a byte order mark; invalid sequences become U+FFFD, as Buffer's decoder does.
  const bom = b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf;
  return b.toString('utf8', bom ? 3 : 0);
}

const wholeReaders = new Map<string, Convert<unknown>>([
  ['arrayBuffer', toArrayBuffer],
  ['bytes', (chunks, size) => new Uint8Array(toArrayBuffer(chunks, size))],
  ['text', toText],
  ['json', (chunks, size) => JSON.parse(toText(chunks, size))],
]);

/**
 * A Request built lazily: method, URL and headers come straight from Node's request; the standard Request
 * object (and its body stream) is made only when the handler touches anything else. It is an instance of
 * Request, so `instanceof Request` holds.
 */
const lazyRequestPrototype: object = Object.create(Request.prototype, {
  method: { get(this: LazyRequest) { return this[kIncoming].method ?? 'GET'; } },
  url: { get(this: LazyRequest) { return (this[kUrl] ??= fullUrl(this[kIncoming])); } },
  headers: {
    get(this: LazyRequest) {
      if (this[kReal]) return this[kReal].headers;
      return (this[kHeaders] ??= lazyHeaders(this[kIncoming].rawHeaders));
    },
  },
  signal: { get(this: LazyRequest) { return this[kReal]?.signal ?? abortOf(this).signal; } },
  bodyUsed: { get(this: LazyRequest) { return this[kReal]?.bodyUsed ?? this[kUsed] === true; } },
});
const ownMembers = new Set(['constructor', 'method', 'url', 'headers', 'signal', 'bodyUsed']);
const requestKeys = Object.getOwnPropertyNames(Request.prototype).filter((k) => !ownMembers.has(k));
forwardMembers<LazyRequest>(lazyRequestPrototype, Request.prototype, requestKeys.filter((k) => !wholeReaders.has(k)), realRequest);
for (const [name, whole] of wholeReaders) {
  // Only the readers this Node's Request has.
  if (!requestKeys.includes(name)) continue;
  Object.defineProperty(lazyRequestPrototype, name, {
    configurable: true,
    writable: true,
    value(this: LazyRequest) {
      return readWhole(this, name, whole);
    },
  });
}

/** Every field set in one order by one constructor: all lazy requests share one hidden class in V8. */
function LazyRequestObject(this: LazyRequest, req: IncomingMessage, res: ServerResponse): void {
  this[kIncoming] = req;
  this[kResponse] = res;
  this[kUrl] = undefined;
  this[kHeaders] = undefined;
  this[kReal] = undefined;
  this[kAbort] = undefined;
  this[kUsed] = false;
}
LazyRequestObject.prototype = lazyRequestPrototype;
const LazyRequestCtor = LazyRequestObject as unknown as new (req: IncomingMessage, res: ServerResponse) => Request;

export function lazyRequest(req: IncomingMessage, res: ServerResponse): Request {
  return new LazyRequestCtor(req, res);
}

/**
 * Where the proxy-header handling (forwarded_allow_ips) leaves the client's address on Node's request when a
 * trusted proxy forwarded it; the socket's peer address applies otherwise.
 */
export const kClientAddress = Symbol.for('tunicorn.clientAddress');

/**
 * The client's address for a Request tunicorn made, or for a Node request (a listener's `req`): behind a
 * trusted proxy, the one it forwarded. It stays that request's for as long as the app holds it, where
 * `req.socket.remoteAddress` is the connection's (see docs/security.md). Undefined for any other Request.
 */
export function clientAddress(request: Request | IncomingMessage): string | undefined {
  const req = (request as unknown as Partial<LazyRequest>)[kIncoming] ?? ('rawHeaders' in request ? request : undefined);
  if (!req) return undefined;
  return (req as unknown as { [kClientAddress]?: string })[kClientAddress] ?? clientAddressOf(req);
}

/** The Node request behind a Request tunicorn made. */
export function incomingMessage(request: Request): IncomingMessage | undefined {
  return (request as unknown as Partial<LazyRequest>)[kIncoming];
}

/** `empty`: the Response has no body, and says it with a Content-Length of 0 unless it gave one. */
function writeHead(res: ServerResponse, response: Response, empty = false): void {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((v, k) => {
    if (k !== 'set-cookie' && !connectionField(k, v, res)) headers[k] = v;
  });
  if (empty && headers['content-length'] === undefined) headers['content-length'] = '0';
  const cookies = response.headers.getSetCookie();
  if (cookies.length) headers['set-cookie'] = cookies;
  res.writeHead(response.status, response.statusText || undefined, headers);
}

/** Writes a Fetch Response to Node's response: a plain body at once, a stream with backpressure. */
export async function writeResponse(response: Response, res: ServerResponse, method: string | undefined): Promise<void> {
  if (!(response instanceof Response)) {
    throw new AppResultError(`the Fetch handler returned ${describeResult(response)}, not a Response`);
  }
  if (sendPlain(response, res)) return;
  // Status 0: there is no HTTP response to give, and Node's writeHead would throw a RangeError from our frames.
  if (response.type === 'error') {
    throw new AppResultError(
      'the Fetch handler returned Response.error() (a network error), which has no HTTP status; return a Response with one, such as new Response(null, { status: 502 })',
    );
  }
  const body = response.body;
  if (body === null || method === 'HEAD') {
    // No body: a length of 0 rather than an empty chunked body (Response.redirect(), a Response read after it
    // was made). HEAD keeps what the app said (a GET's length, or none); 204 and 304 carry no length.
    const empty = body === null && method !== 'HEAD' && response.status !== 204 && response.status !== 304;
    const length = empty ? response.headers.get('content-length') : null;
    // Any other length would have the client wait for bytes that never come (as sendPlain checks a plain body).
    if (length !== null && Number(length) !== 0) {
      throw new AppResultError(`the Fetch handler's Response says Content-Length: ${length}, but it has no body`);
    }
    writeHead(res, response, empty);
    res.end();
    if (body) await body.cancel().catch(() => {});
    return;
  }
  // Before the head: a body already read (or locked) throws here, and the client gets the 500, where a
  // throw after writeHead could only cut the connection with nothing sent.
  const reader = body.getReader();
  let read: Promise<ReadableStreamReadResult<Uint8Array>> = reader.read();
  try {
    // A stream that fails at once (an error in its start(), a generator that throws before its first yield) or
    // whose first chunk is not bytes is known before the head goes out: the client gets the 500. The wait is
    // bounded by this turn of the event loop, so that an event stream's head is not held until its first event.
    const early = await settledSoon(read);
    if (early !== undefined) {
      if (early.failed) throw new AppResultError(`the Fetch handler's Response body failed before any of it was sent (${describeError(early.error)})`, { cause: early.error });
      const { value } = early.result;
      // What res.write() takes; it would throw on anything else, after the head.
      if (!early.result.done && !(value instanceof Uint8Array) && typeof value !== 'string') {
        throw new AppResultError(`the Fetch handler's Response body gave ${describeChunk(value)}, where a stream's chunks must be Uint8Array`);
      }
      read = Promise.resolve(early.result);
    }
    writeHead(res, response);
    // The first chunk is still to come (an event stream's first event, a slow query): the head goes now, where
    // Node would hold it for the first write, and a client (EventSource) waits for it to call the stream open.
    if (early === undefined) res.flushHeaders();
  } catch (err) {
    reader.cancel().catch(() => {});
    throw err;
  }
  // A Content-Length from the app is held to: a body longer than it fails the write, one shorter fails the
  // end, and the connection is cut, where the extra bytes (or the missing ones) would have been read as the
  // next response by a keep-alive client or a proxy. Node leaves HEAD, 204 and 304 responses out of the check.
  res.strictContentLength = true;
  // The client gone: the stream is cancelled at once (its source stops, its cancel() runs), not at its next
  // chunk, which an event stream may take minutes to produce, or never.
  const gone = (): void => {
    if (!res.writableEnded) reader.cancel().catch(() => {});
  };
  res.once('close', gone);
  // Gone already (an async handler's client left before it resolved): 'close' has been emitted.
  if (isClosed(res)) gone();
  try {
    for (;;) {
      const { done, value } = await read;
      if (done) break;
      read = reader.read();
      if (isClosed(res)) {
        await reader.cancel();
        return;
      }
      if (!res.write(value)) await drained(res);
    }
    if (!isClosed(res)) res.end();
  } catch (err) {
    // A client gone first is no fault of the app's: its stream may fail as it is cancelled or aborted.
    const live = !isClosed(res);
    // The error handler (onAppError) cuts the response: the client gets what was sent, then the connection
    // closes (HTTP/1.1) or the stream is reset (HTTP/2) short of the end.
    const cut = (res as { stream?: unknown }).stream === undefined ? 'the connection was cut' : 'its HTTP/2 stream was reset';
    // The body disagreed with the app's Content-Length: the app's fault, said in the error log.
    if ((err as NodeJS.ErrnoException).code === 'ERR_HTTP_CONTENT_LENGTH_MISMATCH') {
      throw new AppResultError(`the Fetch handler's Response body does not match its Content-Length (${(err as Error).message}); ${cut}`);
    }
    // The app's stream failed (or gave a chunk that is not bytes) with the head sent: the client only sees
    // the response cut short, so the error log says why.
    if (live) throw new AppResultError(`the Fetch handler's Response body failed while it was being sent (${describeError(err)}); ${cut}`, { cause: err });
    res.destroy();
  } finally {
    res.off('close', gone);
  }
}

type Early<T> = { failed: false; result: T } | { failed: true; error: unknown };

/**
 * How `p` settled, if it did within this turn of the event loop (its microtasks and the I/O callbacks due);
 * undefined if it is still pending then. One setImmediate, for a streamed body only.
 */
function settledSoon<T>(p: Promise<T>): Promise<Early<T> | undefined> {
  return new Promise((resolve) => {
    const later = setImmediate(resolve, undefined);
    p.then(
      (result) => {
        clearImmediate(later);
        resolve({ failed: false, result });
      },
      (error: unknown) => {
        clearImmediate(later);
        resolve({ failed: true, error });
      },
    );
  });
}

/** A chunk that is not bytes, for the error log: `a number (42)`, `an ArrayBuffer`, `a string`. */
function describeChunk(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'number') return `a number (${v})`;
  if (typeof v !== 'object') return `a ${typeof v}`;
  const name = (v as object).constructor?.name ?? 'Object';
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}

/**
 * Resolves when `res` drains or closes, and leaves no listener behind: a long stream to a slow client waits
 * here thousands of times, and a 'close' listener left by each wait piled up on the response until it ended.
 */
function drained(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
    // Closed already ('close' emitted): an HTTP/2 response whose stream the client reset takes no write.
    if (isClosed(res)) done();
  });
}

/**
 * The response can take nothing more: its connection, or over HTTP/2 its stream, is closed. An HTTP/2
 * response has no `destroyed`, and the client's RST_STREAM sets its `writableFinished` (written in full, for
 * an HTTP/1 one): whether the app's response was whole is `writableEnded` on both.
 */
function isClosed(res: ServerResponse): boolean {
  return res.destroyed || (res as { stream?: { destroyed?: boolean } }).stream?.destroyed === true;
}

/** `Name: message` of what a stream failed with, on one line. */
function describeError(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.replace(/\s*\n\s*/g, ' ');
}

function describeResult(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'object') return `an instance of ${(v as object).constructor?.name ?? 'Object'}`;
  return `a ${typeof v}`;
}

/** Adapts a Fetch handler to a Node request listener. */
export function fetchListener(handler: FetchHandler, onError: (err: unknown, req: IncomingMessage, res: ServerResponse) => void) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    let result: Response | Promise<Response>;
    try {
      result = handler(lazyRequest(req, res));
      if (sendPlain(result, res)) return;
    } catch (err) {
      onError(err, req, res);
      return;
    }
    const fail = (err: unknown) => onError(err, req, res);
    if (appWork.track !== null && typeof (result as Partial<Promise<Response>>)?.then === 'function') appWork.track(res, result as Promise<Response>);
    if (result instanceof Promise) {
      // The usual async handler, checked first: `instanceof Response` calls the stand-in's Symbol.hasInstance.
      // One reaction on its own promise, and no promise of ours after it. A Response with a plain body is
      // written right there; anything else goes through writeResponse.
      result.then((r) => {
        try {
          if (!sendPlain(r, res)) writeResponse(r, res, req.method).catch(fail);
        } catch (err) {
          fail(err);
        }
      }, fail);
    } else if (result instanceof Response) {
      writeResponse(result, res, req.method).catch(fail);
    } else {
      Promise.resolve(result)
        .then((r) => writeResponse(r, res, req.method))
        .catch(fail);
    }
  };
}
