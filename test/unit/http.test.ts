/**
 * The HTTP layer's parsers and checks, without a server: allow lists (addresses, CIDR, *, IPv4-mapped
 * peers), PROXY protocol v1/v2 headers (complete, partial, malformed), the first request line's check, and
 * the request checks.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { parseAllowList } from '../../src/http/allow-list.js';
import { isRequestLine } from '../../src/http/connection.js';
import { dropH2ConnectionFields } from '../../src/http/connection-fields.js';
import { HAS_BODY, limitsOf, maxHeaderSize, Rejected, rejectReason, rejectReasonH2 } from '../../src/http/guard.js';
import { Refusals } from '../../src/http/refusals.js';
import { parseProxyHeader, ProxyProtocolError } from '../../src/http/proxy-protocol.js';
import { ConfigError } from '../../src/config/setting.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { checkTls } from '../../src/http/tls.js';
import { selfSigned } from '../helpers/tls.js';

describe('allow lists', () => {
  it('matches addresses, CIDR ranges, IPv4-mapped peers and *', () => {
    const l = parseAllowList(['127.0.0.1', '10.0.0.0/8', '2001:db8::/32']);
    assert.equal(l.allows('127.0.0.1'), true);
    assert.equal(l.allows('127.0.0.2'), false);
    assert.equal(l.allows('10.200.3.4'), true);
    assert.equal(l.allows('::ffff:10.1.2.3'), true);
    assert.equal(l.allows('2001:db8:1::5'), true);
    assert.equal(l.allows('2001:db9::5'), false);
    assert.equal(l.allows(undefined), true, 'a Unix socket peer is local');
    assert.equal(parseAllowList(['*']).allows('203.0.113.1'), true);
    // * trusts any peer, but lists no proxy hop: the addresses a header names are judged by the entries alone.
    assert.equal(parseAllowList(['*']).listed('203.0.113.1'), false);
    assert.equal(parseAllowList(['*', '10.0.0.0/8']).listed('10.1.1.1'), true);
    assert.equal(l.listed('::ffff:10.1.2.3'), true);
  });

  it('rejects what is not an address or a range', () => {
    for (const bad of ['10.0.0.0/33', 'example.com', '1.2.3', '10.0.0.0/8/1', '::1/129'])
      assert.throws(() => parseAllowList([bad]), ConfigError, bad);
  });
});

describe('PROXY protocol headers', () => {
  const v2 = (fam: number, addr: number[], cmd = 0x21) => {
    const sig = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
    return Buffer.from([...sig, cmd, fam, 0, addr.length, ...addr]);
  };

  it('parses v1 TCP4, TCP6 and UNKNOWN, and asks for more when the line is not complete', () => {
    const h = parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\nGET'), 'v1')!;
    assert.deepEqual(h, { address: '192.0.2.1', port: 5000, length: 43 });
    assert.equal(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n'), 'auto')!.address, '2001:db8::1');
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'), 'v1'), { length: 15 });
    assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 192.0'), 'v1'), null);
    assert.equal(parseProxyHeader(Buffer.from('PRO'), 'auto'), null);
  });

  it('parses v2 IPv4, IPv6 and LOCAL', () => {
    const h = parseProxyHeader(v2(0x11, [192, 0, 2, 9, 10, 0, 0, 1, 0x13, 0x88, 0, 80]), 'v2')!;
    assert.deepEqual(h, { address: '192.0.2.9', port: 5000, length: 28 });
    const six = [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1, ...Array(16).fill(0), 0, 1, 0, 2];
    assert.equal(parseProxyHeader(v2(0x21, six), 'auto')!.address, '2001:db8::1');
    assert.deepEqual(parseProxyHeader(v2(0x00, [], 0x20), 'v2'), { length: 16 });
    assert.equal(parseProxyHeader(v2(0x11, [192, 0, 2, 9, 10, 0, 0, 1, 0, 1, 0, 2]).subarray(0, 20), 'v2'), null);
    assert.throws(() => parseProxyHeader(v2(0x11, [192, 0, 2, 9]), 'v2'), ProxyProtocolError);
  });

  it('rejects malformed headers and the other version', () => {
    const bad = [
      ['GET / HTTP/1.1\r\n', 'auto'],
      ['PROXY TCP4 300.0.0.1 1.1.1.1 1 2\r\n', 'v1'],
      ['PROXY TCP4 1.1.1.1 1.1.1.1 99999 2\r\n', 'v1'],
      ['PROXY TCP5 1.1.1.1 1.1.1.1 1 2\r\n', 'v1'],
      [`PROXY ${'x'.repeat(120)}`, 'v1'],
      ['PROXY TCP4 1.1.1.1 1.1.1.1 1 2\r\n', 'v2'],
    ] as const;
    for (const [text, mode] of bad) assert.throws(() => parseProxyHeader(Buffer.from(text), mode), ProxyProtocolError, text);
    assert.throws(() => parseProxyHeader(v2(0x11, [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]), 'v1'), ProxyProtocolError);
  });

  it('v1: takes only addresses of the declared family, and decimal ports 0-65535', () => {
    const bad = [
      // Hex digits, colons and dots that are no IPv6 address.
      'PROXY TCP6 ::::::: ::1 1111 80',
      'PROXY TCP6 : : 1111 80',
      'PROXY TCP6 1.2.3.4:: ::1 1111 80',
      'PROXY TCP6 1::2::3 ::1 1111 80',
      'PROXY TCP6 12345:: ::1 1111 80',
      'PROXY TCP6 fe80::1%eth0 ::1 1111 80',
      'PROXY TCP6 ::1 ::: 1111 80',
      // The other family.
      'PROXY TCP6 1.2.3.4 5.6.7.8 1111 80',
      'PROXY TCP4 ::1 ::1 1111 80',
      'PROXY TCP4 ::ffff:1.2.3.4 5.6.7.8 1111 80',
      'PROXY TCP4 01.2.3.4 5.6.7.8 1111 80',
      // Ports.
      'PROXY TCP4 1.2.3.4 5.6.7.8 65536 80',
      'PROXY TCP4 1.2.3.4 5.6.7.8 +1111 80',
      'PROXY TCP4 1.2.3.4 5.6.7.8 0x50 80',
      'PROXY TCP4 1.2.3.4 5.6.7.8 01111 80',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1111 -80',
      'PROXY TCP4 1.2.3.4 5.6.7.8  80',
    ];
    for (const line of bad) assert.throws(() => parseProxyHeader(Buffer.from(`${line}\r\n`), 'v1'), ProxyProtocolError, line);
    const good: [string, string, number][] = [
      ['PROXY TCP6 ::ffff:1.2.3.4 ::1 0 80', '::ffff:1.2.3.4', 0],
      ['PROXY TCP6 :: ::1 65535 80', '::', 65535],
      ['PROXY TCP6 2001:DB8:0:0:0:0:0:1 2001:db8::2 1 2', '2001:DB8:0:0:0:0:0:1', 1],
      ['PROXY TCP4 255.255.255.255 0.0.0.0 443 0', '255.255.255.255', 443],
    ];
    for (const [line, address, port] of good)
      assert.deepEqual(parseProxyHeader(Buffer.from(`${line}\r\n`), 'v1'), { address, port, length: line.length + 2 }, line);
  });
});

describe('the first request line', () => {
  /** The line with its CRLF, checked as the gate checks it: from its start to its LF. */
  const check = (line: string): boolean => {
    const buf = Buffer.from(`xx${line}\r\nHost: a\r\n\r\n`, 'latin1');
    return isRequestLine(buf, 2, buf.indexOf(0x0a, 2));
  };

  it('passes method SP target SP HTTP/d.d', () => {
    for (const ok of ['GET / HTTP/1.1', 'GET / HTTP/1.0', "M-S.E!#$%&'*+^_`|~9 /x HTTP/1.1", 'OPTIONS * HTTP/1.1', 'GET /caf\xe9?q=1 HTTP/1.1', 'GET / HTTP/2.0'])
      assert.equal(check(ok), true, ok);
  });

  it('refuses what llhttp would bend into one', () => {
    const bad = [
      'GET  / HTTP/1.1', // two spaces: llhttp serves "/"
      'GET /  HTTP/1.1',
      ' GET / HTTP/1.1',
      'GET\t/ HTTP/1.1',
      'GET /', // HTTP/0.9: llhttp waits for more
      'GET / HTTP/1.1 ',
      'GET / HTTP/1.1 extra',
      'GET / HTTP/1',
      'GET / HTTP/1.10',
      'GET / HTTPS/1.1',
      'GET / http/1.1',
      'GET /\x7f HTTP/1.1',
      'GET /\x01 HTTP/1.1',
      'G(T / HTTP/1.1',
      'GET HTTP/1.1',
      '',
    ];
    for (const line of bad) assert.equal(check(line), false, JSON.stringify(line));
    // No CR before the LF.
    const bare = Buffer.from('GET / HTTP/1.1\nHost: a\n\n', 'latin1');
    assert.equal(isRequestLine(bare, 0, bare.indexOf(0x0a)), false);
  });
});

