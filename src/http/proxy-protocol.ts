import { isIPv4, isIPv6 } from 'node:net';
import type { ProxyProtocolMode } from '../config/sections/http.js';

/** HAProxy PROXY protocol, version 2's fixed signature. */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Version 1's longest line, CRLF included (the spec's bound). */
const V1_MAX = 107;

export interface ProxyHeader {
  /** The client's address, or undefined for LOCAL / UNKNOWN (health checks): keep the socket's peer. */
  readonly address?: string;
  readonly port?: number;
  /** Bytes of the buffer the header took. */
  readonly length: number;
}

export class ProxyProtocolError extends Error {
  override name = 'ProxyProtocolError';
}

/**
 * Parses a PROXY header at the start of `buf`: the header, `null` when more bytes are needed, or throws
 * ProxyProtocolError when the bytes are not a header the mode accepts.
 */
export function parseProxyHeader(buf: Buffer, mode: Exclude<ProxyProtocolMode, 'off'>): ProxyHeader | null {
  const n = Math.min(buf.length, V2_SIGNATURE.length);
  const maybeV2 = buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n));
  const maybeV1 = Buffer.from('PROXY ').subarray(0, Math.min(buf.length, 6)).equals(buf.subarray(0, Math.min(buf.length, 6)));
  if (maybeV2 && mode !== 'v1') return parseV2(buf);
  if (maybeV1 && mode !== 'v2') return parseV1(buf);
  throw new ProxyProtocolError(`no PROXY ${mode === 'auto' ? '' : `${mode} `}header`);
}

function parseV1(buf: Buffer): ProxyHeader | null {
  const end = buf.indexOf('\r\n');
  if (end < 0) {
    if (buf.length >= V1_MAX) throw new ProxyProtocolError('PROXY v1 line too long');
    return null;
  }
  if (end + 2 > V1_MAX) throw new ProxyProtocolError('PROXY v1 line too long');
  const parts = buf.toString('latin1', 0, end).split(' ');
  const length = end + 2;
  if (parts[1] === 'UNKNOWN') return { length };
  if (parts.length !== 6) throw new ProxyProtocolError('malformed PROXY v1 line');
  const [, proto, src, , sport] = parts as [string, string, string, string, string, string];
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (!family || !isIp(src, family) || !isIp(parts[3]!, family) || !isPort(sport) || !isPort(parts[5]!))
    throw new ProxyProtocolError('malformed PROXY v1 line');
  return { address: src, port: Number(sport), length };
}

function parseV2(buf: Buffer): ProxyHeader | null {
  if (buf.length < 16) return null;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) throw new ProxyProtocolError('unsupported PROXY v2 version');
  const cmd = verCmd & 0x0f;
  const fam = buf[13]!;
  const len = buf.readUInt16BE(14);
  if (buf.length < 16 + len) return null;
  const length = 16 + len;
  if (cmd === 0) return { length }; // LOCAL: the proxy's own connection (a health check)
  if (cmd !== 1) throw new ProxyProtocolError('unsupported PROXY v2 command');
  const body = buf.subarray(16, length);
  switch (fam >> 4) {
    case 1: // AF_INET
      if (body.length < 12) throw new ProxyProtocolError('short PROXY v2 address block');
      return { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8), length };
    case 2: {
      // AF_INET6
      if (body.length < 36) throw new ProxyProtocolError('short PROXY v2 address block');
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
      return { address: compressV6(groups), port: body.readUInt16BE(32), length };
    }
    default: // AF_UNSPEC or AF_UNIX: no IP to report
      return { length };
  }
}

/** An address of the family the line declares (TCP4, TCP6), as inet_pton reads it: no zone (`%eth0`). */
function isIp(s: string, family: 4 | 6): boolean {
  return family === 4 ? isIPv4(s) : isIPv6(s) && !s.includes('%');
}

function isPort(s: string): boolean {
  return /^\d{1,5}$/.test(s) && Number(s) <= 65535 && !(s.length > 1 && s.startsWith('0'));
}

/** The usual text form: the longest run of zero groups as `::`. */
function compressV6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
