/**
 * Proxies, on the real CLI:
 * - forwarded_allow_ips: from a trusted peer X-Forwarded-For / X-Forwarded-Proto / Forwarded give the client
 *   address (req.socket.remoteAddress, clientAddress(request), the access log) and scheme (a Fetch URL)
 * - from an untrusted peer (127.0.0.2 here) those headers are removed before the app sees them
 * - an absolute-form target gives a Fetch URL its authority and path, never its scheme or userinfo; other
 *   schemes, and a Host a URL cannot hold, get 400 before the app
 * - CIDR ranges in the list; a chain of proxies is walked back to the first untrusted hop; * trusts the peer,
 *   never the hops the headers name (a client's own X-Forwarded-For cannot choose its address)
 * - pipelined requests (async) each keep their own address; a secure scheme header of any name works
 * - --proxy-protocol v1 / v2 / auto: the PROXY header gives the client address; a connection without one,
 *   with a malformed one, or from a peer not in --proxy-allow-from is closed with no answer
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import path from 'node:path';

import { parseResponses } from '../helpers/raw.js';
import { FIXTURES, Server, stopAll, until } from '../helpers/server.js';

after(stopAll);

const fx = (name: string) => path.join(FIXTURES, name);

async function start(args: string[]): Promise<{ s: Server; port: number }> {
  const s = new Server(['-b', '127.0.0.1:0', ...args]);
  const port = await s.port();
  await s.workersBooted(1);
  return { s, port };
}

/** One GET with extra header lines, from a chosen local address; the JSON body the app answered. */
async function get(port: number, headers: string, from = '127.0.0.1', prefix = ''): Promise<Record<string, unknown>> {
  const r = await exchangeFrom(port, `${prefix}GET /x HTTP/1.1\r\nHost: h.example\r\n${headers}Connection: close\r\n\r\n`, from);
  assert.equal(r.responses.length, 1, `expected one response, got ${JSON.stringify(r)}`);
  assert.equal(r.responses[0]!.status, 200);
  return JSON.parse(r.responses[0]!.body) as Record<string, unknown>;
}

/** Like exchange(), but the client socket is bound to `from` (any 127.x address works on loopback). */
function exchangeFrom(port: number, bytes: string | Buffer, from: string) {
  return new Promise<{ responses: { status: number; body: string }[]; closed: boolean; raw: string }>((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let raw = '';
    const t = setTimeout(() => { socket.destroy(); reject(new Error(`no close within 15 s; got ${JSON.stringify(raw)}`)); }, 15000);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (raw += d));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(t);
      const { responses } = parseResponses(raw);
      resolve({ responses, closed: true, raw });
    });
    socket.on('connect', () => socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes));
  });
}

