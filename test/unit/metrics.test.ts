/**
 * The `metrics` setting's parts that touch no process: Prometheus's text format (prometheus.ts), read back by
 * the strict reader of the integration tests; a worker's counters and their collection (request-metrics.ts);
 * the master's book, which never lets a counter go down (metrics.ts); /proc/net/tcp's LISTEN lines; the check
 * that --metrics comes with --health-bind.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { exitReason, listenLines, masterFamilies, MetricsBook, type MetricsView } from '../../src/arbiter/metrics.js';
import { escapeHelp, escapeLabel, exposition, formatValue } from '../../src/arbiter/prometheus.js';
import type { WorkerHandle } from '../../src/arbiter/worker-handle.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { ConfigError } from '../../src/config/setting.js';
import { BUCKETS, CELLS, collectCounts, requestLabels, RequestMetrics, type WorkerCounts } from '../../src/workers/request-metrics.js';
import { parseExposition, sampleSum, sampleValue } from '../helpers/prometheus.js';
import { scratchDir } from '../helpers/scratch.js';

describe('Prometheus text format', () => {
  it('formats values as Prometheus reads them', () => {
    assert.equal(formatValue(3), '3');
    assert.equal(formatValue(0.25), '0.25');
    assert.equal(formatValue(1e21), '1e+21');
    assert.equal(formatValue(Infinity), '+Inf');
    assert.equal(formatValue(-Infinity), '-Inf');
    assert.equal(formatValue(NaN), 'NaN');
  });

  it('escapes label values and HELP texts', () => {
    assert.equal(escapeLabel('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
    // HELP escapes backslash and line feed only.
    assert.equal(escapeHelp('a\\b"c\nd'), 'a\\\\b"c\\nd');
  });

  it('writes HELP and TYPE once per family, samples after them, histograms cumulative', () => {
    const text = exposition([
      { name: 'x_total', help: 'Some "things"\nover two lines \\', type: 'counter', samples: [{ labels: { a: '1' }, value: 2 }, { labels: { a: 'q"\\\n' }, value: 3 }] },
      { name: 'y', help: 'A gauge.', type: 'gauge', samples: [{ value: 1.5 }] },
      { name: 'h_seconds', help: 'A histogram.', type: 'histogram', samples: [{ bounds: [0.1, 1], counts: [2, 3, 4], sum: 7.5 }] },
      { name: 'empty_total', help: 'None yet.', type: 'counter', samples: [] },
    ]);
    assert.equal(
      text,
      [
        '# HELP x_total Some "things"\\nover two lines \\\\',
        '# TYPE x_total counter',
        'x_total{a="1"} 2',
        'x_total{a="q\\"\\\\\\n"} 3',
        '# HELP y A gauge.',
        '# TYPE y gauge',
        'y 1.5',
        '# HELP h_seconds A histogram.',
        '# TYPE h_seconds histogram',
        'h_seconds_bucket{le="0.1"} 2',
        'h_seconds_bucket{le="1"} 5',
        'h_seconds_bucket{le="+Inf"} 9',
        'h_seconds_sum 7.5',
        'h_seconds_count 9',
        '# HELP empty_total None yet.',
        '# TYPE empty_total counter',
        '',
      ].join('\n'),
    );
    const read = parseExposition(text);
    assert.equal(sampleValue(read, 'x_total', { a: 'q"\\\n' }), 3, 'the label value reads back');
    assert.equal(sampleValue(read, 'h_seconds_count'), 9);
    assert.equal(exposition([]), '');
  });

  it('refuses what would not parse: a bad name, a family twice, a histogram short of counts', () => {
    assert.throws(() => exposition([{ name: 'bad-name', help: '', type: 'gauge', samples: [] }]), /invalid Prometheus metric name/);
    assert.throws(() => exposition([{ name: 'g', help: '', type: 'gauge', samples: [{ labels: { 'a-b': '1' }, value: 1 }] }]), /invalid Prometheus label name/);
    const g = { name: 'g', help: '', type: 'gauge', samples: [] } as const;
    assert.throws(() => exposition([g, g]), /given twice/);
    assert.throws(() => exposition([{ name: 'h', help: '', type: 'histogram', samples: [{ bounds: [1], counts: [1], sum: 0 }] }]), /1 counts for 1 bounds/);
  });

  it('the strict reader refuses a malformed exposition', () => {
    assert.throws(() => parseExposition('# TYPE a gauge\na 1\n# TYPE a gauge\n'), /TYPE of a twice|not together|after its samples/);
    assert.throws(() => parseExposition('a{b="1} 2\n'), /unterminated|expected/);
    assert.throws(() => parseExposition('a 1x\n'), /not a float/);
    assert.throws(() => parseExposition('# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n'), /not cumulative/);
    assert.throws(() => parseExposition('# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n'), /is not _count/);
    assert.throws(() => parseExposition('# TYPE c counter\nc 1\n'), /does not end with _total/);
    assert.throws(() => parseExposition('a 1'), /line feed/);
  });
});

describe('request counters', () => {
  it('counts by method and status, with bounded labels, and a duration histogram', () => {
    const m = new RequestMetrics();
    m.begin();
    m.end('GET', 200, 0.003);
    m.begin();
    m.end('GET', 200, 0.2);
    m.begin();
    m.end('PROPFIND', 207, 0.003);
    m.begin();
    m.end('BREW', 418, 20);
    m.begin();
    m.end('POST', undefined, 0.01);
    m.begin();
    m.end('GET', 799, 0.01);
    m.begin(); // still running
    const c = collectCounts([m.cells]);
    const byLabel = new Map<string, number>();
    for (let i = 0; i < c.requests.length; i += 2) {
      const l = requestLabels(c.requests[i]!);
      byLabel.set(`${l.method} ${l.code}`, c.requests[i + 1]!);
    }
    assert.deepEqual(Object.fromEntries(byLabel), { 'GET 200': 2, 'POST none': 1, 'OTHER 207': 1, 'OTHER 418': 1, 'GET other': 1 });
    assert.equal(c.inflight, 1);
    assert.equal(c.buckets.length, BUCKETS.length + 1);
    assert.equal(c.buckets[0], 2, '0.003 s twice in the 0.005 bucket');
    assert.equal(c.buckets[1], 2, '0.01 s twice in the 0.01 bucket (le: less or equal)');
    assert.equal(c.buckets.at(-1), 1, '20 s in +Inf');
    assert.ok(Math.abs(c.seconds - 20.226) < 1e-9);
    assert.ok(c.cpu > 0 && c.rss !== null && c.rss > 0);
  });

  it('adds up several records (gthread threads sharing memory)', () => {
    const shared = new SharedArrayBuffer(8 * CELLS * 2);
    const a = new RequestMetrics(new Float64Array(shared, 0, CELLS));
    const b = new RequestMetrics(new Float64Array(shared, 8 * CELLS, CELLS));
    a.count('GET', 200, 0.001);
    b.count('GET', 200, 0.001);
    b.count('HEAD', 304, 0.001);
    const c = collectCounts([new Float64Array(shared, 0, CELLS), new Float64Array(shared, 8 * CELLS, CELLS)]);
    assert.equal(c.requests.length, 4);
    assert.equal(c.buckets[0], 3);
  });
});

/** A stand-in for a worker handle: what the book reads of one. */
function fakeWorker(id: number, pid: number): WorkerHandle {
  return { id, pid, state: 'ready', metrics: { counts: null, cpuSeen: 0, folded: false }, send: () => true } as unknown as WorkerHandle;
}

