/**
 * A stand-in for the global `Response` in a worker, so a Fetch handler that answers `new Response('hi')` or
 * `Response.json(data)` does not pay for a standard Response it never reads.
 *
 * Building an undici Response allocates its internal state, a Headers list and a ReadableStream for the
 * body, and writing it out means reading that stream chunk by chunk: per FACTS, handlers that go through
 * standard Request/Response objects ran at 45-65 % of raw node:http. The stand-in only remembers its
 * constructor arguments; the writer (fetch-bridge.ts) sends a string, bytes or null body with one writeHead
 * and one end. Anything else a caller touches (`body`, `text()`, `clone()`...) builds the real Response
 * first and answers from it, so the object behaves as a standard one.
 *
 * `instanceof Response` holds for both the stand-in and native Responses (from `fetch()`, or created before
 * the stand-in was installed), through Symbol.hasInstance.
 */

import type { ServerResponse } from 'node:http';
import { AppResultError } from './errors.js';
import { connectionFieldLength, h2Forbidden } from '../http/connection-fields.js';

const NativeResponse: typeof Response = globalThis.Response;

const kBody = Symbol('tunicorn.body');
const kInit = Symbol('tunicorn.init');
const kReal = Symbol('tunicorn.real');
const kHeaders = Symbol('tunicorn.headers');

/** A body the writer sends as it is; anything else (streams, Blob, FormData...) needs the real Response. */
export type PlainBody = string | Uint8Array | null;

interface Stand {
  [kBody]: PlainBody;
  [kInit]: ResponseInit | undefined;
  [kReal]: Response | undefined;
  [kHeaders]: Headers | undefined;
}

// Fetch's null body statuses (https://fetch.spec.whatwg.org/#null-body-status).
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

function plainBody(body: unknown): PlainBody | undefined {
  if (body === null || body === undefined) return null;
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  return undefined;
}

function real(self: Stand): Response {
  let r = self[kReal];
  if (!r) {
    const init = self[kInit];
    const headers = self[kHeaders];
    r = new NativeResponse(self[kBody] as BodyInit | null, headers ? { ...init, headers } : init);
    self[kReal] = r;
  }
  return r;
}

function checkInit(body: PlainBody, init: ResponseInit | undefined): void {
  const status = init?.status;
  if (status === undefined) return;
  if (!Number.isInteger(status) || status < 200 || status > 599)
    throw new RangeError(`init["status"] must be in the range of 200 to 599, inclusive.`);
  if (body !== null && NULL_BODY.has(status)) throw new TypeError(`Response with null body status cannot have body`);
}

