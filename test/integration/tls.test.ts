/**
 * TLS and HTTP/2 on the real CLI:
 * - --certfile/--keyfile: HTTPS on the bind; HTTP/1.1 clients (ALPN http/1.1 or none) are served
 * - HTTP/2 by ALPN for a (req, res) listener, a Fetch handler (the URL is https://) and an app's own
 *   http.Server (moved onto the TLS server rather than served in cleartext)
 * - an app's own https.Server, exported or listening itself, served with its own certificate
 * - the first request line of an HTTP/1.1 connection (ALPN http/1.1 or none) is checked as on plain HTTP:
 *   two spaces and HTTP/0.9 get 400 at once
 * - --http-protocols h1 offers no h2
 * - a missing file, a broken certificate, a key that does not match or a chain in the wrong order stops the
 *   server with one line; so does --cert-reqs without --ca-certs; an expired certificate is a warning (start,
 *   --check-config, HUP)
 * - --cert-reqs required with --ca-certs: a client without a certificate fails the handshake, one with a
 *   certificate signed by the CA is served
 * - --cert-reqs optional: a client without a certificate, or with one signed by the CA, is served and the app
 *   (listener, Fetch handler) sees which; one whose certificate does not verify is closed, as Gunicorn does
 * - h2c (HTTP/2 with prior knowledge, no TLS) from a trusted peer; refused from another
 * - a gthread thread runs one HTTP/2 connection's streams one at a time, and an idle session does not hold it
 * - a TLS connection that brings no first request (no ClientHello, or nothing after the handshake) is closed
 *   at header_timeout on every worker class, and the worker serves the next client; a WebSocket is not cut
 * - --proxy-protocol with --certfile stops the server (and --check-config) with one line
 * - limit_request_line / _fields / _field_size over HTTP/2 (TLS and h2c): 414 / 431 as over HTTP/1.1
 * - an HTTP/2 session idle for keepalive gets a GOAWAY (at once with keepalive 0), never one with a stream
 *   running; one with no request within header_timeout is ended even if its client never closes it
 * - what tunicorn refuses itself (the limits, an unknown Expect, CONNECT, request_deadline) carries a one-line
 *   text/plain reason over HTTP/2 (on the stream; the session serves on) and over HTTP/1.1 on TLS
 * - Express (4 and 5) over HTTP/2; :authority is the Host of an HTTP/2 request (listener, Fetch, Express)
 * - a sync worker gives a busy HTTP/2 session its GOAWAY at TERM, not once the session has ended
 * - an h2c request has its peer's address (the app, the access log)
 * - an app error over HTTP/2 is a 500 without a Connection field (Node's warning about it in the log)
 * - body_timeout over HTTP/2 (TLS and h2c): a stream whose body stalls, or never comes, gets 408 then
 *   RST_STREAM NO_ERROR, in the access log; a slow body that flows is served; the session serves on
 * - a request cut by a graceful stop (its client never reads) has its access-log line
 * - HTTP/1.1 on a TLS server that also offers h2: the header section is bounded by the limits, not Node's 16 KiB
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { FIXTURES, request, Server, stopAll, until, within } from '../helpers/server.js';
import { type CertFiles, expired, selfSigned } from '../helpers/tls.js';
import { scratchDir } from '../helpers/scratch.js';

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
      // Its first request line is checked as on tunicorn's own TLS server (see 'the first request line over TLS').
      for (const line of ['GET  / HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /\r\n']) {
        const t0 = Date.now();
        const got = await tlsUntilClose(port, line, []);
        assert.match(got, /^HTTP\/1\.1 400 Bad Request\r\n/, `${JSON.stringify(line)}: ${JSON.stringify(got)}`);
        assert.ok(Date.now() - t0 < 3000, `${JSON.stringify(line)}: answered after ${Date.now() - t0} ms`);
      }
      assert.equal((await h1(port)).status, 200);
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

  // keepalive means for an HTTP/2 session what it means for an HTTP/1.1 connection: idle that long (+ 1 s, as
  // Node keeps HTTP/1), it gets a GOAWAY. It once stayed open for good, and held an async worker's place.
  it('closes an HTTP/2 session idle for keepalive with a GOAWAY, never one with a stream running', async () => {
    const { s, port } = await start(['-k', 'async', '-w', '1', '--worker-connections', '1', '--keep-alive', '1', fx('classes.ts')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    try {
      session.on('error', () => {});
      const goaway = new Promise<{ code: number; at: number }>((resolve) =>
        session.once('goaway', (code: number) => resolve({ code, at: performance.now() })),
      );
      const closed = new Promise<number>((resolve) => session.once('close', () => resolve(performance.now())));
      // A stream quiet for longer than the idle limit (1 + 1 s, swept every 0.5 s).
      const reply = await within(new Promise<{ status: number; at: number }>((resolve, reject) => {
        const req = session.request({ ':path': '/sleep?ms=3500' });
        let status = 0;
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('end', () => resolve({ status, at: performance.now() }));
        req.on('error', reject);
        req.resume();
      }), 10000, 'the slow stream');
      assert.equal(reply.status, 200);
      assert.equal(session.closed, false, 'no GOAWAY while the stream ran');
      const { code, at } = await within(goaway, 8000, 'a GOAWAY for the idle session');
      assert.equal(code, http2.constants.NGHTTP2_NO_ERROR);
      assert.ok(at - reply.at >= 1500, `GOAWAY ${Math.round(at - reply.at)} ms after the last stream ended`);
      await within(closed, 5000, 'the session to close');
      // Its place is free: the worker (one connection at most) serves the next connection.
      assert.equal((await within(h1(port, { path: '/' }), 10000, 'the next connection')).status, 200);
    } finally {
      session.destroy();
    }
    await s.kill();
  });

  it('ends an HTTP/2 connection that sends no request within header_timeout, though its client never closes it', async () => {
    const { s, port } = await start(['-k', 'async', '-w', '1', '--worker-connections', '1', '--header-timeout', '1', fx('whoami.ts')]);
    // The client preface and an empty SETTINGS frame, then silence: the client neither answers nor closes (its
    // TCP socket is half-open, so the server's FIN does not end its side).
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const c = tls.connect({ socket, ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
      c.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    });
    try {
      c.on('data', () => {});
      c.on('error', () => {});
      await within(new Promise((resolve) => c.once('end', resolve)), 8000, 'the server to end the silent connection');
      // Ended on the server's side too: the worker's one place is free for the next connection.
      assert.equal((await within(h2(port), 10000, 'the next connection')).status, 200);
    } finally {
      c.destroy();
    }
    await s.kill();
  });

  it('--keep-alive 0: an HTTP/2 session gets a GOAWAY once its last stream ends; streams opened together are all served', async () => {
    const { s, port } = await start(['--keep-alive', '0', fx('classes.ts')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    try {
      session.on('error', () => {});
      const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
      const get = (p: string) =>
        new Promise<number>((resolve, reject) => {
          const req = session.request({ ':path': p });
          let status = 0;
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('end', () => resolve(status));
          req.on('error', reject);
          req.resume();
        });
      const statuses = await within(Promise.all([get('/sleep?ms=300'), get('/sleep?ms=100'), get('/')]), 10000, 'three streams');
      assert.deepEqual(statuses, [200, 200, 200]);
      await within(goaway, 3000, 'a GOAWAY once the streams ended');
    } finally {
      session.destroy();
    }
    await s.kill();
  });

  it('--http-protocols h1 offers HTTP/1.1 only', async () => {
    const { s, port } = await start([fx('whoami.ts'), '--http-protocols', 'h1']);
    const a = await h1(port, { ALPNProtocols: ['h2', 'http/1.1'] } as https.RequestOptions);
    assert.equal(a.alpn, 'http/1.1');
    await s.kill();
  });

  it('--http-protocols is in order of preference: h1,h2 serves HTTP/1.1 to a client that offers both, and HTTP/2 to one that offers only h2', async () => {
    const { s, port } = await start([fx('whoami.ts'), '--http-protocols', 'h1,h2']);
    const both = await h1(port, { ALPNProtocols: ['h2', 'http/1.1'] } as https.RequestOptions);
    assert.equal(both.alpn, 'http/1.1');
    assert.equal(both.status, 200);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    try {
      const status = await within(
        new Promise<number>((resolve, reject) => {
          session.on('error', reject);
          const r = session.request({ ':path': '/' });
          r.on('response', (h) => resolve(Number(h[':status'])));
          r.on('error', reject);
          r.resume();
        }),
        10000,
        'an h2-only client',
      );
      assert.equal(status, 200);
    } finally {
      session.destroy();
    }
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
    const reversed = path.join(certs.dir, 'reversed.pem');
    writeFileSync(reversed, readFileSync(other.cert, 'utf8') + readFileSync(certs.cert, 'utf8'));
    const cases: [string[], RegExp][] = [
      [['--certfile', bad, '--keyfile', certs.key], /cannot use certfile ".*broken\.crt"/],
      [['--certfile', certs.cert, '--keyfile', other.key], /keyfile ".*other\.key" is not the key of certfile ".*server\.crt" \(.*key values mismatch/i],
      [['--certfile', path.join(certs.dir, 'nope.crt')], /cannot read certfile \(--certfile\) ".*nope\.crt": no such file\n/],
      [['--certfile', certs.cert], /certfile ".*server\.crt" \(--certfile\) holds no private key: give the key file with --keyfile/],
      [['--certfile', certs.cert, '--keyfile', encrypted], /keyfile ".*encrypted\.key" is encrypted with a passphrase, which tunicorn cannot ask for/],
      [['--certfile', certs.cert, '--keyfile', certs.key, '--ciphers', 'NO-SUCH-CIPHER'], /invalid value for ciphers \(--ciphers\): "NO-SUCH-CIPHER"; OpenSSL matched no cipher/],
      [['--certfile', certs.cert, '--keyfile', certs.key, '--ca-certs', garbage, '--cert-reqs', 'required'], /caCerts \(--ca-certs\) ".*garbage\.pem" holds no PEM certificate/],
      // Served without asking clients for a certificate: an operator who set the CA file believed they were checked.
      [['--certfile', certs.cert, '--keyfile', certs.key, '--ca-certs', certs.cert], /caCerts \(--ca-certs\) is set but certReqs \(--cert-reqs\) is "none": clients are not asked for a certificate, so no client is checked against it; set --cert-reqs required \(or optional\), or drop --ca-certs/],
      // The key given for both: OpenSSL said "no start line" of one of the two.
      [['--certfile', certs.key, '--keyfile', certs.key], /certfile ".*server\.key" \(--certfile\) holds no PEM certificate/],
      [['--certfile', garbage, '--keyfile', certs.key], /certfile ".*garbage\.pem" \(--certfile\) holds no PEM certificate/],
      // A chain written intermediates first: OpenSSL's "key values mismatch" said the key was not the pair's.
      [['--certfile', reversed, '--keyfile', certs.key], /certfile ".*reversed\.pem" \(--certfile\) lists its certificates in the wrong order: the one keyfile ".*server\.key" belongs to is not the first; put the server's own certificate first, then the intermediates/],
      [['--cert-reqs', 'required'], /certReqs \(--cert-reqs\) is "required" without certfile \(--certfile\)/],
      // Node would have checked client certificates against its public root CAs: any a public CA issued passed.
      [['--certfile', certs.cert, '--keyfile', certs.key, '--cert-reqs', 'optional'], /certReqs \(--cert-reqs\) is "optional" without caCerts \(--ca-certs\): client certificates would be checked against Node's public root CAs/],
      [['--certfile', certs.cert, '--keyfile', certs.key, '--cert-reqs', '2'], /certReqs \(--cert-reqs\) is "required" without caCerts \(--ca-certs\)/],
      [['--keyfile', certs.key], /keyfile \(--keyfile\) is set without certfile \(--certfile\); it applies to HTTPS only/],
    ];
    for (const [args, re] of cases) {
      const s = new Server(['-b', '127.0.0.1:0', ...args, fx('whoami.ts')]);
      // Bounded: a setting let through would have the server serve on, not stop.
      const { code } = await within(s.exited, 15000, `the server to stop at start (${args.join(' ')})`);
      assert.equal(code, 1, s.log);
      assert.match(s.log, re);
      assert.doesNotMatch(s.log, /Booting worker/);
      // --check-config finds the same, in the same words.
      const check = new Server(['--check-config', ...args, fx('whoami.ts')]);
      assert.equal((await within(check.exited, 15000, '--check-config to end')).code, 1, check.log);
      assert.match(check.log, re);
      assert.match(check.log, /^tunicorn: error: [^\n]*\n$/);
    }
  });

  it('reads relative certificate paths after --chdir, as Gunicorn does, and says where it looked', async () => {
    // The pair in a site directory; the server started elsewhere (here: the test's own directory).
    const site = scratchDir('tunicorn-tls-site-');
    copyFileSync(certs.cert, path.join(site, 'site.crt'));
    copyFileSync(certs.key, path.join(site, 'site.key'));
    copyFileSync(fx('whoami.ts'), path.join(site, 'app.ts'));
    const args = ['--chdir', site, '--certfile', 'site.crt', '--keyfile', 'site.key', 'app.ts'];
    const check = new Server(['--check-config', ...args]);
    assert.equal((await check.exited).code, 0, check.log);
    const s = new Server(['-b', '127.0.0.1:0', ...args]);
    const port = await s.port();
    assert.equal((await h1(port)).status, 200);
    await s.kill();
    // A relative file that is not there: one line naming the directory it was looked for in.
    const missing = new Server(['-b', '127.0.0.1:0', '--chdir', site, '--certfile', 'other.crt', '--keyfile', 'site.key', 'app.ts']);
    assert.equal((await missing.exited).code, 1, missing.log);
    assert.match(missing.log, /\ntunicorn: error: cannot read certfile \(--certfile\) "other\.crt": no such file \(looked for in .*tunicorn-tls-site-\w+, the directory the server runs in\)\n$/);
  });

  /** The CN of the certificate a new TLS connection to `port` is served. */
  const peerSubject = (port: number) =>
    new Promise<string>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        resolve(String(c.getPeerCertificate().subject.CN));
        c.end();
      });
      c.on('error', reject);
    });

  it('HUP serves a renewed certificate from the new workers, and refuses a certificate it cannot read', async () => {
    const dir = scratchDir('tunicorn-tls-renew-');
    const config = path.join(dir, 'tls.config.mjs');
    const first = selfSigned('first.test', dir, 'first');
    const second = selfSigned('second.test', dir, 'second');
    const use = (c: { cert: string; key: string }) => writeFileSync(config, `export default ${JSON.stringify({ certfile: c.cert, keyfile: c.key })};\n`);
    use(first);
    const s = new Server(['-b', '127.0.0.1:0', '-c', config, fx('whoami.ts')]);
    const port = await s.port();
    await s.workersBooted(1);
    const subject = () => peerSubject(port);
    assert.equal(await subject(), 'first.test');
    use({ cert: path.join(dir, 'gone.crt'), key: first.key });
    s.signal('SIGHUP');
    await s.waitFor(/Reload failed, keeping the running configuration: cannot read certfile \(--certfile\) ".*gone\.crt": no such file\n/);
    assert.equal(await subject(), 'first.test');
    use(second);
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.workersBooted(1, from);
    // The old worker may take a connection or two while it stops accepting: bounded polling, then every new
    // connection gets the new certificate.
    const end = Date.now() + 10000;
    while ((await subject()) !== 'second.test') {
      assert.ok(Date.now() < end, 'the renewed certificate was never served');
      await new Promise((r) => setTimeout(r, 50));
    }
    await s.waitFor(/Worker exited/, 15000, from);
    assert.equal(await subject(), 'second.test');
    await s.kill();
  });

  it('a worker started after its certificate file changed serves the pair the master checked', async () => {
    // Before: each new worker read the files again. A renewal caught half-way (a new certificate, the old key)
    // that a HUP refused still reached every worker started later (a crash, max_requests, TTIN): each failed
    // its boot on the mismatched pair, and with no worker left the server served no one.
    const dir = scratchDir('tunicorn-tls-swap-');
    const first = selfSigned('first.test', dir, 'first');
    const second = selfSigned('second.test', dir, 'second');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--certfile', first.cert, '--keyfile', first.key, fx('whoami.ts')]);
    const port = await s.port();
    const [w] = await s.workersBooted(1);
    const subject = () => peerSubject(port);
    assert.equal(await subject(), 'first.test');
    writeFileSync(first.cert, readFileSync(second.cert));
    s.signal('SIGHUP');
    await s.waitFor(/Reload failed, keeping the running configuration: keyfile ".*first\.key" is not the key of certfile/);
    const from = s.log.length;
    process.kill(w!, 'SIGKILL');
    await s.workersBooted(1, from);
    // Its connection waits in the backlog until the new worker accepts it: it never does if its boot fails.
    assert.equal(await within(subject(), 15000, 'the new worker to serve'), 'first.test');
    assert.doesNotMatch(s.log.slice(from), /failed to boot/);
    await s.kill();
  });

  // OpenSSL loads a certificate outside its validity period, and clients refuse it: nothing said so.
  it('warns of an expired certificate at start, in --check-config and at a HUP that brings one, and serves it', async () => {
    const dir = scratchDir('tunicorn-tls-expired-');
    const old = expired('old.test', dir, 'old');
    const warning = /\[WARNING\] certfile ".*old\.crt" \(--certfile\) expired on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: clients refuse it; put the renewed certificate in place and send HUP\n/;
    const check = new Server(['--check-config', '--certfile', old.cert, '--keyfile', old.key, fx('whoami.ts')]);
    assert.equal((await within(check.exited, 15000, '--check-config to end')).code, 0, check.log);
    assert.match(check.log, /^tunicorn: warning: certfile ".*old\.crt" \(--certfile\) expired on /m);
    const config = path.join(dir, 'tls.config.mjs');
    const use = (c: CertFiles) => writeFileSync(config, `export default ${JSON.stringify({ certfile: c.cert, keyfile: c.key })};\n`);
    use(old);
    const s = new Server(['-b', '127.0.0.1:0', '-c', config, fx('whoami.ts')]);
    const port = await s.port();
    await s.workersBooted(1);
    assert.match(s.log, warning);
    assert.equal((await h1(port)).status, 200);
    // Renewed: no word at the HUP; back to the expired one: the warning again.
    use(selfSigned('new.test', dir, 'new'));
    let from = s.log.length;
    s.signal('SIGHUP');
    await s.workersBooted(1, from);
    assert.doesNotMatch(s.log.slice(from), /WARNING/);
    use(old);
    from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(warning, 15000, from);
    await s.kill();
  });

  // The PROXY header is read on plain HTTP only: with TLS it was ignored, and any peer was served without one.
  it('stops at start with one line for the PROXY protocol with TLS, and --check-config too', async () => {
    const args = ['--certfile', certs.cert, '--keyfile', certs.key, '--proxy-protocol', 'v1'];
    const re = /proxyProtocol \(--proxy-protocol\) is "v1" with certfile \(--certfile\); the PROXY protocol is read on plain HTTP listeners only/;
    const s = new Server(['-b', '127.0.0.1:0', ...args, fx('whoami.ts')]);
    assert.equal((await within(s.exited, 10000, 'the server to stop at start')).code, 1, s.log);
    assert.match(s.log, re);
    assert.doesNotMatch(s.log, /Booting worker/);
    const check = new Server(['--check-config', ...args, fx('whoami.ts')]);
    assert.equal((await within(check.exited, 10000, '--check-config to end')).code, 1, check.log);
    assert.match(check.log, re);
    assert.match(check.log, /^tunicorn: error: [^\n]*\n$/);
  });

  it('--cert-reqs required: only clients with a certificate from --ca-certs are served', async () => {
    const client = selfSigned('client', certs.dir, 'client');
    const { s, port } = await start([fx('whoami.ts'), '--ca-certs', client.cert, '--cert-reqs', 'required']);
    await assert.rejects(h1(port));
    const ok = await h1(port, { cert: readFileSync(client.cert), key: readFileSync(client.key) });
    assert.equal(ok.status, 200);
    await s.kill();
  });

  // Node, asked for a certificate but not told to reject, served whatever certificate the client sent: a
  // self-signed one with the CN of a trusted client reached the app, which saw that CN (authorized false).
  for (const fixture of ['peer-cert.ts', 'peer-cert-fetch.ts']) {
    it(`--cert-reqs optional: no certificate or one from --ca-certs is served, one that does not verify is closed (${fixture})`, async () => {
      const client = selfSigned('alice', certs.dir, 'alice');
      const forged = selfSigned('alice', certs.dir, 'alice-forged');
      const { s, port } = await start([fx(fixture), '--ca-certs', client.cert, '--cert-reqs', 'optional', '--log-level', 'debug']);
      const as = (c: CertFiles | null) => (c ? { cert: readFileSync(c.cert), key: readFileSync(c.key) } : {});
      const h2With = async (c: CertFiles | null): Promise<string> => {
        const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, ...as(c) });
        try {
          return await new Promise<string>((resolve, reject) => {
            session.on('error', reject);
            const req = session.request({ ':path': '/x' });
            let status = 0;
            let body = '';
            req.on('response', (h) => (status = Number(h[':status'])));
            req.setEncoding('utf8');
            req.on('data', (d: string) => (body += d));
            // A stream the server's close ended has no response.
            req.on('close', () => (status === 200 ? resolve(body) : reject(new Error(`no response (status ${status})`))));
            req.on('error', reject);
            req.end();
          });
        } finally {
          session.destroy();
        }
      };
      for (const [version, get] of [['1.1', async (c: CertFiles | null) => (await h1(port, as(c))).body], ['2.0', h2With]] as const) {
        assert.deepEqual(JSON.parse(await get(null)), { httpVersion: version, authorized: false, subject: null });
        assert.deepEqual(JSON.parse(await get(client)), { httpVersion: version, authorized: true, subject: 'alice' });
        await assert.rejects(get(forged), `a certificate that does not verify was served over HTTP/${version}`);
      }
      assert.match(s.log, /TLS client certificate from 127\.0\.0\.1 did not verify \(DEPTH_ZERO_SELF_SIGNED_CERT\); closing \(cert_reqs optional\)/);
      await s.kill();
    });
  }
});

