import { ConfigError } from '../config/setting.js';
import { startupIsIPv6 } from '../ip.js';

export type Address =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'fd'; readonly fd: number };

/**
 * The longest Unix socket path the kernel takes (sun_path less its NUL: 108 - 1 on Linux, 104 - 1 on macOS and
 * the BSDs). libuv cuts a longer one short without a word, and the socket file would appear at another path.
 */
export const UNIX_PATH_MAX = process.platform === 'linux' ? 107 : 103;

/** Parses one `bind` value: HOST:PORT, [IPv6]:PORT, unix:PATH, fd://N (Gunicorn's forms). */
export function parseAddress(raw: string): Address {
  // Gunicorn also takes `tcp://HOST:PORT` (its parse_address drops the prefix).
  const s = raw.trim().replace(/^tcp:\/\//i, '');
  const bad = (why: string): never => {
    throw Object.assign(
      new ConfigError(`invalid value for bind (--bind): ${JSON.stringify(raw)}; ${why} (expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N)`),
      { why },
    );
  };
  // An error, not 0.0.0.0:8000 (every interface, as ":8000" is): an empty -b "$BIND" is an unset variable.
  if (s === '') bad('the address is empty');
  if (s.startsWith('unix:')) {
    // Gunicorn's `unix:PATH` and `unix://PATH` (its `re.split(r'unix:(//)?', ...)`): `unix://app.sock` is the
    // relative app.sock, `unix:///run/app.sock` the absolute /run/app.sock. Kept, the two slashes would make
    // any relative path one in / (`//app.sock` is `/app.sock`).
    const p = s.slice(5).replace(/^\/\//, '');
    if (!p) bad('the socket path is empty');
    const bytes = Buffer.byteLength(p);
    if (bytes > UNIX_PATH_MAX) bad(`the socket path is ${bytes} bytes long; a Unix socket path has at most ${UNIX_PATH_MAX}`);
    return { kind: 'unix', path: p };
  }
  if (s.startsWith('fd://')) {
    const n = s.slice(5);
    if (!/^\d+$/.test(n)) bad('the file descriptor must be a whole number');
    // A descriptor is an int: past it no process has one (Node's own check would say only ERR_OUT_OF_RANGE).
    if (Number(n) > 2 ** 31 - 1) bad('no process has a file descriptor that large');
    return { kind: 'fd', fd: Number(n) };
  }
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(s)?.[0];
  if (scheme) {
    const tls = /^https:/i.test(scheme) ? ', and serves TLS with --certfile and --keyfile' : '';
    bad(`drop the ${JSON.stringify(scheme)}: tunicorn binds HOST:PORT, not a URL${tls}`);
  }
  if (/\s/.test(s)) bad('the address contains a space');
  // A socket path without its prefix: read as a host name (port 8000), as Gunicorn reads it, it would fail as
  // "cannot resolve host". No host name starts with a slash, and there is no .sock top-level domain.
  if (/^\.{0,2}\//.test(s) || (/\.sock$/i.test(s) && !s.includes(':'))) bad(`a Unix socket path needs its prefix: write unix:${s}`);
  // Gunicorn reads a bare "8000" as the host 8000 (0.0.31.64 to the resolver), on port 8000: never meant.
  if (/^\d+$/.test(s)) bad(`a port alone is not an address: write 127.0.0.1:${s} (this machine only) or :${s} (every interface)`);
  const split = splitHostPort(s, 8000);
  if (typeof split === 'string') return bad(split);
  const { portText } = split;
  let host = split.host;
  // Gunicorn: ":8000" and "*:8000" bind every interface; a bare host binds port 8000.
  if (host === '' || host === '*') host = '0.0.0.0';
  // `-b 8000` meant a port: as a host, the resolver reads "8000" as the address 0.0.31.64, not on this machine.
  // "0" stays (0:8000 is 0.0.0.0:8000 to the resolver, as Django's runserver has it).
  if (/^\d+$/.test(host) && host !== '0') bad(`${JSON.stringify(host)} is read as a host, not a port: give :${host} (every interface) or 127.0.0.1:${host}`);
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) bad(`the port ${JSON.stringify(portText)} is not 0..65535`);
  return { kind: 'tcp', host, port: Number(portText) };
}

export interface HostPort {
  readonly host: string;
  /** The port as written, or the default when none is: the caller checks its range. */
  readonly portText: string;
}

/**
 * Splits HOST:PORT or [IPv6]:PORT (bind, statsd_host): the host and the port's text, `defaultPort` when there
 * is none; or why the text is neither, in words the caller completes with its expected forms.
 */
export function splitHostPort(s: string, defaultPort: number): HostPort | string {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) return 'the IPv6 address has no closing "]"';
    const host = s.slice(1, end);
    if (!startupIsIPv6(host)) return `${host} is not an IPv6 address`;
    const rest = s.slice(end + 1);
    if (rest && !rest.startsWith(':')) return 'expected ":PORT" after "]"';
    return { host, portText: rest ? rest.slice(1) : String(defaultPort) };
  }
  const colon = s.lastIndexOf(':');
  const host = colon < 0 ? s : s.slice(0, colon);
  if (host.includes(':')) return `put an IPv6 address in brackets, as [::1]:${defaultPort}`;
  return { host, portText: colon < 0 ? String(defaultPort) : s.slice(colon + 1) };
}

/** `127.0.0.1:8000`, `[::1]:8000`: an IPv6 address in brackets. */
export function joinHostPort(host: string, port: number): string {
  return startupIsIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** How the log and --print-config name a bound socket: http://127.0.0.1:8000, http://[::1]:8000, unix:/path. */
export function formatAddress(a: Address, scheme = 'http'): string {
  switch (a.kind) {
    case 'tcp':
      return `${scheme}://${joinHostPort(a.host, a.port)}`;
    case 'unix':
      return `unix:${a.path}`;
    case 'fd':
      return `fd://${a.fd}`;
  }
}
