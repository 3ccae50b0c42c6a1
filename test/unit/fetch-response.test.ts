/**
 * The Response stand-in and the Fetch bridge, in process:
 * - the stand-in behaves as a standard Response (instanceof, statics, body readers, validation, subclassing)
 * - a plain body is written with its headers, status, Content-Length and Fetch's default Content-Type
 * - multiple Set-Cookie headers, HEAD, bytes, a stream body, headers changed after construction
 * - no body: a Content-Length of 0 (none to HEAD), never an empty chunked body
 * - a bad return value (not a Response, Response.error()) becomes a 500
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { EventEmitter } from 'node:events';
import { fetchListener, writeResponse } from '../../src/app/fetch-bridge.js';
import { installResponse, NativeResponse, isPlain } from '../../src/app/fetch-response.js';
import { AppResultError } from '../../src/app/errors.js';

installResponse();

describe('the Response stand-in', () => {
  it('is a Response, and a native Response is one too', async () => {
    const r = new Response('hi');
    assert.ok(r instanceof Response);
    assert.ok(r instanceof NativeResponse);
    assert.ok(new NativeResponse('x') instanceof Response);
    assert.notEqual(Response, NativeResponse);
    assert.equal(Object.prototype.toString.call(r), '[object Response]');
    assert.equal(r.status, 200);
    assert.equal(r.ok, true);
    assert.equal(r.headers.get('content-type'), 'text/plain;charset=UTF-8');
    assert.equal(await r.text(), 'hi');
    assert.equal(r.bodyUsed, true);
    await assert.rejects(r.text(), TypeError);
  });

  it('keeps the statics and the validation of the standard one', async () => {
    const j = Response.json({ a: 1 }, { status: 201, headers: { 'x-a': 'b' } });
    assert.ok(j instanceof Response);
    assert.equal(j.status, 201);
    assert.equal(j.headers.get('content-type'), 'application/json');
    assert.equal(j.headers.get('x-a'), 'b');
    assert.deepEqual(await j.json(), { a: 1 });
    const redirect = Response.redirect('http://example.com/next', 307);
    assert.equal(redirect.status, 307);
    assert.equal(redirect.headers.get('location'), 'http://example.com/next');
    assert.equal(Response.error().type, 'error');
    assert.throws(() => new Response('body', { status: 204 }), TypeError);
    assert.throws(() => new Response(null, { status: 99 }), RangeError);
    assert.equal(new Response(null, { status: 204 }).status, 204);
    assert.throws(() => (Response as unknown as () => void)(), TypeError);
    // The init converted or refused as the standard's WebIDL does: in the constructor, where the app can catch it.
    assert.throws(() => new Response('x', { statusText: 'OK\r\nX-Injected: 1' }), { name: 'TypeError', message: 'Invalid statusText' });
    assert.throws(() => new Response('x', { statusText: 'Ā' }), TypeError);
    assert.equal(new Response('x', { status: '201' as unknown as number }).status, 201);
    assert.equal(new Response('x', { status: 200.5 }).status, 200);
    assert.equal(new Response('x', { statusText: 5 as unknown as string }).statusText, '5');
    assert.equal(new Response('x', { statusText: 'Très bien' }).statusText, 'Très bien');
  });

  it('reads any body the standard one takes, and clones', async () => {
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('streamed'));
        c.close();
      },
    });
    assert.equal(await new Response(stream).text(), 'streamed');
    assert.equal(await new Response(new URLSearchParams({ q: '1' })).text(), 'q=1');
    assert.deepEqual(new Uint8Array(await new Response(new Uint8Array([1, 2, 3])).arrayBuffer()), new Uint8Array([1, 2, 3]));
    const c = new Response('twice').clone();
    assert.equal(await c.text(), 'twice');
  });

  it('can be subclassed', async () => {
    class Mine extends Response {
      tag = 'mine';
    }
    const m = new Mine('sub', { status: 202 });
    assert.ok(m instanceof Mine);
    assert.ok(m instanceof Response);
    assert.equal(m.tag, 'mine');
    assert.equal(m.status, 202);
    assert.equal(await m.text(), 'sub');
  });

  it('is written without building the standard Response, until something reads it', () => {
    assert.ok(isPlain(new Response('x')));
    assert.ok(isPlain(Response.json({})));
    const read = new Response('x');
    void read.body;
    assert.equal(isPlain(read), false);
    assert.equal(isPlain(new Response(new ReadableStream())), false);
  });
});

describe('the Fetch bridge writes', () => {
  let server: http.Server;
  let base = '';
  const errors: unknown[] = [];
  const routes: Record<string, (req: Request) => Response | Promise<Response>> = {
    '/text': () => new Response('héllo', { status: 201, statusText: 'Made', headers: { 'x-one': '1' } }),
    '/bytes': () => new Response(new Uint8Array([0, 1, 2, 255]), { headers: [['content-type', 'application/octet-stream']] }),
    '/cookies': () => {
      const h = new Headers();
      h.append('set-cookie', 'a=1');
      h.append('set-cookie', 'b=2');
      return new Response('c', { headers: h });
    },
    '/mutated': () => {
      const r = new Response('m');
      r.headers.set('x-late', 'yes');
      return r;
    },
    '/stream': () =>
      new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode('a'));
            c.enqueue(new TextEncoder().encode('b'));
            c.close();
          },
        }),
      ),
    '/empty': () => new Response(null, { status: 204 }),
    '/async': async (req) => Response.json({ method: req.method, url: req.url }),
    '/bad': () => 'not a response' as unknown as Response,
    // Hono's answer to every HEAD: no body, no length.
    '/no-body': () => new Response(null, { headers: { 'content-type': 'text/plain' } }),
    '/redirect': () => Response.redirect('http://example.com/next', 302),
    // A null body on the standard Response (built once its body was looked at), with a length it does not have.
    '/no-body-long': () => {
      const r = new Response(null, { headers: { 'content-length': '5' } });
      void r.body;
      return r;
    },
    '/network-error': () => Response.error(),
    // Bodies that fail (or give no bytes) before the first chunk: nothing was sent yet, so a 500 can be.
    '/fails-at-once': () =>
      new Response(
        new ReadableStream({
          start(c) {
            c.error(new Error('fails at once'));
          },
        }),
      ),
    '/generator-throws': () =>
      new Response(
        (async function* () {
          throw new Error('gen throws');
        })() as unknown as BodyInit,
      ),
    '/number-chunk': () =>
      new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(42);
            c.close();
          },
        }),
      ),
    // A first chunk that takes its time: the head goes out first (an event stream), and a failure then cuts.
    '/fails-later': () =>
      new Response(
        new ReadableStream({
          async pull(c) {
            await new Promise((r) => setTimeout(r, 20));
            c.error(new Error('fails later'));
          },
        }),
      ),
  };

  before(async () => {
    const onError = (err: unknown, _req: http.IncomingMessage, res: http.ServerResponse) => {
      errors.push(err);
      // As the worker's error handler: a response whose head went out is cut.
      if (res.headersSent) res.destroy();
      else res.writeHead(500).end();
    };
    server = http.createServer(fetchListener((req) => routes[new URL(req.url).pathname]!(req), onError));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('a string body with status, status text, Content-Length and the default Content-Type', async () => {
    const r = await fetch(`${base}/text`);
    assert.equal(r.status, 201);
    assert.equal(r.statusText, 'Made');
    assert.equal(r.headers.get('x-one'), '1');
    assert.equal(r.headers.get('content-type'), 'text/plain;charset=UTF-8');
    assert.equal(r.headers.get('content-length'), String(Buffer.byteLength('héllo')));
    assert.equal(await r.text(), 'héllo');
  });

  it('bytes, cookies, late headers, a stream, no body, HEAD', async () => {
    const b = await fetch(`${base}/bytes`);
    assert.equal(b.headers.get('content-type'), 'application/octet-stream');
    assert.deepEqual(new Uint8Array(await b.arrayBuffer()), new Uint8Array([0, 1, 2, 255]));
    const c = await fetch(`${base}/cookies`);
    assert.deepEqual(c.headers.getSetCookie(), ['a=1', 'b=2']);
    assert.equal((await fetch(`${base}/mutated`)).headers.get('x-late'), 'yes');
    assert.equal(await (await fetch(`${base}/stream`)).text(), 'ab');
    const e = await fetch(`${base}/empty`);
    assert.equal(e.status, 204);
    const h = await fetch(`${base}/text`, { method: 'HEAD' });
    assert.equal(h.headers.get('content-length'), String(Buffer.byteLength('héllo')));
    assert.equal(await h.text(), '');
    assert.deepEqual(await (await fetch(`${base}/async?q=1`)).json(), { method: 'GET', url: `${base}/async?q=1` });
  });

  it('a body that fails before any of it was sent is a 500 that says why; one that fails later is cut', async () => {
    for (const [route, why] of [
      ['/fails-at-once', /failed before any of it was sent \(Error: fails at once\)/],
      ['/generator-throws', /failed before any of it was sent \(Error: gen throws\)/],
      ['/number-chunk', /gave a number \(42\), where a stream's chunks must be Uint8Array/],
    ] as const) {
      const r = await fetch(`${base}${route}`);
      assert.equal(r.status, 500, route);
      assert.match(String((errors.at(-1) as Error).message), why);
    }
    const r = await fetch(`${base}/fails-later`);
    assert.equal(r.status, 200);
    await assert.rejects(r.text());
    assert.match(String((errors.at(-1) as Error).message), /failed while it was being sent \(Error: fails later\)/);
  });

  it('a value that is not a Response is a 500', async () => {
    const r = await fetch(`${base}/bad`);
    assert.equal(r.status, 500);
    assert.match(String(errors.at(-1)), /returned a string, not a Response/);
  });

  it('no body to HEAD: no Content-Length, as the GET may have a body; 0 to GET', async () => {
    const head = await fetch(`${base}/no-body`, { method: 'HEAD' });
    assert.equal(head.headers.get('content-length'), null);
    assert.equal(head.headers.get('content-type'), 'text/plain');
    const get = await fetch(`${base}/no-body`);
    assert.equal(get.headers.get('content-length'), '0');
  });

  it('a standard Response with no body (a redirect) has a Content-Length of 0, not an empty chunked body', async () => {
    const r = await fetch(`${base}/redirect`, { redirect: 'manual' });
    assert.deepEqual([r.status, r.headers.get('content-length'), r.headers.get('transfer-encoding')], [302, '0', null]);
    assert.equal(await r.text(), '');
    const h = await fetch(`${base}/redirect`, { method: 'HEAD', redirect: 'manual' });
    assert.deepEqual([h.status, h.headers.get('content-length'), h.headers.get('transfer-encoding')], [302, null, null]);
  });

  it('a Content-Length on a Response with no body is a 500, not a client left waiting', async () => {
    const r = await fetch(`${base}/no-body-long`, { signal: AbortSignal.timeout(3000) });
    assert.equal(r.status, 500);
    assert.ok(errors.at(-1) instanceof AppResultError);
    assert.match(String(errors.at(-1)), /says Content-Length: 5, but it has no body/);
  });

  it('Response.error() is a 500 with the reason, not a RangeError for status 0', async () => {
    const r = await fetch(`${base}/network-error`);
    assert.equal(r.status, 500);
    assert.ok(errors.at(-1) instanceof AppResultError);
    assert.match(String(errors.at(-1)), /returned Response\.error\(\) \(a network error\), which has no HTTP status/);
  });

  it('a stream body waits for each drain without leaving listeners on the response', async () => {
    // A client slower than the app: every chunk fills the buffer. Each wait used to leave its 'close'
    // listener behind until the response ended: thousands on a long download or event stream.
    let left = 50;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (left-- === 0) c.close();
        else c.enqueue(new Uint8Array(16));
      },
    });
    let writes = 0;
    let ended = false;
    const res = Object.assign(new EventEmitter(), {
      destroyed: false,
      writeHead: () => res,
      write: () => {
        writes++;
        setImmediate(() => res.emit('drain'));
        return false;
      },
      end: () => void (ended = true),
    });
    await writeResponse(new NativeResponse(body), res as unknown as http.ServerResponse, 'GET');
    assert.equal(writes, 50);
    assert.ok(ended);
    assert.equal(res.listenerCount('close'), 0, "'close' listeners left on the response");
    assert.equal(res.listenerCount('drain'), 0, "'drain' listeners left on the response");
  });
});
