import net from 'node:net';

/** A zone as `net.isIPv6` takes it after the `%` (`eth0`, `1`). */
const ZONE = /^[0-9a-zA-Z.:-]+$/;

/**
 * Whether `s` is an IPv6 address, with or without a zone (`fe80::1%eth0`): what `net.isIPv6` answers, for the
 * code that runs as the master or a worker starts (binds, allow lists, settings). `net.isIPv6` tests a regular
 * expression that V8 compiles at its first use: 5 ms of each process's start on the machines here, once in the
 * master and once in each worker (docs/design.md, "Start-up"). Here Node's parser of socket addresses
 * (inet_pton) checks the address instead: about 3 µs a call, 16 µs for one that fails, where the compiled
 * expression takes 0.1-0.4 µs. So not for code that runs per request or connection: that keeps `net.isIPv6`.
 */
export function startupIsIPv6(s: string): boolean {
  if (!s.includes(':')) return false;
  const zone = s.indexOf('%');
  if (zone !== -1 && !ZONE.test(s.slice(zone + 1))) return false;
  try {
    new net.SocketAddress({ address: zone === -1 ? s : s.slice(0, zone), family: 'ipv6' });
    return true;
  } catch {
    return false;
  }
}

/**
 * One spelling of an address: an IPv6 literal as the URL parser writes it (`0::1` is `::1`), and an IPv4-mapped one
 * as the IPv4 address it is (`::ffff:127.0.0.1` is `127.0.0.1`, whose port it takes on Linux); a name in lower case.
 * For the binds' checks (startupIsIPv6: not per request).
 */
export function canonicalHost(host: string): string {
  if (!startupIsIPv6(host)) return host.toLowerCase();
  let h: string;
  try {
    h = new URL(`http://[${host}]/`).hostname.slice(1, -1);
  } catch {
    return host.toLowerCase(); // a zone id (fe80::1%eth0), which the URL parser does not take
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h);
  if (!mapped) return h;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** `net.isIP` by startupIsIPv6: 4, 6, or 0 for neither. */
export function startupIsIP(s: string): 0 | 4 | 6 {
  return net.isIPv4(s) ? 4 : startupIsIPv6(s) ? 6 : 0;
}
