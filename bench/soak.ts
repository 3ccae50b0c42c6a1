/**
 * `node --import tsx bench/soak.ts [--minutes 12] [--classes async,sync,gthread] [--steady] [--no-snapshots]
 * [--sample-ms 10000] [--out FILE]`: a long run with churn, to see that nothing grows in the master or its
 * workers (docs/design.md, "The soak"). Not part of `npm test`; run `npm run build` first.
 *
 * For each worker class in turn (the minutes shared between them) it starts the real CLI on loopback, port 0,
 * with 2 workers, --metrics --health-bind 127.0.0.1:0, an access log file, --max-requests that recycles workers
 * every few seconds and --timeout 2, and puts it through: keep-alive and Connection: close load, HUP every
 * 20 s, TTIN then TTOU, USR1 after renaming the access log (as logrotate does), a worker SIGKILLed now and then,
 * a route that spawns a child that outlives the request, one whose app exits (process.exit) leaving a child, a
 * route that blocks past --timeout, clients that leave mid-request, scrapes of /metrics and /health/ready every
 * second. Every 10 s it samples the master (RSS, open descriptors, V8 heap and libuv handles from a Node
 * diagnostic report it writes on SIGPWR), the workers' RSS and descriptors, zombies and processes, and the
 * metrics counters. At the first sample and at the end, a heap snapshot on SIGXCPU (taken after a full GC) gives
 * the master's heap that stays, its objects counted by constructor so that the end's can be compared with the
 * first's. At the end of a class it stops the server (TERM), checks that no process of its session is left
 * (killing any that is, by pid), and prints the trends: first and last sample and a least-squares slope per
 * hour. The access log's lines (all rotated files) are compared with the requests the clients saw answered,
 * and with tunicorn_requests_total. Every process it starts ends with it; its temporary folder is removed
 * unless --out asks to keep it (the error log is there).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MASTER_NODE_FLAGS } from '../src/cli/node-flags.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'dist/cli/main.js');
const APP = path.join(ROOT, 'bench/apps/soak.mjs');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const MINUTES = Number(arg('minutes', '12'));
const CLASSES = arg('classes', 'async,sync,gthread').split(',');
const OUT = arg('out', '');
const SAMPLE_MS = Number(arg('sample-ms', '10000'));
/**
 * --steady: no recycling, reloads, kills or timeouts (the log rotation stays): long-lived workers, to see whether
 * a worker grows, and whether every request has its access-log line and its count.
 */
const STEADY = process.argv.includes('--steady');
/** --no-snapshots: no heap snapshot, whose tens of MB stay in the master's RSS: for the RSS trend alone. */
const SNAPSHOTS = !process.argv.includes('--no-snapshots');
if (!(MINUTES > 0) || CLASSES.some((c) => !['async', 'sync', 'gthread'].includes(c))) {
  console.error('usage: node --import tsx bench/soak.ts [--minutes N] [--classes async,sync,gthread] [--steady] [--no-snapshots] [--sample-ms MS] [--out FILE]');
  process.exit(2);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- /proc readers ----
function readStat(pid: number): { state: string; ppid: number; pgrp: number; session: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]), session: Number(f[3]) };
  } catch {
    return null;
  }
}
function rssKb(pid: number): number | null {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
function fdCount(pid: number): number | null {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}
function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}
/** Every process in session `sid` (the master's: it was started detached), but the master itself. */
function sessionProcs(sid: number): { pid: number; ppid: number; state: string; cmd: string }[] {
  const out: { pid: number; ppid: number; state: string; cmd: string }[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    const st = readStat(pid);
    if (st && st.session === sid && pid !== sid) out.push({ pid, ppid: st.ppid, state: st.state, cmd: cmdline(pid) });
  }
  return out;
}