describe('TLS connections that bring no request', () => {
  /** A TLS connection that completes its handshake and sends nothing more: what came back, and when it closed. */
  const handshakeOnly = (port: number, alpn: string, t0: number) =>
    new Promise<{ got: string; ms: number; alpn: string | false | null }>((resolve) => {
      const c = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: [alpn], rejectUnauthorized: false });
      let got = '';
      c.setEncoding('latin1');
      c.on('data', (d: string) => (got += d));
      c.on('error', () => {});
      c.on('close', () => resolve({ got, ms: Date.now() - t0, alpn: c.alpnProtocol }));
    });

  // One client that never sends its ClientHello held a sync worker, a gthread thread or an async worker's last
  // connection slot for good: Node's header timeout starts after the handshake, and its handshake timeout
  // did not apply to the sockets tunicorn hands over.
  for (const cls of ['sync', 'async', 'gthread']) {
    it(`are closed at header_timeout, handshake or not, and the worker takes the next client (-k ${cls})`, async () => {
      const { s, port } = await start([
        '-k', cls, '-w', '1', '--threads', '1', '--worker-connections', '1', '--header-timeout', '1', fx('whoami.ts'),
      ]);
      let t0 = Date.now();
      const silent = net.connect(port, '127.0.0.1');
      silent.on('error', () => {});
      silent.resume();
      const closed = new Promise<number>((resolve) => silent.on('close', () => resolve(Date.now() - t0)));
      await new Promise((resolve) => silent.once('connect', resolve));
      const next = await within(h1(port, { path: '/' }), 6000, 'the next client to be served');
      assert.equal(next.status, 200);
      const ms = await within(closed, 3000, 'the silent connection to close');
      assert.ok(ms >= 900 && ms < 3000, `the silent connection closed after ${ms} ms`);
      // After the handshake: HTTP/1.1 gets the 408 a plain connection gets from Node; an HTTP/2 session that
      // opens no stream is closed.
      t0 = Date.now();
      const one = await within(handshakeOnly(port, 'http/1.1', t0), 4000, 'the HTTP/1.1 connection to close');
      assert.match(one.got, /^HTTP\/1\.1 408 /);
      assert.ok(
        one.got.endsWith('\r\n\r\n408 Request Timeout: the request header section was not complete within header_timeout (1 s)\n'),
        JSON.stringify(one.got),
      );
      t0 = Date.now();
      const two = await within(handshakeOnly(port, 'h2', t0), 4000, 'the HTTP/2 connection to close');
      assert.equal(two.alpn, 'h2');
      assert.ok(two.ms < 3000, `the HTTP/2 connection closed after ${two.ms} ms`);
      // A connection whose first request came in time is not cut at header_timeout: a second request on the
      // same HTTP/2 session, after it, is served.
      const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
      session.on('error', () => {});
      const get = () =>
        new Promise<number>((resolve, reject) => {
          const req = session.request({ ':path': '/' });
          req.on('response', (h) => resolve(Number(h[':status'])));
          req.on('error', reject);
          req.resume();
          req.end();
        });
      try {
        assert.equal(await within(get(), 4000, 'a first HTTP/2 request'), 200);
        await new Promise((resolve) => setTimeout(resolve, 1500));
        assert.equal(await within(get(), 4000, 'a second HTTP/2 request after header_timeout'), 200);
      } finally {
        session.destroy();
      }
      await s.kill();
    });
  }

  // An upgrade is a first request that never reaches 'request': the connection must not be cut at
  // header_timeout once it is a WebSocket.
  // Node's HTTP/2 server checks its HTTP/1.1 connections' header timeout every 30 s, whatever it is told at
  // construction: a second request trickled in a header line at a time held the connection for 30 s.
  it('an HTTP/1.1 client on an HTTP/2-capable server that trickles a later request is cut at header_timeout', async () => {
    const { s, port } = await start(['-w', '1', '--header-timeout', '1', fx('whoami.ts')]);
    const t0 = Date.now();
    const c = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['http/1.1'], rejectUnauthorized: false });
    let got = '';
    c.setEncoding('latin1');
    c.on('data', (d: string) => (got += d));
    c.on('error', () => {});
    let trickle: NodeJS.Timeout | undefined;
    try {
      c.once('secureConnect', () => {
        c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n');
        trickle = setInterval(() => c.writable && c.write('X-Slow: 1\r\n'), 300);
      });
      const ms = await within(new Promise<number>((resolve) => c.once('close', () => resolve(Date.now() - t0))), 20000, 'the connection to close');
      assert.match(got, /^HTTP\/1\.1 200 /, 'the first request was served');
      assert.ok(ms < 5000, `closed ${ms} ms after it connected (header_timeout 1 s)`);
    } finally {
      clearInterval(trickle);
      c.destroy();
      await s.kill();
    }
  });

  it('a WebSocket over TLS outlives header_timeout', async () => {
    const { s, port } = await start(['--header-timeout', '1', fx('apps/websocket.ts')]);
    const ws = new WebSocket(`wss://127.0.0.1:${port}/`, { rejectUnauthorized: false });
    try {
      await within(new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject))), 5000, 'the WebSocket to open');
      await new Promise((resolve) => setTimeout(resolve, 1800));
      const reply = new Promise<string>((resolve, reject) => {
        ws.once('message', (d: Buffer) => resolve(d.toString()));
        ws.once('close', () => reject(new Error('the WebSocket was closed')));
      });
      ws.send('ping');
      assert.equal(await within(reply, 4000, 'the echo'), 'echo: ping');
    } finally {
      ws.terminate();
    }
    await s.kill();
  });
});

