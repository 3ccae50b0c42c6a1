import net from 'node:net';
import { ConfigError } from '../config/setting.js';
import { startupIsIPv6 } from '../ip.js';

/**
 * Which peers are trusted (forwarded_allow_ips, proxy_allow_from): addresses, CIDR ranges, or `*`.
 * IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`, as a dual-stack socket reports them) match IPv4 entries.
 */
export class AllowList {
  constructor(
    readonly any: boolean,
    private readonly blocks: net.BlockList,
  ) {}

  allows(address: string | undefined): boolean {
    if (this.any) return true;
    // A Unix socket peer has no address: only a local process can reach it.
    if (address === undefined || address === '') return true;
    return this.listed(address);
  }

  /**
   * Whether an address the forwarded headers name is a trusted proxy's, to walk past: only by the addresses
   * and ranges listed, never by `*`. `*` trusts the peer that connects (Gunicorn's "disable checking of
   * front-end IPs"), not what the headers say: every hop in them would be "trusted", and the client's own
   * X-Forwarded-For, to the left of what the proxy appended, would choose the address the app sees.
   */
  listed(address: string): boolean {
    if (net.isIPv4(address)) return this.blocks.check(address, 'ipv4');
    if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) return this.blocks.check(address.slice(7), 'ipv4');
    return net.isIPv6(address) && this.blocks.check(address, 'ipv6');
  }
}

/** Why an allow list cannot be read: its first bad entry, in words, or undefined. */
export function allowListProblem(entries: readonly string[]): string | undefined {
  try {
    parseAllowList(entries);
    return undefined;
  } catch (err) {
    if (err instanceof AllowListError) return `${JSON.stringify(err.entry)} is not an IP address, a CIDR range (10.0.0.0/8) or *`;
    throw err;
  }
}

class AllowListError extends ConfigError {
  constructor(readonly entry: string) {
    super(`invalid address in an allow list: ${JSON.stringify(entry)}; expected an IP address, a CIDR range (10.0.0.0/8) or *`);
  }
}

export function parseAllowList(entries: readonly string[]): AllowList {
  const blocks = new net.BlockList();
  let any = false;
  for (const raw of entries) {
    const e = raw.trim();
    if (e === '*') {
      any = true;
      continue;
    }
    const [addr, bits, extra] = e.split('/');
    const family = net.isIPv4(addr ?? '') ? 'ipv4' : startupIsIPv6(addr ?? '') ? 'ipv6' : null;
    const max = family === 'ipv4' ? 32 : 128;
    const prefix = bits === undefined ? max : /^\d+$/.test(bits) ? Number(bits) : NaN;
    if (!family || extra !== undefined || !(prefix >= 0 && prefix <= max))
      throw new AllowListError(raw);
    if (prefix === max) blocks.addAddress(addr!, family);
    else blocks.addSubnet(addr!, prefix, family);
  }
  return new AllowList(any, blocks);
}