// ---- HTTP ----
interface Counts {
  ok: number;
  errors: number;
  /** Requests the client gave up on on purpose (mid-request disconnects). */
  abandoned: number;
  byRoute: Record<string, number>;
}
function get(port: number, p: string, agent: http.Agent | false, headers: Record<string, string> = {}, ms = 10000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(ms, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

// ---- statistics ----
function slopePerHour(xsMs: number[], ys: number[]): number {
  const n = xsMs.length;
  if (n < 2) return 0;
  const xs = xsMs.map((x) => x / 3_600_000);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

interface SampleRow {
  t: number;
  masterRssKb: number;
  heapUsedKb: number;
  heapTotalKb: number;
  /** The heap used right after a full GC (a heap snapshot's), at the first sample; -1 at the others. */
  heapAfterGcKb: number;
  handles: number;
  timers: number;
  masterFds: number;
  workers: number;
  workerRssKb: number[];
  workerHeapKb: number[];
  workerFds: number[];
  zombies: number;
  /** Zombies that were zombies at the previous sample too (10 s on): not reaped, rather than not reaped yet. */
  zombiesKept: number;
  procs: number;
  accessLines: number;
  clientOk: number;
  metricsRequests: number;
  workersStarted: number;
  workerExits: number;
}

/**
 * A process's V8 heap and libuv handles, from the diagnostic report it writes on SIGPWR (Node's --report-signal,
 * which the workers inherit from the master's command line): read without changing the code under test.
 */
async function masterReport(pid: number, dir: string): Promise<{ heapUsedKb: number; heapTotalKb: number; handles: number; timers: number } | null> {
  const before = new Set(fs.readdirSync(dir));
  process.kill(pid, 'SIGPWR');
  for (let i = 0; i < 100; i++) {
    await sleep(50);
    const file = fs.readdirSync(dir).find((f) => !before.has(f) && f.endsWith('.json') && f.includes(`.${pid}.`));
    if (!file) continue;
    try {
      const r = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as {
        javascriptHeap: { totalMemory: number; usedMemory: number };
        libuv: { type: string; is_active?: boolean }[];
      };
      fs.rmSync(path.join(dir, file));
      return {
        heapUsedKb: Math.round(r.javascriptHeap.usedMemory / 1024),
        heapTotalKb: Math.round(r.javascriptHeap.totalMemory / 1024),
        handles: r.libuv.length,
        timers: r.libuv.filter((h) => h.type === 'timer' && h.is_active).length,
      };
    } catch {
      // written but not whole yet
    }
  }
  return null;
}

/**
 * A heap snapshot of a process (the master; a worker, which inherits the flag), taken after a full garbage collection (Node's --heapsnapshot-signal): its
 * objects counted by constructor (closures by function name), and the file removed.
 */
async function heapSnapshot(pid: number, dir: string): Promise<Map<string, number> | null> {
  const before = new Set(fs.readdirSync(dir));
  process.kill(pid, 'SIGXCPU');
  let last = -1;
  for (let i = 0; i < 300; i++) {
    await sleep(100);
    const file = fs.readdirSync(dir).find((f) => !before.has(f) && f.endsWith('.heapsnapshot') && f.includes(`.${pid}.`));
    if (!file) continue;
    const full = path.join(dir, file);
    const size = fs.statSync(full).size;
    // Written in pieces: whole once its size stops changing and it parses.
    if (size !== last) {
      last = size;
      continue;
    }
    try {
      const snap = JSON.parse(fs.readFileSync(full, 'utf8')) as {
        snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
        nodes: number[];
        strings: string[];
      };
      fs.rmSync(full);
      const fields = snap.snapshot.meta.node_fields;
      const types = snap.snapshot.meta.node_types[0];
      const nType = fields.indexOf('type');
      const nName = fields.indexOf('name');
      const counts = new Map<string, number>();
      for (let n = 0; n < snap.nodes.length; n += fields.length) {
        const type = types[snap.nodes[n + nType]!]!;
        if (type !== 'object' && type !== 'closure') continue;
        const name = `${type === 'closure' ? 'closure ' : ''}${snap.strings[snap.nodes[n + nName]!]}`;
        counts.set(name, (counts.get(name) ?? 0) + 1);
      }
      return counts;
    } catch {
      /* not whole yet */
    }
  }
  return null;
}

/** The constructors whose count grew the most between two snapshots. */
function grown(a: Map<string, number>, b: Map<string, number>, top = 15): string[] {
  return [...b]
    .map(([k, n]) => [k, n - (a.get(k) ?? 0)] as const)
    .filter(([, d]) => d > 0)
    .sort((x, y) => y[1] - x[1])
    .slice(0, top)
    .map(([k, d]) => `${k} +${d} (${a.get(k) ?? 0} -> ${b.get(k)})`);
}

function metricsSums(text: string): { requests: number; started: number; exits: number } {
  let requests = 0;
  let started = 0;
  let exits = 0;
  for (const line of text.split('\n')) {
    const m = /^(tunicorn_[a-z_]+)(\{[^}]*\})? ([0-9.e+]+)$/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (m[1] === 'tunicorn_requests_total') requests += v;
    else if (m[1] === 'tunicorn_workers_started_total') started += v;
    else if (m[1] === 'tunicorn_worker_exits_total') exits += v;
  }
  return { requests, started, exits };
}

function countLines(files: string[]): number {
  let n = 0;
  for (const f of files) {
    try {
      const b = fs.readFileSync(f);
      for (let i = 0; i < b.length; i++) if (b[i] === 10) n++;
    } catch {
      /* not there */
    }
  }
  return n;
}

async function soakOne(workerClass: string, ms: number): Promise<Record<string, unknown>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tunicorn-soak-${workerClass}-`));
  const reports = path.join(dir, 'reports');
  fs.mkdirSync(reports);
  const accessLog = path.join(dir, 'access.log');
  const rotated: string[] = [];
  const args = [
    ...MASTER_NODE_FLAGS,
    // A heap snapshot (taken after a full GC) on SIGXCPU: the heap that stays, and what it is made of.
    '--heapsnapshot-signal=SIGXCPU',
    '--report-on-signal',
    '--report-signal=SIGPWR',
    '--report-compact',
    `--report-directory=${reports}`,
    CLI,
    '-b', '127.0.0.1:0',
    '-w', '2',
    '-k', workerClass,
    ...(workerClass === 'gthread' ? ['--threads', '2'] : []),
    '--metrics',
    '--health-bind', '127.0.0.1:0',
    '--access-logfile', accessLog,
    ...(STEADY ? [] : ['--max-requests', '400', '--max-requests-jitter', '100']),
    // --steady: a heap snapshot of a worker stops its event loop for a second or more; nothing there blocks.
    '--timeout', STEADY ? '30' : '2',
    '--graceful-timeout', '5',
    APP,
  ];
  const master = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], detached: true, env: { ...process.env, NODE_OPTIONS: '' } });
  const errLog = fs.createWriteStream(path.join(dir, 'error.log'));
  let log = '';
  master.stderr!.on('data', (d: Buffer) => {
    errLog.write(d);
    if (log.length < 100_000) log += d.toString();
  });
  const exited = once(master, 'exit');
  const pid = master.pid!;
  current = pid;
  currentDir = dir;
  let port = 0;
  let healthPort = 0;
  for (let i = 0; i < 300 && !(port && healthPort); i++) {
    await sleep(100);
    port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(log)?.[1] ?? 0);
    healthPort = Number(/(?:[Hh]ealth|metrics)[^\n]*http:\/\/127\.0\.0\.1:(\d+)/.exec(log)?.[1] ?? 0);
  }
  if (!port || !healthPort) {
    process.kill(-pid, 'SIGKILL');
    if (!OUT) fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`${workerClass}: the server did not start:\n${log}`);
  }
  const counts: Counts = { ok: 0, errors: 0, abandoned: 0, byRoute: {} };
  const errorKinds: Record<string, number> = {};
  const t0 = Date.now();
  const end = t0 + ms;
  let running = true;
  const note = (err: unknown) => {
    const k = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    errorKinds[k] = (errorKinds[k] ?? 0) + 1;
    counts.errors++;
  };
  const loops: Promise<void>[] = [];
  // Keep-alive clients.
  for (let c = 0; c < 3; c++) {
    loops.push(
      (async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        while (running) {
          try {
            const r = await get(port, '/', agent);
            if (r.status === 200) counts.ok++;
            else note(new Error(`status ${r.status}`));
          } catch (err) {
            note(err);
            await sleep(20);
          }
        }
        agent.destroy();
      })(),
    );
  }
  // Connection: close clients, and now and then the spawning route.
  for (let c = 0; c < 2; c++) {
    loops.push(
      (async () => {
        let i = 0;
        while (running) {
          const route = ++i % 50 === 0 ? '/spawn' : '/';
          try {
            const r = await get(port, route, false, { connection: 'close' });
            if (r.status === 200) {
              counts.ok++;
              counts.byRoute[route] = (counts.byRoute[route] ?? 0) + 1;
            } else note(new Error(`status ${r.status}`));
          } catch (err) {
            note(err);
            await sleep(20);
          }
        }
      })(),
    );
  }
  // Clients that leave mid-request: half a body, or before a late answer.
  loops.push(
    (async () => {
      while (running) {
        await sleep(200);
        counts.abandoned++;
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        s.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(1000));
        await sleep(50);
        s.destroy();
        counts.abandoned++;
        const s2 = net.connect(port, '127.0.0.1');
        s2.on('error', () => {});
        s2.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
        await sleep(100);
        s2.destroy();
      }
    })(),
  );
  // Scrapes of /metrics and /health every second.
  let lastMetrics = { requests: 0, started: 0, exits: 0 };
  let nonMonotonic = 0;
  let healthFails = 0;
  loops.push(
    (async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      while (running) {
        await sleep(1000);
        try {
          const m = metricsSums((await get(healthPort, '/metrics', agent)).body);
          if (m.requests < lastMetrics.requests || m.started < lastMetrics.started || m.exits < lastMetrics.exits) nonMonotonic++;
          lastMetrics = m;
          await get(healthPort, '/health/ready', agent);
        } catch {
          healthFails++;
        }
      }
      agent.destroy();
    })(),
  );
  // Signals.
  const sent: Record<string, number> = {};
  const signal = (sig: NodeJS.Signals, to = pid) => {
    try {
      process.kill(to, sig);
      sent[sig] = (sent[sig] ?? 0) + 1;
    } catch {
      /* gone */
    }
  };
  const workerPids = () => sessionProcs(pid).filter((p) => p.ppid === pid && /tunicorn: worker|child\.js/.test(p.cmd)).map((p) => p.pid);
  loops.push(
    (async () => {
      for (let tick = 1; running; tick++) {
        await sleep(1000);
        if (!running) break;
        if (tick % 30 === 12) {
          // As logrotate does: rename, then ask for a reopen.
          const to = `${accessLog}.${rotated.length + 1}`;
          try {
            fs.renameSync(accessLog, to);
            rotated.push(to);
          } catch {
            /* not written yet */
          }
          signal('SIGUSR1');
        }
        // --steady: the log rotation only (no line may be lost), no worker replaced.
        if (STEADY) continue;
        if (tick % 20 === 0) signal('SIGHUP');
        if (tick % 15 === 5) signal('SIGTTIN');
        if (tick % 15 === 10) signal('SIGTTOU');
        if (tick % 25 === 17) {
          const w = workerPids();
          if (w.length) signal('SIGKILL', w[0]!);
        }
        if (tick % 30 === 22) {
          // The app exits on its own (process.exit), leaving a child running.
          get(port, '/exit', false, { connection: 'close' }).then(
            () => (counts.byRoute['/exit'] = (counts.byRoute['/exit'] ?? 0) + 1),
            () => (counts.byRoute['/exit-cut'] = (counts.byRoute['/exit-cut'] ?? 0) + 1),
          );
        }
        if (tick % 40 === 30) {
          // Past --timeout: the worker is killed, the client gets no answer.
          get(port, '/block?ms=3500', false, { connection: 'close' }, 15000).then(
            () => (counts.byRoute['/block'] = (counts.byRoute['/block'] ?? 0) + 1),
            () => (counts.byRoute['/block-cut'] = (counts.byRoute['/block-cut'] ?? 0) + 1),
          );
        }
      }
    })(),
  );
  // Samples.
  const rows: SampleRow[] = [];
  let zombiesBefore = new Set<number>();
  let firstSnapshot: Map<string, number> | null = null;
  /** --steady: each first worker's snapshot and its heap after GC, to compare with the end's. */
  const workerSnaps = new Map<number, { counts: Map<string, number>; heapKb: number }>();
  const keptZombies: string[] = [];
  while (Date.now() < end) {
    await sleep(Math.min(SAMPLE_MS, Math.max(0, end - Date.now())));
    let afterGc = -1;
    // Only at the first sample (left out of the trends) and at the end: a snapshot costs the master tens of MB
    // of RSS, once, which would blur the RSS trend if taken along the way.
    if (rows.length === 0 && SNAPSHOTS) {
      const snap = await heapSnapshot(pid, dir);
      if (snap) {
        firstSnapshot = snap;
      }
    }
    if (STEADY && SNAPSHOTS && rows.length === 0) {
      for (const w of workerPids()) {
        const counts = await heapSnapshot(w, dir);
        if (counts) workerSnaps.set(w, { counts, heapKb: (await masterReport(w, reports))?.heapUsedKb ?? -1 });
      }
    }
    const rep = await masterReport(pid, reports);
    if (rows.length === 0 && SNAPSHOTS) afterGc = rep?.heapUsedKb ?? -1;
    const procs = sessionProcs(pid);
    const workers = procs.filter((p) => p.ppid === pid && /tunicorn: worker|child\.js/.test(p.cmd));
    const zombies = procs.filter((p) => p.state === 'Z');
    const kept = zombies.filter((z) => zombiesBefore.has(z.pid));
    for (const z of kept) keptZombies.push(`${z.pid} (parent ${z.ppid}${z.ppid === pid ? ': the master' : ''})`);
    zombiesBefore = new Set(zombies.map((z) => z.pid));
    const m = lastMetrics;
    const workerHeapKb: number[] = [];
    if (STEADY) for (const w of workers) workerHeapKb.push((await masterReport(w.pid, reports))?.heapUsedKb ?? -1);
    rows.push({
      t: Date.now() - t0,
      masterRssKb: rssKb(pid) ?? -1,
      heapUsedKb: rep?.heapUsedKb ?? -1,
      heapTotalKb: rep?.heapTotalKb ?? -1,
      heapAfterGcKb: afterGc,
      handles: rep?.handles ?? -1,
      timers: rep?.timers ?? -1,
      masterFds: fdCount(pid) ?? -1,
      workers: workers.length,
      workerRssKb: workers.map((w) => rssKb(w.pid) ?? 0),
      workerHeapKb,
      workerFds: workers.map((w) => fdCount(w.pid) ?? 0),
      zombies: zombies.length,
      zombiesKept: kept.length,
      procs: procs.length,
      accessLines: countLines([...rotated, accessLog]),
      clientOk: counts.ok,
      metricsRequests: m.requests,
      workersStarted: m.started,
      workerExits: m.exits,
    });
    const r = rows.at(-1)!;
    console.error(
      `[${workerClass} ${Math.round(r.t / 1000)}s] master rss ${r.masterRssKb} kB heap ${r.heapUsedKb}/${r.heapTotalKb} kB${r.heapAfterGcKb >= 0 ? ` (after GC ${r.heapAfterGcKb})` : ''} handles ${r.handles} timers ${r.timers} fds ${r.masterFds} | workers ${r.workers} rss ${r.workerRssKb.join(',')}${STEADY ? ` heap ${r.workerHeapKb.join(',')}` : ''} fds ${r.workerFds.join(',')} | zombies ${r.zombies} (kept ${r.zombiesKept}) procs ${r.procs} | ok ${r.clientOk} err ${counts.errors} access ${r.accessLines} metrics ${r.metricsRequests} started ${r.workersStarted}`,
    );
  }
  running = false;
  await Promise.all(loops);
  const endSnapshot = SNAPSHOTS ? await heapSnapshot(pid, dir) : null;
  const endAfterGc = SNAPSHOTS ? ((await masterReport(pid, reports))?.heapUsedKb ?? -1) : -1;
  const workerGrowth: Record<string, unknown>[] = [];
  for (const [w, first] of workerSnaps) {
    const counts = await heapSnapshot(w, dir);
    if (!counts) continue;
    const heapKb = (await masterReport(w, reports))?.heapUsedKb ?? -1;
    workerGrowth.push({ pid: w, heapAfterGcKb: { first: first.heapKb, last: heapKb }, grown: grown(first.counts, counts, 10) });
  }
  // Let the last batches of access-log lines and counts land (20 ms batches; a heartbeat), then a last scrape.
  await sleep(3000);
  const finalMetrics = metricsSums((await get(healthPort, '/metrics', false).catch(() => ({ body: '' }))).body);
  const finalReport = await masterReport(pid, reports);
  const finalFds = fs.readdirSync(`/proc/${pid}/fd`).map((f) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${f}`);
    } catch {
      return '?';
    }
  });
  const beforeStop = sessionProcs(pid);
  // The stop: TERM, and the master's exit within graceful_timeout and a margin.
  process.kill(pid, 'SIGTERM');
  const stopped = await Promise.race([exited.then(() => true), sleep(30_000).then(() => false)]);
  if (!stopped) process.kill(pid, 'SIGKILL');
  await sleep(500);
  const left = sessionProcs(pid);
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  current = null;
  errLog.end();
  const accessLines = countLines([...rotated, accessLog]);
  const series = (k: keyof SampleRow) => rows.map((r) => r[k] as number);
  const ts = series('t');
  const trend = (k: keyof SampleRow) => {
    // The first sample is taken while the server settles: trends are from the second on.
    const ys = series(k).slice(1);
    return { first: ys[0], last: ys.at(-1), perHour: Math.round(slopePerHour(ts.slice(1), ys) * 10) / 10 };
  };
  const workerMax = rows.map((r) => Math.max(0, ...r.workerRssKb));
  const workerHeapMax = rows.map((r) => Math.max(0, ...r.workerHeapKb));
  const workerFdsMax = rows.map((r) => Math.max(0, ...r.workerFds));
  const errorLines = log.split('\n').filter((l) => /\[(ERROR|CRITICAL)\]/.test(l));
  const result = {
    workerClass,
    seconds: Math.round((Date.now() - t0) / 1000),
    signals: sent,
    requests: { clientOk: counts.ok, clientErrors: counts.errors, errorKinds, abandoned: counts.abandoned, byRoute: counts.byRoute },
    // What the server should have a line and a count for: each request answered, and each one a client left
    // (status `-`). Those cut by a kill (SIGKILL, a timeout) are in clientErrors: they may have neither.
    expectedLines: counts.ok + (counts.byRoute['/exit'] ?? 0) + (counts.byRoute['/block'] ?? 0) + counts.abandoned,
    accessLogLines: accessLines,
    accessLogFiles: rotated.length + 1,
    metrics: { ...finalMetrics, nonMonotonicScrapes: nonMonotonic, scrapeFailures: healthFails },
    trends: {
      masterRssKb: trend('masterRssKb'),
      masterHeapUsedKb: trend('heapUsedKb'),
      masterHeapTotalKb: trend('heapTotalKb'),
      masterHeapAfterGcKb: !SNAPSHOTS ? null : (() => {
        const at = rows.filter((r) => r.heapAfterGcKb >= 0);
        const ys = [...at.map((r) => r.heapAfterGcKb), endAfterGc];
        const xs = [...at.map((r) => r.t), Date.now() - t0];
        return { first: ys[0], last: ys.at(-1), perHour: Math.round(slopePerHour(xs, ys) * 10) / 10, samples: ys };
      })(),
      masterHandles: trend('handles'),
      masterActiveTimers: trend('timers'),
      masterFds: trend('masterFds'),
      zombies: trend('zombies'),
      zombiesKept: trend('zombiesKept'),
      sessionProcs: trend('procs'),
      workerMaxRssKb: { first: workerMax[1], last: workerMax.at(-1), perHour: Math.round(slopePerHour(ts.slice(1), workerMax.slice(1)) * 10) / 10 },
      workerMaxFds: { first: workerFdsMax[1], last: workerFdsMax.at(-1), perHour: Math.round(slopePerHour(ts.slice(1), workerFdsMax.slice(1)) * 10) / 10 },
      ...(STEADY ? { workerMaxHeapUsedKb: { first: workerHeapMax[1], last: workerHeapMax.at(-1), perHour: Math.round(slopePerHour(ts.slice(1), workerHeapMax.slice(1)) * 10) / 10 } } : {}),
    },
    keptZombies,
    heapGrowth: firstSnapshot && endSnapshot ? grown(firstSnapshot, endSnapshot) : null,
    ...(STEADY ? { workerGrowth } : {}),
    finalReport,
    finalFds: finalFds.sort(),
    beforeStop: beforeStop.map((p) => `${p.pid} ${p.state} ${p.cmd.slice(0, 60)}`),
    stoppedCleanly: stopped,
    exit: await exited.then(([code, sig]) => ({ code, sig })),
    leftAfterStop: left.map((p) => `${p.pid} ${p.state} ${p.cmd}`),
    errorLines: errorLines.length,
    errorLineKinds: [...new Set(errorLines.map((l) => l.replace(/^.*?\] \[\d+\] \[[A-Z]+\] /, '').replace(/\d+/g, 'N').slice(0, 90)))],
    dir,
  };
  // The run's files stay only when asked for (--out); the error log is summarised above.
  if (!OUT) fs.rmSync(dir, { recursive: true, force: true });
  return result;
}

// However the soak ends (Ctrl-C, a TERM, a HUP when its terminal or ssh session goes, an exception), the server it
// runs ends with it, with its workers and what they started: the master leads its own session and process group
// (detached), which a terminal's HUP does not reach.
let current: number | null = null;
let currentDir: string | null = null;
function endCurrent(): void {
  if (current === null) return;
  for (const p of [-current, ...sessionProcs(current).map((x) => x.pid)]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  current = null;
  if (currentDir !== null && !OUT) fs.rmSync(currentDir, { recursive: true, force: true });
}
process.on('exit', endCurrent);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    endCurrent();
    process.exit(130);
  });
}

const perClass = (MINUTES * 60_000) / CLASSES.length;
const results: Record<string, unknown>[] = [];
for (const c of CLASSES) results.push(await soakOne(c, perClass));
const text = JSON.stringify(results, null, 2);
console.log(text);
if (OUT) fs.writeFileSync(OUT, text);