describe('request limits over HTTP/2', () => {
  /** The status each request gets on one session, or the code its stream was reset with. */
  async function limitsOver(url: string): Promise<(number | string)[]> {
    const session = http2.connect(url, { rejectUnauthorized: false });
    session.on('error', () => {});
    const get = (headers: http2.OutgoingHttpHeaders) =>
      new Promise<number | string>((resolve) => {
        const req = session.request(headers);
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', () => {});
        req.on('close', () => resolve(`reset ${req.rstCode}`));
        req.resume();
        req.end();
      });
    const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, String(i)]));
    try {
      return await within(
        (async () => [
          await get({ ':path': '/', ...fields(120) }), // limit_request_fields 100
          await get({ ':path': `/${'a'.repeat(6000)}` }), // limit_request_line 4094
          await get({ ':path': '/', 'x-big': 'v'.repeat(20000) }), // limit_request_field_size 8190
          await get({ ':path': '/', ...fields(90), cookie: Array.from({ length: 30 }, (_, i) => `c${i}=${i}`) }),
          await get({ ':path': '/', ...fields(1000) }), // far over: Node resets the stream
          await get({ ':path': '/' }), // and the session goes on
        ])(),
        10000,
        'the HTTP/2 requests',
      );
    } finally {
      session.destroy();
    }
  }

  // 120 fields, a 6000-byte path and a 20000-byte field were served over HTTP/2, where HTTP/1.1 gets 431/414.
  // Cookie crumbs (RFC 9113 section 8.2.3) are one Cookie field, as the browser's HTTP/1.1 request has.
  const expected = [431, 414, 431, 200, `reset ${http2.constants.NGHTTP2_ENHANCE_YOUR_CALM}`, 200];

  it('TLS with ALPN h2: 431 and 414 as over HTTP/1.1', async () => {
    const { s, port } = await start([fx('whoami.ts')]);
    assert.deepEqual(await limitsOver(`https://127.0.0.1:${port}`), expected);
    await s.kill();
  });

  it('h2c: 431 and 414 as over HTTP/1.1', async () => {
    const s = new Server(['-b', '127.0.0.1:0', fx('whoami.ts')]);
    const port = await s.port();
    await s.workersBooted(1);
    assert.deepEqual(await limitsOver(`http://127.0.0.1:${port}`), expected);
    await s.kill();
  });
});

