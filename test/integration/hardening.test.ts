/**
 * Hostile input: every case of test/corpus/*.jsonl (request bytes and the expected outcome) over a real
 * socket, against every worker class; one server per class and app shape, all at once, the cases in parallel.
 * - smuggling and framing errors, bad bytes, bad request lines, Host rules, versions: 4xx/505 and a close
 * - Gunicorn's limits: 414 and 431 just past them, 200 at them
 * - slow clients (header and body timeouts), idle keep-alive close, pipelining, half-close
 * - a valid response already owed is sent before the error that garbage behind it earns
 * - an app exception gives 500 without its details
 * - upgrade (WebSocket) and CONNECT requests get the same checks and forwarded-header handling before the
 *   app's listeners see them, and a line in the access log
 * - every refusal (a 4xx/5xx tunicorn answers itself) carries a one-line text/plain body naming the status and
 *   the reason (the setting and its value for a limit or a timeout), never the client's bytes; HEAD gets none;
 *   the debug line the refusal writes has the same words
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exchange, type RawResponse, type RawResult, type RawStep } from '../helpers/raw.js';
import { FIXTURES, Server, stopAll, until, within } from '../helpers/server.js';

after(stopAll);

/** The worker classes the corpus runs against (add a class here and the whole corpus runs on it). */
export const WORKER_CLASSES_UNDER_TEST = ['async', 'sync', 'gthread'] as const;
/** The app shapes it runs against: a (req, res) listener, an http.Server the app made, a Fetch handler. */
const APPS = ['echo.ts', 'echo-server.ts', 'echo-fetch.ts'] as const;

const CORPUS = fileURLToPath(new URL('../corpus/', import.meta.url));

interface Case {
  name: string;
  send?: string;
  steps?: RawStep[];
  halfClose?: boolean;
  expect: {
    status?: (number | number[])[];
    anyError?: boolean;
    close?: boolean;
    echo?: Record<string, string>[];
    bodyExcludes?: string;
    reason?: string;
  };
}

const expand = (s: string): string => s.replace(/\{\{(\d+)\*(.*?)\}\}/gs, (_, n: string, text: string) => text.repeat(Number(n)));

function loadCorpus(): Case[] {
  const out: Case[] = [];
  for (const f of readdirSync(CORPUS).filter((n) => n.endsWith('.jsonl')).sort()) {
    for (const [i, line] of readFileSync(path.join(CORPUS, f), 'utf8').split('\n').entries()) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as Case);
      } catch (err) {
        throw new Error(`${f}:${i + 1}: ${(err as Error).message}`);
      }
    }
  }
  const names = new Set<string>();
  for (const c of out) {
    assert.ok(!names.has(c.name), `duplicate case name ${c.name}`);
    names.add(c.name);
  }
  return out;
}

const cases = loadCorpus();

/**
 * sync serves one request per connection, as Gunicorn's sync worker: the first response carries
 * `Connection: close`, and requests pipelined behind it are never answered. For it a case expecting several
 * responses expects the first one, then the close. (gthread keeps connections alive, and answers pipelined
 * requests in order, one at a time.)
 */
const ONE_REQUEST_PER_CONNECTION = new Set<string>(['sync']);
/** The classes that serve one request at a time (per thread): the cases are answered in turn. */
const SERVES_IN_TURN = new Set<string>(['sync', 'gthread']);

/**
 * How many of a case's responses a class owes. A client's FIN ends its connection (docs/design.md, The HTTP
 * layer): gthread answers the pipelined requests it ran before the FIN was read, at least the first, and
 * those still queued behind it are not answered.
 */
function owed(c: Case, r: RawResult, cls: string): number {
  const want = c.expect.status?.length ?? 0;
  if (want <= 1) return want;
  if (ONE_REQUEST_PER_CONNECTION.has(cls)) return 1;
  if (cls === 'gthread' && c.halfClose) return Math.min(want, Math.max(1, r.responses.length));
  return want;
}

/**
 * A response tunicorn answered itself instead of the app: an error status other than the app's 500. Its body
 * is one line, `STATUS PHRASE: reason`, in text/plain, its Content-Length is the body's length, and the
 * connection closes after it.
 */
