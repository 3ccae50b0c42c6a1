/**
 * The `headers` of a Request tunicorn makes for a Fetch handler: `get()` and `has()` answer from Node's raw
 * header list, and a standard Headers is built only for anything else (iteration, `set`, `append`...).
 *
 * Building a Headers validates and stores every field: for a browser's dozen request headers that was about
 * 8 us, against about 0.1 us to find one field in the raw list (scratch loop on Node 20.20, 200,000
 * iterations), and most handlers and middleware only ever call `get`. `instanceof Headers` holds; once the
 * standard object exists every call goes to it, so a header set by the app is seen by `get` afterwards.
 */

import { forwardMembers } from './forward.js';

const kRaw = Symbol('tunicorn.rawHeaders');
const kFull = Symbol('tunicorn.headers');

interface LazyHeaders {
  [kRaw]: readonly string[];
  [kFull]: Headers | undefined;
}

/** A header name as Fetch accepts it (RFC 9110 token); anything else goes to the standard `get`, which throws. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Every field of Node's raw list in a standard Headers (HTTP/2 pseudo-headers left out). */
export function headersFromRaw(raw: readonly string[]): Headers {
  const h = new Headers();
  let authority: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) !== 58) h.append(name, raw[i + 1]!);
    else if (name === ':authority') authority = raw[i + 1]!;
  }
  // HTTP/2 carries the Host in :authority (RFC 9113 section 8.3.1): the same Request as over HTTP/1.1.
  if (authority !== undefined && !h.has('host')) h.set('host', authority);
  return h;
}

function full(self: LazyHeaders): Headers {
  let h = self[kFull];
  if (h === undefined) {
    h = headersFromRaw(self[kRaw]);
    self[kFull] = h;
  }
  return h;
}

/** `name` equals `lower` (lower case) but for ASCII case. */
function sameField(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < name.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

const isHttpSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;

/** A value as Headers stores it: without leading and trailing HTTP whitespace (Node's parser already trims). */
function normalized(v: string): string {
  if (v.length === 0 || (!isHttpSpace(v.charCodeAt(0)) && !isHttpSpace(v.charCodeAt(v.length - 1)))) return v;
  let a = 0;
  let b = v.length;
  while (a < b && isHttpSpace(v.charCodeAt(a))) a++;
  while (b > a && isHttpSpace(v.charCodeAt(b - 1))) b--;
  return v.slice(a, b);
}

/** What Headers.get answers: the values of every field of that name in order, joined (cookies with "; "). */
function rawGet(raw: readonly string[], lower: string): string | null {
  let out: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (!sameField(raw[i]!, lower)) continue;
    const v = normalized(raw[i + 1]!);
    out = out === null ? v : out + (lower === 'cookie' ? '; ' : ', ') + v;
  }
  // HTTP/2: the Host is :authority (see headersFromRaw).
  if (out === null && lower === 'host') {
    for (let i = 0; i < raw.length; i += 2) if (raw[i] === ':authority') return normalized(raw[i + 1]!);
  }
  return out;
}

const lazyHeadersPrototype: object = Object.create(Headers.prototype);
forwardMembers<LazyHeaders>(
  lazyHeadersPrototype,
  Headers.prototype,
  Reflect.ownKeys(Headers.prototype).filter((k) => k !== 'constructor' && k !== Symbol.toStringTag),
  full,
);
Object.defineProperties(lazyHeadersPrototype, {
  get: {
    configurable: true,
    writable: true,
    value(this: LazyHeaders, name: unknown): string | null {
      const h = this[kFull];
      if (h !== undefined || typeof name !== 'string' || !TOKEN.test(name)) return full(this).get(name as string);
      return rawGet(this[kRaw], name.toLowerCase());
    },
  },
  has: {
    configurable: true,
    writable: true,
    value(this: LazyHeaders, name: unknown): boolean {
      const h = this[kFull];
      if (h !== undefined || typeof name !== 'string' || !TOKEN.test(name)) return full(this).has(name as string);
      return rawGet(this[kRaw], name.toLowerCase()) !== null;
    },
  },
});

/** Every field set in one order by one constructor: all of them share one hidden class in V8. */
function LazyHeadersObject(this: LazyHeaders, raw: readonly string[]): void {
  this[kRaw] = raw;
  this[kFull] = undefined;
}
LazyHeadersObject.prototype = lazyHeadersPrototype;
const LazyHeadersCtor = LazyHeadersObject as unknown as new (raw: readonly string[]) => Headers;

/** Headers over Node's raw list (`req.rawHeaders`), built in full only when more than get/has is asked. */
export function lazyHeaders(raw: readonly string[]): Headers {
  return new LazyHeadersCtor(raw);
}

/** The standard Headers behind `h`: its own, built now, if it is one of ours; else `h` itself. */
export function standardHeaders(h: Headers): Headers {
  return (h as unknown as Partial<LazyHeaders>)[kRaw] !== undefined ? full(h as unknown as LazyHeaders) : h;
}
