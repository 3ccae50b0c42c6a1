/**
 * --metrics: GET /metrics on the health endpoint, answered by the master in Prometheus's text format.
 * - every scrape is read strictly (test/helpers/prometheus.ts): each line a valid sample, HELP and TYPE once
 *   per family, histogram buckets cumulative with +Inf equal to _count
 * - the requests counted match those sent, by method (an unknown one is OTHER) and status, under async and
 *   gthread (whose threads each count)
 * - counters never go down: a worker killed keeps the counts the master had; a HUP's old workers send their
 *   last counts as they exit (with --timeout 0 there is no heartbeat to carry them), and so does a worker
 *   whose app calls process.exit() (async, and a gthread thread's, which ends its process)
 * - the accept queue of a listener whose only worker is stuck, and the worker that does not answer
 * - a scrape's answer is no heartbeat: a gthread process with a stuck thread still times out
 * - the master's own process metrics (process_open_fds, process_resident_memory_bytes...) match /proc
 * - a worker at its open-file limit, or the master at its own, still gives its counts (without its RSS)
 * - --metrics without --health-bind is a one-line error; without --metrics, /metrics is a 404
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseExposition, sampleSum, sampleValue, type ParsedFamily } from '../helpers/prometheus.js';
import { FIXTURES, request, requestUntilServed, Server, stopAll, until, within } from '../helpers/server.js';

const APP = path.join(FIXTURES, 'listener.ts');

after(stopAll);

async function start(args: string[]): Promise<{ s: Server; port: number; hport: number }> {
  const s = new Server(['-b', '127.0.0.1:0', '--health-bind', '127.0.0.1:0', '--metrics', ...args, APP]);
  const port = await s.port();
  const hport = Number((await s.waitFor(/Health checks at: http:\/\/127\.0\.0\.1:(\d+)\/health\/ready and \/health\/live, Prometheus metrics at \/metrics\n/))[1]);
  await s.waitFor(/Ready: /, 20000);
  return { s, port, hport };
}

async function scrape(hport: number): Promise<Map<string, ParsedFamily>> {
  const r = await request(hport, '/metrics');
  assert.equal(r.status, 200, r.body);
  assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  const families = parseExposition(r.body);
  for (const f of families.values()) {
    assert.ok(f.help !== null && f.type !== null, `${f.name} has its HELP and TYPE`);
    // The master's own process under the names Prometheus's client libraries use (masterFamilies).
    assert.ok(f.name.startsWith('tunicorn_') || f.name.startsWith('process_'), f.name);
  }
  return families;
}

/** Every counter (and histogram) sample of `before` is at most its value in `later`. */
function neverDown(before: Map<string, ParsedFamily>, later: Map<string, ParsedFamily>): void {
  for (const f of before.values()) {
    if (f.type !== 'counter' && f.type !== 'histogram') continue;
    for (const s of f.samples) {
      const now = sampleValue(later, s.name, s.labels as Record<string, string>);
      assert.ok(now !== undefined && now >= s.value, `${s.name}${JSON.stringify(s.labels)} went from ${s.value} to ${now}`);
    }
  }
}

const total = (f: Map<string, ParsedFamily>) => sampleSum(f, 'tunicorn_requests_total');