function checkRefusal(x: RawResponse, seen: string): void {
  assert.equal(x.headers['content-type'], 'text/plain; charset=utf-8', `refusal ${x.status}: content type; ${seen}`);
  assert.equal(Number(x.headers['content-length']), Buffer.byteLength(x.body, 'latin1'), `refusal ${x.status}: length; ${seen}`);
  assert.match(x.body, new RegExp(`^${x.status} ${STATUS_CODES[x.status]}: [ -~]+\n$`), `refusal ${x.status}: body; ${seen}`);
  assert.equal(x.headers.connection?.toLowerCase(), 'close', `refusal ${x.status}: closes; ${seen}`);
}

const isRefusal = (x: RawResponse): boolean => x.status >= 400 && x.status !== 500;

function check(c: Case, r: RawResult, cls: string): void {
  const n = owed(c, r, cls);
  const e = n < (c.expect.status?.length ?? 0)
    ? { ...c.expect, status: c.expect.status!.slice(0, n), close: true, echo: c.expect.echo?.slice(0, n) }
    : c.expect;
  const got = r.responses.map((x) => x.status);
  const seen = `got ${JSON.stringify(got)}, closed=${r.closed}, rest=${JSON.stringify(r.rest.slice(0, 80))}`;
  const refusals = r.responses.filter(isRefusal);
  for (const x of refusals) checkRefusal(x, `${JSON.stringify(x.body)}; ${seen}`);
  if (refusals.length > 0) assert.equal(r.rest, '', `nothing after a refusal; ${seen}`);
  if (e.reason) {
    // Unless the class owes no refusal here (sync: the first response only).
    const owesOne = (e.status ?? []).flat().some((s) => s >= 400 && s !== 500);
    if (owesOne) assert.ok(refusals.length > 0, `expected a refusal naming ${JSON.stringify(e.reason)}; ${seen}`);
    for (const x of refusals) assert.ok(x.body.includes(e.reason), `expected ${JSON.stringify(e.reason)} in ${JSON.stringify(x.body)}`);
  }
  if (e.bodyExcludes) for (const x of r.responses) assert.ok(!x.body.includes(e.bodyExcludes), `body leaks ${e.bodyExcludes}`);
  if (e.anyError) {
    assert.ok(r.closed, `expected a close; ${seen}`);
    assert.ok(got.every((s) => s >= 400), `expected only error responses; ${seen}`);
    return;
  }
  const want = e.status ?? [];
  assert.equal(got.length, want.length, `expected ${JSON.stringify(want)}; ${seen}`);
  want.forEach((w, i) => {
    const ok = Array.isArray(w) ? w.includes(got[i]!) : w === got[i];
    assert.ok(ok, `response ${i + 1}: expected ${JSON.stringify(w)}; ${seen}`);
  });
  if (e.close) assert.ok(r.closed, `expected the server to close; ${seen}`);
  e.echo?.forEach((fields, i) => {
    const seenByApp = JSON.parse(r.responses[i]!.body) as Record<string, unknown>;
    for (const [k, v] of Object.entries(fields)) assert.equal(seenByApp[k], v, `response ${i + 1} field ${k}`);
  });
}

const RUNS: { cls: string; app: string; env: NodeJS.ProcessEnv }[] = [
  ...WORKER_CLASSES_UNDER_TEST.flatMap((cls) => APPS.map((app) => ({ cls, app, env: {} }))),
  // Without the native modules the connection gate reads every first request line through JavaScript; with
  // them (above), only the lines that had not arrived when the connection was accepted.
  { cls: 'async', app: 'echo.ts', env: { TUNICORN_NATIVE: '0' } },
];

