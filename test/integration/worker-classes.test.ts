/**
 * Worker classes: one contract suite, run against async, sync and gthread, on the real CLI (port 0):
 * - serves; sync answers `Connection: close`, async and gthread keep the connection alive; a malformed
 *   request gets 400 and the worker serves on
 * - a (req, res) app's wrong Content-Length never frames the connection wrongly: the bytes past it are dropped,
 *   a body short of it closes the connection
 * - a connection closed before its first byte does not hold the worker
 * - a worker whose event loop (or, in gthread, one of whose threads) is blocked past --timeout is killed
 * - max_requests recycles the worker without a failed request
 * - TERM lets the request in flight finish, then the master exits 0
 * - HUP replaces every worker with no failed request; server hooks run on the request path
 * And what each class promises:
 * - a sync worker waiting on I/O does not get the next connection (it stops accepting)
 * - sync and gthread: a request whose client left holds its turn until its async handler has returned
 * - two CPU-bound requests run on two threads of one gthread worker, at the same time
 * - a gthread thread keeps connections alive without being held by an idle one, and runs the requests of its
 *   kept-alive and pipelined connections one at a time, in order; past its share of --worker-connections, its
 *   answers close the connection
 * - an async worker with --worker-connections 2 never runs more than 2 requests at once and drops none of 6
 * - --request-deadline answers 503, tells the app, and the worker lives on
 * - --capture-output takes Fastify's logger (pino) into the error log file under every class, once per line
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { exchange } from '../helpers/raw.js';
import { alive, childrenOf, FIXTURES, request, Server, stopAll, until, within } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const APP = path.join(FIXTURES, 'classes.ts');
const tmp = scratchDir('tunicorn-classes-');
const json = (body: string) => JSON.parse(body) as { pid: number; thread: number; started: number; ended: number; maxRunning: number; closedEarly: number };

/** Sends raw bytes on a new connection; resolves with everything the server sent before closing. */
function rawExchange(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(data));
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (got += d));
    c.on('close', () => resolve(got));
    c.on('error', reject);
    c.setTimeout(10000, () => c.destroy(new Error('no answer')));
  });
}

async function start(args: string[], env?: NodeJS.ProcessEnv): Promise<{ s: Server; port: number }> {
  const s = new Server(['-b', '127.0.0.1:0', ...args], { env });
  const port = await s.port();
  return { s, port };
}

const CLASSES: { name: string; args: string[]; closes: boolean }[] = [
  { name: 'async', args: ['-k', 'async'], closes: false },
  { name: 'sync', args: ['-k', 'sync'], closes: true },
  { name: 'gthread', args: ['-k', 'gthread', '--threads', '2'], closes: false },
];

