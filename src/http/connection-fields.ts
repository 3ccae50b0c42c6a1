/**
 * Header fields of a connection rather than of a message. HTTP/2 has none (RFC 9113 section 8.2.2): a message
 * that carries one is malformed, and an intermediary that turns an HTTP/1.1 message into an HTTP/2 one removes
 * them. A (req, res) app written for HTTP/1.1 sets them (a proxy copies its upstream's Transfer-Encoding and
 * Keep-Alive, an app says `Connection: close`); Node's HTTP/2 compatibility response drops `Connection` with an
 * UnsupportedWarning (two lines in the error log that blame the app) and throws from writeHead for the others:
 * the request got a 500, and every request of such an app over HTTP/2 did.
 */
import type { Http2ServerResponse } from 'node:http2';

/** Whether `lower` (a field name in lower case) with `value` is a field HTTP/2 forbids in a message. */
export function h2Forbidden(lower: string, value: string): boolean {
  switch (lower.length) {
    case 2:
      // Node's own rule: TE is allowed with `trailers` alone.
      return lower === 'te' && value !== 'trailers';
    case 7:
      return lower === 'upgrade';
    case 10:
      return lower === 'connection' || lower === 'keep-alive';
    case 14:
      return lower === 'http2-settings';
    case 16:
      return lower === 'proxy-connection';
    case 17:
      return lower === 'transfer-encoding';
    default:
      return false;
  }
}

/** Whether a field name of `n` characters may be one of h2Forbidden's: other names need no closer look. */
export function connectionFieldLength(n: number): boolean {
  return n === 2 || n === 7 || n === 10 || n === 14 || n === 16 || n === 17;
}

/** h2Forbidden for a name as the app wrote it: only names of those lengths are lowered and compared. */
function forbidden(name: unknown, value: unknown): boolean {
  return typeof name === 'string' && connectionFieldLength(name.length) && h2Forbidden(name.toLowerCase(), String(value));
}

/** writeHead's headers without the forbidden fields (the same object when it has none). */
function withoutForbidden(headers: unknown): unknown {
  if (headers === null || typeof headers !== 'object') return headers;
  if (Array.isArray(headers)) {
    if (typeof headers[0] === 'string') {
      // A flat [name, value, name, value...] list.
      let found = false;
      for (let i = 0; i < headers.length && !found; i += 2) found = forbidden(headers[i], headers[i + 1]);
      if (!found) return headers;
      const kept: unknown[] = [];
      for (let i = 0; i < headers.length; i += 2) if (!forbidden(headers[i], headers[i + 1])) kept.push(headers[i], headers[i + 1]);
      return kept;
    }
    const pairs = headers as [unknown, unknown][];
    return pairs.some((p) => Array.isArray(p) && forbidden(p[0], p[1])) ? pairs.filter((p) => !(Array.isArray(p) && forbidden(p[0], p[1]))) : headers;
  }
  const record = headers as Record<string, unknown>;
  let found = false;
  for (const k in record) if (forbidden(k, record[k])) found = true;
  if (!found) return headers;
  const kept: Record<string, unknown> = {};
  for (const k in record) if (!forbidden(k, record[k])) kept[k] = record[k];
  return kept;
}

const done = new WeakSet<object>();

/**
 * Every HTTP/2 response made from `proto` (Http2ServerResponse.prototype) leaves out the fields HTTP/2 forbids,
 * set with setHeader() or given to writeHead(), as Node leaves out `Connection` (without its warning).
 * Idempotent. Costs a length comparison per field the app sets over HTTP/2.
 */
export function dropH2ConnectionFields(proto: Http2ServerResponse): void {
  if (done.has(proto)) return;
  done.add(proto);
  const setHeader = proto.setHeader;
  const writeHead = proto.writeHead as (this: Http2ServerResponse, ...args: unknown[]) => Http2ServerResponse;
  Object.defineProperty(proto, 'setHeader', {
    configurable: true,
    writable: true,
    value: function setHeader_(this: Http2ServerResponse, name: string, value: number | string | readonly string[]): Http2ServerResponse {
      if (forbidden(name, value)) return this;
      return setHeader.call(this, name, value) as unknown as Http2ServerResponse;
    },
  });
  Object.defineProperty(proto, 'writeHead', {
    configurable: true,
    writable: true,
    value: function writeHead_(this: Http2ServerResponse, status: number, message?: unknown, headers?: unknown): Http2ServerResponse {
      // writeHead(status, headers) or writeHead(status, message, headers); as called when none is left out.
      if (typeof message === 'string' || message === undefined) {
        const kept = withoutForbidden(headers);
        return kept === headers ? (Reflect.apply(writeHead, this, arguments) as Http2ServerResponse) : writeHead.call(this, status, message, kept);
      }
      const kept = withoutForbidden(message);
      return kept === message ? (Reflect.apply(writeHead, this, arguments) as Http2ServerResponse) : writeHead.call(this, status, kept);
    },
  });
}