/** A reason phrase as RFC 9112 has it (tab, space, visible ASCII, obs-text): what Response accepts as statusText. */
const REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * An init the stand-in takes as it is. Anything else goes to the native constructor, which converts it or
 * throws as the standard says (a status of `'201'` or `200.5`, a statusText that is not a string or holds CR
 * or LF: an app's try/catch around `new Response()` sees that TypeError, not a 500 later).
 */
function isSimpleInit(init: unknown): init is ResponseInit | undefined {
  if (init === undefined || init === null) return true;
  if (typeof init !== 'object') return false;
  const { status, statusText } = init as ResponseInit;
  if (status !== undefined && !Number.isInteger(status)) return false;
  if (statusText !== undefined && (typeof statusText !== 'string' || !REASON.test(statusText))) return false;
  const h = (init as ResponseInit).headers;
  return h === undefined || h instanceof Headers || Array.isArray(h) || Object.getPrototypeOf(h) === Object.prototype || Object.getPrototypeOf(h) === null;
}

/**
 * The stand-in constructor. A plain function rather than a class: a derived class constructor must call
 * super(), which would build the very Response this avoids. It returns its own object, whose prototype
 * chain still reaches Response.prototype.
 */
function TunicornResponse(this: unknown, body?: BodyInit | null, init?: ResponseInit): Response {
  if (!new.target) throw new TypeError("Class constructor Response cannot be invoked without 'new'");
  const plain = plainBody(body);
  const o = Object.create((new.target as { prototype: object }).prototype) as Stand;
  if (plain !== undefined && isSimpleInit(init)) {
    checkInit(plain, init ?? undefined);
    o[kBody] = plain;
    o[kInit] = init ?? undefined;
    o[kReal] = undefined;
  } else {
    o[kBody] = null;
    o[kInit] = undefined;
    o[kReal] = new NativeResponse(body, init);
  }
  o[kHeaders] = undefined;
  return o as unknown as Response;
}

TunicornResponse.prototype = Object.create(NativeResponse.prototype, {
  constructor: { value: TunicornResponse, writable: true, configurable: true },
}) as Response;
Object.setPrototypeOf(TunicornResponse, NativeResponse);
Object.defineProperty(TunicornResponse, 'name', { value: 'Response' });

const statics = {
  [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof NativeResponse;
  },
  json(data: unknown, init?: ResponseInit): Response {
    const text = JSON.stringify(data);
    if (text === undefined) throw new TypeError('Value is not JSON serializable');
    const headers = new Headers(init?.headers);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    return new (TunicornResponse as unknown as typeof Response)(text, { ...init, headers });
  },
  redirect(url: string | URL, status = 302): Response {
    return wrap(NativeResponse.redirect(url, status));
  },
  error(): Response {
    return wrap(NativeResponse.error());
  },
};
for (const key of Reflect.ownKeys(statics)) {
  Object.defineProperty(TunicornResponse, key, { value: (statics as Record<PropertyKey, unknown>)[key], writable: true, configurable: true });
}

function wrap(r: Response): Response {
  const o = Object.create(TunicornResponse.prototype) as Stand;
  o[kBody] = null;
  o[kInit] = undefined;
  o[kReal] = r;
  o[kHeaders] = undefined;
  return o as unknown as Response;
}

const cheap: Record<string, (self: Stand) => unknown> = {
  status: (s) => s[kInit]?.status ?? 200,
  statusText: (s) => s[kInit]?.statusText ?? '',
  ok: (s) => {
    const st = s[kInit]?.status ?? 200;
    return st >= 200 && st <= 299;
  },
  headers: (s) => {
    let h = s[kHeaders];
    if (!h) {
      h = new Headers(s[kInit]?.headers);
      if (typeof s[kBody] === 'string' && !h.has('content-type')) h.set('content-type', 'text/plain;charset=UTF-8');
      s[kHeaders] = h;
    }
    return h;
  },
  type: () => 'default',
  url: () => '',
  redirected: () => false,
  bodyUsed: () => false,
};

for (const name of Object.getOwnPropertyNames(NativeResponse.prototype)) {
  if (name === 'constructor') continue;
  const d = Object.getOwnPropertyDescriptor(NativeResponse.prototype, name)!;
  if (typeof d.value === 'function') {
    Object.defineProperty(TunicornResponse.prototype, name, {
      configurable: true,
      writable: true,
      value(this: Stand, ...args: unknown[]) {
        const r = real(this);
        return (d.value as (...a: unknown[]) => unknown).apply(r, args);
      },
    });
  } else if (d.get) {
    const get = d.get;
    const quick = cheap[name];
    Object.defineProperty(TunicornResponse.prototype, name, {
      configurable: true,
      get(this: Stand) {
        const r = this[kReal];
        if (r) return get.call(r);
        return quick ? quick(this) : get.call(real(this));
      },
    });
  }
}

/**
 * Whether a field of a Fetch handler's Response belongs to the connection, which the server frames and keeps,
 * not to the response (RFC 9112 sections 6.1 and 9.6; over HTTP/2, every connection-specific field: RFC 9113
 * section 8.2.2): it is left out of the head. A handler that returns what fetch() gave it (the usual proxy)
 * passes on the upstream connection's `Transfer-Encoding`, `Connection` and `Keep-Alive`. Over HTTP/2 Node
 * threw on them: the request got no answer, and the 500 after it threw again, out of the worker. Over HTTP/1.1
 * `Transfer-Encoding` went out beside the Content-Length of a plain body (a response a proxy may frame either
 * way), `Keep-Alive` advertised the upstream's timeout for this connection, and `Connection: keep-alive` made
 * Node keep a connection it was to close (the client's `Connection: close`, a worker stopping). Over HTTP/1
 * `Connection: close` (the app ends the connection) and `Upgrade` (a 426's) stay. `lower`: the name in lower
 * case. Only names of the lengths concerned are compared, and only they ask the response's version.
 */
export function connectionField(lower: string, value: string, res: ServerResponse): boolean {
  if (!connectionFieldLength(lower.length)) return false;
  if (isH2(res)) return h2Forbidden(lower, value);
  return lower === 'keep-alive' || lower === 'proxy-connection' || lower === 'transfer-encoding' || (lower === 'connection' && !/\bclose\b/i.test(value));
}

/** An HTTP/2 response (Node's compatibility one has the stream it answers on). */
function isH2(res: ServerResponse): boolean {
  return (res as { stream?: unknown }).stream !== undefined;
}

/** Whether `response` is a stand-in that sendPlain() writes without building the standard Response. */
export function isPlain(response: unknown): boolean {
  const s = response as Partial<Stand> | null;
  return typeof s === 'object' && s !== null && s[kReal] === undefined && s[kBody] !== undefined;
}

/**
 * Sends a stand-in whose body is a string, bytes or null: one writeHead with a Content-Length (none for a
 * null body to HEAD unless the app gave one), one end.
 * Returns false, having done nothing, for anything else (the caller streams the body of a standard
 * Response). Headers go to Node as a flat [name, value, ...] list, which writeHead takes as it is; a string
 * body without a Content-Type gets Fetch's `text/plain;charset=UTF-8`, as the standard Response adds.
 */
export function sendPlain(response: unknown, res: ServerResponse): boolean {
  if (!isPlain(response)) return false;
  const s = response as Stand;
  const body = s[kBody];
  const init = s[kInit];
  const status = init?.status ?? 200;
  const h = s[kHeaders] ?? init?.headers;
  const flat: string[] = [];
  let hasType = false;
  /** The app's own Content-Length, if it set one. */
  let length: string | null = null;
  if (h !== undefined) {
    if (h instanceof Headers) {
      hasType = h.has('content-type');
      length = h.get('content-length');
      h.forEach((v, k) => {
        if (k !== 'set-cookie' && !connectionField(k, v, res)) flat.push(k, v);
      });
      for (const c of h.getSetCookie()) flat.push('set-cookie', c);
    } else if (Array.isArray(h)) {
      for (const [k, v] of h as [string, string][]) {
        const lower = k.toLowerCase();
        if (lower === 'content-type') hasType = true;
        else if (lower === 'content-length') length = String(v);
        else if (connectionField(lower, String(v), res)) continue;
        flat.push(k, String(v));
      }
    } else {
      const record = h as Record<string, string>;
      for (const k in record) {
        const lower = k.toLowerCase();
        if (lower === 'content-type') hasType = true;
        else if (lower === 'content-length') length = String(record[k]);
        else if (connectionField(lower, String(record[k]), res)) continue;
        flat.push(k, String(record[k]));
      }
    }
  }
  if (length !== null) checkLength(length, body, status, res);
  const hasLength = length !== null;
  if (body === null) {
    // No length for HEAD: 0 would misstate the GET's size (Hono answers every HEAD with a null body).
    if (!hasLength && status !== 204 && status !== 304 && res.req?.method !== 'HEAD') flat.push('content-length', '0');
    res.writeHead(status, init?.statusText || undefined, flat);
    res.end();
    return true;
  }
  if (typeof body === 'string') {
    if (!hasType) flat.push('content-type', 'text/plain;charset=UTF-8');
    if (!hasLength) flat.push('content-length', String(Buffer.byteLength(body)));
  } else if (!hasLength) flat.push('content-length', String(body.byteLength));
  res.writeHead(status, init?.statusText || undefined, flat);
  res.end(body);
  return true;
}

/**
 * A Content-Length the app set must be its body's: the bytes past a short one, or the wait for a long one,
 * would be taken as the next response by a keep-alive client or a proxy (`'content-length': text.length`
 * counts characters, not UTF-8 bytes). A mismatch is the app's error: a 500, nothing of it sent. Not checked
 * where no body is sent whatever the length says: a HEAD response (the length may be the GET's), 204, 304.
 */
function checkLength(length: string, body: PlainBody, status: number, res: ServerResponse): void {
  if (res.req?.method === 'HEAD' || status === 204 || status === 304) return;
  const size = body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  if (Number(length) !== size) {
    throw new AppResultError(`the Fetch handler's Response says Content-Length: ${length}, but its body is ${size} byte(s)`);
  }
}

/** Makes `Response` in this process the stand-in. Idempotent; the worker calls it before the app loads. */
export function installResponse(): void {
  const stand = TunicornResponse as unknown as typeof Response;
  if (globalThis.Response !== stand) globalThis.Response = stand;
}

export { NativeResponse };