for (const cls of CLASSES) {
  describe(`worker class ${cls.name} (contract)`, () => {
    it('serves, with the connection handling of its class', async () => {
      const { s, port } = await start([...cls.args, '-w', '2', APP]);
      await s.waitFor(new RegExp(`Using worker: ${cls.name}`));
      const r = await request(port, '/', { headers: { connection: 'keep-alive' } });
      assert.equal(r.status, 200);
      assert.ok(childrenOf(s.pid).includes(json(r.body).pid), 'served by one of its workers');
      assert.equal(r.headers.connection, cls.closes ? 'close' : 'keep-alive');
      // A malformed request gets a 400 and does not wedge the worker.
      const bad = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n');
      assert.match(bad, /^HTTP\/1\.1 400 /);
      assert.match(bad, /\r\nContent-Length: 40\r\n[^]*\r\n\r\n400 Bad Request: malformed header field\n$/);
      assert.equal((await request(port, '/')).status, 200);
      await s.kill();
    });

    it('a connection closed before its first byte does not hold the worker (wrk opens one such probe)', async () => {
      // One worker (one thread) and a header timeout far beyond the request's own bound: only closing the
      // silent connection at its EOF lets the next request through in time.
      const one = cls.name === 'gthread' ? ['-k', 'gthread', '--threads', '1'] : cls.args;
      const { s, port } = await start([...one, '-w', '1', '--header-timeout', '60', APP]);
      await s.waitFor(/Ready: /);
      const probe = net.connect(port, '127.0.0.1');
      const closed = new Promise<void>((resolve) => probe.on('close', () => resolve()));
      await new Promise<void>((resolve, reject) => {
        probe.on('connect', () => probe.end(resolve));
        probe.on('error', reject);
      });
      // Queued behind the probe in the kernel's accept queue (first in, first out): held for the header
      // timeout (60 s) unless the probe's EOF frees the worker.
      const r = await request(port, '/', { timeout: 10000 });
      assert.equal(r.status, 200);
      await within(closed, 10000, 'the probe to close');
      await s.kill();
    });

    it("holds a (req, res) app to its own Content-Length: never a byte of it framed as the next response", async () => {
      const { s, port } = await start([...cls.args, '-w', '1', path.join(FIXTURES, 'wrong-length.mjs')]);
      await s.waitFor(/Ready: /);
      const get = (target: string, method = 'GET') => `${method} ${target} HTTP/1.1\r\nHost: x\r\n\r\n`;
      // A keep-alive client with its next request pipelined: the bytes past a Content-Length are dropped (as
      // Gunicorn drops them), and the next response follows this one's last byte (sync answers one and closes).
      const want = cls.closes ? 1 : 2;
      for (const [target, body] of [['/too-long-body', 'abc'], ['/utf8', 'héll']] as const) {
        const r = await exchange(port, [{ send: get(target) + get('/next') }], { want, waitClose: false, ms: 5000 });
        assert.deepEqual(r.responses.map((x) => Buffer.from(x.body, 'latin1').toString()), [body, 'fine /next'].slice(0, want), target);
        assert.equal(r.rest, '', target);
      }
      await s.waitFor(/\[ERROR\] Error handling request GET \/too-long-body: the response's Content-Length is 3, but the app wrote 17 byte\(s\) of body: the 14 past it were not sent\n/);
      await s.waitFor(/Error handling request GET \/utf8: the response's Content-Length is 5, but the app wrote 6 byte\(s\) of body: the 1 past it/);
      // A body short of its Content-Length: the connection is closed after it, and the next response is never
      // sent on it (the client would read its bytes as the rest of this body).
      for (const target of ['/too-short-body', '/too-short-end']) {
        const r = await exchange(port, [{ send: get(target) + get('/next') }], { want: 1, waitClose: true, ms: 5000 });
        assert.equal(r.closed, true, target);
        assert.deepEqual(r.responses, [], target);
        assert.match(r.rest, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nshort\.$/, target);
        await s.waitFor(new RegExp(`Error handling request GET ${target}: the response's Content-Length is 100, but the app ended it after 6 byte\\(s\\) of body: the connection was closed`));
      }
      // A HEAD answer with the GET's length and no body is right: kept alive, nothing logged.
      const from = s.log.length;
      // (The raw parser would take 1000 bytes of body: the bytes are checked as they are. The second request
      // asks to close, so that the server ends the exchange.)
      const last = get('/next').replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n');
      const h = await exchange(port, [{ send: get('/head', 'HEAD') + last }], { want: 1, waitClose: true, ms: 5000 });
      assert.equal(h.closed, true);
      assert.match(h.rest, /^HTTP\/1\.1 200 OK\r\ncontent-length: 1000\r\n[^]*?\r\n\r\n(?:HTTP\/1\.1 |$)/, 'no body after the head');
      if (!cls.closes) assert.match(h.rest, /\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nfine \/next$/);
      assert.doesNotMatch(s.log.slice(from), /Content-Length/);
      // A length that is no number to Node (`5, 5`: its _contentLength is NaN) is not held to: the body goes
      // whole (held to NaN, not a byte of it went, the head promising 5).
      const listed = await rawExchange(port, 'GET /length-list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.match(listed, /^HTTP\/1\.1 200 OK\r\ncontent-length: 5, 5\r\n[^]*\r\n\r\nhello$/);
      assert.doesNotMatch(s.log.slice(from), /Content-Length/);
      await s.kill();
    });

    it('kills a worker blocked past the timeout, and a new one serves', async () => {
      const { s, port } = await start([...cls.args, '-w', '1', '-t', '1', APP]);
      const [a] = await s.workersBooted(1);
      const stuck = request(port, '/spin?ms=10000&announce').catch((e: Error) => e);
      await s.waitFor(/app: started \/spin/);
      const m = await s.waitFor(/WORKER TIMEOUT \(pid:(\d+)\)(.*)/);
      assert.equal(Number(m[1]), a);
      // A gthread process's main loop runs on and names its stuck thread's request. (With a blocked main loop
      // the watchdog thread names it; core.test.ts checks that, and it depends on that thread getting CPU.)
      if (cls.name === 'gthread') assert.match(m[2]!, /GET \/spin\?ms=10000/, 'the line names the stuck request');
      assert.ok((await stuck) instanceof Error, 'the stuck request fails: its worker was killed');
      await s.workersBooted(2);
      // A gthread worker's other threads accept until the process dies; the kill cuts what they hold.
      await until(() => !alive(a!), 10000, 'the killed worker to exit');
      assert.equal((await request(port, '/')).status, 200);
      await s.kill();
    });

    it('recycles a worker after max_requests without failing a request', async () => {
      const { s, port } = await start([...cls.args, '-w', '1', '--max-requests', '4', APP]);
      await s.workersBooted(1);
      const pids = new Set<number>();
      for (let i = 0; i < 2000 && pids.size < 2; i++) {
        const r = await request(port, '/');
        assert.equal(r.status, 200);
        pids.add(json(r.body).pid);
      }
      assert.equal(pids.size, 2, 'a second worker served after the first reached max_requests');
      assert.match(s.log, /max_requests/);
      // Said once by the worker (not once per gthread thread and again by the process), with the limit.
      const first = [...pids][0]!;
      const said = s.log.match(new RegExp(`\\[${first}\\] \\[INFO\\] Worker reached max_requests \\(\\d+\\)`, 'g')) ?? [];
      assert.deepEqual(said, [`[${first}] [INFO] Worker reached max_requests (4)`], s.log);
      await s.kill();
    });

    it('TERM lets the request in flight finish, then the master exits 0', async () => {
      const { s, port } = await start([...cls.args, '-w', '1', APP]);
      await s.workersBooted(1);
      const inflight = request(port, '/sleep?ms=1500&announce');
      await s.waitFor(/app: started \/sleep/);
      s.signal('SIGTERM');
      const r = await inflight;
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body) as { slept: number }).slept, 1500);
      assert.equal((await s.exited).code, 0);
    });

    it('HUP replaces every worker with no failed request, and the request hooks run', async () => {
      const hookLog = path.join(tmp, `hooks-${cls.name}.log`);
      writeFileSync(hookLog, '');
      const { s, port } = await start([...cls.args, '-w', '2', '-c', path.join(FIXTURES, 'hooks.config.ts'), APP], { HOOK_LOG: hookLog });
      const old = await s.workersBooted(2);
      await until(() => childrenOf(s.pid).length === 2, 10000, '2 workers');
      // A HUP of serving workers. Sent while the first two still loaded (gthread: 4 processes, 8 threads loading
      // the TypeScript app and config at once), the load's first request waited for one of them past its 10 s
      // on a busy machine (a CI run of 2026-12-07: ready 12 s after the HUP).
      await s.waitFor(/Ready: 2 worker/);
      const failed: string[] = [];
      let ok = 0;
      let stopLoad = false;
      const load = (async () => {
        while (!stopLoad) {
          try {
            const r = await request(port, '/hup-load');
            if (r.status === 200) ok++;
            else failed.push(`status ${r.status}`);
          } catch (err) {
            failed.push(`${(err as Error).message} at ${new Date().toISOString()}`);
          }
        }
      })();
      s.signal('SIGHUP');
      const fresh = (await s.workersBooted(4)).slice(2);
      await until(() => old.every((p) => !alive(p)), 20000, 'old workers to exit');
      stopLoad = true;
      await load;
      assert.deepEqual(childrenOf(s.pid).sort(), fresh.sort());
      assert.deepEqual(failed, [], `failed requests; log:\n${s.log}`);
      assert.ok(ok > 0);
      const hooks = readFileSync(hookLog, 'utf8');
      assert.match(hooks, /preRequest:\/hup-load/);
      assert.match(hooks, /postRequest:\/hup-load:200/);
      await s.kill();
    });
  });
}

