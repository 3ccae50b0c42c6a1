/**
 * The Request a Fetch handler gets, read whole (`text()`, `json()`, `arrayBuffer()`, `bytes()`) straight from
 * Node's request, on a real node:http server in process:
 * - the bytes, exactly, from one chunk or many, with Content-Length or chunked
 * - Fetch's decoding: a UTF-8 byte order mark is dropped by text() and json(), kept by arrayBuffer()
 * - after a read the Request says so (bodyUsed, a locked body, clone() refused) and a second read fails
 * - GET and HEAD read as empty; a body read through `request.body` is not read again
 * - a client that goes away mid-body fails the read instead of leaving it pending
 * - a read after the Response was sent (the body is dropped then) fails with the reason
 * - `request.headers` answers get/has from Node's raw list as a standard Headers would (case, repeated
 *   fields, cookies, bad names), and behaves as one for everything else (iteration, set, copies)
 * - `request.url`: the scheme is the connection's, never the target's; an absolute-form target gives its
 *   authority (no userinfo) and path, `*` the server's root; a request without a host names the server's address
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fetchListener, incomingMessage, lazyRequest } from '../../src/app/fetch-bridge.js';
import { installResponse } from '../../src/app/fetch-response.js';
import { inspect } from 'node:util';

installResponse();

function describeError(err: unknown): string {
  return err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
}

describe('a Fetch handler reads the request body whole', () => {
  let server: http.Server;
  let port = 0;
  let started: (() => void) | null = null;
  let aborted: ((outcome: string) => void) | null = null;
  let late: ((outcomes: string[]) => void) | null = null;
  const routes: Record<string, (req: Request) => Promise<Response>> = {
    '/array': async (req) => {
      const ab = await req.arrayBuffer();
      assert.ok(ab instanceof ArrayBuffer);
      return new Response(ab);
    },
    '/bytes': async (req) => {
      const b = await req.bytes();
      assert.ok(b instanceof Uint8Array);
      return new Response(`${b.constructor.name} ${b.byteLength} ${b.byteOffset}`);
    },
    '/text': async (req) => new Response(JSON.stringify(await req.text())),
    '/json': async (req) => {
      try {
        return Response.json({ got: await req.json() });
      } catch (err) {
        return Response.json({ error: describeError(err) });
      }
    },
    '/twice': async (req) => {
      const before = req.bodyUsed;
      const first = await req.text();
      const second = await req.text().then(() => 'read again', describeError);
      let clone = 'cloned';
      try {
        req.clone();
      } catch (err) {
        clone = describeError(err);
      }
      return Response.json({ before, first, after: req.bodyUsed, second, locked: req.body?.locked, clone });
    },
    '/stream-first': async (req) => {
      const reader = req.body!.getReader();
      let n = 0;
      for (let r = await reader.read(); !r.done; r = await reader.read()) n += r.value.byteLength;
      const again = await req.text().then(() => 'read again', describeError);
      return Response.json({ n, used: req.bodyUsed, again });
    },
    '/headers': async (req) => {
      const h = req.headers;
      const names = ['host', 'X-Twice', 'x-twice', 'cookie', 'Content-Type', 'x-empty', 'x-missing', 'X-Spaced'];
      // Looked up first: anything else below builds the standard Headers behind h.
      const got = Object.fromEntries(names.map((n) => [n, h.get(n)]));
      const has = names.map((n) => h.has(n));
      const standard = new Headers();
      const raw = incomingMessage(req)!.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) standard.append(raw[i]!, raw[i + 1]!);
      const same = names.every((n, i) => got[n] === standard.get(n) && has[i] === standard.has(n));
      let bad = 'no error';
      try {
        h.get('bad name');
      } catch (err) {
        bad = describeError(err);
      }
      const kind = [h instanceof Headers, Object.prototype.toString.call(h), typeof inspect(h)];
      const copy = new Headers(h).get('x-twice');
      h.set('x-twice', 'replaced');
      h.append('x-added', '1');
      return Response.json({ got, same, bad, kind, copy, after: [h.get('x-twice'), h.get('X-Added'), h.has('x-added')] });
    },
    '/late': async (req) => {
      // Read after the Response was sent (a background job): Node has dropped the body by then.
      setTimeout(async () => {
        const outcomes = [];
        for (const read of [() => req.text(), () => req.json(), () => req.body!.getReader().read()]) outcomes.push(await read().then(() => 'read', describeError));
        late?.(outcomes);
      }, 100);
      return new Response('accepted', { status: 202 });
    },
    '/abort': async (req) => {
      started?.();
      const outcome = await req.arrayBuffer().then((b) => `read ${b.byteLength} bytes`, describeError);
      aborted?.(outcome);
      return new Response(outcome);
    },
  };

  before(async () => {
    const onError = (err: unknown, _req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(500).end(describeError(err));
    };
    server = http.createServer(fetchListener((req) => routes[new URL(req.url).pathname]!(req), onError));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  const url = (path: string) => `http://127.0.0.1:${port}${path}`;

  it('gives the exact bytes of a large body, sent with Content-Length or chunked', async () => {
    const body = randomBytes(300_000);
    const r = await fetch(url('/array'), { method: 'POST', body });
    assert.equal(r.status, 200);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(body));
    // Chunked, in several writes.
    const chunked = await new Promise<Buffer>((resolve, reject) => {
      const req = http.request(url('/array'), { method: 'PUT' }, (res) => {
        const got: Buffer[] = [];
        res.on('data', (c: Buffer) => got.push(c));
        res.on('end', () => resolve(Buffer.concat(got)));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 1000));
      req.write(body.subarray(1000, 200_000));
      req.end(body.subarray(200_000));
    });
    assert.ok(chunked.equals(body));
    assert.equal(await (await fetch(url('/bytes'), { method: 'POST', body: 'four' })).text(), 'Uint8Array 4 0');
    assert.equal(await (await fetch(url('/bytes'), { method: 'POST' })).text(), 'Uint8Array 0 0');
  });

  it('decodes text and JSON as Fetch does', async () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    // A Buffer's bytes as Fetch's types name them (BodyInit: a Uint8Array over an ArrayBuffer).
    const bytes = (body: Buffer | string) => (typeof body === 'string' ? body : new Uint8Array(body));
    const text = (body: Buffer | string) => fetch(url('/text'), { method: 'POST', body: bytes(body) }).then((r) => r.json());
    assert.equal(await text(Buffer.concat([bom, Buffer.from('héllo')])), 'héllo');
    assert.equal(await text(Buffer.from([0x61, 0xff, 0x62])), 'a\ufffdb');
    assert.equal(await text('x'.repeat(100_000)), 'x'.repeat(100_000));
    const json = (body: Buffer | string) => fetch(url('/json'), { method: 'POST', body: bytes(body) }).then((r) => r.json());
    assert.deepEqual(await json(Buffer.concat([bom, Buffer.from('{"a":[1,"é"]}')])), { got: { a: [1, 'é'] } });
    assert.match((await json('{not json')).error, /^SyntaxError: /);
    const kept = await fetch(url('/array'), { method: 'POST', body: Buffer.concat([bom, Buffer.from('x')]) });
    assert.deepEqual([...new Uint8Array(await kept.arrayBuffer())], [0xef, 0xbb, 0xbf, 0x78]);
  });

  it('after a read, says the body was used and refuses a second read and clone()', async () => {
    const r = await fetch(url('/twice'), { method: 'POST', body: 'once' });
    const got = await r.json();
    assert.match(got.clone, /^TypeError: /);
    assert.deepEqual({ ...got, clone: undefined }, {
      before: false,
      first: 'once',
      after: true,
      second: 'TypeError: Body is unusable: Body has already been read',
      locked: true,
      clone: undefined,
    });
  });

  it('reads GET as empty, and does not read again a body read through request.body', async () => {
    assert.equal(await (await fetch(url('/text'))).json(), '');
    const r = await fetch(url('/stream-first'), { method: 'POST', body: randomBytes(50_000) });
    assert.deepEqual(await r.json(), { n: 50_000, used: true, again: 'TypeError: Body is unusable: Body has already been read' });
  });

  it('answers header lookups from the raw list as a standard Headers would, and is one for the rest', async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      let got = '';
      const c = net.connect(port, '127.0.0.1', () => {
        c.write(
          'GET /headers HTTP/1.1\r\nHost: example.test\r\nX-Twice: one\r\nCookie: a=1\r\nx-twice: two\r\n' +
            'cookie: b=2\r\nContent-Type: text/plain\r\nX-Empty:\r\nX-Spaced:   in  side  \r\nConnection: close\r\n\r\n',
        );
      });
      c.setEncoding('utf8');
      c.on('data', (d: string) => (got += d));
      c.on('end', () => resolve(got));
      c.on('error', reject);
    });
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    assert.deepEqual(body.got, {
      host: 'example.test',
      'X-Twice': 'one, two',
      'x-twice': 'one, two',
      cookie: 'a=1; b=2',
      'Content-Type': 'text/plain',
      'x-empty': '',
      'x-missing': null,
      'X-Spaced': 'in  side',
    });
    assert.equal(body.same, true, 'get and has agree with a standard Headers of the same fields');
    assert.match(body.bad, /^TypeError: .*invalid header name/);
    assert.deepEqual(body.kind, [true, '[object Headers]', 'string']);
    assert.equal(body.copy, 'one, two');
    assert.deepEqual(body.after, ['replaced', '1', true]);
  });

  it('says why a body read after the Response was sent fails', async () => {
    const outcomes = new Promise<string[]>((resolve) => {
      late = resolve;
    });
    try {
      const r = await fetch(url('/late'), { method: 'POST', body: 'unread' });
      assert.equal(r.status, 202);
      const gone = 'TypeError: the request body is gone: it was not read before the Response was sent, and Node discards an unread body then; read it (await request.text(), .json(), ...) before returning the Response';
      // Bounded: before, the read of `request.body` never settled.
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('a late read did not settle in 5 s')), 5000)));
      try {
        assert.deepEqual(await Promise.race([outcomes, bound]), [gone, gone, gone]);
      } finally {
        clearTimeout(timer);
      }
    } finally {
      late = null;
    }
  });

  it('fails the read when the client goes away mid-body', async () => {
    const outcome = new Promise<string>((resolve) => {
      aborted = resolve;
    });
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => {});
    // Gone once the handler runs: it is then waiting for the other 990 bytes.
    started = () => sock.destroy();
    sock.write('POST /abort HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789');
    try {
      assert.equal(await outcome, 'Error: aborted');
    } finally {
      started = null;
      aborted = null;
    }
  });
});

describe('request.url', () => {
  /** A lazy Request over a stand-in for Node's request: only what the URL is made of. */
  const urlOf = (target: string, host: string | null, socket: Record<string, unknown> = {}): string => {
    const req = { method: 'GET', url: target, rawHeaders: host === null ? [] : ['Host', host], socket } as unknown as http.IncomingMessage;
    const url = lazyRequest(req, {} as http.ServerResponse).url;
    assert.ok(URL.canParse(url), `${JSON.stringify(url)} is a URL`);
    return url;
  };
  const tls = { encrypted: true };

  it('is the scheme of the connection, the Host and an origin-form target', () => {
    assert.equal(urlOf('/p?q=1', 'good'), 'http://good/p?q=1');
    assert.equal(urlOf('/p', 'good:8443', tls), 'https://good:8443/p');
  });

  it('takes the authority and path of an absolute-form target, never its scheme or userinfo', () => {
    assert.equal(urlOf('https://other:99/p', 'good'), 'http://other:99/p');
    assert.equal(urlOf('http://other/p', 'good', tls), 'https://other/p');
    assert.equal(urlOf('http://u:pw@other/p', 'good'), 'http://other/p');
    assert.equal(urlOf('http://@other/p?x', 'good'), 'http://other/p?x');
    // Serialized as the standard Request does: the host in lower case, a default port dropped.
    assert.equal(urlOf('HTTP://Other?x', 'good'), 'http://other/?x');
    assert.equal(urlOf('http://[::1]:80', 'good'), 'http://[::1]/');
  });

  it('is the server\'s root for OPTIONS *, and for a target the guard would have refused', () => {
    assert.equal(urlOf('*', 'good'), 'http://good/');
    assert.equal(urlOf('*', 'good', tls), 'https://good/');
    assert.equal(urlOf('ftp://other/p', 'good'), 'http://good/');
    assert.equal(urlOf('*/x', 'good'), 'http://good/');
    assert.equal(urlOf('http://a@b@c/p', 'good'), 'http://good/');
  });

  it('names the server\'s own address when the request names no host', () => {
    const v4 = { localAddress: '127.0.0.1', localPort: 8000 };
    assert.equal(urlOf('/admin/x', '', v4), 'http://127.0.0.1:8000/admin/x');
    assert.equal(urlOf('/a', null, v4), 'http://127.0.0.1:8000/a');
    assert.equal(urlOf('/a', null, { localAddress: '::1', localPort: 8000 }), 'http://[::1]:8000/a');
    assert.equal(urlOf('/a', null, { localAddress: 'fe80::1%eth0', localPort: 80 }), 'http://[fe80::1]/a');
    assert.equal(urlOf('/a', null, {}), 'http://localhost/a');
  });
});