// The runs go at the same time, each on its own server: a class that serves one request at a time spends most
// of its run waiting out, in turn, the 2 s timeouts of the stalled cases (13-17 s a run); one run after another
// took 1.5 minutes.
describe('hostile-input corpus', { concurrency: true }, () => {
  for (const { cls, app, env } of RUNS) {
    describe(`hostile-input corpus, -k ${cls}, ${app}${env.TUNICORN_NATIVE ? ', TUNICORN_NATIVE=0' : ''}`, () => {
      let port = 0;
      let server: Server;
      before(async () => {
        server = new Server([
          '-b', '127.0.0.1:0', '-k', cls, '--header-timeout', '2', '--body-timeout', '2', '--keep-alive', '2',
          path.join(FIXTURES, app),
        ], { env });
        port = await server.port();
        await server.workersBooted(1);
      });

      it(`answers all ${cases.length} cases as expected, while serving everyone else`, async () => {
        // The cases run in parallel; each waits for the server's own close (up to its header/body/keep-alive
        // timeouts, 2 s here), bounded generously for a loaded machine. A class serving one request at a
        // time takes them in turn, each stalled case holding the worker for its whole timeout: the last case
        // is answered 13-14 s in on this machine, alone (15.2 s once, with the whole suite running; 26 s with
        // the other runs at the same time, on a machine loaded by other test suites).
        const bound = SERVES_IN_TURN.has(cls) ? 45000 : 15000;
        const results = await Promise.all(
          cases.map(async (c) => {
            const steps = c.steps ?? [{ send: c.send ?? '' }];
            const r = await exchange(port, steps.map((s) => ({ ...s, send: expand(s.send) })), {
              want: ONE_REQUEST_PER_CONNECTION.has(cls) ? Math.min(1, c.expect.status?.length ?? 0) : (c.expect.status?.length ?? 0),
              waitClose: c.expect.close === true || c.expect.anyError === true,
              halfClose: c.halfClose,
              ms: bound,
              // A client on the internet: not a trusted proxy (127.0.0.1 is one by default, and may speak h2c).
              localAddress: '127.0.0.2',
            });
            try {
              check(c, r, cls);
              return null;
            } catch (err) {
              return `${c.name}: ${(err as Error).message}`;
            }
          }),
        );
        const failures = results.filter((x) => x !== null);
        assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases failed:\n${failures.join('\n')}`);
        assert.doesNotMatch(server.log, /Uncaught exception in worker/);
        assert.equal(server.count(/Booting worker/), 1, 'the worker must survive the corpus');
      });
    });
  }
});

describe('limit_request_fields above the 1000 fields Node keeps by default', () => {
  /** A request of exactly `n` fields (Host, then X-F-*, then Connection: close): the status, and what the app saw. */
  async function send(port: number, n: number): Promise<{ status: number | undefined; body: string }> {
    let fields = 'Host: x\r\n';
    for (let i = 0; i < n - 2; i++) fields += `X-F-${i}: v\r\n`;
    const r = await exchange(port, [{ send: `GET / HTTP/1.1\r\n${fields}Connection: close\r\n\r\n` }], { want: 1, waitClose: true, ms: 8000 });
    return { status: r.responses[0]?.status, body: r.responses[0]?.body ?? '' };
  }

  for (const [limit, max] of [['1500', 1500], ['0', 32768]] as const) {
    it(`--limit-request-fields ${limit}: every one of ${max} fields reaches the app, and one more gets 431`, async () => {
      const server = new Server(['-b', '127.0.0.1:0', '--limit-request-fields', limit, path.join(FIXTURES, 'fields.ts')]);
      const port = await server.port();
      await server.workersBooted(1);
      const at = await send(port, max);
      assert.equal(at.status, 200);
      assert.deepEqual(JSON.parse(at.body), { fields: max, names: max, last: ['Connection', 'close'] });
      const over = await send(port, max + 1);
      assert.equal(over.status, 431);
      const named = limit === '0' ? `${max} (limit_request_fields is 0)` : `limit_request_fields (${max})`;
      assert.equal(over.body, `431 Request Header Fields Too Large: more header fields than ${named}\n`);
      await server.kill();
    });
  }
});

/** A WebSocket upgrade request with extra header lines. */
const wsRequest = (extra = '', target = '/ws'): string =>
  `GET ${target} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

/**
 * Sends one request from `from`: the answer's status, and what follows it: for a 101 the text of the first
 * WebSocket frame (a server's frames are unmasked), else everything until the server closes. Then our side
 * closes.
 */
function upgradeExchange(port: number, request: string, from: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => settle(new Error(`no answer within 5 s; got ${JSON.stringify(data.toString('latin1'))}`)), 5000);
    const settle = (result: Error | { status: number; text: string }) => {
      clearTimeout(timer);
      socket.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const look = (closed: boolean) => {
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return void (closed && settle(new Error(`closed without an answer: ${JSON.stringify(data.toString('latin1'))}`)));
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(data.toString('latin1', 0, 16))?.[1]);
      const rest = data.subarray(end + 4);
      if (status !== 101) return void (closed && settle({ status, text: rest.toString() }));
      let len = rest.length >= 2 ? rest[1]! & 0x7f : -1;
      let at = 2;
      if (len === 126 && rest.length >= 4) [len, at] = [rest.readUInt16BE(2), 4];
      if (len >= 0 && len < 127 && rest.length >= at + len) settle({ status, text: rest.toString('utf8', at, at + len) });
      else if (closed) settle(new Error(`closed before the first frame: ${JSON.stringify(data.toString('latin1'))}`));
    };
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      look(false);
    });
    socket.on('close', () => look(true));
    socket.on('error', () => {});
    socket.on('connect', () => socket.write(Buffer.from(request, 'latin1')));
  });
}

describe('upgrade requests (WebSocket, CONNECT) get the checks of every request', () => {
  for (const cls of WORKER_CLASSES_UNDER_TEST) {
    it(`-k ${cls}: limits, Host and forwarded headers apply before the app's listeners; the access log has them`, async () => {
      const server = new Server([
        '-b', '127.0.0.1:0', '-k', cls, ...(cls === 'gthread' ? ['--threads', '2'] : []), '--log-level', 'debug',
        '--access-logfile', '-', '--access-logformat', 'ACCESS %(h)s "%(r)s" %(s)s', path.join(FIXTURES, 'ws-whoami.ts'),
      ]);
      const port = await server.port();
      await server.workersBooted(1);
      // 127.0.0.2 is not a trusted proxy (the default list is 127.0.0.1, ::1): its forwarded headers go.
      const untrusted = await upgradeExchange(port, wsRequest('X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n'), '127.0.0.2');
      assert.equal(untrusted.status, 101);
      assert.deepEqual(JSON.parse(untrusted.text), { addr: '127.0.0.2', xff: null, proto: null, fields: 5 });
      const trusted = await upgradeExchange(port, wsRequest('X-Forwarded-For: 203.0.113.5\r\n', '/ws?trusted'), '127.0.0.1');
      assert.equal(trusted.status, 101);
      assert.equal(JSON.parse(trusted.text).addr, '203.0.113.5');
      const refused = [
        ['500 header fields', wsRequest(Array.from({ length: 500 }, (_, i) => `X-H${i}: 1\r\n`).join('')), 431, 'more header fields than limit_request_fields (100)'],
        ['a 20 KB field', wsRequest(`X-Big: ${'a'.repeat(20000)}\r\n`), 431, 'a header field is over limit_request_field_size (8190 bytes)'],
        ['a 6000-byte target', wsRequest('', `/${'a'.repeat(6000)}`), 414, 'the request line is over limit_request_line (4094 bytes)'],
        ['two Host fields', wsRequest('Host: evil\r\n'), 400, 'more than one Host header'],
        ['a CONNECT with two Host fields', 'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nHost: evil\r\n\r\n', 400, 'more than one Host header'],
      ] as const;
      for (const [what, request, status, reason] of refused) {
        const r = await upgradeExchange(port, request, '127.0.0.2');
        assert.equal(r.status, status, what);
        assert.equal(r.text, `${status} ${STATUS_CODES[status]}: ${reason}\n`, what);
      }
      const connect = await upgradeExchange(port, 'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n', '127.0.0.2');
      assert.equal(connect.status, 200);
      assert.equal(JSON.parse(connect.text).xff, null);
      // Each accepted one is logged once its connection has closed, with the status the app wrote; each refused
      // one as its refusal is written, with its status (its request line `-` when Node's parser refused it).
      await until(() => server.stdout.includes('ACCESS 127.0.0.2 "CONNECT h:443 HTTP/1.1" 200'), 5000, 'the CONNECT in the access log');
      await until(() => server.stdout.includes('ACCESS 203.0.113.5 "GET /ws?trusted HTTP/1.1" 101'), 5000, 'the upgrade in the access log');
      assert.match(server.stdout, /^ACCESS 127\.0\.0\.2 "GET \/ws HTTP\/1\.1" 101$/m);
      assert.equal(server.stdout.match(/^ACCESS /gm)?.length, 3 + refused.length, server.stdout);
      const refusedLines = server.stdout.match(/^ACCESS 127\.0\.0\.2 "(?:-|GET \/\S* HTTP\/1\.1|CONNECT h:443 HTTP\/1\.1)" 4\d\d$/gm) ?? [];
      assert.deepEqual(refusedLines.map((l) => Number(l.slice(-3))).sort(), refused.map((r) => r[2]).sort(), server.stdout);
      // Node 22.23.2, 24.18.1 and 26.5.1 refuse the 500 fields in their parser ("Bad request"), Node 20 leaves
      // them to tunicorn's own check ("Refused"): the same answer either way.
      assert.equal(server.count(/(?:Refused a request from 127\.0\.0\.2: |Bad request from 127\.0\.0\.2: .*answered )4\d\d /), refused.length);
      assert.doesNotMatch(server.log, /Uncaught exception|Traceback|TypeError/);
      await server.kill();
    });
  }
});

/** The bytes a server sends on a connection until it closes it (bounded), after `steps`. */
function untilClose(port: number, steps: RawStep[], ms = 10000): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (data += d));
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
      socket.once('connect', async () => {
        for (const step of steps) {
          if (step.pauseMs) await new Promise((r) => setTimeout(r, step.pauseMs));
          if (!socket.destroyed) socket.write(Buffer.from(step.send, 'latin1'));
        }
      });
      // Bounded by within(); the socket goes with the test process if it never closes.
      setTimeout(() => socket.destroy(), ms).unref();
    }),
    ms + 1000,
    'the server to close the connection',
  );
}