describe('what each class promises', () => {
  // Pausing and resuming accepting: on a duplicate the worker makes itself (native dup()), and, without the
  // native module, on one the master sends (TUNICORN_NATIVE=0).
  for (const [how, env] of [['its own duplicates', {}], ['duplicates from the master', { TUNICORN_NATIVE: '0' }]] as const) {
  it(`a sync worker waiting on I/O does not get the next connection (${how})`, async () => {
    const { s, port } = await start(['-k', 'sync', '-w', '2', APP], env);
    await s.workersBooted(2);
    await until(() => childrenOf(s.pid).length === 2, 10000, '2 workers');
    let slowDone = false;
    const slow = request(port, '/sleep?ms=3000&announce').then((r) => ((slowDone = true), r));
    await s.waitFor(/app: started \/sleep in (\d+)/);
    const busy = Number(/app: started \/sleep in (\d+)/.exec(s.log)![1]);
    const whileBusy: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await request(port, '/');
      if (!slowDone) whileBusy.push(json(r.body).pid);
    }
    assert.equal(json((await slow).body).pid, busy);
    assert.ok(whileBusy.length >= 3, `only ${whileBusy.length} requests finished while the slow one ran`);
    assert.ok(!whileBusy.includes(busy), `the busy worker ${busy} took a connection: ${whileBusy.join(' ')}`);
    await s.kill();
  });
  }

  for (const [name, args] of [['sync', ['-k', 'sync']], ['gthread', ['-k', 'gthread', '--threads', '1']]] as const) {
    it(`${name}: a request whose client left holds its turn until its async handler returns`, async () => {
      const { s, port } = await start([...args, '-w', '1', APP]);
      await s.workersBooted(1);
      // The client gives up after 300 ms; the handler awaits on for 1.5 s.
      await assert.rejects(request(port, '/awaits?ms=1500&announce', { timeout: 300 }), /request timed out/);
      const stats = json((await request(port, '/stats')).body) as unknown as { handlers: number; maxHandlers: number; ended: number };
      assert.equal(stats.handlers, 0, 'the next request ran beside a handler whose client had left');
      assert.equal(stats.maxHandlers, 1);
      await s.kill();
    });
  }

  it('two CPU-bound requests run on two threads of one gthread worker', async () => {
    const { s, port } = await start(['-k', 'gthread', '-w', '1', '--threads', '2', APP]);
    await s.workersBooted(1);
    // "Booting worker" is logged at the spawn, not when the threads accept. In one CI run both requests went to
    // one thread, most likely because the other did not accept yet; once each has answered a request, both do.
    // The kernel favours one thread's accept: it took 9 to 58 requests here to see both.
    const seen = new Set<number>();
    const end = Date.now() + 15000;
    let tries = 0;
    while (seen.size < 2) {
      assert.ok(Date.now() < end, `only thread ${[...seen].join(', ')} answered ${tries} requests in 15 s`);
      seen.add(json((await request(port, '/')).body).thread);
      tries++;
    }
    const first = request(port, '/spin?ms=1500&announce');
    // The first thread is spinning (its loop cannot accept): the second connection goes to the other thread.
    await s.waitFor(/app: started \/spin/);
    const second = request(port, '/spin?ms=1500');
    const [a, b] = (await Promise.all([first, second])).map((r) => json(r.body));
    assert.equal(a!.pid, b!.pid, 'one worker process');
    assert.notEqual(a!.thread, b!.thread, 'two threads');
    assert.ok(b!.started < a!.ended && a!.started < b!.ended, 'the two spins overlapped in time');
    await s.kill();
  });

  it('a gthread thread keeps connections alive, is not held by an idle one, and runs one request at a time', async () => {
    // One thread, and a keep-alive timeout far beyond the requests' own bound: a thread held by an idle
    // connection until it closed would let no other client in within the test's time.
    const { s, port } = await start(['-k', 'gthread', '-w', '1', '--threads', '1', '--keep-alive', '60', APP]);
    await s.workersBooted(1);
    const client = () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const made = { connections: 0 };
      const connect = agent.createConnection.bind(agent);
      agent.createConnection = ((...args: Parameters<typeof connect>) => (made.connections++, connect(...args))) as typeof agent.createConnection;
      return { agent, made, get: (p: string) => request(port, p, { agent, timeout: 5000 }) };
    };
    const a = client();
    const b = client();
    try {
      const first = await a.get('/');
      assert.equal(first.headers.connection, 'keep-alive');
      // A's connection is open and idle: B is served all the same.
      assert.equal((await b.get('/')).status, 200);
      // A's next request awaits I/O; B's, on its kept connection, waits for it to end.
      const slow = a.get('/sleep?ms=400&announce');
      await s.waitFor(/app: started \/sleep/);
      const fast = json((await b.get('/sleep?ms=0')).body);
      const slept = json((await slow).body);
      assert.ok(fast.started >= slept.ended, `B's request started at ${fast.started}, before A's ended at ${slept.ended}`);
      assert.deepEqual([a.made.connections, b.made.connections], [1, 1], 'each client kept its one connection');
      assert.equal(json((await a.get('/stats')).body).maxRunning, 1);
    } finally {
      a.agent.destroy();
      b.agent.destroy();
    }
    // Pipelined requests on one connection are answered in order, one at a time, and the connection stays open.
    const pipelined = await new Promise<string>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () =>
        c.write('GET /sleep?ms=300 HTTP/1.1\r\nHost: x\r\n\r\nGET /sleep?ms=0 HTTP/1.1\r\nHost: x\r\n\r\n'),
      );
      let got = '';
      c.setEncoding('utf8');
      c.on('data', (d: string) => {
        got += d;
        if ((got.match(/"ended":\d+/g) ?? []).length === 2) {
          resolve(got);
          c.destroy();
        }
      });
      c.on('error', reject);
      c.on('close', () => reject(new Error(`closed after ${JSON.stringify(got)}`)));
      c.setTimeout(5000, () => c.destroy(new Error(`no two answers: ${JSON.stringify(got)}`)));
    });
    const bodies = [...pipelined.matchAll(/\{[^}]*\}/g)].map((m) => json(m[0]));
    assert.equal(bodies.length, 2);
    assert.deepEqual(bodies.map((x) => (x as unknown as { slept: number }).slept), [300, 0], 'in order');
    assert.ok(bodies[1]!.started >= bodies[0]!.ended, 'the second started once the first had ended');
    assert.doesNotMatch(pipelined, /connection: close/i);
    await s.kill();
  });

  it('a gthread thread keeps at most its share of --worker-connections open: past it, answers close', async () => {
    const { s, port } = await start(['-k', 'gthread', '-w', '1', '--threads', '1', '--worker-connections', '2', APP]);
    await s.workersBooted(1);
    const agents = Array.from({ length: 4 }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    try {
      const header = async (i: number) => (await request(port, '/', { agent: agents[i] })).headers.connection;
      assert.equal(await header(0), 'keep-alive');
      assert.equal(await header(1), 'keep-alive');
      // Two are open and idle: a third connection is answered, and closed.
      assert.equal(await header(2), 'close');
      agents[0]!.destroy();
      // One of the two went: there is room again (the server sees the close a moment later).
      let again = await header(3);
      for (let i = 0; i < 50 && again !== 'keep-alive'; i++) {
        agents[3]!.destroy();
        agents[3] = new http.Agent({ keepAlive: true, maxSockets: 1 });
        again = await header(3);
      }
      assert.equal(again, 'keep-alive');
    } finally {
      for (const a of agents) a.destroy();
    }
    await s.kill();
  });

  it('an async worker with --worker-connections 2 never runs more than 2 requests at once, and drops none of 6', async () => {
    const { s, port } = await start(['-k', 'async', '-w', '1', '--worker-connections', '2', APP]);
    await s.workersBooted(1);
    const rs = await Promise.all(Array.from({ length: 6 }, () => request(port, '/sleep?ms=400')));
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    const stats = json((await request(port, '/stats')).body);
    assert.ok(stats.maxRunning <= 2, `ran ${stats.maxRunning} requests at once`);
    assert.equal(stats.maxRunning, 2, 'two did run at once');
    await s.kill();
  });

  it('--request-deadline answers 503, tells the app, and the worker lives on', async () => {
    const { s, port } = await start(['-w', '1', '--request-deadline', '1', '--access-logfile', '-', APP]);
    const [w] = await s.workersBooted(1);
    const r = await request(port, '/sleep?ms=6000');
    assert.equal(r.status, 503);
    assert.equal(r.headers.connection, 'close');
    assert.equal(r.body, '503 Service Unavailable: the request ran longer than request_deadline (1 s)\n');
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(r.headers['content-length'], String(r.body.length));
    await s.waitFor(/Request deadline exceeded: GET \/sleep after 1\.\d s \(request_deadline 1 s\); answered 503/);
    // The app hears of it when the connection closes, just after the client read the 503.
    let after = json((await request(port, '/stats')).body);
    for (let i = 0; i < 100 && after.closedEarly === 0; i++) after = json((await request(port, '/stats')).body);
    assert.equal(after.pid, w, 'the same worker serves on');
    assert.equal(after.closedEarly, 1, 'the app saw its request closed before it answered');
    // The access log has the 503 the client got, though tunicorn wrote it past the app's response object.
    await until(() => /"GET \/sleep\?ms=6000 HTTP\/1\.1" 503 /.test(s.stdout), 5000, "the 503's access line");
    // HEAD: the same head, no body.
    const head = await rawExchange(port, 'HEAD /sleep?ms=6000 HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 503 Service Unavailable\r\n[^]*\r\nContent-Length: 76\r\n[^]*\r\n\r\n$/);
    // Several at once: each is answered, and once (one sweep of the running requests finds them together).
    const many = await Promise.all([1, 2, 3].map((i) => request(port, `/sleep?ms=${6000 + i}`)));
    assert.deepEqual(
      many.map((x) => x.status),
      [503, 503, 503],
    );
    await until(() => s.count(/Request deadline exceeded: /) >= 5, 5000, 'five deadline lines');
    assert.equal(s.count(/Request deadline exceeded: /), 5, 'one line a request: GET, HEAD and three more');
    assert.ok(alive(w!));
    await s.kill();
  });
});

