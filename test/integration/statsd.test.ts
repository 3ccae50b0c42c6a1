/**
 * StatsD (--statsd-host, --statsd-prefix, --dogstatsd-tags): the real CLI sends to a UDP socket the test binds
 * on 127.0.0.1, port 0.
 * - each worker class (async, sync, gthread) sends its requests' metrics: gunicorn.requests,
 *   gunicorn.request.duration and gunicorn.request.status.CODE, with the prefix and the tags on every line;
 *   so does an HTTP/2 request and a WebSocket upgrade
 * - the master sends gunicorn.workers, again after TTIN and TTOU
 * - every process counts its error-log lines (gunicorn.log.*): a TTOU refused, a worker killed, an app that throws
 * - without statsd_host no process opens a UDP socket
 * - with nothing listening the server serves on, and each process warns once
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { childrenOf, FIXTURES, h2Status, request, Server, stopAll, until, within } from '../helpers/server.js';
import { selfSigned } from '../helpers/tls.js';

after(stopAll);

const fx = (name: string) => path.join(FIXTURES, name);

/** A StatsD server on 127.0.0.1 (port 0): keeps every datagram, and is waited on as lines arrive. */
class StatsdSink {
  readonly socket = dgram.createSocket('udp4');
  readonly datagrams: string[] = [];
  readonly lines: string[] = [];
  readonly #waiters: { check: () => boolean; resolve: () => void }[] = [];

  static async open(): Promise<StatsdSink> {
    const s = new StatsdSink();
    sinks.add(s);
    await new Promise<void>((resolve) => s.socket.bind(0, '127.0.0.1', resolve));
    s.socket.on('message', (msg) => {
      const text = msg.toString('latin1');
      s.datagrams.push(text);
      s.lines.push(...text.split('\n'));
      for (const w of [...s.#waiters]) if (w.check()) s.#waiters.splice(s.#waiters.indexOf(w), 1) && w.resolve();
    });
    return s;
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** The sum of a counter's lines (`NAME:N|c...`). */
  sum(name: string): number {
    let n = 0;
    for (const l of this.lines) if (l.startsWith(`${name}:`) && /\|c\b/.test(l)) n += Number(l.slice(name.length + 1, l.indexOf('|')));
    return n;
  }

  /** The values of a metric's lines of one type (`ms`, `g`), in order. */
  values(name: string, type: string): number[] {
    return this.lines.filter((l) => l.startsWith(`${name}:`) && l.split('|')[1] === type).map((l) => Number(l.slice(name.length + 1, l.indexOf('|'))));
  }

  /** Resolves once `cond` holds (checked as each datagram arrives); an error naming `what` after `ms`. */
  until(cond: () => boolean, what: string, ms = 15000): Promise<void> {
    if (cond()) return Promise.resolve();
    const p = new Promise<void>((resolve) => this.#waiters.push({ check: cond, resolve }));
    return within(p, ms, `${what}; got:\n${this.lines.join('\n')}`);
  }

  close(): void {
    if (sinks.delete(this)) this.socket.close();
  }
}

const sinks = new Set<StatsdSink>();
after(() => {
  for (const s of sinks) s.close();
});

/** The inodes of this network namespace's UDP sockets. */
function udpInodes(): Set<string> {
  const out = new Set<string>();
  for (const f of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode) out.add(inode);
    }
  }
  return out;
}

/** Whether a process holds a UDP socket. */
function holdsUdpSocket(pid: number): boolean {
  const udp = udpInodes();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m && udp.has(m[1]!)) return true;
    } catch {
      /* closed meanwhile */
    }
  }
  return false;
}

async function start(args: string[]): Promise<{ s: Server; port: number }> {
  const s = new Server(['-b', '127.0.0.1:0', ...args]);
  const port = await s.port();
  await s.waitFor(/Ready: /, 30000);
  return { s, port };
}

/**
 * Three 200s and a 404 through a server of this worker class: the lines of each, with the prefix and tags;
 * `statsd` is the server's StatsD flags.
 */