/** Splits one response into its status line, lower-cased headers and body. */
function split(raw: string): { status: string; headers: Record<string, string>; body: string } {
  const end = raw.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no complete response head in ${JSON.stringify(raw.slice(0, 200))}`);
  const [status, ...lines] = raw.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
  return { status: status!, headers, body: raw.slice(end + 4) };
}

describe('Expect: 100-continue gets the checks of every request before its 100 Continue (and another Expect before its 417)', () => {
  for (const cls of WORKER_CLASSES_UNDER_TEST) {
    for (const app of ['echo.ts', 'echo-continue.ts'] as const) {
      it(`-k ${cls}, ${app}: a refused one gets no 100; the forwarded headers and the error handling apply`, async () => {
        const s = new Server(['-b', '127.0.0.1:0', '-k', cls, '--limit-request-fields', '5', path.join(FIXTURES, app)]);
        const port = await s.port();
        await s.workersBooted(1);
        const post = (path: string, headers: string, from = '127.0.0.1') =>
          exchange(port, [{ send: `POST ${path} HTTP/1.1\r\n${headers}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n` }, { send: 'hello', pauseMs: 300 }], { want: 1, waitClose: false, ms: 5000, localAddress: from });
        for (const [what, headers, status] of [
          ['no Host', '', 400],
          ['two Host fields', 'Host: a\r\nHost: b\r\n', 400],
          ['too many fields', 'Host: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n', 431],
        ] as const) {
          // The raw bytes: the refusal, with no 100 Continue before it to invite the body.
          const raw = await untilClose(port, [{ send: `POST / HTTP/1.1\r\n${headers}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n` }]);
          assert.match(raw, new RegExp(`^HTTP/1\\.1 ${status} `), `${what}: ${JSON.stringify(raw.slice(0, 80))}`);
        }
        // 127.0.0.2 is not a trusted proxy: its X-Forwarded-For is removed before the app sees it.
        const ok = await post('/', 'Host: a\r\nX-Forwarded-For: 6.6.6.6\r\n', '127.0.0.2');
        assert.deepEqual(ok.responses.map((x) => x.status), [200]);
        const seen = JSON.parse(ok.responses[0]!.body) as { b: string; xff: string | null; addr: string };
        assert.deepEqual([seen.b, seen.xff, seen.addr], ['hello', null, '127.0.0.2']);
        // The app server's own checkContinue listener answered it.
        assert.equal(ok.responses[0]!.headers['x-continue'], app === 'echo-continue.ts' ? 'app' : undefined);
        // Another Expect: refused after the checks (417), or given to the app server's own listener after them.
        const other = (headers: string) =>
          exchange(port, [{ send: `GET / HTTP/1.1\r\n${headers}Expect: teapot\r\nConnection: close\r\n\r\n` }], { want: 1, waitClose: true, ms: 5000, localAddress: '127.0.0.2' });
        assert.deepEqual((await other('Host: a\r\nHost: b\r\n')).responses.map((x) => x.status), [400]);
        const teapot = (await other('Host: a\r\nX-Forwarded-For: 6.6.6.6\r\n')).responses;
        if (app === 'echo.ts') {
          assert.deepEqual(teapot.map((x) => x.status), [417]);
        } else {
          assert.deepEqual(teapot.map((x) => [x.status, x.headers['x-expectation']]), [[200, 'app']]);
          assert.equal((JSON.parse(teapot[0]!.body) as { xff: string | null }).xff, null);
        }
        // The app's exception is a 500, and the worker lives on.
        const thrown = await post('/throw', 'Host: a\r\n');
        assert.deepEqual(thrown.responses.map((x) => x.status), [500]);
        await s.waitFor(/Error handling request POST \/throw/);
        assert.doesNotMatch(s.log, /Uncaught exception in worker/);
        await s.kill();
      });
    }
  }
});

describe('checkContinue and checkExpectation listeners an app server adds once it listens take the events over', () => {
  for (const cls of WORKER_CLASSES_UNDER_TEST) {
    it(`-k ${cls}: each request is answered once, by the app's listener, and the worker lives on`, async () => {
      const s = new Server(['-b', '127.0.0.1:0', '-k', cls, path.join(FIXTURES, 'echo-continue-late.ts')]);
      const port = await s.port();
      await s.workersBooted(1);
      const cont = await exchange(port, [{ send: 'POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n' }, { send: 'hello', pauseMs: 300 }], { want: 1, waitClose: false, ms: 5000 });
      assert.deepEqual(cont.responses.map((x) => [x.status, x.headers['x-continue']]), [[200, 'app']]);
      assert.equal((JSON.parse(cont.responses[0]!.body) as { b: string }).b, 'hello');
      const other = await exchange(port, [{ send: 'GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nConnection: close\r\n\r\n' }], { want: 1, waitClose: true, ms: 5000 });
      assert.deepEqual(other.responses.map((x) => [x.status, x.headers['x-expectation']]), [[200, 'app']]);
      // A plain request after them: the same worker serves it (no second answer crashed it).
      const plain = await exchange(port, [{ send: 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' }], { want: 1, waitClose: true, ms: 5000 });
      assert.deepEqual(plain.responses.map((x) => x.status), [200]);
      assert.doesNotMatch(s.log, /Uncaught exception in worker|ERR_STREAM_WRITE_AFTER_END|ERR_HTTP_HEADERS_SENT/);
      await s.kill();
    });
  }
});

