import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/registry.js';

/** Gunicorn's ceiling for limit_request_fields, also what 0 means. */
const MAX_FIELDS = 32768;
/** What a limit of 0 ("unlimited") allows for the request line. */
export const UNLIMITED_LINE = 1 << 20;
/** The most Node's parser is let buffer for one header section, whatever the limits add up to. */
const MAX_HEADER_SECTION = 8 * 1024 * 1024;
/**
 * What a limit_request_field_size of 0 allows for one field: the whole header section's bound, so that 0 lifts
 * the per-field limit (a larger explicit value must not allow more than 0 does).
 */
export const UNLIMITED_FIELD = MAX_HEADER_SECTION;

export interface RequestLimits {
  /** Request line bytes (METHOD SP TARGET SP HTTP/x.y). */
  readonly line: number;
  readonly fields: number;
  /** One field line (name ": " value) bytes. */
  readonly fieldSize: number;
}

export function limitsOf(cfg: Config): RequestLimits {
  return {
    line: cfg.limitRequestLine || UNLIMITED_LINE,
    fields: cfg.limitRequestFields || MAX_FIELDS,
    fieldSize: cfg.limitRequestFieldSize || UNLIMITED_FIELD,
  };
}

/**
 * Node's parser bounds the whole header section (maxHeaderSize). Set it to the most the three limits can add
 * up to, capped, so the per-line limits below decide and give Gunicorn's statuses; the cap bounds what one
 * connection can make a worker buffer when a limit is 0.
 */
export function maxHeaderSize(l: RequestLimits): number {
  return Math.min(l.line + 2 + l.fields * (l.fieldSize + 2) + 2, MAX_HEADER_SECTION);
}

/** A Host field value: RFC 3986 reg-name or IP literal, then an optional port. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

/**
 * An absolute-form request target (RFC 9112 section 3.2.2), `http` or `https` in any case: group 1 is its
 * host[:port], after any userinfo (RFC 9110 section 4.2.4: never to be used), which ends where the path, the
 * query or the target does.
 */