describe("Fastify's logger with --capture-output", () => {
  // pino writes to descriptor 1 itself unless process.stdout.write was replaced: a gthread thread has a
  // process.stdout of its own, which the capture must replace too.
  for (const cls of CLASSES) {
    it(`${cls.name}: its lines go to the error log file, each once, none to stdout`, async () => {
      const errlog = path.join(tmp, `pino-${cls.name}.log`);
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', ...cls.args, '--capture-output', '--error-logfile', errlog, path.join(FIXTURES, 'apps', 'fastify-logger.ts')]);
      const text = () => (existsSync(errlog) ? readFileSync(errlog, 'utf8') : '');
      await until(() => /Ready: 1 worker/.test(text()), 20000, 'ready');
      const port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(text())![1]);
      assert.equal((await request(port, '/')).status, 200);
      await until(() => text().includes('"msg":"fixture: pino line"') || s.stdout.includes('fixture: pino line'), 10000, "the route's log line");
      assert.doesNotMatch(s.stdout, /fixture: pino line|"msg":"request completed"/, 'nothing on stdout');
      await until(() => /"msg":"request completed"/.test(text()), 5000, "pino's request line");
      assert.equal(text().split('fixture: pino line').length - 1, 1, 'the line once');
      await s.kill();
    });
  }
});

