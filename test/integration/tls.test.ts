/**
 * TLS and HTTP/2 on the real CLI:
 * - --certfile/--keyfile: HTTPS on the bind; HTTP/1.1 clients (ALPN http/1.1 or none) are served
 * - HTTP/2 by ALPN for a (req, res) listener, a Fetch handler (the URL is https://) and an app's own
 *   http.Server (moved onto the TLS server rather than served in cleartext)
 * - an app's own https.Server, exported or listening itself, served with its own certificate
 * - --http-protocols h1 offers no h2
 * - a missing file, a broken certificate or a key that does not match stops the server with one line
 * - --cert-reqs required with --ca-certs: a client without a certificate fails the handshake, one with a
 *   certificate signed by the CA is served
 * - h2c (HTTP/2 with prior knowledge, no TLS) from a trusted peer; refused from another
 * - a gthread thread runs one HTTP/2 connection's streams one at a time, and an idle session does not hold it
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, describe, it } from 'node:test';
import { FIXTURES, request, Server, stopAll, within } from '../helpers/server.js';
import { selfSigned } from '../helpers/tls.js';

after(stopAll);

const fx = (name: string) => path.join(FIXTURES, name);
const certs = selfSigned();

async function start(args: string[]): Promise<{ s: Server; port: number }> {
  const s = new Server(['-b', '127.0.0.1:0', '--certfile', certs.cert, '--keyfile', certs.key, ...args]);
  const port = await s.port();
  assert.match(s.log, /Listening at: https:\/\/127\.0\.0\.1:\d+/);
  await s.workersBooted(1);
  return { s, port };
}

function h1(port: number, opts: https.RequestOptions = {}): Promise<{ status: number; body: string; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/x', rejectUnauthorized: false, agent: false, timeout: 10000, ...opts }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, alpn: (res.socket as tls.TLSSocket).alpnProtocol }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function h2(port: number): Promise<{ status: number; body: string }> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':path': '/x', 'x-forwarded-for': '203.0.113.5' });
      let status = 0;
      let body = '';
      req.on('response', (h) => (status = Number(h[':status'])));
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
  } finally {
    session.close();
  }
}

describe('TLS', () => {
  it('serves HTTPS over HTTP/1.1 and HTTP/2 (ALPN) for a listener', async () => {
    const { s, port } = await start([fx('whoami.ts')]);
    const a = await h1(port);
    assert.equal(a.status, 200);
    assert.equal(JSON.parse(a.body).httpVersion, '1.1');
    assert.ok(a.alpn === 'http/1.1' || a.alpn === false);
    const b = await h2(port);
    assert.equal(b.status, 200);
    assert.equal(JSON.parse(b.body).httpVersion, '2.0');
    // HTTP/2 from a trusted peer: the forwarded client address reaches the app too.
    assert.equal(JSON.parse(b.body).addr, '203.0.113.5');
    await s.kill();
  });

  it('serves a Fetch handler over HTTP/2 with an https URL', async () => {
    const { s, port } = await start([fx('fetch-client.ts')]);
    const r = await h2(port);
    assert.equal(r.status, 200);
    assert.match(JSON.parse(r.body).url, /^https:\/\/127\.0\.0\.1:\d+\/x$/);
    const a = await h1(port);
    assert.match(JSON.parse(a.body).url, /^https:\/\//);
    await s.kill();
  });

  it('serves an app\'s own http.Server over TLS too (HTTP/1.1 and HTTP/2)', async () => {
    const { s, port } = await start([fx('echo-server.ts')]);
    const a = await h1(port);
    assert.equal(JSON.parse(a.body).u, '/x');
    const b = await h2(port);
    assert.equal(b.status, 200);
    assert.equal(JSON.parse(b.body).u, '/x');
    await s.kill();
  });

  // node:https is loaded only once the app has made a TLS server (capture.ts, isHttpServer): both ways of
  // handing one over must still be recognised.
  for (const [how, fixture] of [['exported', 'own-https.ts'], ['listening itself', 'own-https-listens.ts']] as const) {
    it(`serves an app's own https.Server (${how}) with the app's certificate`, async () => {
      const s = new Server(['-b', '127.0.0.1:0', fx(fixture)], { env: { OWN_CERT: certs.cert, OWN_KEY: certs.key } });
      const port = await s.port();
      await s.workersBooted(1);
      const r = await h1(port);
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { u: '/x', encrypted: true });
      await s.kill();
    });
  }

  // An HTTP/2 client that ends its connection (TLS close_notify, then FIN, as curl does): the worker's side
  // must close too. Accepted half-open it stayed open for good, and a sync worker (or a gthread thread),
  // which serves one connection at a time, never served another.
  for (const cls of ['sync', 'gthread']) {
    it(`closes an HTTP/2 connection its client ended, and serves the next one (${cls})`, async () => {
      const { s, port } = await start(['-k', cls, '--threads', '1', fx('whoami.ts')]);
      const served = async () => {
        const spoke = await new Promise<string | false | null>((resolve, reject) => {
          const c = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
            // The client preface and an empty SETTINGS frame, then the end of the connection.
            c.end(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
          });
          c.on('data', () => {});
          c.on('error', reject);
          c.on('close', () => resolve(c.alpnProtocol));
        });
        assert.equal(spoke, 'h2', 'the first connection spoke h2');
        return h2(port);
      };
      const r = await within(served(), 10000, 'the ended connection to close and the next to be served');
      assert.equal(r.status, 200);
      await s.kill();
    });
  }

  it('a gthread thread runs the streams of one HTTP/2 connection one at a time, and serves others between them', async () => {
    const { s, port } = await start(['-k', 'gthread', '-w', '1', '--threads', '1', fx('classes.ts')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    const get = (p: string) =>
      new Promise<{ slept: number; started: number; ended: number }>((resolve, reject) => {
        const req = session.request({ ':path': p });
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => resolve(JSON.parse(body)));
        req.on('error', reject);
      });
    try {
      session.on('error', () => {});
      const streams = await within(Promise.all([get('/sleep?ms=200'), get('/sleep?ms=200'), get('/sleep?ms=200')]), 10000, 'three streams');
      const byStart = [...streams].sort((a, b) => a.started - b.started);
      for (let i = 1; i < byStart.length; i++)
        assert.ok(byStart[i]!.started >= byStart[i - 1]!.ended, `streams overlapped: ${JSON.stringify(byStart)}`);
      // The session stays open, idle, and does not hold the thread: a new connection is served.
      assert.equal((await h1(port, { path: '/' })).status, 200);
    } finally {
      session.close();
    }
    await s.kill();
  });

  it('--http-protocols h1 offers HTTP/1.1 only', async () => {
    const { s, port } = await start([fx('whoami.ts'), '--http-protocols', 'h1']);
    const a = await h1(port, { ALPNProtocols: ['h2', 'http/1.1'] } as https.RequestOptions);
    assert.equal(a.alpn, 'http/1.1');
    await s.kill();
  });

  it('stops at start with one line for a bad certificate, key, cipher list or CA file, or a TLS setting without a certificate', async () => {
    const bad = path.join(certs.dir, 'broken.crt');
    writeFileSync(bad, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    const other = selfSigned('other', certs.dir, 'other');
    const encrypted = path.join(certs.dir, 'encrypted.key');
    execFileSync('openssl', ['pkey', '-in', certs.key, '-aes256', '-passout', 'pass:secret', '-out', encrypted], { stdio: 'ignore' });
    const garbage = path.join(certs.dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    const cases: [string[], RegExp][] = [
      [['--certfile', bad, '--keyfile', certs.key], /cannot use certfile ".*broken\.crt"/],
      [['--certfile', certs.cert, '--keyfile', other.key], /keyfile ".*other\.key" is not the key of certfile ".*server\.crt" \(.*key values mismatch/i],
      [['--certfile', path.join(certs.dir, 'nope.crt')], /invalid value for certfile \(--certfile\): ".*nope\.crt"; no such file/],
      [['--certfile', certs.cert], /certfile ".*server\.crt" \(--certfile\) holds no private key: give the key file with --keyfile/],
      [['--certfile', certs.cert, '--keyfile', encrypted], /keyfile ".*encrypted\.key" is encrypted with a passphrase, which tunicorn cannot ask for/],
      [['--certfile', certs.cert, '--keyfile', certs.key, '--ciphers', 'NO-SUCH-CIPHER'], /invalid value for ciphers \(--ciphers\): "NO-SUCH-CIPHER"; OpenSSL matched no cipher/],
      [['--certfile', certs.cert, '--keyfile', certs.key, '--ca-certs', garbage], /caCerts \(--ca-certs\) ".*garbage\.pem" holds no PEM certificate/],
      [['--cert-reqs', 'required'], /certReqs \(--cert-reqs\) is "required" without certfile \(--certfile\)/],
      [['--keyfile', certs.key], /keyfile \(--keyfile\) is set without certfile \(--certfile\); it applies to HTTPS only/],
    ];
    for (const [args, re] of cases) {
      const s = new Server(['-b', '127.0.0.1:0', ...args, fx('whoami.ts')]);
      const { code } = await s.exited;
      assert.equal(code, 1, s.log);
      assert.match(s.log, re);
      assert.doesNotMatch(s.log, /Booting worker/);
      // --check-config finds the same, in the same words.
      const check = new Server(['--check-config', ...args, fx('whoami.ts')]);
      assert.equal((await check.exited).code, 1, check.log);
      assert.match(check.log, re);
      assert.match(check.log, /^tunicorn: error: [^\n]*\n$/);
    }
  });

  it('--cert-reqs required: only clients with a certificate from --ca-certs are served', async () => {
    const client = selfSigned('client', certs.dir, 'client');
    const { s, port } = await start([fx('whoami.ts'), '--ca-certs', client.cert, '--cert-reqs', 'required']);
    await assert.rejects(h1(port));
    const ok = await h1(port, { cert: readFileSync(client.cert), key: readFileSync(client.key) });
    assert.equal(ok.status, 200);
    await s.kill();
  });
});

describe('h2c', () => {
  it('serves HTTP/2 with prior knowledge to a trusted peer, and refuses it from others', async () => {
    const s = new Server(['-b', '127.0.0.1:0', fx('whoami.ts')]);
    const port = await s.port();
    await s.workersBooted(1);
    const r = await h2c(port, '127.0.0.1');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).httpVersion, '2.0');
    await assert.rejects(h2c(port, '127.0.0.2'));
    // HTTP/1.1 still works on the same port.
    const h = await request(port, '/');
    assert.equal(JSON.parse(h.body).httpVersion, '1.1');
    await s.kill();
  });
});

async function h2c(port: number, from: string): Promise<{ status: number; body: string }> {
  const session = http2.connect(`http://127.0.0.1:${port}`, {
    createConnection: () => net.connect({ port, host: '127.0.0.1', localAddress: from }),
  });
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject);
      session.on('close', () => reject(new Error('session closed')));
      const req = session.request({ ':path': '/x' });
      let status = 0;
      let body = '';
      req.on('response', (h) => (status = Number(h[':status'])));
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
  } finally {
    session.destroy();
  }
}

describe('queue time over TLS', () => {
  it('counts from the accept of the connection under the TLS socket, HTTP/1.1 and HTTP/2', async () => {
    const { s, port } = await start([fx('queue-time.mjs')]);
    const one = JSON.parse((await h1(port)).body).q as number;
    assert.ok(one > 0, `HTTP/1.1 over TLS: queue time ${one}`);
    const two = JSON.parse((await h2(port)).body).q as number;
    assert.ok(two > 0, `HTTP/2: queue time ${two}`);
    await s.kill();
  });
});