/** One HTTP/2 request with the given pseudo- and other headers, on a session of its own: head and body. */
async function h2Raw(port: number, headers: http2.OutgoingHttpHeaders): Promise<{ head: http2.IncomingHttpHeaders; body: string }> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
  try {
    return await within(
      new Promise((resolve, reject) => {
        session.on('error', reject);
        const req = session.request(headers, { endStream: headers[':method'] !== 'CONNECT' });
        let head: http2.IncomingHttpHeaders = {};
        let body = '';
        req.on('response', (h) => (head = h));
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => resolve({ head, body }));
        req.on('error', reject);
        if (headers[':method'] === 'CONNECT') req.end();
      }),
      10000,
      `an HTTP/2 answer to ${JSON.stringify(headers)}`,
    );
  } finally {
    session.close();
  }
}

/** Bytes sent over TLS (ALPN http/1.1) until the server closes the connection. */
/** `alpn`: the protocols the client offers; none, with no ALPN extension at all. */
function tlsUntilClose(port: number, bytes: string, alpn: string[] = ['http/1.1']): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const offer = alpn.length > 0 ? { ALPNProtocols: alpn } : {};
      const c = tls.connect({ host: '127.0.0.1', port, ...offer, rejectUnauthorized: false }, () => c.write(bytes));
      let data = '';
      c.setEncoding('latin1');
      c.on('data', (d: string) => (data += d));
      c.on('close', () => resolve(data));
      c.on('error', reject);
    }),
    10000,
    'the server to close the TLS connection',
  );
}

