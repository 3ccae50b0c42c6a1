import net from 'node:net';
import { ConfigError } from '../config/setting.js';

export type Address =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'fd'; readonly fd: number };

/** Parses one `bind` value: HOST:PORT, [IPv6]:PORT, unix:PATH, fd://N (Gunicorn's forms). */
export function parseAddress(raw: string): Address {
  const s = raw.trim();
  const bad = (why: string): never => {
    throw new ConfigError(
      `invalid value for bind (--bind): ${JSON.stringify(raw)}; ${why} (expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N)`,
    );
  };
  if (s.startsWith('unix:')) {
    const p = s.slice(5).replace(/^\/\/(?=\/)/, '');
    if (!p) bad('the socket path is empty');
    return { kind: 'unix', path: p };
  }
  if (s.startsWith('fd://')) {
    const n = s.slice(5);
    if (!/^\d+$/.test(n)) bad('the file descriptor must be a whole number');
    return { kind: 'fd', fd: Number(n) };
  }
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) bad('the IPv6 address has no closing "]"');
    host = s.slice(1, end);
    if (!net.isIPv6(host)) bad(`${host} is not an IPv6 address`);
    const rest = s.slice(end + 1);
    if (rest && !rest.startsWith(':')) bad('expected ":PORT" after "]"');
    portText = rest ? rest.slice(1) : '8000';
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) {
      // Gunicorn: a bare host binds port 8000.
      host = s;
      portText = '8000';
    } else {
      host = s.slice(0, colon);
      portText = s.slice(colon + 1);
      if (host.includes(':')) bad('put an IPv6 address in brackets, as [::1]:8000');
    }
    if (host === '') host = '0.0.0.0';
    if (host === '*') host = '0.0.0.0';
  }
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) bad(`the port ${JSON.stringify(portText)} is not 0..65535`);
  return { kind: 'tcp', host, port: Number(portText) };
}

/** How the log and --print-config name a bound socket: http://127.0.0.1:8000, http://[::1]:8000, unix:/path. */
export function formatAddress(a: Address, scheme = 'http'): string {
  switch (a.kind) {
    case 'tcp':
      return `${scheme}://${net.isIPv6(a.host) ? `[${a.host}]` : a.host}:${a.port}`;
    case 'unix':
      return `unix:${a.path}`;
    case 'fd':
      return `fd://${a.fd}`;
  }
}