describe('request checks', () => {
  const req = (line: Partial<IncomingMessage>, raw: string[]): IncomingMessage =>
    ({ method: 'GET', url: '/', httpVersionMajor: 1, httpVersionMinor: 1, rawHeaders: raw, ...line }) as IncomingMessage;

  it('apply Gunicorn\'s limits, the Host rules and the version rule', async () => {
    const { config } = await resolveConfig({ argv: ['app.ts'], env: {}, cwd: process.cwd() });
    const l = limitsOf(config);
    assert.equal(rejectReason(req({}, ['Host', 'x']), l), 0);
    assert.equal(rejectReason(req({ httpVersionMajor: 2, httpVersionMinor: 0 }, ['Host', 'x']), l), Rejected.Version);
    assert.equal(rejectReason(req({}, []), l), Rejected.NoHost);
    assert.equal(rejectReason(req({ httpVersionMinor: 0 }, []), l), 0);
    assert.equal(rejectReason(req({}, ['Host', 'a', 'host', 'b']), l), Rejected.TwoHosts);
    assert.equal(rejectReason(req({}, ['Host', 'a b']), l), Rejected.BadHost);
    assert.equal(rejectReason(req({}, ['Host', 'x', 'transfer_encoding', 'chunked']), l), Rejected.Underscore);
    assert.equal(rejectReason(req({}, ['Host', 'x', 'CONTENT_length', '5']), l), Rejected.Underscore);
    assert.equal(rejectReason(req({}, ['Host', 'x', 'X_Other', 'fine']), l), 0);
    assert.equal(rejectReason(req({}, ['Host', 'x', 'Content_Type', 'text/plain', 'Transfer_Encodings', 'x']), l), 0);
    assert.equal(rejectReason(req({ httpVersionMinor: 0 }, ['Transfer-Encoding', 'chunked']), l), Rejected.ChunkedHttp10);
    assert.equal(rejectReason(req({ url: '/' + 'a'.repeat(4080) }, ['Host', 'x']), l), 0);
    assert.equal(rejectReason(req({ url: '/' + 'a'.repeat(4081) }, ['Host', 'x']), l), Rejected.LineTooLong);
    assert.equal(rejectReason(req({}, ['Host', 'x', ...Array(200).fill('X')]), l), Rejected.TooManyFields);
    assert.equal(rejectReason(req({}, ['Host', 'x', 'X', 'v'.repeat(8188)]), l), Rejected.FieldTooLarge);
    assert.equal(rejectReason(req({}, ['Host', 'x', 'X', 'v'.repeat(8187)]), l), 0);
  });

  it('refuse a Host a URL cannot hold, and targets other than origin-form, absolute http(s) and OPTIONS *', async () => {
    const { config } = await resolveConfig({ argv: ['app.ts'], env: {}, cwd: process.cwd() });
    const l = limitsOf(config);
    for (const host of ['a%40b', 'a%2fb', 'x%00y', 'a:99999', '1.2.3.999', '[1:2]']) {
      assert.equal(rejectReason(req({}, ['Host', host]), l), Rejected.BadHost, `Host: ${host}`);
    }
    // A label that is not valid punycode: Node 20's and 22's URL parser refuses it, Node 24's takes it as it
    // is. The guard refuses what the URL of the Node it runs on cannot hold, and nothing more.
    const punycode = rejectReason(req({}, ['Host', 'xn--a']), l);
    assert.equal(punycode, URL.canParse('http://xn--a/') ? 0 : Rejected.BadHost, 'Host: xn--a');
    for (const host of ['', 'a.example:8080', '[::1]:80', '10.0.0.1', 'a%41b', 'a:']) {
      assert.equal(rejectReason(req({}, ['Host', host]), l), 0, `Host: ${host}`);
    }
    const target = (url: string, method = 'GET') => rejectReason(req({ url, method }, ['Host', 'x']), l);
    for (const url of ['http://x/p', 'HTTPS://x:99/p?q', 'http://u:pw@x/p', 'http://x', 'http://x?q', 'http://[::1]/']) {
      assert.equal(target(url), 0, url);
    }
    assert.equal(target('*', 'OPTIONS'), 0);
    for (const url of ['ftp://x/p', 'ws://x/p', 'http:///p', 'http://:80/p', 'http://a@b@c/p', 'http://x%40y/p', 'http://x:99999/']) {
      assert.equal(target(url), Rejected.BadTarget, url);
    }
    assert.equal(target('*'), Rejected.BadTarget, 'GET *');
    assert.equal(target('*/x', 'OPTIONS'), Rejected.BadTarget);
    // CONNECT's authority-form (checked when the app serves 'connect'): host and port, nothing else.
    for (const url of ['h:443', '10.0.0.1:8080', '[::1]:443']) assert.equal(target(url, 'CONNECT'), 0, `CONNECT ${url}`);
    for (const url of ['h', 'h:', 'http://h:443/', 'h:99999', 'a%40b:443']) assert.equal(target(url, 'CONNECT'), Rejected.BadTarget, `CONNECT ${url}`);
  });

  it('match header names in any case, and only whole names', async () => {
    const { config } = await resolveConfig({ argv: ['app.ts'], env: {}, cwd: process.cwd() });
    const l = limitsOf(config);
    assert.equal(rejectReason(req({}, ['HOST', 'x', 'hOsT', 'y']), l),Rejected.TwoHosts, 'two Host fields, whatever their case');
    assert.equal(rejectReason(req({}, ['Hosts', 'x']), l),Rejected.NoHost, 'Hosts is not Host: no Host at all');
    assert.equal(rejectReason(req({ httpVersionMinor: 0 }, ['TRANSFER-ENCODING', 'chunked']), l), Rejected.ChunkedHttp10);
    assert.equal(rejectReason(req({}, ['Host', 'x', 'CONTENT-LENGTH', '5']), l), HAS_BODY);
    assert.equal(rejectReason(req({}, ['Host', 'x', 'Content-Lengths', '5']), l), 0);
    assert.equal(rejectReason(req({}, ['Host', 'x', 'Content-Length', '0']), l), 0, 'an empty body is no body');
  });

  it('are answered with one line naming the reason, and the setting with its value', async () => {
    const { config } = await resolveConfig({ argv: ['app.ts'], env: {}, cwd: process.cwd() });
    const r = new Refusals(config, limitsOf(config));
    const at = (why: Rejected) => r.rejected[why]!;
    assert.equal(at(Rejected.LineTooLong).body, '414 URI Too Long: the request line is over limit_request_line (4094 bytes)\n');
    assert.equal(at(Rejected.TooManyFields).body, '431 Request Header Fields Too Large: more header fields than limit_request_fields (100)\n');
    assert.equal(at(Rejected.FieldTooLarge).line, '431 Request Header Fields Too Large: a header field is over limit_request_field_size (8190 bytes)');
    for (const why of Object.values(Rejected).filter((v) => typeof v === 'number')) {
      const x = at(why);
      assert.ok(x, `a refusal for ${Rejected[why]}`);
      assert.match(x.body, new RegExp(`^${x.status} [A-Za-z ]+: [ -~]+\\n$`));
      assert.match(x.raw, new RegExp(`^HTTP/1\\.1 ${x.status} [^\\r]+\\r\\nContent-Type: text/plain; charset=utf-8\\r\\nContent-Length: ${x.length}\\r\\nConnection: close\\r\\n\\r\\n`));
      assert.equal(x.raw, x.rawHead + x.body);
      assert.equal(x.length, Buffer.byteLength(x.body));
    }
    // A header overflow from Node's parser, told apart as Node 24 reports them (bytesParsed: where it stopped;
    // the last argument: the fields it had handed to JavaScript).
    const overflow = (raw: string, at: number) => Object.assign(new Error('Parse Error: Header overflow'), { code: 'HPE_HEADER_OVERFLOW', rawPacket: Buffer.from(raw, 'latin1'), bytesParsed: at });
    const many = `GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 500 }, (_, i) => `X-H${i}: 1\r\n`).join('')}\r\n`;
    const stop = many.indexOf('X-H100:') + 'X-H100:'.length;
    assert.equal(r.forParserError(overflow(many, stop), 96), at(Rejected.TooManyFields), 'more fields than maxHeadersCount');
    assert.equal(r.forParserError(overflow(many, stop)), at(Rejected.TooManyFields), 'the same, no parser to ask');
    assert.equal(r.forParserError(overflow(many, stop), 32).line, '431 Request Header Fields Too Large: the header section is over 823298 bytes (limit_request_line, limit_request_fields and limit_request_field_size added up)');
    const big = `GET / HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(5000)}\r\n`;
    assert.equal(r.forParserError(overflow(big, big.length - 2), 0).status, 431);
    assert.match(r.forParserError(overflow(big, big.length - 2), 0).line, /the header section is over/);
    assert.equal(r.forParserError(overflow(`GET /${'a'.repeat(9000)}`, 9005)).status, 414);
    // HTTP/2: the same limits, the same reasons.
    const h2 = (p: Partial<IncomingMessage>) => rejectReasonH2({ method: 'GET', url: '/', rawHeaders: [':authority', 'x'], ...p }, limitsOf(config));
    assert.equal(h2({}), 0);
    assert.equal(h2({ url: `/${'a'.repeat(5000)}` }), Rejected.LineTooLong);
    assert.equal(h2({ rawHeaders: ['x-big', 'v'.repeat(9000)] }), Rejected.FieldTooLarge);
    assert.equal(h2({ rawHeaders: Array.from({ length: 101 }, (_, i) => [`x-${i}`, 'v']).flat() }), Rejected.TooManyFields);
    // A Host field (what a listener reads as req.headers.host) has the HTTP/1.1 rules and names :authority's host.
    assert.equal(h2({ rawHeaders: [':authority', 'Example.com:8443', 'host', 'example.com:8443'] }), 0);
    assert.equal(h2({ rawHeaders: ['host', 'example.com'] }), 0);
    assert.equal(h2({ rawHeaders: [':authority', 'a', 'host', 'b'] }), Rejected.HostNotAuthority);
    assert.equal(h2({ rawHeaders: ['host', 'a/b'] }), Rejected.BadHost);
    assert.equal(h2({ rawHeaders: ['host', 'a', 'host', 'a'] }), Rejected.TwoHosts);
    assert.equal(r.rejected[Rejected.HostNotAuthority]!.line, '400 Bad Request: the Host header names another host than :authority');
    // 0 (no limit set): the ceiling that still applies.
    const argv = ['--limit-request-line', '0', '--limit-request-fields', '0', '--limit-request-field-size', '0', 'app.ts'];
    const zero = (await resolveConfig({ argv, env: {}, cwd: process.cwd() })).config;
    const z = new Refusals(zero, limitsOf(zero)).rejected;
    assert.equal(z[Rejected.LineTooLong]!.line, '414 URI Too Long: the request line is over 1048576 bytes (limit_request_line is 0)');
    assert.equal(z[Rejected.TooManyFields]!.line, '431 Request Header Fields Too Large: more header fields than 32768 (limit_request_fields is 0)');
    assert.equal(z[Rejected.FieldTooLarge]!.line, '431 Request Header Fields Too Large: a header field is over 8388608 bytes (limit_request_field_size is 0)');
    // 0 lifts the per-field limit: it allows as much as any explicit value, up to the header section's bound.
    assert.equal(limitsOf(zero).fieldSize, maxHeaderSize(limitsOf(zero)));
  });
});