async function requestMetrics(classArgs: string[]): Promise<void> {
  const sink = await StatsdSink.open();
  const { s, port } = await start(['-w', '1', ...classArgs, '--statsd-host', `127.0.0.1:${sink.port}`, '--statsd-prefix', 'app', '--dogstatsd-tags', 'env:test', fx('listener.ts')]);
  for (const p of ['/', '/', '/']) assert.equal((await request(port, p)).status, 200);
  assert.equal((await request(port, '/nope')).status, 404);
  await sink.until(
    () => sink.sum('app.gunicorn.requests') >= 4 && sink.sum('app.gunicorn.request.status.200') >= 3 && sink.sum('app.gunicorn.request.status.404') >= 1 && sink.values('app.gunicorn.request.duration', 'ms').length >= 4,
    'the request metrics',
  );
  assert.equal(sink.sum('app.gunicorn.requests'), 4);
  assert.equal(sink.sum('app.gunicorn.request.status.200'), 3);
  assert.equal(sink.sum('app.gunicorn.request.status.404'), 1);
  const durations = sink.values('app.gunicorn.request.duration', 'ms');
  assert.equal(durations.length, 4);
  for (const d of durations) assert.ok(d >= 0 && d < 10000, `duration ${d}`);
  for (const l of sink.lines) assert.match(l, /^app\.gunicorn\.[a-z0-9.]+:[\d.]+\|(ms|g|c\|@1\.0)\|#env:test$/);
  await s.kill();
  sink.close();
}

describe('StatsD', () => {
  it('async workers: request metrics, the workers gauge after TTIN and TTOU, the tags on every line, in datagrams of at most 1,400 bytes', async () => {
    const sink = await StatsdSink.open();
    const { s, port } = await start(['-w', '2', '--statsd-host', `127.0.0.1:${sink.port}`, '--statsd-prefix', 'app', '--dogstatsd-tags', 'env:test,web', fx('listener.ts')]);
    await sink.until(() => sink.values('app.gunicorn.workers', 'g').includes(2), 'gunicorn.workers 2');
    for (let i = 0; i < 5; i++) assert.equal((await request(port, '/')).status, 200);
    assert.equal((await request(port, '/nope')).status, 404);
    await sink.until(
      () => sink.sum('app.gunicorn.requests') >= 6 && sink.sum('app.gunicorn.request.status.200') >= 5 && sink.sum('app.gunicorn.request.status.404') >= 1 && sink.values('app.gunicorn.request.duration', 'ms').length >= 6,
      'the request metrics',
    );
    assert.equal(sink.sum('app.gunicorn.requests'), 6);
    s.signal('SIGTTIN');
    await sink.until(() => sink.values('app.gunicorn.workers', 'g').at(-1) === 3, 'gunicorn.workers 3 after TTIN');
    s.signal('SIGTTOU');
    await sink.until(() => sink.values('app.gunicorn.workers', 'g').at(-1) === 2, 'gunicorn.workers 2 after TTOU');
    assert.deepEqual(sink.values('app.gunicorn.workers', 'g'), [2, 3, 2]);
    for (const l of sink.lines) assert.match(l, /^app\.gunicorn\.[a-z0-9.]+:[\d.]+\|(ms|g|c\|@1\.0)\|#env:test,web$/);
    for (const d of sink.datagrams) assert.ok(Buffer.byteLength(d) <= 1400, `${Buffer.byteLength(d)} bytes`);
    // The master and the workers each have their client (the check the test without statsd_host relies on).
    // The worker TTOU stopped may still be exiting, its client closed already: checked once it is gone. TTOU
    // stops the highest number, the worker TTIN added, which may have been stopped while it booted.
    await s.waitFor(/Worker exited \(pid: \d+\)/, 15000);
    await until(() => childrenOf(s.pid).length === 2, 15000, 'the stopped worker to be gone');
    assert.ok(holdsUdpSocket(s.pid), 'the master holds a UDP socket');
    for (const w of childrenOf(s.pid)) await until(() => holdsUdpSocket(w), 15000, `worker ${w} to hold a UDP socket`);
    await s.kill();
    sink.close();
  });

  it('sync workers send request metrics', () => requestMetrics(['-k', 'sync']));

  it('gthread workers send request metrics (each thread has its own client)', () => requestMetrics(['-k', 'gthread', '--threads', '2']));

  it('an HTTP/2 request and a WebSocket upgrade are counted too', async () => {
    const certs = selfSigned();
    const sink = await StatsdSink.open();
    const { s, port } = await start(['-w', '1', '--certfile', certs.cert, '--keyfile', certs.key, '--statsd-host', `127.0.0.1:${sink.port}`, fx('whoami.ts')]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    try {
      const status = await h2Status(session, { ':path': '/x' });
      assert.equal(status, 200);
    } finally {
      session.close();
    }
    await sink.until(() => sink.sum('gunicorn.request.status.200') === 1 && sink.values('gunicorn.request.duration', 'ms').length === 1, 'the HTTP/2 request');
    await s.kill();

    const { s: w, port: wport } = await start(['-w', '1', '--statsd-host', `127.0.0.1:${sink.port}`, fx('apps/websocket.ts')]);
    const ws = new WebSocket(`ws://127.0.0.1:${wport}/`);
    await within(new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)), 10000, 'the WebSocket to open');
    ws.close();
    // Counted when the connection closes, with the status the app answered.
    await sink.until(() => sink.sum('gunicorn.request.status.101') === 1 && sink.sum('gunicorn.requests') === 2, 'the upgrade');
    await w.kill();
    sink.close();
  });

  it('every process counts its error-log lines: a refused TTOU (master), a killed worker (master), an app that throws (worker)', async () => {
    const sink = await StatsdSink.open();
    const { s, port } = await start(['-w', '1', '--statsd-host', `127.0.0.1:${sink.port}`, '--statsd-prefix', 'svc.', fx('listener.ts')]);
    s.signal('SIGTTOU');
    await s.waitFor(/TTOU ignored: at least one worker must run/);
    await sink.until(() => sink.sum('svc.gunicorn.log.warning') === 1, 'gunicorn.log.warning');
    assert.equal((await request(port, '/throw')).status, 500);
    await sink.until(() => sink.sum('svc.gunicorn.log.exception') === 1, 'gunicorn.log.exception');
    const [worker] = childrenOf(s.pid);
    process.kill(worker!, 'SIGKILL');
    await s.waitFor(/was sent SIGKILL/);
    await sink.until(() => sink.sum('svc.gunicorn.log.error') === 1, 'gunicorn.log.error');
    // The replacement leaves the count as it was: no new gauge, as in Gunicorn.
    await s.workersBooted(2);
    assert.equal((await request(port, '/')).status, 200);
    await sink.until(() => sink.sum('svc.gunicorn.requests') === 2, 'the request to the new worker');
    assert.deepEqual(sink.values('svc.gunicorn.workers', 'g'), [1]);
    assert.equal(sink.sum('svc.gunicorn.log.critical'), 0);
    await s.kill();
    sink.close();
  });

  it('without statsd_host nothing is sent: no process opens a UDP socket (statsd_prefix and dogstatsd_tags alone are accepted)', async () => {
    const { s, port } = await start(['-w', '2', '--statsd-prefix', 'app', '--dogstatsd-tags', 'env:test', fx('listener.ts')]);
    for (let i = 0; i < 4; i++) assert.equal((await request(port, '/')).status, 200);
    const workers = childrenOf(s.pid);
    assert.equal(workers.length, 2);
    for (const pid of [s.pid, ...workers]) assert.ok(!holdsUdpSocket(pid), `process ${pid} holds a UDP socket`);
    await s.kill();
  });

  for (const cls of [[], ['-k', 'gthread', '--threads', '3']]) {
    const name = cls.length ? 'gthread (one warning for the process and its threads)' : 'async';
    it(`with nothing listening the server serves on, exits cleanly, and each process warns once: ${name}`, async () => {
      const sink = await StatsdSink.open();
      const port = sink.port;
      sink.close();
      const { s, port: http } = await start(['-w', '1', ...cls, '--statsd-host', `127.0.0.1:${port}`, fx('listener.ts')]);
      const warning = /\[(\d+)\] \[WARNING\] StatsD: sending metrics to 127\.0\.0\.1:\d+ \(--statsd-host\) failed: nothing listens there \(ECONNREFUSED\)\. Metrics are lost while it fails; this process does not say so again\n/g;
      const [worker] = childrenOf(s.pid);
      for (let i = 0; i < 5; i++) assert.equal((await request(http, '/')).status, 200);
      // The master's gauge and the worker's requests were refused: one line each.
      await s.waitFor(new RegExp(`\\[${s.pid}\\] \\[WARNING\\] StatsD: `));
      await s.waitFor(new RegExp(`\\[${worker}\\] \\[WARNING\\] StatsD: `));
      await Promise.all(Array.from({ length: 20 }, async () => assert.equal((await request(http, '/')).status, 200)));
      // The master sends the new count, refused too.
      s.signal('SIGTTIN');
      await s.workersBooted(2);
      s.signal('SIGTERM');
      assert.deepEqual(await within(s.exited, 20000, 'the master to exit'), { code: 0, signal: null });
      const pids = [...s.log.matchAll(warning)].map((m) => Number(m[1]));
      assert.equal(new Set(pids).size, pids.length, `a process warned twice:\n${s.log}`);
      assert.ok(pids.includes(s.pid) && pids.includes(worker!), s.log);
      assert.doesNotMatch(s.log, /Uncaught|exited with code|Traceback/);
    });
  }
});