describe('an app that sends its own 100 Continue', () => {
  for (const cls of WORKER_CLASSES_UNDER_TEST) {
    it(`-k ${cls}: the client gets one 100 Continue, then the answer`, async () => {
      const s = new Server(['-b', '127.0.0.1:0', '-k', cls, path.join(FIXTURES, 'echo-writes-continue.ts')]);
      const port = await s.port();
      await s.workersBooted(1);
      // Only the head first: the body goes once a 100 came (the client waits for it, as curl does).
      const raw = await untilClose(port, [
        { send: 'POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n' },
        { send: 'hello', pauseMs: 300 },
      ]);
      assert.equal(raw.split('HTTP/1.1 100 Continue').length - 1, 1, JSON.stringify(raw.slice(0, 120)));
      assert.match(raw, /HTTP\/1\.1 200 OK[\s\S]*"b":"hello"/);
      await s.kill();
    });
  }
});

describe('--limit-request-field-size 0 lifts the per-field limit', () => {
  it('a 2 MB field is served (as with an explicit 3000000), one past the header section\'s bound gets 431', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '--limit-request-field-size', '0', path.join(FIXTURES, 'echo.ts')]);
    const port = await s.port();
    await s.workersBooted(1);
    const send = (n: number) => exchange(port, [{ send: `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(n)}\r\nConnection: close\r\n\r\n` }], { want: 1, waitClose: true, ms: 10000 });
    assert.deepEqual((await send(2_000_000)).responses.map((r) => r.status), [200]);
    const over = (await send(9_000_000)).responses;
    assert.deepEqual(over.map((r) => r.status), [431]);
    assert.match(over[0]!.body, /the header section is over 8388608 bytes/);
    await s.kill();
  });
});