describe('--metrics', () => {
  for (const cls of [['-k', 'async', '-w', '2'], ['-k', 'gthread', '--threads', '2', '-w', '1']]) {
    it(`counts the requests sent, by method and status (${cls[1]})`, async () => {
      const { s, hport, port } = await start(cls);
      const sent = [
        ...Array.from({ length: 12 }, () => request(port, '/')),
        ...Array.from({ length: 3 }, () => request(port, '/nope', { method: 'POST', body: 'x' })),
        ...Array.from({ length: 2 }, () => request(port, '/', { method: 'PROPFIND' })),
        request(port, '/sleep?ms=30'),
      ];
      await Promise.all(sent);
      const m = await scrape(hport);
      assert.equal(sampleValue(m, 'tunicorn_requests_total', { method: 'GET', code: '200' }), 13);
      assert.equal(sampleValue(m, 'tunicorn_requests_total', { method: 'POST', code: '404' }), 3);
      assert.equal(sampleValue(m, 'tunicorn_requests_total', { method: 'OTHER', code: '200' }), 2);
      assert.equal(total(m), 18);
      assert.equal(sampleValue(m, 'tunicorn_request_duration_seconds_count'), 18);
      // The /sleep request took 30 ms or more: above the 0.025 bucket.
      assert.ok(sampleValue(m, 'tunicorn_request_duration_seconds_bucket', { le: '0.025' })! <= 17);
      assert.ok(sampleValue(m, 'tunicorn_request_duration_seconds_sum')! >= 0.03);
      assert.equal(sampleValue(m, 'tunicorn_requests_in_flight'), 0);
      const workers = Number(cls[cls.length - 1]);
      assert.equal(sampleValue(m, 'tunicorn_workers'), workers);
      assert.equal(sampleValue(m, 'tunicorn_workers_running'), workers);
      assert.equal(sampleValue(m, 'tunicorn_workers_started_total'), workers);
      assert.equal(sampleSum(m, 'tunicorn_worker_exits_total'), 0);
      assert.equal(sampleValue(m, 'tunicorn_workers_unanswered'), 0);
      for (let slot = 1; slot <= workers; slot++) {
        assert.ok(sampleValue(m, 'tunicorn_worker_resident_memory_bytes', { slot: String(slot) })! > 10e6);
        assert.ok(sampleValue(m, 'tunicorn_worker_cpu_seconds_total', { slot: String(slot) })! > 0);
      }
      const started = sampleValue(m, 'tunicorn_master_start_time_seconds')!;
      assert.ok(started > Date.now() / 1000 - 120 && started <= Date.now() / 1000, String(started));
      assert.equal(sampleValue(m, 'tunicorn_listen_queue', { listener: `http://127.0.0.1:${port}` }), 0);
      // The master's process: its descriptors as /proc lists them (the scrape's connection may have closed
      // since), its RSS as /proc says, its descriptor limit.
      const open = sampleValue(m, 'process_open_fds')!;
      const listed = readdirSync(`/proc/${s.pid}/fd`).length;
      assert.ok(Math.abs(open - listed) <= 1, `process_open_fds ${open}, /proc lists ${listed}`);
      const rss = Number(/^VmRSS:\s*(\d+) kB/m.exec(readFileSync(`/proc/${s.pid}/status`, 'latin1'))![1]) * 1024;
      const scraped = sampleValue(m, 'process_resident_memory_bytes')!;
      assert.ok(Math.abs(scraped - rss) < rss * 0.2, `process_resident_memory_bytes ${scraped}, VmRSS ${rss}`);
      const soft = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${s.pid}/limits`, 'latin1'))![1];
      assert.equal(sampleValue(m, 'process_max_fds'), Number(soft));
      assert.ok(sampleValue(m, 'process_cpu_seconds_total')! > 0);
      assert.equal(sampleValue(m, 'process_start_time_seconds'), started);
      // HEAD: the head only.
      const head = await request(hport, '/metrics', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
    });
  }

  it('counts the answers tunicorn gives without the app (431, 400), as the access log has them', async () => {
    const { hport, port } = await start(['-w', '1', '--limit-request-fields', '5']);
    const headers = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`x-h${i}`, 'v']));
    assert.equal((await request(port, '/', { headers })).status, 431);
    const garbage = await new Promise<string>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => c.end('NOT HTTP AT ALL\r\n\r\n'));
      let data = '';
      c.on('data', (d) => (data += d));
      c.on('close', () => resolve(data));
      c.on('error', reject);
    });
    assert.match(garbage, /^HTTP\/1\.1 400 /);
    const m = await scrape(hport);
    const byCode = (code: string) =>
      m.get('tunicorn_requests_total')!.samples.filter((x) => (x.labels as Record<string, string>).code === code).reduce((n, x) => n + x.value, 0);
    assert.equal(byCode('431'), 1);
    assert.equal(byCode('400'), 1);
  });

  it('keeps the counts of a worker killed and of the workers a HUP replaces', async () => {
    // --timeout 0: no heartbeat carries counts, so what the HUP's old workers served reaches the master only
    // with the message they send as they exit.
    const { s, hport, port } = await start(['-w', '2', '--timeout', '0']);
    for (let i = 0; i < 6; i++) await request(port, '/');
    const first = await scrape(hport);
    assert.equal(total(first), 6);
    const pids = [...s.log.matchAll(/Booting worker with pid: (\d+)/g)].map((x) => Number(x[1]));
    let from = s.log.length;
    process.kill(pids[0]!, 'SIGKILL');
    await s.waitFor(/Booting worker with pid: \d+/, 15000, from);
    await until(() => /Worker \(pid:\d+\) was sent SIGKILL/.test(s.log.slice(from)), 15000, 'the kill noted');
    const killed = await scrape(hport);
    neverDown(first, killed);
    assert.equal(total(killed), 6, 'the killed worker\'s requests are kept');
    assert.equal(sampleValue(killed, 'tunicorn_worker_exits_total', { reason: 'killed' }), 1);
    assert.equal(sampleValue(killed, 'tunicorn_workers_started_total'), 3);

    // Served, never scraped, then HUP: the old workers' last messages carry them.
    for (let i = 0; i < 5; i++) await request(port, '/nope');
    from = s.log.length;
    s.signal('SIGHUP');
    await until(() => (s.log.slice(from).match(/Worker exited \(pid: \d+\)/g) ?? []).length >= 2, 20000, 'the old workers\' exit');
    const reloaded = await scrape(hport);
    neverDown(killed, reloaded);
    assert.equal(total(reloaded), 11);
    assert.equal(sampleValue(reloaded, 'tunicorn_requests_total', { method: 'GET', code: '404' }), 5);
    assert.equal(sampleValue(reloaded, 'tunicorn_worker_exits_total', { reason: 'reload' }), 2);
    assert.equal(sampleValue(reloaded, 'tunicorn_workers_started_total'), 5);
    assert.equal(sampleValue(reloaded, 'tunicorn_request_duration_seconds_count'), 11);
  });

  for (const cls of [['-k', 'async'], ['-k', 'gthread', '--threads', '2']]) {
    it(`keeps the counts of a worker whose app calls process.exit() (${cls[1]})`, async () => {
      // --timeout 0: no heartbeat carries counts, and nothing is scraped before the exit: what the worker
      // served reaches the master only with the message it sends as it exits.
      const { s, hport, port } = await start(['-w', '1', '--timeout', '0', ...cls]);
      for (let i = 0; i < 5; i++) await request(port, '/');
      const from = s.log.length;
      // The app ends its process in the middle of this request: it is cut, with no answer.
      await request(port, '/exit').catch(() => undefined);
      await s.waitFor(/Booting worker with pid: \d+/, 15000, from);
      await until(() => /Worker exited \(pid: \d+\)/.test(s.log.slice(from)), 15000, 'the exit noted');
      const m = await scrape(hport);
      assert.equal(total(m), 5, 'the requests it served before it exited');
      assert.equal(sampleValue(m, 'tunicorn_worker_exits_total', { reason: 'exited' }), 1);
    });
  }

  it('shows the accept queue of a listener whose only worker is stuck', async () => {
    const { s, hport, port } = await start(['-k', 'sync', '-w', '1', '--timeout', '60']);
    // The worker's event loop spins: it accepts nothing and cannot answer the master.
    const spin = request(port, '/spin?ms=6000&note', { timeout: 20000 });
    await s.waitFor(/app: spinning 6000 ms/);
    const queued: net.Socket[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const c = net.connect(port, '127.0.0.1');
        queued.push(c);
        await within(new Promise((resolve) => c.once('connect', resolve)), 5000, 'a connection');
      }
      const t0 = Date.now();
      const m = await scrape(hport);
      const took = Date.now() - t0;
      assert.equal(sampleValue(m, 'tunicorn_listen_queue', { listener: `http://127.0.0.1:${port}` }), 5);
      assert.equal(sampleValue(m, 'tunicorn_workers_unanswered'), 1);
      // Bounded by the 1 s wait for the stuck worker, not by its spin.
      assert.ok(took >= 900 && took < 4000, `the scrape took ${took} ms`);
    } finally {
      for (const c of queued) c.destroy();
    }
    assert.equal((await spin).status, 200);
    // Once it runs again the worker takes what was queued (closed by now): the queue empties.
    let m = await scrape(hport);
    for (let i = 0; i < 100 && sampleValue(m, 'tunicorn_listen_queue')! > 0; i++) m = await scrape(hport);
    assert.equal(sampleValue(m, 'tunicorn_listen_queue'), 0);
    assert.equal(sampleValue(m, 'tunicorn_workers_unanswered'), 0);
    assert.ok(sampleValue(m, 'tunicorn_requests_total', { method: 'GET', code: '200' })! >= 1);
  });

  it('does not take a scrape\'s answer for a heartbeat: a gthread thread stuck past the timeout is killed', async () => {
    // The process's main thread answers each scrape while one of its threads spins: scraped every 200 ms, more
    // often than the 2 s timeout, the worker must still time out.
    const { s, hport, port } = await start(['-k', 'gthread', '--threads', '2', '-w', '1', '-t', '2']);
    const stuck = request(port, '/spin?ms=15000&note', { timeout: 20000 }).catch((e: Error) => e);
    await s.waitFor(/app: spinning 15000 ms/);
    const from = s.log.length;
    const end = Date.now() + 12000;
    while (!/WORKER TIMEOUT/.test(s.log.slice(from)) && Date.now() < end) {
      await scrape(hport);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(s.log.slice(from), /WORKER TIMEOUT \(pid:\d+\)/);
    assert.ok((await stuck) instanceof Error);
    await s.waitFor(/Booting worker with pid: \d+/, 15000, from);
    await until(() => /Worker \(pid:\d+\) was killed|WORKER TIMEOUT/.test(s.log.slice(from)), 5000, 'the kill');
    let m = await scrape(hport);
    for (let i = 0; i < 50 && sampleValue(m, 'tunicorn_worker_exits_total', { reason: 'timeout' }) === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      m = await scrape(hport);
    }
    assert.equal(sampleValue(m, 'tunicorn_worker_exits_total', { reason: 'timeout' }), 1);
  });

  it("still answers, with process_open_fds at process_max_fds, when the master's descriptors are all taken", async () => {
    // ulimit -n 64 (soft and hard): the master holds about 25; the health endpoint's idle connections take the rest.
    const s = new Server(['-b', '127.0.0.1:0', '--health-bind', '127.0.0.1:0', '--metrics', '-w', '1', APP], { wrapper: ['sh', '-c', 'ulimit -n 64 && exec "$0" "$@"'] });
    await s.port();
    const hport = Number((await s.waitFor(/Health checks at: http:\/\/127\.0\.0\.1:(\d+)\//))[1]);
    await s.waitFor(/Ready: /, 20000);
    const socks: net.Socket[] = [];
    try {
      for (let i = 0; i < 60; i++) socks.push(net.connect(hport, '127.0.0.1').on('error', () => {}));
      await until(() => readdirSync(`/proc/${s.pid}/fd`).length >= 63, 10000, "the master's descriptors all taken");
      const first = socks[0]!;
      let got = '';
      first.on('data', (d: Buffer) => (got += d.toString('latin1')));
      first.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => { const n = /content-length: (\d+)\r\n/i.exec(got); return n !== null && got.length >= got.indexOf('\r\n\r\n') + 4 + Number(n[1]); }, 10000, `the scrape's answer; got:\n${got}`);
      assert.match(got, /^HTTP\/1\.1 200 /, got);
      const m = parseExposition(got.slice(got.indexOf('\r\n\r\n') + 4));
      assert.equal(sampleValue(m, 'process_max_fds'), 64);
      assert.equal(sampleValue(m, 'process_open_fds'), 64);
      assert.ok(sampleValue(m, 'process_resident_memory_bytes') === undefined || sampleValue(m, 'process_resident_memory_bytes')! > 1e6);
    } finally {
      for (const c of socks) c.destroy();
    }
    await s.kill();
  });

  it("keeps a worker at its open-file limit serving: its counts still come, without the RSS it cannot read then", async () => {
    // ulimit -n 64 for every process: the worker's descriptors are taken by connections held open. Its counts
    // (each heartbeat's and each scrape's) read its RSS through /proc/self/stat, which threw EMFILE out of the
    // worker: it exited, dropping every connection it held.
    const s = new Server(['-b', '127.0.0.1:0', '--health-bind', '127.0.0.1:0', '--metrics', '-w', '1', APP], { wrapper: ['sh', '-c', 'ulimit -n 64 && exec "$0" "$@"'] });
    const port = await s.port();
    const hport = Number((await s.waitFor(/Health checks at: http:\/\/127\.0\.0\.1:(\d+)\//))[1]);
    await s.waitFor(/Ready: /, 20000);
    const worker = (await request(port, '/pid')).body;
    const socks: net.Socket[] = [];
    try {
      for (let i = 0; i < 80; i++) socks.push(net.connect(port, '127.0.0.1').on('error', () => {}));
      await s.waitFor(/is at its open-file limit/, 20000);
      // A scrape asks the worker for its counts, as each heartbeat sends them.
      const m = await scrape(hport);
      assert.equal(sampleSum(m, 'tunicorn_requests_total'), 1);
      assert.doesNotMatch(s.log, /Uncaught exception|Worker exited/);
    } finally {
      for (const c of socks) c.destroy();
    }
    // The same worker serves once the connections have closed.
    assert.equal((await within(requestUntilServed(port, '/pid', 15000), 20000, 'a request served again')).body, worker);
    assert.doesNotMatch(s.log, /Uncaught exception/);
    await s.kill();
  });

  it('needs --health-bind, and is a 404 when off', async () => {
    const bad = new Server(['-b', '127.0.0.1:0', '--metrics', APP]);
    const { code } = await bad.exited;
    assert.equal(code, 1);
    assert.match(bad.log, /metrics \(--metrics\) is served on the health endpoint, which is off: set healthBind \(--health-bind ADDRESS, such as 127\.0\.0\.1:9100\) too/);
    assert.doesNotMatch(bad.log, /\n\s+at /, 'no stack');

    const off = new Server(['-b', '127.0.0.1:0', '--health-bind', '127.0.0.1:0', APP]);
    const hport = Number((await off.waitFor(/Health checks at: http:\/\/127\.0\.0\.1:(\d+)\//))[1]);
    const notFound = await request(hport, '/metrics');
    assert.equal(notFound.status, 404);
    assert.equal(notFound.body, 'not found: try /health/live or /health/ready (/metrics needs --metrics)\n');
  });
});