describe('gthread: a worker that crashes on a request', () => {
  // Every thread loads the app, then the worker reports ready, and only then do its threads accept: a request
  // that crashes a worker is never taken for a failed boot. Threads that accepted as soon as each had loaded
  // made a crash during the others' loading a boot failure, and five of them stopped the server (status 3).
  it('under requests from the start is replaced, again and again, and the server never gives up', async () => {
    const app = path.join(tmp, 'crashes-on-request.mjs');
    writeFileSync(app, "export default (req, res) => { if (req.url === '/crash') Promise.reject(new Error('crash on purpose')); res.end('ok'); };\n");
    const s = new Server(['-b', '127.0.0.1:0', '-k', 'gthread', '--threads', '4', app]);
    const port = await s.port();
    let ended = false;
    void s.exited.then(() => (ended = true));
    // Bounded: until 6 workers have crashed, or 60 s.
    const end = Date.now() + 60000;
    const crashed = /Uncaught exception in worker( while it ran GET \/crash \(0\.\d s\))?; it finishes the requests it has, takes no new one, and exits\nError: crash on purpose/;
    while (s.count(crashed) < 6 && Date.now() < end && !ended) {
      await request(port, '/crash', { timeout: 2000 }).catch(() => undefined);
    }
    assert.ok(s.count(crashed) >= 6, 'six workers crashed');
    assert.equal(ended, false, 'the server runs on');
    assert.doesNotMatch(s.log, /Worker failed to boot|Reason:/);
    await s.kill();
  });

  it('from a timer: the thread lives on, the requests in flight finish, and the worker retires as a process does', async () => {
    const app = path.join(tmp, 'crashes-in-a-timer.mjs');
    writeFileSync(
      app,
      "export default (req, res) => { if (req.url === '/slow') { process.stderr.write('app: slow\\n'); setTimeout(() => { throw new Error('boom in a timer'); }, 100); setTimeout(() => res.end(`served by ${process.pid}`), 1500); return; } res.end(`pid ${process.pid}`); };\n",
    );
    const s = new Server(['-b', '127.0.0.1:0', '-k', 'gthread', '--threads', '2', '-w', '1', app]);
    const port = await s.port();
    const [first] = await s.workersBooted(1);
    // The request in flight is on the thread whose timer throws: before, the thread died, and with it at once
    // the process and every request its threads ran.
    const slow = request(port, '/slow');
    await s.waitFor(/app: slow/);
    await s.waitFor(/\[ERROR\] Uncaught exception in worker while it ran GET \/slow \(0\.\d s\); it finishes the requests it has, takes no new one, and exits\nError: boom in a timer\n/);
    await s.waitFor(new RegExp(`Worker ${first} is exiting after an uncaught exception: replacing it`));
    const r = await slow;
    assert.equal(r.status, 200);
    assert.equal(r.body, `served by ${first}`);
    await s.waitFor(new RegExp(`Worker exited \\(pid: ${first}\\)|Worker \\(pid:${first}\\) exited with code 1`));
    const [, second] = await s.workersBooted(2);
    assert.equal((await request(port, '/')).body, `pid ${second}`);
    assert.doesNotMatch(s.log, /failed; exiting/);
    await s.kill();
  });

  it("during a stop: one thread's exception cuts neither the other threads' requests nor the stop", async () => {
    // The app's shutdown leaves a timer that throws (a client library's late error) while the thread that ran
    // it still stops; the other thread is finishing a slow request. That exception ended the whole process at
    // once: the slow request was cut, and the workerExit hook never ran.
    const app = path.join(tmp, 'throws-while-stopping.mjs');
    writeFileSync(
      app,
      "export default (req, res) => { if (req.url === '/slow') { process.stderr.write('app: slow\\n'); setTimeout(() => res.end('slow done'), 2000); return; } res.end('ok'); };\n" +
        "export async function shutdown() { setTimeout(() => { throw new Error('late error in shutdown'); }, 10); await new Promise((r) => setTimeout(r, 300)); }\n",
    );
    const config = path.join(tmp, 'worker-exit-note.config.mjs');
    writeFileSync(config, "export default { workerExit: (server, worker) => process.stderr.write(`app: workerExit ${worker.pid}\\n`) };\n");
    const s = new Server(['-b', '127.0.0.1:0', '-k', 'gthread', '--threads', '2', '-w', '1', '-c', config, app]);
    const port = await s.port();
    const [pid] = await s.workersBooted(1);
    const slow = request(port, '/slow');
    await s.waitFor(/app: slow/);
    s.signal('SIGTERM');
    await s.waitFor(new RegExp(`\\[ERROR\\] Uncaught exception in thread \\d of worker ${pid} while it stops; the stop goes on\nError: late error in shutdown\n`));
    const r = await slow;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'slow done');
    assert.equal((await s.exited).code, 0);
    assert.match(s.log, new RegExp(`app: workerExit ${pid}\n`));
    assert.doesNotMatch(s.log, /Uncaught exception in worker; exiting/);
  });
});