describe('header_timeout counts a first request from the connection\'s start (a client that waits, then trickles)', () => {
  for (const cls of WORKER_CLASSES_UNDER_TEST) {
    it(`-k ${cls}: 408 at header_timeout after the connect, not after the first byte; a served connection stays`, async () => {
      const s = new Server(['-b', '127.0.0.1:0', '-k', cls, '--header-timeout', '2', '--keep-alive', '5', path.join(FIXTURES, 'echo.ts')]);
      const port = await s.port();
      // Ready, not only booted: a connection made while the worker still loads waits in the backlog, where
      // no timer can count (two runs on a loaded machine got the 408 4.6 and 5.2 s after the connect).
      await s.waitFor(/Ready: 1 worker\(s\) serving/, 15000);
      // Silent for 1.5 s (the gate holds the connection), then a header line every 0.2 s for 2 s more.
      const steps: RawStep[] = [{ send: 'GET / HTTP/1.1\r\nHost: x\r\n', pauseMs: 1500 }];
      for (let i = 0; i < 10; i++) steps.push({ send: `X-${i}: y\r\n`, pauseMs: 200 });
      const t0 = performance.now();
      const r = await exchange(port, steps, { want: 1, waitClose: true, ms: 8000 });
      assert.deepEqual(r.responses.map((x) => x.status), [408]);
      assert.ok(r.closed);
      // Counted from the first byte it would come at 3.5 s (+ up to 1 s of Node's sweep).
      assert.ok(r.lastDataAt - t0 < 3000, `408 came ${Math.round(r.lastDataAt - t0)} ms after the connect`);
      if (cls !== 'sync') {
        // A first request that came in time keeps its connection (kept alive) past header_timeout.
        const ok = await exchange(port, [{ send: 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', pauseMs: 1500 }], { want: 1, waitClose: true, ms: 3500 });
        assert.deepEqual(ok.responses.map((x) => x.status), [200]);
        assert.equal(ok.closed, false, 'kept alive past header_timeout');
      }
      await s.kill();
    });
  }
});

describe('a client that leaves while a Fetch handler reads its body', () => {
  it('is no error of the app\'s: a debug line, as Gunicorn\'s "Ignoring connection reset", and the worker serves on', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '--log-level', 'debug', path.join(FIXTURES, 'echo-fetch.ts')]);
    const port = await s.port();
    await s.workersBooted(1);
    const c = net.connect(port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    // The handler awaits request.text(): the rest of the body never comes, the connection closes instead.
    await new Promise((r) => c.write('POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc', r));
    c.destroy();
    await s.waitFor(/\[DEBUG\] Ignoring connection reset: the client closed the connection during POST \/body\n/);
    assert.doesNotMatch(s.log, /Error handling request|\[ERROR\]/);
    const r = await exchange(port, [{ send: 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' }], { want: 1, waitClose: true, ms: 5000 });
    assert.deepEqual(r.responses.map((x) => x.status), [200]);
    await s.kill();
  });
});

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('refusal bodies (settings named with their values, HEAD, the debug log)', () => {
  let port = 0;
  let server: Server;
  before(async () => {
    server = new Server([
      '-b', '127.0.0.1:0', '--log-level', 'debug', '--limit-request-line', '100', '--limit-request-fields', '4',
      '--limit-request-field-size', '50', '--header-timeout', '1', '--body-timeout', '1', path.join(FIXTURES, 'echo.ts'),
    ]);
    port = await server.port();
    await server.workersBooted(1);
  });

  const long = `/${'a'.repeat(120)}`;
  const CASES: { name: string; steps: RawStep[]; line: string; head?: RawStep[] }[] = [
    {
      name: 'limit_request_line',
      steps: [{ send: `GET ${long} HTTP/1.1\r\nHost: x\r\n\r\n` }],
      head: [{ send: `HEAD ${long} HTTP/1.1\r\nHost: x\r\n\r\n` }],
      line: '414 URI Too Long: the request line is over limit_request_line (100 bytes)',
    },
    {
      name: 'limit_request_fields',
      steps: [{ send: 'GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n' }],
      line: '431 Request Header Fields Too Large: more header fields than limit_request_fields (4)',
    },
    {
      name: 'limit_request_field_size',
      steps: [{ send: `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'v'.repeat(50)}\r\n\r\n` }],
      head: [{ send: `HEAD / HTTP/1.1\r\nHost: x\r\nX-Big: ${'v'.repeat(50)}\r\n\r\n` }],
      line: '431 Request Header Fields Too Large: a header field is over limit_request_field_size (50 bytes)',
    },
    {
      name: 'the whole header section (Node\'s parser)',
      steps: [{ send: `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'v'.repeat(400)}\r\n\r\n` }],
      line:
        '431 Request Header Fields Too Large: the header section is over 312 bytes ' +
        '(limit_request_line, limit_request_fields and limit_request_field_size added up)',
    },
    {
      // Node's parser stops this one at the long name's colon too, as it stops the field one too many.
      name: 'the whole header section, ending in a field name (Node\'s parser)',
      steps: [{ send: `GET / HTTP/1.1\r\nHost: x\r\nX-${'n'.repeat(400)}: 1\r\n\r\n` }],
      line:
        '431 Request Header Fields Too Large: the header section is over 312 bytes ' +
        '(limit_request_line, limit_request_fields and limit_request_field_size added up)',
    },
    {
      name: 'a malformed first request line (the connection gate)',
      steps: [{ send: 'GET  / HTTP/1.1\r\nHost: x\r\n\r\n' }],
      head: [{ send: 'HEAD  / HTTP/1.1\r\nHost: x\r\n\r\n' }],
      line: '400 Bad Request: invalid request line',
    },
    {
      name: 'a malformed header (Node\'s parser)',
      steps: [{ send: 'GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n' }],
      head: [{ send: 'HEAD / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n' }],
      line: '400 Bad Request: malformed header field',
    },
    {
      name: 'no Host',
      steps: [{ send: 'GET / HTTP/1.1\r\n\r\n' }],
      head: [{ send: 'HEAD / HTTP/1.1\r\n\r\n' }],
      line: '400 Bad Request: no Host header (HTTP/1.1 requires one)',
    },
    {
      name: 'an absolute-form target of another scheme',
      steps: [{ send: 'GET ftp://x/p HTTP/1.1\r\nHost: x\r\n\r\n' }],
      head: [{ send: 'HEAD ftp://x/p HTTP/1.1\r\nHost: x\r\n\r\n' }],
      line: '400 Bad Request: the request target is not a path, an http(s) URL with a valid host, * (OPTIONS) or host:port (CONNECT)',
    },
    {
      name: 'an Expect other than 100-continue (Node\'s own 417)',
      steps: [{ send: 'GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n' }],
      head: [{ send: 'HEAD / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n' }],
      line: '417 Expectation Failed: only "Expect: 100-continue" is supported',
    },
    {
      name: 'CONNECT, the app serving none (Node would close without a word)',
      steps: [{ send: 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n' }],
      line: '405 Method Not Allowed: CONNECT is not served (this server is not a proxy)',
    },
    {
      name: 'header_timeout',
      steps: [{ send: 'GET / HTTP/1.1\r\nHost: x\r\n' }],
      line: '408 Request Timeout: the request header section was not complete within header_timeout (1 s)',
    },
    {
      name: 'body_timeout',
      steps: [{ send: 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello' }],
      head: [{ send: 'HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello' }],
      line: '408 Request Timeout: the request body stalled for longer than body_timeout (1 s)',
    },
  ];

  for (const c of CASES) {
    it(`${c.name}: ${c.line.slice(0, 3)} with a one-line text/plain body${c.head ? ', none to HEAD' : ''}, as logged`, async () => {
      const from = server.log.length;
      const full = split(await untilClose(port, c.steps));
      const [code, ...phrase] = c.line.split(': ')[0]!.split(' ');
      assert.equal(full.status, `HTTP/1.1 ${code} ${phrase.join(' ')}`);
      assert.equal(full.body, `${c.line}\n`);
      assert.equal(full.headers['content-type'], 'text/plain; charset=utf-8');
      assert.equal(full.headers['content-length'], String(Buffer.byteLength(full.body)));
      assert.equal(full.headers.connection, 'close');
      // The debug line the refusal writes uses the same words.
      await server.waitFor(new RegExp(`\\[DEBUG\\] (?:Refused a request from 127\\.0\\.0\\.2: |.*answered )${escapeRe(c.line)}\\n`), 5000, from);
      if (c.head) {
        const head = split(await untilClose(port, c.head));
        assert.equal(head.status, full.status);
        assert.equal(head.body, '', 'no body for HEAD');
        assert.equal(head.headers['content-length'], full.headers['content-length'], 'the length a GET gets');
      }
    });
  }

  it('the worker lived through them all', () => {
    assert.doesNotMatch(server.log, /Uncaught exception in worker/);
    assert.equal(server.count(/Booting worker/), 1);
  });
});