describe('the first request line over TLS', () => {
  // The connection gate checks it on plain HTTP at accept, where TLS has only ciphertext: over TLS, llhttp
  // served `GET  / HTTP/1.1` (two spaces) with 200, and held an HTTP/0.9 `GET /` until header_timeout (408).
  for (const protocols of ['h2,h1', 'h1']) {
    it(`is checked as on plain HTTP, with ALPN http/1.1 and without ALPN (--http-protocols ${protocols})`, async () => {
      const { s, port } = await start(['-w', '1', '--header-timeout', '5', '--http-protocols', protocols, fx('whoami.ts')]);
      const invalid = '400 Bad Request: invalid request line\n';
      try {
        for (const alpn of [['http/1.1'], []]) {
          const what = `ALPN ${alpn.join() || 'none'}`;
          for (const line of ['GET  / HTTP/1.1', 'GET /  HTTP/1.1', 'GET /']) {
            const t0 = Date.now();
            const got = await tlsUntilClose(port, `${line}\r\nHost: x\r\n\r\n`.replace('GET /\r\nHost: x\r\n\r\n', 'GET /\r\n'), alpn);
            assert.match(got, /^HTTP\/1\.1 400 Bad Request\r\n/, `${JSON.stringify(line)}, ${what}: ${JSON.stringify(got)}`);
            assert.ok(got.endsWith(`\r\n\r\n${invalid}`), JSON.stringify(got));
            assert.ok(Date.now() - t0 < 3000, `${JSON.stringify(line)}, ${what}: answered after ${Date.now() - t0} ms`);
          }
          // HEAD gets the status without the body.
          const head = await tlsUntilClose(port, 'HEAD  / HTTP/1.1\r\nHost: x\r\n\r\n', alpn);
          assert.match(head, /^HTTP\/1\.1 400 Bad Request\r\n[^]*\r\n\r\n$/, `${what}: ${JSON.stringify(head)}`);
          // A valid first request, after an empty line, and the next on the same connection are served.
          const ok = await tlsUntilClose(port, '\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', alpn);
          assert.equal(ok.match(/HTTP\/1\.1 200 OK\r\n/g)?.length, 2, `${what}: ${JSON.stringify(ok)}`);
        }
        if (protocols !== 'h1') assert.equal((await h2(port)).status, 200);
        assert.equal(s.count(/Booting worker/), 1);
      } finally {
        await s.kill();
      }
    });
  }
});