function counts(get200: number, cpu: number): WorkerCounts {
  return { requests: [100, get200], buckets: [get200, ...new Array<number>(BUCKETS.length).fill(0)], seconds: get200 / 1000, inflight: 0, cpu, rss: 1 };
}

describe('the master\'s book', () => {
  const view = (workers: WorkerHandle[]): MetricsView => ({ workers, wanted: workers.length, listeners: [], backlog: null, started: 1 });
  const read = (book: MetricsBook, workers: WorkerHandle[]) => parseExposition(exposition(book.families(view(workers), 0)));

  it('keeps an exited worker\'s counts, and adds only what a late message brings on top', () => {
    const book = new MetricsBook();
    // Pids no process has: /proc gives nothing, the counts' own figures are used.
    const w1 = fakeWorker(1, 2 ** 31 - 2);
    const w2 = fakeWorker(1, 2 ** 31 - 3);
    book.received(w1, counts(5, 1.5));
    let m = read(book, [w1]);
    assert.equal(sampleValue(m, 'tunicorn_requests_total', { method: 'GET', code: '200' }), 5);
    book.exited(w1, 'reload');
    book.received(w2, counts(2, 0.5));
    m = read(book, [w2]);
    assert.equal(sampleValue(m, 'tunicorn_requests_total', { method: 'GET', code: '200' }), 7);
    assert.equal(sampleValue(m, 'tunicorn_worker_cpu_seconds_total', { slot: '1' }), 2);
    assert.equal(sampleValue(m, 'tunicorn_worker_exits_total', { reason: 'reload' }), 1);
    // Its last message, read after its exit: 3 more requests and 0.5 s more CPU, counted once.
    book.received(w1, counts(8, 2));
    book.received(w1, counts(8, 2));
    m = read(book, [w2]);
    assert.equal(sampleValue(m, 'tunicorn_requests_total', { method: 'GET', code: '200' }), 10);
    assert.equal(sampleValue(m, 'tunicorn_request_duration_seconds_count'), 10);
    assert.equal(sampleValue(m, 'tunicorn_worker_cpu_seconds_total', { slot: '1' }), 2.5);
    assert.equal(sampleSum(m, 'tunicorn_worker_exits_total'), 1);
  });

  it('ignores a message on the channel that only looks like counts (the app\'s process.send), without throwing', () => {
    const book = new MetricsBook();
    const w = fakeWorker(1, 2 ** 31 - 2);
    book.received(w, counts(3, 1));
    book.exited(w, 'reload');
    for (const bad of [undefined, null, 42, {}, { requests: 'x' }, { ...counts(1, 0), buckets: [1] }])
      assert.doesNotThrow(() => book.received(w, bad as unknown as WorkerCounts));
    assert.equal(sampleValue(read(book, []), 'tunicorn_requests_total', { method: 'GET', code: '200' }), 3);
  });

  it('waits for the workers\' answers at most its bound, and says how many did not answer', async () => {
    const book = new MetricsBook();
    const quick = fakeWorker(1, 2 ** 31 - 2);
    const stuck = fakeWorker(2, 2 ** 31 - 3);
    (quick as unknown as { send: () => boolean }).send = () => (setImmediate(() => book.received(quick, counts(1, 0))), true);
    const t0 = Date.now();
    const unanswered = await book.collect([quick, stuck], 200);
    assert.equal(unanswered, 1);
    assert.ok(Date.now() - t0 >= 190);
    assert.equal(await book.collect([quick], 5000), 0, 'all answered: no wait for the bound');
  });

  it('names why a worker exited', () => {
    const w = (o: Partial<WorkerHandle>) => ({ timedOut: false, crashed: false, exitReason: null, ...o }) as WorkerHandle;
    assert.equal(exitReason(w({ timedOut: true }), false, false, null, 'SIGKILL'), 'timeout');
    assert.equal(exitReason(w({}), true, false, 3, null), 'boot_failure');
    assert.equal(exitReason(w({ crashed: true }), false, true, 1, null), 'crash');
    assert.equal(exitReason(w({ exitReason: 'max_requests' }), false, true, 0, null), 'max_requests');
    assert.equal(exitReason(w({}), false, true, 0, null), 'shutdown');
    assert.equal(exitReason(w({ exitReason: 'reload' }), false, false, null, 'SIGKILL'), 'killed', 'an OOM kill while it was replaced');
    assert.equal(exitReason(w({}), false, false, 2, null), 'crash');
    assert.equal(exitReason(w({}), false, false, 0, null), 'exited');
  });
});