describe('forwarded headers', () => {
  it('from a trusted peer (the default list) give the client address and scheme to listeners and Fetch handlers', async () => {
    const { s, port } = await start([fx('whoami.ts'), '--access-logfile', '-', '--access-logformat', 'ACCESS %(h)s']);
    const a = await get(port, 'X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n');
    assert.equal(a.addr, '203.0.113.7');
    assert.equal(a.xff, '203.0.113.7');
    assert.equal(a.proto, 'https');
    await until(() => s.stdout.includes('ACCESS 203.0.113.7') || s.log.includes('ACCESS 203.0.113.7'));
    // The next request on another connection, without the header, sees the real peer again.
    const b = await get(port, '');
    assert.equal(b.addr, '127.0.0.1');
    // On one connection too: each request sets the address anew, and one without the header gets the peer.
    const both = await exchangeFrom(port,
      'GET /x HTTP/1.1\r\nHost: h.example\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n' +
      'GET /x HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n\r\n', '127.0.0.1');
    assert.deepEqual(both.responses.map((r) => (JSON.parse(r.body) as { addr: string }).addr), ['203.0.113.9', '127.0.0.1']);
    await s.kill();

    const f = await start([fx('fetch-client.ts')]);
    const c = await get(f.port, 'X-Forwarded-For: 198.51.100.4\r\nX-Forwarded-Proto: https\r\n');
    assert.equal(c.addr, '198.51.100.4');
    assert.equal(c.url, 'https://h.example/x');
    const d = await get(f.port, 'Forwarded: for="[2001:db8::1]:4711";proto=https\r\n');
    assert.equal(d.addr, '2001:db8::1');
    assert.equal(d.url, 'https://h.example/x');
    const e = await get(f.port, '');
    assert.equal(e.url, 'http://h.example/x');
    await f.s.kill();
  });

  it('from an untrusted peer are removed before the app sees them', async () => {
    const { s, port } = await start([fx('whoami.ts')]);
    const a = await get(port, 'X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nForwarded: for=1.2.3.4\r\n', '127.0.0.2');
    assert.equal(a.addr, '127.0.0.2');
    assert.equal(a.xff, null);
    assert.equal(a.xffDistinct, null);
    assert.equal(a.proto, null);
    assert.equal(a.forwarded, null);
    await s.kill();
    const f = await start([fx('fetch-client.ts')]);
    const b = await get(f.port, 'X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n', '127.0.0.2');
    assert.equal(b.addr, '127.0.0.2');
    assert.equal(b.url, 'http://h.example/x');
    assert.equal(b.xff, null);
    await f.s.kill();
  });

  it('give the Fetch URL its scheme, never an absolute-form target; a bad target or Host gets 400', async () => {
    const { s, port } = await start([fx('fetch-url.ts'), '--forwarded-allow-ips', '127.0.0.1', '--log-level', 'debug']);
    const ask = async (line: string, headers = '', from = '127.0.0.2') => {
      const r = await exchangeFrom(port, `${line} HTTP/1.1\r\nHost: good\r\n${headers}Connection: close\r\n\r\n`, from);
      const first = r.responses[0];
      assert.ok(first, `${line}: no response; got ${JSON.stringify(r.raw)}`);
      return first.status === 200 ? (JSON.parse(first.body) as { url: string }).url : first.status;
    };
    assert.equal(await ask('GET https://other:99/p?q', 'X-Forwarded-Proto: https\r\n'), 'http://other:99/p?q');
    assert.equal(await ask('GET http://u:pw@other/p'), 'http://other/p');
    assert.equal(await ask('OPTIONS *'), 'http://good/');
    assert.equal(await ask('GET http://other/p', 'X-Forwarded-Proto: https\r\n', '127.0.0.1'), 'https://other/p');
    assert.equal(await ask('GET ftp://other/p'), 400);
    assert.equal(await ask('GET */x'), 400);
    // The refusal says what is wrong, and never repeats the target or the Host it got.
    const target = await exchangeFrom(port, 'GET ftp://other/p HTTP/1.1\r\nHost: good\r\n\r\n', '127.0.0.2');
    assert.equal(
      target.responses[0]?.body,
      '400 Bad Request: the request target is not a path, an http(s) URL with a valid host, * (OPTIONS) or host:port (CONNECT)\n',
    );
    const before = s.count(/Refused a request/);
    for (const host of ['a%40b', 'a%2fb', 'x%00y']) {
      const r = await exchangeFrom(port, `GET /p HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, '127.0.0.2');
      assert.equal(r.responses[0]?.status, 400, `Host: ${host}; got ${JSON.stringify(r.raw)}`);
      assert.equal(r.responses[0]?.body, '400 Bad Request: invalid Host header (not a host[:port] a URL can hold)\n');
    }
    // One debug line each, as for any refused request; no error and no stack.
    await until(() => s.count(/Refused a request from 127\.0\.0\.2: 400 Bad Request: invalid Host header/) === 3);
    assert.equal(s.count(/Refused a request/), before + 3);
    assert.doesNotMatch(s.log, /\[ERROR\]/);
    await s.kill();
  });

  it('takes CIDR ranges and walks a chain of proxies back to the first untrusted hop', async () => {
    const { s, port } = await start([fx('whoami.ts'), '--forwarded-allow-ips', '127.0.0.0/30,10.0.0.0/8']);
    const a = await get(port, 'X-Forwarded-For: 198.51.100.1, 203.0.113.9, 10.1.1.1\r\n', '127.0.0.2');
    assert.equal(a.addr, '203.0.113.9');
    const b = await get(port, 'X-Forwarded-For: 198.51.100.1\r\n', '127.0.0.9'); // outside 127.0.0.0/30
    assert.equal(b.addr, '127.0.0.9');
    assert.equal(b.xff, null);
    await s.kill();
  });

  it("with *, trusts the peer as Gunicorn does, not the hops the headers name: a client's own X-Forwarded-For cannot choose its address", async () => {
    // A front-end at an address nobody knows in advance appends the client it saw (203.0.113.9) to what the
    // client sent (6.6.6.6). Walking past every hop "trusted" by * gave the app, and the access log, 6.6.6.6.
    const { s, port } = await start([fx('whoami.ts'), '--forwarded-allow-ips', '*', '--access-logfile', '-', '--access-logformat', 'ACCESS %(h)s']);
    assert.equal((await get(port, 'X-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n', '127.0.0.2')).addr, '203.0.113.9');
    assert.equal((await get(port, 'Forwarded: for=6.6.6.6, for=203.0.113.9\r\n', '127.0.0.2')).addr, '203.0.113.9');
    await until(() => (s.stdout.match(/^ACCESS 203\.0\.113\.9$/gm) ?? []).length === 2, 5000, 'two access log lines');
    assert.doesNotMatch(s.stdout, /6\.6\.6\.6/);
    await s.kill();
    // Listed ranges are still walked past, with * beside them.
    const listed = await start([fx('whoami.ts'), '--forwarded-allow-ips', '*,10.0.0.0/8']);
    assert.equal((await get(listed.port, 'X-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.1.1.1\r\n', '127.0.0.2')).addr, '203.0.113.9');
    await listed.s.kill();
  });

  it('pipelined requests each keep their own client address for their whole life (-k async)', async () => {
    const { s, port } = await start([fx('whoami-later.ts'), '-k', 'async']);
    // Node hands the app all three at once; each reads its address again after the others have started.
    const r = await exchangeFrom(port,
      'GET /1 HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n' +
      'GET /2 HTTP/1.1\r\nHost: h\r\n\r\n' +
      'GET /3 HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 2.2.2.2\r\nConnection: close\r\n\r\n', '127.0.0.1');
    assert.deepEqual(r.responses.map((x) => JSON.parse(x.body) as unknown), [
      { first: '1.1.1.1', later: '1.1.1.1', helper: '1.1.1.1' },
      { first: '127.0.0.1', later: '127.0.0.1', helper: '127.0.0.1' },
      { first: '2.2.2.2', later: '2.2.2.2', helper: '2.2.2.2' },
    ]);
    await s.kill();
  });

  it('a secure scheme header of any name is honoured from a trusted peer and removed from others', async () => {
    const { s, port } = await start([fx('fetch-client.ts'), '--secure-scheme-header', 'SSL-Offload=on']);
    const a = await get(port, 'SSL-Offload: on\r\n');
    assert.equal(a.url, 'https://h.example/x');
    assert.equal(a.ssl, 'on');
    const b = await get(port, 'SSL-Offload: on\r\n', '127.0.0.2');
    assert.equal(b.url, 'http://h.example/x');
    assert.equal(b.ssl, null);
    await s.kill();
  });

  it('Forwarded: the scheme is the one of the hop the client address comes from, not the nearest proxy\'s', async () => {
    const { s, port } = await start([fx('fetch-client.ts')]);
    // The proxy facing the client (127.0.0.1, trusted) saw https; the one in front of tunicorn said nothing
    // of its own connection, or that it came over http.
    for (const fwd of ['for=203.0.113.9;proto=https, for=127.0.0.1', 'for=203.0.113.9;proto=https, for=127.0.0.1;proto=http']) {
      const r = await get(port, `Forwarded: ${fwd}\r\n`);
      assert.deepEqual([r.addr, r.url], ['203.0.113.9', 'https://h.example/x'], fwd);
    }
    // The client's hop said http: the nearest proxy's https does not make it https.
    const c = await get(port, 'Forwarded: for=203.0.113.9;proto=http, for=127.0.0.1;proto=https\r\n');
    assert.deepEqual([c.addr, c.url], ['203.0.113.9', 'http://h.example/x']);
    // Only the nearest proxy names a scheme: it is taken, as before.
    const d = await get(port, 'Forwarded: for=203.0.113.9, for=127.0.0.1;proto=https\r\n');
    assert.equal(d.url, 'https://h.example/x');
    await s.kill();
  });

  it('secure scheme headers that contradict each other get 400, as Gunicorn (a forged one cannot win)', async () => {
    const { s, port } = await start([fx('fetch-client.ts')]);
    // The proxy says http; a header it passed through unchanged says https.
    for (const headers of ['X-Forwarded-Proto: http\r\nX-Forwarded-Ssl: on\r\n', 'X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n']) {
      const r = await exchangeFrom(port, `GET /x HTTP/1.1\r\nHost: h.example\r\n${headers}\r\n`, '127.0.0.1');
      assert.equal(r.responses.length, 1, JSON.stringify(r));
      assert.equal(r.responses[0]!.status, 400);
      assert.match(r.responses[0]!.body, /^400 Bad Request: contradictory scheme headers/);
    }
    // Ones that agree are served; from an untrusted peer they are removed, not judged.
    assert.equal((await get(port, 'X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on\r\n')).url, 'https://h.example/x');
    assert.equal((await get(port, 'X-Forwarded-Proto: http\r\nX-Forwarded-Ssl: off\r\n')).url, 'http://h.example/x');
    assert.equal((await get(port, 'X-Forwarded-Proto: http\r\nX-Forwarded-Ssl: on\r\n', '127.0.0.2')).url, 'http://h.example/x');
    await s.kill();
  });

  it('rejects a bad entry at start with one line', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '--forwarded-allow-ips', '10.0.0.0/33', fx('whoami.ts')]);
    const { code } = await s.exited;
    assert.equal(code, 1);
    assert.match(s.log, /invalid value for forwardedAllowIps \(--forwarded-allow-ips\): \["10\.0\.0\.0\/33"\]; "10\.0\.0\.0\/33" is not an IP address, a CIDR range \(10\.0\.0\.0\/8\) or \*/);
  });
});

function v2Header(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const body = Buffer.alloc(12);
  Buffer.from(src).copy(body, 0);
  Buffer.from(dst).copy(body, 4);
  body.writeUInt16BE(sport, 8);
  body.writeUInt16BE(dport, 10);
  const head = Buffer.from([0x21, 0x11, 0x00, 12]);
  return Buffer.concat([sig, head, body]);
}

const REQ = 'GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n';

describe('PROXY protocol', () => {
  it('v1: the header gives the client address; missing, malformed or v2 headers close the connection', async () => {
    const { s, port } = await start([fx('whoami.ts'), '--proxy-protocol', 'v1']);
    const a = await exchangeFrom(port, `PROXY TCP4 203.0.113.9 10.0.0.1 5555 80\r\n${REQ}`, '127.0.0.1');
    assert.equal(JSON.parse(a.responses[0]!.body).addr, '203.0.113.9');
    const six = await exchangeFrom(port, `PROXY TCP6 2001:db8::5 2001:db8::1 5555 80\r\n${REQ}`, '127.0.0.1');
    assert.equal(JSON.parse(six.responses[0]!.body).addr, '2001:db8::5');
    const missing = await exchangeFrom(port, REQ, '127.0.0.1');
    assert.deepEqual(missing.responses, []);
    const bad = await exchangeFrom(port, `PROXY TCP4 999.1.1.1 10.0.0.1 5555 80\r\n${REQ}`, '127.0.0.1');
    assert.deepEqual(bad.responses, []);
    const v2 = await exchangeFrom(port, Buffer.concat([v2Header([203, 0, 113, 1], [10, 0, 0, 1], 1, 80), Buffer.from(REQ)]), '127.0.0.1');
    assert.deepEqual(v2.responses, []);
    // Other clients are still served.
    const again = await exchangeFrom(port, `PROXY TCP4 203.0.113.10 10.0.0.1 5555 80\r\n${REQ}`, '127.0.0.1');
    assert.equal(JSON.parse(again.responses[0]!.body).addr, '203.0.113.10');
    await s.kill();
  });

  it('v2 and auto; a peer not in --proxy-allow-from is closed', async () => {
    const { s, port } = await start([fx('whoami.ts'), '--proxy-protocol', 'auto', '--proxy-allow-from', '127.0.0.1']);
    const a = await exchangeFrom(port, Buffer.concat([v2Header([198, 51, 100, 77], [10, 0, 0, 1], 4000, 80), Buffer.from(REQ)]), '127.0.0.1');
    assert.equal(JSON.parse(a.responses[0]!.body).addr, '198.51.100.77');
    const b = await exchangeFrom(port, `PROXY TCP4 203.0.113.9 10.0.0.1 5555 80\r\n${REQ}`, '127.0.0.1');
    assert.equal(JSON.parse(b.responses[0]!.body).addr, '203.0.113.9');
    const c = await exchangeFrom(port, `PROXY TCP4 203.0.113.9 10.0.0.1 5555 80\r\n${REQ}`, '127.0.0.2');
    assert.deepEqual(c.responses, []);
    const unknown = await exchangeFrom(port, `PROXY UNKNOWN\r\n${REQ}`, '127.0.0.1');
    assert.equal(JSON.parse(unknown.responses[0]!.body).addr, '127.0.0.1');
    await s.kill();
  });
});