describe('HTTP/2 responses', () => {
  it("leave out HTTP/1.1's connection fields, whichever way the app gives them", () => {
    const calls: unknown[][] = [];
    class Fake {
      setHeader(...a: unknown[]) {
        calls.push(['set', ...a]);
        return this;
      }
      writeHead(...a: unknown[]) {
        calls.push(['head', ...a]);
        return this;
      }
    }
    dropH2ConnectionFields(Fake.prototype as never);
    const r = new Fake();
    r.setHeader('Keep-Alive', 'timeout=5');
    r.setHeader('TE', 'trailers');
    r.setHeader('te', 'gzip');
    r.setHeader('x-long-name-here', 'v');
    r.writeHead(200, { Connection: 'close', 'content-type': 'a' });
    r.writeHead(200, 'OK', ['Transfer-Encoding', 'chunked', 'etag', '"x"']);
    r.writeHead(200, [['upgrade', 'h2c'], ['vary', 'a']]);
    const headers = { 'content-type': 'a' };
    r.writeHead(204, headers);
    r.writeHead(204);
    assert.deepEqual(calls, [
      ['set', 'TE', 'trailers'],
      ['set', 'x-long-name-here', 'v'],
      ['head', 200, { 'content-type': 'a' }],
      ['head', 200, 'OK', ['etag', '"x"']],
      ['head', 200, [['vary', 'a']]],
      ['head', 204, headers],
      ['head', 204],
    ]);
    assert.equal(calls[5]![2], headers, 'a head with none to leave out is passed as it is');
  });
});