describe('the master\'s process metrics', () => {
  const values = (proc: string) => {
    const m = parseExposition(exposition(masterFamilies(1700000000, proc)));
    return Object.fromEntries([...m.values()].map((f) => [f.name, f.samples[0]!.value]));
  };

  it('reads the virtual size, the open descriptors and their limit from /proc, under the names client libraries use', () => {
    const proc = scratchDir('tunicorn-self-');
    // A command with a space and a parenthesis: the fields are counted from the last one.
    writeFileSync(path.join(proc, 'stat'), `4242 (node (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 5 6 0 0 20 0 11 0 900 1234567890 4000 ${'0 '.repeat(27)}0\n`);
    mkdirSync(path.join(proc, 'fd'));
    // As /proc/self/fd lists the directory's own descriptor while it is read: 4 entries, 3 open before.
    for (const fd of ['0', '1', '2', '7']) writeFileSync(path.join(proc, 'fd', fd), '');
    writeFileSync(path.join(proc, 'limits'), 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n');
    const v = values(proc);
    assert.equal(v.process_virtual_memory_bytes, 1234567890);
    assert.equal(v.process_open_fds, 3);
    assert.equal(v.process_max_fds, 1024);
    assert.equal(v.process_start_time_seconds, 1700000000);
    assert.ok(v.process_resident_memory_bytes! > 1e6);
    assert.ok(v.process_cpu_seconds_total! > 0);
  });

  it('leaves out what it cannot read (no /proc), and an unlimited descriptor count', () => {
    const proc = scratchDir('tunicorn-self-');
    writeFileSync(path.join(proc, 'limits'), 'Max open files            unlimited            unlimited            files\n');
    assert.deepEqual(Object.keys(values(proc)).sort(), ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds']);
  });
});

describe('accept queue', () => {
  it('reads the rx_queue of LISTEN lines, and stops where the listening sockets end', () => {
    const dir = scratchDir('tunicorn-tcp-');
    const file = path.join(dir, 'tcp');
    writeFileSync(
      file,
      [
        '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
        '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000007 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0',
        '   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0',
        '   2: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 -1',
        '   3: 00000000:1F91 00000000:0000 0A 00000000:000000FF 00:00000000 00000000     0        0 444 1 0000000000000000 100 0 0 10 0',
        '',
      ].join('\n'),
    );
    const seen: [number, string][] = [];
    listenLines(file, (q, inode) => (seen.push([q, inode]), true));
    assert.deepEqual(seen, [
      [7, '111'],
      [0, '222'],
    ]);
    listenLines(path.join(dir, 'none'), () => assert.fail('no file, no line'));
  });
});

describe('the metrics setting', () => {
  it('needs health_bind, said in one line', async () => {
    const resolve = (argv: string[]) => resolveConfig({ argv, env: {}, cwd: '/nonexistent', fileValues: {} });
    await assert.rejects(
      resolve(['--metrics', 'app.ts']),
      (err: unknown) => err instanceof ConfigError && /^metrics \(--metrics\) is served on the health endpoint, which is off: set healthBind/.test(err.message),
    );
    assert.equal((await resolve(['--metrics', '--health-bind', '127.0.0.1:9100', 'app.ts'])).config.metrics, true);
    assert.equal((await resolve(['app.ts'])).config.metrics, false);
  });
});