export const ABSOLUTE_TARGET = /^https?:\/\/(?:[^/?#@]*@)?([^/?#@]*)(?=[/?#]|$)/i;

/**
 * Whether `value` (not empty) is a host[:port] the request's URL can hold: RFC 3986's syntax, and what the
 * WHATWG URL parser accepts of it (a Fetch handler's `request.url` is made from it; `a%40b`, `1.2.3.999`,
 * `a:99999`, `[1:2]` are not). Run only when the value changed (HostMemo) or for an absolute-form target.
 */
function validHost(value: string): boolean {
  return HOST.test(value) && URL.canParse(`http://${value}/`);
}

/**
 * Whether a target that is not origin-form may be served: `*` for OPTIONS (asterisk-form, RFC 9112 section
 * 3.2.4), `host:port` for CONNECT (authority-form, section 3.2.3, checked when the app has 'connect'
 * listeners), or an absolute http(s) URI with a host. llhttp lets through `*` for any method and with more
 * after it, and absolute URIs of any scheme (`ftp://`, `ws://`) or without a host (`http:///p`).
 */
function otherFormOk(url: string, method: string | undefined): boolean {
  if (url === '*') return method === 'OPTIONS';
  if (method === 'CONNECT') return /:\d+$/.test(url) && validHost(url);
  const m = ABSOLUTE_TARGET.exec(url);
  return m !== null && m[1] !== '' && validHost(m[1]!);
}

/** What `rejectReason` adds to its answer: the request has a body (so the body timeout applies to it). */
export const HAS_BODY = 0x10000;

/**
 * Why a request is refused before the app sees it: what rejectReason and rejectReasonH2 return (the status and
 * the words of each: Refusals, in refusals.ts).
 */
export enum Rejected {
  /** 505: not HTTP/1.x. */
  Version = 1,
  /** 414: over limit_request_line. */
  LineTooLong,
  /** 400: a target other than origin-form, absolute http(s), `*` for OPTIONS or host:port for CONNECT. */
  BadTarget,
  /** 431: over limit_request_fields. */
  TooManyFields,
  /** 431: over limit_request_field_size. */
  FieldTooLarge,
  /** 400: a Host value a URL cannot hold. */
  BadHost,
  /** 400 */
  TwoHosts,
  /** 400: HTTP/1.1 without Host. */
  NoHost,
  /** 400: Transfer-Encoding in HTTP/1.0. */
  ChunkedHttp10,
  /** 400: Content_Length or Transfer_Encoding. */
  Underscore,
  /** 400: HTTP/2 with a Host field that names another host than `:authority`. */
  HostNotAuthority,
}

/**
 * The Host values seen last and found valid, per worker: nearly every request names the same host, and the
 * regular expression is the costliest part of the check.
 */
export class HostMemo {
  last = '';
}

/**
 * `name` equals `lower` (a lower-case header name of letters and `-`) ignoring case, without the string
 * `toLowerCase` would make for every request. `| 0x20` maps an upper-case letter to its lower case and leaves
 * `-` as it is; of the other bytes only CR maps to `-`, and a header name cannot hold one.
 */
export function sameName(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < name.length; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/**
 * Why a request is refused instead of reaching the app (Rejected), or 0 to serve it; `| HAS_BODY` when it announces a
 * body (read from rawHeaders: `req.headers` is built on first use, and the app may never use it). Only what
 * Node's parser lets through is checked here (FACTS: a missing, duplicated or invalid Host and `HTTP/2.0` in
 * a request line reach the app on plain node:http), with one pass over rawHeaders and nothing allocated.
 */
export function rejectReason(req: IncomingMessage, l: RequestLimits, memo: HostMemo = new HostMemo()): number {
  if (req.httpVersionMajor !== 1) return Rejected.Version;
  const url = req.url ?? '';
  // METHOD SP TARGET SP HTTP/1.1
  if ((req.method?.length ?? 0) + url.length + 10 > l.line) return Rejected.LineTooLong;
  if (url.charCodeAt(0) !== 0x2f /* / */ && !otherFormOk(url, req.method)) return Rejected.BadTarget;
  const raw = req.rawHeaders;
  if (raw.length / 2 > l.fields) return Rejected.TooManyFields;
  let hosts = 0;
  let body = 0;
  const http10 = req.httpVersionMinor === 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.length + value.length + 2 > l.fieldSize) return Rejected.FieldTooLarge;
    const c = name.charCodeAt(0) | 0x20;
    if (c === 0x68 /* h */ && sameName(name, 'host')) {
      hosts++;
      if (value !== memo.last) {
        // Empty is allowed (RFC 9112 section 3.2: no authority); the URL then names the server's address.
        if (value !== '' && !validHost(value)) return Rejected.BadHost;
        memo.last = value;
      }
    } else if (c === 0x74 /* t */ && sameName(name, 'transfer-encoding')) {
      // RFC 9112 section 6.1: in HTTP/1.0 the framing is faulty, whatever Content-Length says.
      if (http10) return Rejected.ChunkedHttp10;
      body = HAS_BODY;
    } else if (c === 0x63 /* c */ && value !== '0' && sameName(name, 'content-length')) {
      body = HAS_BODY;
    } else if ((name.length === 14 || name.length === 17) && (c === 0x63 || c === 0x74) && name.includes('_')) {
      // Content_Length or Transfer_Encoding (14 and 17 bytes): a proxy that maps _ to - (as CGI does) would
      // frame the message differently from us; refuse rather than have two readings.
      const dashed = name.toLowerCase().replaceAll('_', '-');
      if (dashed === 'content-length' || dashed === 'transfer-encoding') return Rejected.Underscore;
    }
  }
  if (hosts > 1) return Rejected.TwoHosts;
  if (hosts === 0 && req.httpVersionMinor >= 1) return Rejected.NoHost;
  return body;
}

/** Node's own default for maxHeaderListPairs (pseudo-header fields included). */
const NODE_HEADER_PAIRS = 128;

/**
 * The streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS; RFC 9113 section
 * 6.5.2 advises no fewer than 100; nginx says 128, Apache 100). Node's default is 2^32 - 1: one client
 * connection had an async worker run as many requests at once as it opened streams, past worker_connections,
 * which counts connections. A client waits for a stream to end before it opens one more (nghttp2, browsers,
 * curl); one that does not has the extra streams refused (REFUSED_STREAM).
 */
export const H2_MAX_STREAMS = 100;

/**
 * Node's HTTP/2 bounds for the limits (every HTTP/2 server: TLS with ALPN h2, and h2c). A stream whose header
 * list crosses them is reset (ENHANCE_YOUR_CALM) before any request exists to answer; they are set above what
 * the limits allow, so that a request over a limit is answered by `rejectReasonH2` instead, and only one far
 * over them is reset. maxHeaderListSize (RFC 9113 section 6.5.2: each field's name and value plus 32 bytes) is
 * advertised to the client in SETTINGS too, capped as maxHeaderSize is. The pairs: twice the fields, for cookie
 * crumbs (count as one field) and pseudo-header fields. With them, the streams open at once (H2_MAX_STREAMS).
 */
export function http2Limits(l: RequestLimits): {
  maxHeaderListPairs: number;
  settings: { maxHeaderListSize: number; maxConcurrentStreams: number };
} {
  return {
    maxHeaderListPairs: Math.max(NODE_HEADER_PAIRS, 2 * l.fields + 4),
    settings: {
      maxHeaderListSize: Math.min(l.line + 4 * 32 + l.fields * (l.fieldSize + 32), 8 * 1024 * 1024),
      maxConcurrentStreams: H2_MAX_STREAMS,
    },
  };
}

/**
 * rejectReason's limits for an HTTP/2 request, on the header list nghttp2 decoded: LineTooLong (414) when
 * `:method` and `:path` make a longer request line than limit_request_line allows, TooManyFields (431) for more
 * fields than limit_request_fields, FieldTooLarge (431) for one longer than limit_request_field_size (as
 * `name: value`); for a Host field, BadHost or TwoHosts as over HTTP/1.1, and HostNotAuthority when it names
 * another host than `:authority`; else 0. As in HTTP/1:
 * `:authority` is a field (the Host its request would have), the other pseudo-header fields are the request
 * line, and the cookie crumbs of RFC 9113 section 8.2.3 are the one Cookie field they make up (`; ` between).
 */
export function rejectReasonH2(req: Pick<IncomingMessage, 'method' | 'url' | 'rawHeaders'>, l: RequestLimits): number {
  if ((req.method?.length ?? 0) + (req.url?.length ?? 0) + 10 > l.line) return Rejected.LineTooLong;
  const raw = req.rawHeaders;
  let fields = 0;
  /** The Cookie value the crumbs so far make up, by length; -1: none yet. */
  let cookie = -1;
  let authority: string | undefined;
  let host: string | undefined;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    let size = name.length + value.length + 2;
    // HTTP/2 field names are lower case (nghttp2 refuses others).
    if (name.charCodeAt(0) === 0x3a /* : */) {
      if (name !== ':authority') continue;
      authority = value;
      size = 4 + value.length + 2; // host: value
      fields++;
    } else if (name === 'host') {
      host = value;
      hosts++;
      fields++;
    } else if (name === 'cookie') {
      if (cookie < 0) fields++;
      cookie = cookie < 0 ? value.length : cookie + 2 + value.length;
      size = 6 + cookie + 2;
    } else {
      fields++;
    }
    if (size > l.fieldSize) return Rejected.FieldTooLarge;
  }
  if (fields > l.fields) return Rejected.TooManyFields;
  // A Host field beside `:authority`: a listener reads it (req.headers.host) where the Fetch URL has
  // `:authority`, so both must name one host (RFC 9113 section 8.3.1); and one Host, valid, as over HTTP/1.1.
  if (host === undefined) return 0;
  if (hosts > 1) return Rejected.TwoHosts;
  if (host !== '' && !validHost(host)) return Rejected.BadHost;
  if (authority !== undefined && host.toLowerCase() !== authority.toLowerCase()) return Rejected.HostNotAuthority;
  return 0;
}