describe('security settings', () => {
  it('umask takes an octal string or, in a config file, a number', async () => {
    const { SETTINGS } = await import('../../src/config/registry.js');
    const { parseUmask } = await import('../../src/workers/privileges.js');
    assert.equal(parseUmask(SETTINGS.umask.fromConfig(0o22)), 0o22);
    assert.equal(parseUmask(SETTINGS.umask.fromCli(['022'])), 0o22);
    assert.equal(parseUmask(SETTINGS.umask.fromCli(['0o077'])), 0o77);
    assert.throws(() => SETTINGS.umask.fromCli(['9']), /invalid value for umask \(--umask\): "9"; expected an octal mode/);
    assert.throws(() => SETTINGS.umask.fromConfig(-1), ConfigError);
  });
});

describe('TLS settings', () => {
  it('cert_reqs takes Gunicorn\'s numbers too', async () => {
    const { SETTINGS } = await import('../../src/config/registry.js');
    assert.equal(SETTINGS.certReqs.fromCli(['2']), 'required');
    assert.equal(SETTINGS.certReqs.fromConfig(1), 'optional');
    assert.equal(SETTINGS.certReqs.fromCli(['none']), 'none');
    assert.throws(() => SETTINGS.certReqs.fromCli(['3']), /invalid value for certReqs \(--cert-reqs\): "3"; expected one of none, optional, required/);
  });
});