describe('request_deadline over HTTP/2', () => {
  // A stream the client closed (RST_STREAM NO_ERROR) while the app held its body unread is closed but not
  // destroyed: answering it threw inside the deadline's timer, an uncaught exception that retired the worker.
  it('a stream the client closed is cut, and the worker serves on', async () => {
    const { s, port } = await start(['-w', '1', '--request-deadline', '1', path.join(FIXTURES, 'slow-body.mjs')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    try {
      const r = session.request({ ':method': 'POST', ':path': '/' });
      r.on('error', () => {});
      // More than the app reads: what it leaves unread keeps the stream from being destroyed on the close.
      for (let i = 0; i < 3; i++) r.write(Buffer.alloc(16384, 97 + i));
      await s.waitFor(/fixture: read one chunk, reading no more/);
      r.close(http2.constants.NGHTTP2_NO_ERROR);
      // Node 20 keeps the stream until the deadline cuts it; Node 22 and later close it at once, and the request
      // is over (its deadline with it).
      await s.waitFor(/Request deadline exceeded: POST \/ after [\d.]+ s \(request_deadline 1 s\); connection cut|fixture: the response closed/);
      assert.doesNotMatch(s.log, /Uncaught exception/);
      assert.equal(s.count(/Booting worker with pid/), 1);
    } finally {
      session.destroy();
      await s.kill();
    }
  });
});

describe('refusals over TLS', () => {
  it('carry a one-line text/plain reason over HTTP/2 and HTTP/1.1; HEAD gets none', async () => {
    const { s, port } = await start(['--request-deadline', '1', '--limit-request-field-size', '50', fx('classes.ts')]);
    const text = (line: string) => ({ body: `${line}\n`, length: String(Buffer.byteLength(`${line}\n`)) });
    const expectation = text('417 Expectation Failed: only "Expect: 100-continue" is supported');
    const e = await h2Raw(port, { ':path': '/', expect: 'teapot' });
    assert.equal(e.head[':status'], 417);
    assert.equal(e.head['content-type'], 'text/plain; charset=utf-8');
    assert.equal(e.head['content-length'], expectation.length);
    assert.equal(e.body, expectation.body);
    const eh = await h2Raw(port, { ':method': 'HEAD', ':path': '/', expect: 'teapot' });
    assert.equal(eh.head[':status'], 417);
    assert.equal(eh.head['content-length'], expectation.length);
    assert.equal(eh.body, '');

    const connect = text('405 Method Not Allowed: CONNECT is not served (this server is not a proxy)');
    const c = await h2Raw(port, { ':method': 'CONNECT', ':authority': 'example.com:443' });
    assert.equal(c.head[':status'], 405);
    assert.equal(c.head['content-length'], connect.length);
    assert.equal(c.body, connect.body);

    // request_deadline: the 503 on the stream (a 200 whose body was a raw HTTP/1 503 before).
    const deadline = text('503 Service Unavailable: the request ran longer than request_deadline (1 s)');
    const d = await h2Raw(port, { ':path': '/sleep?ms=6000' });
    assert.equal(d.head[':status'], 503);
    assert.equal(d.head['content-type'], 'text/plain; charset=utf-8');
    assert.equal(d.head['content-length'], deadline.length);
    assert.equal(d.body, deadline.body);
    const dh = await h2Raw(port, { ':method': 'HEAD', ':path': '/sleep?ms=6000' });
    assert.equal(dh.head[':status'], 503);
    assert.equal(dh.body, '');

    // The limits, over HTTP/2 as over HTTP/1.1.
    const fieldSize = text('431 Request Header Fields Too Large: a header field is over limit_request_field_size (50 bytes)');
    const f = await h2Raw(port, { ':path': '/', 'x-big': 'v'.repeat(50) });
    assert.equal(f.head[':status'], 431);
    assert.equal(f.head['content-length'], fieldSize.length);
    assert.equal(f.body, fieldSize.body);

    // HTTP/1.1 on the same TLS port.
    const big = await tlsUntilClose(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'v'.repeat(50)}\r\n\r\n`);
    assert.match(big, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.match(big, new RegExp(`\r\ncontent-length: ${fieldSize.length}\r\n`, 'i'));
    assert.ok(big.endsWith(`\r\n\r\n${fieldSize.body}`), JSON.stringify(big));
    const h1connect = await tlsUntilClose(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    assert.match(h1connect, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    assert.ok(h1connect.endsWith(`\r\nContent-Length: ${connect.length}\r\nConnection: close\r\n\r\n${connect.body}`), JSON.stringify(h1connect));

    // The worker served on through all of it.
    assert.equal((await h2(port)).status, 200);
    assert.equal(s.count(/Booting worker/), 1);
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

/** One HTTP/2 request on `session`: its status, body and when it ended. */
function h2on(session: http2.ClientHttp2Session, path: string, opts: { method?: string; body?: string; type?: string } = {}): Promise<{ status: number; body: string; at: number }> {
  return new Promise((resolve, reject) => {
    const headers: http2.OutgoingHttpHeaders = { ':path': path, ':method': opts.method ?? 'GET' };
    if (opts.type) headers['content-type'] = opts.type;
    // As browsers and curl send it: body-parser reads no body without it (or Transfer-Encoding).
    if (opts.body !== undefined) headers['content-length'] = Buffer.byteLength(opts.body);
    const req = session.request(headers);
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => resolve({ status, body, at: performance.now() }));
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('frameworks over HTTP/2', () => {
  // Express gives each request the prototype of its own request and response, built on http.IncomingMessage
  // and http.ServerResponse: an HTTP/2 request lost its url, headers and _read, its response setHeader and
  // end, and the worker died of an uncaught TypeError on every request.
  for (const [name, fixture] of [['Express 5', 'apps/express5.mjs'], ['Express 4', 'apps/express4.ts']] as const) {
    it(`serves ${name} over HTTP/2 as over HTTP/1.1, a JSON body included`, async () => {
      const { s, port } = await start([fx(fixture)]);
      const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
      try {
        const r = await within(h2on(session, '/'), 10000, `${name} over HTTP/2`);
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body).framework, 'express');
        if (name === 'Express 4') {
          const e = await within(h2on(session, '/echo', { method: 'POST', body: '{"a":[1,2]}', type: 'application/json' }), 10000, 'a POST');
          assert.deepEqual(JSON.parse(e.body), { got: { a: [1, 2] } });
        }
        const missing = await within(h2on(session, '/nothing-here'), 10000, 'a 404');
        assert.equal(missing.status, 404);
        if (name === 'Express 5') {
          // The Host is :authority over HTTP/2; req.hostname was undefined.
          const h = await within(h2on(session, '/host'), 10000, 'the host');
          assert.deepEqual(JSON.parse(h.body), { hostname: '127.0.0.1', host: `127.0.0.1:${port}` });
        }
      } finally {
        session.close();
      }
      assert.equal((await h1(port, { path: '/' })).status, 200);
      assert.doesNotMatch(s.log, /Uncaught exception/);
      assert.equal(s.count(/Booting worker/), 1);
      await s.kill();
    });
  }
});

describe('an app error over HTTP/2', () => {
  // The 500 said `Connection: close`, which HTTP/2 has not: Node dropped it with an UnsupportedWarning (two
  // lines outside the log format) that blames "the provided connection header".
  it('is a 500 with no warning about a Connection header', async () => {
    const { s, port } = await start([fx('listener.ts')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    try {
      const r = await within(h2on(session, '/throw'), 10000, 'the 500');
      assert.equal(r.status, 500);
      // Written to the worker's stderr after any warning of the 500: the log is complete up to it.
      assert.equal((await within(h2on(session, '/sleep?ms=0&note'), 10000, 'the next stream')).status, 200);
      await s.waitFor(/app: sleeping 0 ms/);
    } finally {
      session.close();
    }
    assert.match(s.log, /Error handling request GET \/throw/);
    assert.doesNotMatch(s.log, /UnsupportedWarning|connection header/i);
    await s.kill();
  });

  // The 500 was written over the fields the app had set: two ETag values, which made Node throw from the app's
  // end() over HTTP/2, threw again from the 500's writeHead, out of the worker; and the Set-Cookie of an app
  // that threw after setting it went out with the 500.
  it("is a 500 without the app's fields, also when one is what failed over HTTP/2; the worker lives", async () => {
    const { s, port } = await start([fx('listener.ts')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    try {
      const r = await within(h2head(session, '/two-etags'), 10000, 'the 500');
      assert.equal(r.status, 500);
      assert.equal(r.headers['set-cookie'], undefined);
      assert.equal(r.body, 'Internal Server Error\n');
      assert.equal((await within(h2on(session, '/'), 10000, 'the next stream')).status, 200);
    } finally {
      session.close();
    }
    const h1Cookie = await new Promise<string[] | undefined>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, path: '/throw-with-fields', rejectUnauthorized: false, agent: false }, (res) => {
        assert.equal(res.statusCode, 500);
        res.resume();
        res.on('end', () => resolve(res.headers['set-cookie']));
      });
      req.on('error', reject);
    });
    assert.equal(h1Cookie, undefined);
    assert.match(s.log, /Error handling request GET \/two-etags/);
    assert.doesNotMatch(s.log, /Uncaught exception/);
    assert.equal(s.count(/Booting worker/), 1);
    await s.kill();
  });
});

describe("HTTP/1.1's connection fields over HTTP/2", () => {
  // RFC 9113 section 8.2.2: HTTP/2 has none. Node dropped Connection with a warning in the error log, and threw
  // on Keep-Alive, Transfer-Encoding, Proxy-Connection and Upgrade: a 500 for every request of an app (or a
  // proxy middleware copying its upstream's fields) that set them, where HTTP/1.1 served it.
  it('are left out, with no word in the log, and the response is served', async () => {
    const { s, port } = await start([fx('listener.ts')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    try {
      const r = await within(h2head(session, '/connection-fields'), 10000, 'the answer');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'fields dropped');
      for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade']) assert.equal(r.headers[name], undefined, name);
      assert.equal(r.headers['content-type'], 'text/plain');
    } finally {
      session.close();
    }
    // Over HTTP/1.1 the app's fields are its own to send.
    const h = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, path: '/connection-fields', rejectUnauthorized: false, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers));
      });
      req.on('error', reject);
    });
    assert.equal(h['proxy-connection'], 'keep-alive');
    assert.doesNotMatch(s.log, /Error handling request|UnsupportedWarning|connection header/i);
    await s.kill();
  });
});

/** A GET over `session`, with the response's header fields. */
function h2head(session: http2.ClientHttp2Session, path: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path });
    let headers: http2.IncomingHttpHeaders = {};
    let body = '';
    req.on('response', (h) => (headers = h));
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => resolve({ status: Number(headers[':status']), headers, body }));
    req.on('error', reject);
  });
}

describe('a Content-Length over HTTP/2', () => {
  // It was not held to: the bytes past it went out, the client failed the response as malformed (RFC 9113
  // section 8.1.1), and the error log said nothing; over HTTP/1.1 the same app gets the length's bytes and a line.
  it('a (req, res) app is held to its own, as over HTTP/1.1, and the error log says when it got it wrong (h2c)', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('wrong-length.mjs')]);
    const port = await s.port();
    await s.workersBooted(1);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      for (const [target, body] of [['/too-long-body', 'abc'], ['/utf8', 'héll']] as const) {
        const r = await within(h2on(session, target), 10000, target);
        assert.deepEqual([r.status, r.body], [200, body], target);
      }
      await s.waitFor(/Error handling request GET \/too-long-body: the response's Content-Length is 3, but the app wrote 17 byte\(s\) of body: the 14 past it were not sent\n/);
      await s.waitFor(/Error handling request GET \/utf8: the response's Content-Length is 5, but the app wrote 6 byte\(s\) of body: the 1 past it/);
      // Short of it: the client fails it, and the log says why.
      await assert.rejects(within(h2on(session, '/too-short-body'), 10000, '/too-short-body'));
      await s.waitFor(/Error handling request GET \/too-short-body: the response's Content-Length is 100, but the app ended it after 6 byte\(s\) of body: an HTTP\/2 client fails such a response\n/);
      // A HEAD answer with the GET's length and no body is right: nothing logged.
      const from = s.log.length;
      assert.equal((await within(h2on(session, '/head', { method: 'HEAD' }), 10000, 'HEAD /head')).status, 200);
      assert.equal((await within(h2on(session, '/too-long-body', { method: 'HEAD' }), 10000, 'HEAD')).status, 200);
      assert.doesNotMatch(s.log.slice(from), /Content-Length/);
    } finally {
      session.close();
    }
    await s.kill();
  });
});

describe('the streams of one HTTP/2 connection', () => {
  // Node advertised no limit: one connection had an async worker run every request it opened a stream for at
  // once, past worker_connections, which counts connections.
  it('at most 100 run at once, as SETTINGS says; the client waits for the rest, and all are served (h2c)', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fx('listener.ts')]);
    const port = await s.port();
    await s.workersBooted(1);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const all = await within(Promise.all(Array.from({ length: 250 }, () => h2on(session, '/overlap?ms=300'))), 20000, '250 streams');
      assert.equal(session.remoteSettings.maxConcurrentStreams, 100);
      assert.deepEqual(new Set(all.map((r) => r.status)), new Set([200]));
      const max = Math.max(...all.map((r) => (JSON.parse(r.body) as { max: number }).max));
      assert.ok(max <= 100 && max >= 50, `at most ${max} at once`);
    } finally {
      session.close();
    }
    await s.kill();
  });
});

describe('the Host of an HTTP/2 request', () => {
  // RFC 9113 section 8.3.1: HTTP/2 carries it in :authority. A listener's req.headers.host and a Fetch
  // handler's request.headers.get('host') were empty over HTTP/2, set over HTTP/1.1.
  for (const fixture of ['echo.ts', 'echo-fetch.ts']) {
    it(`is the Host header, as over HTTP/1.1 (${fixture})`, async () => {
      const { s, port } = await start([fx(fixture)]);
      const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
      try {
        const r = await within(h2on(session, '/x'), 10000, 'an HTTP/2 request');
        assert.equal(JSON.parse(r.body).host, `127.0.0.1:${port}`);
      } finally {
        session.close();
      }
      assert.equal(JSON.parse((await h1(port)).body).host, `127.0.0.1:${port}`);
      await s.kill();
    });
  }

  // A Host field beside :authority reached a listener as req.headers.host unchecked, where the Fetch URL has
  // :authority: `:authority: a` with `host: b` had a listener route (or a cache key) on b, the Fetch URL on a.
  it('a Host field that names another host than :authority gets 400 (RFC 9113 section 8.3.1)', async () => {
    const { s, port } = await start([fx('echo.ts')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    const get = (headers: http2.OutgoingHttpHeaders) =>
      within(
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = session.request({ ':path': '/x', ...headers });
          let status = 0;
          let body = '';
          req.on('response', (h) => (status = Number(h[':status'])));
          req.setEncoding('utf8');
          req.on('data', (d: string) => (body += d));
          req.on('end', () => resolve({ status, body }));
          req.on('error', reject);
        }),
        10000,
        'an HTTP/2 request',
      );
    try {
      const other = await get({ ':authority': 'a.example', host: 'b.example' });
      assert.equal(other.status, 400);
      assert.equal(other.body, '400 Bad Request: the Host header names another host than :authority\n');
      // The same host, in another case: served, as the request it is.
      const same = await get({ ':authority': 'A.example', host: 'a.example' });
      assert.equal(same.status, 200);
      assert.equal(JSON.parse(same.body).host, 'a.example');
    } finally {
      session.close();
    }
    await s.kill();
  });
});

describe('graceful stop of HTTP/2 sessions', () => {
  // A sync worker stops accepting while it serves a connection, and the GOAWAY waited for the end of the
  // backlog drain, i.e. for the session to end: a client kept busy opened new streams until graceful_timeout
  // killed the worker, its last stream cut.
  it('a sync worker gives a busy session its GOAWAY at TERM; the streams it had finish', async () => {
    const { s, port } = await start(['-k', 'sync', '--graceful-timeout', '20', fx('listener.ts')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    let goawayAt = 0;
    session.on('goaway', () => (goawayAt = performance.now()));
    try {
      // Two streams a sync worker serves one after the other: 1.5 s each.
      const first = h2on(session, '/sleep?ms=1500&note');
      const second = h2on(session, '/sleep?ms=1500');
      await s.waitFor(/app: sleeping 1500 ms/);
      s.signal('SIGTERM');
      const [a, b] = await within(Promise.all([first, second]), 10000, 'the streams running at TERM');
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      assert.ok(goawayAt > 0 && goawayAt < a.at, 'the GOAWAY came before the first stream ended');
      const { code } = await within(s.exited, 10000, 'the server to stop');
      assert.equal(code, 0);
      assert.doesNotMatch(s.log, /did not stop in time/);
    } finally {
      session.destroy();
    }
  });
});

describe('h2c client address', () => {
  // Node's session wraps an h2c connection (a JavaScript stream) in a socket with no address.
  it('the app and the access log see the peer of an h2c connection', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '--access-logfile', '-', fx('whoami.ts')]);
    const port = await s.port();
    await s.workersBooted(1);
    const r = await h2c(port, '127.0.0.1');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).httpVersion, '2.0');
    assert.equal(JSON.parse(r.body).addr, '127.0.0.1');
    await until(() => /HTTP\/2\.0/.test(s.stdout), 10000, 'the access log line');
    assert.match(s.stdout, /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/x HTTP\/2\.0" 200 /m);
    await s.kill();
  });
});

/**
 * A request stream whose body is sent in `parts` (`gapMs` apart; the last one ends the stream, unless `stall`:
 * then the stream stays open and silent after them). Its status, body, RST_STREAM code and when it closed.
 */
function h2Body(
  session: http2.ClientHttp2Session,
  path: string,
  parts: string[],
  gapMs: number,
  stall = false,
): Promise<{ status: number; body: string; rst: number; at: number }> {
  return new Promise((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': path }, { endStream: false });
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('error', () => {});
    req.on('close', () => resolve({ status, body, rst: req.rstCode ?? -1, at: performance.now() }));
    const send = (i: number): void => {
      if (req.closed) return;
      if (i === parts.length - 1 && !stall) return void req.end(parts[i]);
      req.write(parts[i]);
      if (i + 1 < parts.length) setTimeout(() => send(i + 1), gapMs);
    };
    send(0);
  });
}

describe('body_timeout over HTTP/2', () => {
  // It applied to HTTP/1 only: a stream that sent its HEADERS and part of its body (or none of it) and went
  // silent held its place among the session's 100 streams, and the session, its connection and a
  // worker_connections place, for as long as the client liked; the idle sweep leaves a session with a stream
  // open alone.
  const cases: [string, (port: number) => http2.ClientHttp2Session][] = [
    ['TLS', (port) => http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false })],
    ['h2c', (port) => http2.connect(`http://127.0.0.1:${port}`)],
  ];
  for (const [name, connect] of cases) {
    it(`a stalled body gets 408 and RST_STREAM NO_ERROR; a slow one that flows is served; the session goes on (${name})`, async () => {
      const args = ['--body-timeout', '1', '--access-logfile', '-', '--log-level', 'debug', fx('echo.ts')];
      const { s, port } =
        name === 'TLS'
          ? await start(args)
          : await (async () => {
              const plain = new Server(['-b', '127.0.0.1:0', ...args]);
              const p = await plain.port();
              await plain.workersBooted(1);
              return { s: plain, port: p };
            })();
      const session = connect(port);
      session.on('error', () => {});
      try {
        const started = performance.now();
        const [stalled, silent, flowing] = await within(
          Promise.all([
            h2Body(session, '/stalled', ['abc'], 0, true),
            // HEADERS without END_STREAM, then nothing at all.
            h2Body(session, '/silent', [''], 0, true),
            // 2.4 s in all, never 1 s without a part.
            h2Body(session, '/flowing', ['a', 'b', 'c', 'd', 'e'], 600),
          ]),
          15000,
          'the three streams',
        );
        const reason = '408 Request Timeout: the request body stalled for longer than body_timeout (1 s)\n';
        for (const r of [stalled, silent]) {
          assert.equal(r.status, 408);
          assert.equal(r.body, reason);
          assert.equal(r.rst, http2.constants.NGHTTP2_NO_ERROR);
          assert.ok(r.at - started < 5000, `closed ${Math.round(r.at - started)} ms after it began`);
        }
        assert.equal(flowing.status, 200);
        assert.equal(JSON.parse(flowing.body).b, 'abcde');
        // The session serves on.
        const after = await within(h2on(session, '/after', { method: 'POST', body: 'x' }), 10000, 'a request after them');
        assert.equal(after.status, 200);
        await until(() => /"POST \/silent HTTP\/2\.0" 408 /.test(s.stdout), 10000, 'the access log lines');
        assert.match(s.stdout, /"POST \/stalled HTTP\/2\.0" 408 /);
        assert.match(s.log, /HTTP\/2 request body from 127\.0\.0\.1 stalled for 1 s; answered 408 Request Timeout/);
      } finally {
        session.destroy();
        await s.kill();
      }
    });
  }
});

describe('the access log of an HTTP/2 request cut by a graceful stop', () => {
  // A request still running at 80 % of graceful_timeout (here: a client that never reads its 8 MiB response,
  // its flow-control window at 0) is cut as the worker exits: its 'close', where the line is written, came
  // after the exit, and the request was in no log.
  it('has its line, with the status that was sent', async () => {
    const { s, port } = await start(['--graceful-timeout', '2', '--access-logfile', '-', fx('listener.ts')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    try {
      const req = session.request({ ':path': '/big?mb=8' });
      req.on('error', () => {});
      const closed = new Promise<number>((resolve) => req.on('close', () => resolve(req.rstCode ?? -1)));
      await within(new Promise((resolve) => req.once('response', resolve)), 10000, 'the response head');
      // Never read: the server can send a window's worth and no more.
      req.pause();
      s.signal('SIGTERM');
      const { code } = await within(s.exited, 10000, 'the server to stop');
      assert.equal(code, 0);
      assert.notEqual(await within(closed, 10000, 'the stream to end'), http2.constants.NGHTTP2_NO_ERROR);
      assert.match(s.log, /Graceful stop: cutting the requests still running at 80 % of graceful_timeout[^\n]*: GET \/big\?mb=8/);
      assert.match(s.stdout, /"GET \/big\?mb=8 HTTP\/2\.0" 200 /);
    } finally {
      session.destroy();
    }
  });
});

describe('the header section of HTTP/1.1 over TLS', () => {
  // Node's HTTP/2 server (HTTP/1.1 beside it, allowHTTP1) takes no HTTP/1 options: its HTTP/1.1 connections had
  // the parser's default 16 KiB for the whole header section, and 9 fields of 2000 bytes (a few long cookies)
  // got 431, "over 823298 bytes", where plain HTTP and --http-protocols h1 served them.
  for (const protocols of ['h2,h1', 'h1']) {
    it(`is bounded by the three limits added up, not Node's 16 KiB (--http-protocols ${protocols})`, async () => {
      const { s, port } = await start(['--http-protocols', protocols, fx('whoami.ts')]);
      const fields = (n: number, size: number): Record<string, string> =>
        Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-f${i}`, String(i % 10).repeat(size)]));
      const h1With = (headers: Record<string, string>) =>
        h1(port, { path: '/', headers, ALPNProtocols: ['http/1.1'], maxHeaderSize: 1 << 20 } as https.RequestOptions);
      // 97 fields of 8000 bytes (with Host and Connection, 99): about 780 KB, each within limit_request_field_size.
      assert.equal((await h1With(fields(97, 8000))).status, 200);
      const over = await h1With(fields(97, 8200));
      assert.equal(over.status, 431);
      assert.match(over.body, /^431 Request Header Fields Too Large: a header field is over limit_request_field_size/);
      await s.kill();
    });
  }
});