describe('keep-alive sweep', () => {
  it("finds Node's connection list once the server listens, and declines before (Node then keeps the timeout)", async () => {
    const http = await import('node:http');
    const { sweepIdleConnections } = await import('../../src/http/keep-alive.js');
    const server = http.createServer();
    assert.equal(sweepIdleConnections(server, 1000), false, 'no list before listening');
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      // Fails if a Node release renames the list: every worker would fall back to Node's timer per request.
      assert.equal(sweepIdleConnections(server, 1000), true);
    } finally {
      server.close();
    }
  });
});

describe('body_timeout sweep', () => {
  it("finds Node's list of connections inside a request once the server listens, and declines before (each body then has a timer)", async () => {
    const http = await import('node:http');
    const { sweepStalledBodies } = await import('../../src/http/body-timeout.js');
    const server = http.createServer();
    const none = () => assert.fail('no body stalls here');
    assert.equal(sweepStalledBodies(server, 1000, none), false, 'no list before listening');
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      // Fails if a Node release renames the list or its active(): every body would get a timer again.
      assert.equal(sweepStalledBodies(server, 1000, none), true);
    } finally {
      server.close();
    }
  });
});

describe('checkTls: a certificate outside its validity period', () => {
  it('is a warning (OpenSSL loads it, clients refuse it), before its start and after its end; none within', async () => {
    const certs = selfSigned('valid.test');
    const { config } = await resolveConfig({ argv: ['--certfile', certs.cert, '--keyfile', certs.key, 'app.ts'], env: {}, cwd: process.cwd() });
    const day = 24 * 3600 * 1000;
    assert.deepEqual(checkTls(config), []);
    const [early] = checkTls(config, Date.now() - 2 * day);
    assert.match(early!, /^certfile ".*server\.crt" \(--certfile\) is not valid before \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: clients refuse it until then \(is this machine's clock right\?\)$/);
    // selfSigned certificates are valid for 2 days.
    const [late] = checkTls(config, Date.now() + 3 * day);
    assert.match(late!, /^certfile ".*server\.crt" \(--certfile\) expired on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: clients refuse it; put the renewed certificate in place and send HUP$/);
  });
});
