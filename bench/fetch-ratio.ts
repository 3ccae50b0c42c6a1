/**
 * Fetch handler throughput and TypeScript boot cost.
 *
 * Throughput: the same hello app served three ways on loopback, each by one process on one core:
 *   listener  tunicorn, 1 worker, a raw (req, res) listener           (the baseline)
 *   fetch     tunicorn, 1 worker, a Fetch handler (request) => Response
 *   hono      @hono/node-server serving the same Fetch handler
 * With `--routed`, the apps are the benchmark's own (bench/servers/apps): the Fetch handler routes with
 * `new URL(request.url)`, as the Fetch targets of `npm run bench` do, so the ratios are those of its keep-alive
 * table with one process a server in place of two (bench/report.ts, fetchNote).
 * Loaded with wrk when installed (else autocannon), in interleaved rounds so drift on a shared machine hits
 * every target alike; medians of the rounds are reported. Besides requests/s, each run reads the serving
 * process's CPU time from /proc, giving requests per CPU second: the cost of a request, which holds steady
 * when other processes compete for the cores (requests/s does not). Targets: fetch >= 0.9 x listener and
 * >= 1.3 x hono (issue 7).
 *
 * Boot: the time a worker spends loading a TypeScript app (import through jiti + adapting it), in a fresh
 * process, with an empty transform cache and then with the cache the first run wrote.
 *
 * Run: `npm run build && node --import tsx bench/fetch-ratio.ts [--rounds N] [--seconds S] [--connections C] [--routed]`
 * (`--routed` measures no boot).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { MASTER_NODE_FLAGS } from '../src/cli/node-flags.js';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { roundOrder } from './lib/load.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'dist/cli/main.js');
const APPS = path.join(ROOT, 'bench/apps');
/** The apps of `npm run bench`'s loads, which route. */
const ROUTED = path.join(ROOT, 'bench/servers/apps');
/** USER_HZ: the unit of the CPU times in /proc/PID/stat (100 on Linux; `getconf CLK_TCK`). */
const CLOCK_TICKS = 100;

export interface FetchRatioOptions {
  rounds?: number;
  seconds?: number;
  connections?: number;
  /** Skip the boot measurement. */
  throughputOnly?: boolean;
  /** Serve the benchmark's routed apps (bench/servers/apps) instead of the hello ones. */
  routed?: boolean;
}

export interface BootTime {
  readonly app: string;
  /** Load time with an empty transform cache (the first boot after a deploy). */
  readonly coldMs: number;
  /** Median load time with the cache the cold run wrote (a restarted worker). */
  readonly warmMs: number;
}

type PerTarget = { listener: number; fetch: number; hono: number };

export interface FetchRatioResult {
  readonly tool: 'wrk' | 'autocannon';
  /** Requests per second, one entry per round. */
  readonly rounds: PerTarget[];
  /** Requests per CPU second of the serving process, one entry per round. */
  readonly cpuRounds: PerTarget[];
  /** Medians over the rounds. */
  readonly rps: PerTarget;
  readonly perCpuSecond: PerTarget;
  /** Medians of the per-round ratios of requests/s. */
  readonly fetchVsListener: number;
  readonly fetchVsHono: number;
  /**
   * The same ratios by requests per CPU second of the serving process: what a request costs the server,
   * which other load on a shared machine disturbs far less than requests/s.
   */
  readonly cpuFetchVsListener: number;
  readonly cpuFetchVsHono: number;
  /** The benchmark's routed apps were served (FetchRatioOptions.routed). */
  readonly routed: boolean;
  readonly boot: BootTime[];
}

type TargetName = 'listener' | 'fetch' | 'hono';

interface Target {
  readonly name: TargetName;
  readonly child: ChildProcess;
  readonly port: number;
  /** The process that serves: the worker for tunicorn, the process itself for hono. */
  readonly servingPid: () => number;
  /** What the server wrote, shown when the load run fails. */
  readonly output: () => string;
}

function collect(child: ChildProcess): () => string {
  let text = '';
  const keep = (d: Buffer) => {
    text = (text + d.toString()).slice(-20000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text;
}

function hasWrk(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // wrk --version exits 1 after printing its version; only a missing binary is ENOENT.
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

function waitForLine(child: ChildProcess, stream: 'stdout' | 'stderr', re: RegExp, ms = 20000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}:\n${text}`)), ms);
    const onData = (d: Buffer) => {
      text += d.toString();
      const m = text.match(re);
      if (m) {
        clearTimeout(timer);
        child[stream]!.off('data', onData);
        resolve(m);
      }
    };
    child[stream]!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited with ${code} before ${re}:\n${text}`)));
  });
}

async function startTunicorn(name: TargetName, app: string): Promise<Target> {
  const child = spawn(process.execPath, [...MASTER_NODE_FLAGS, CLI, '-w', '1', '-b', '127.0.0.1:0', app], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WEB_CONCURRENCY: '', TUNICORN_CMD_ARGS: '', PORT: '' },
    detached: true,
  });
  const output = collect(child);
  const m = await waitForLine(child, 'stderr', /Listening at: http:\/\/127\.0\.0\.1:(\d+)/);
  const worker = () => {
    const w = /Booting worker with pid: (\d+)/.exec(output());
    if (!w) throw new Error(`no worker booted:\n${output()}`);
    return Number(w[1]);
  };
  return { name, child, port: Number(m[1]), output, servingPid: worker };
}

async function startHono(handler: string): Promise<Target> {
  const child = spawn(process.execPath, [path.join(APPS, 'hono-node-server.mjs')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, FETCH_APP: pathToFileURL(handler).href },
  });
  const output = collect(child);
  const m = await waitForLine(child, 'stdout', /listening (\d+)/);
  return { name: 'hono', child, port: Number(m[1]), output, servingPid: () => child.pid! };
}

async function ready(port: number): Promise<void> {
  const end = Date.now() + 30000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`);
      // Hello World, or the routed apps' hello JSON.
      if (r.ok && (await r.text()).includes('Hello World')) return;
    } catch {
      /* the worker is still booting: the connection waits in the backlog or fails */
    }
    if (Date.now() > end) throw new Error(`no answer on port ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Run {
  readonly rps: number;
  /** Requests per CPU second (user + system) of the serving process during the run. */
  readonly perCpuSecond: number;
}

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat (utime, stime), counted from the state field (3): indexes 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

async function load(tool: 'wrk' | 'autocannon', t: Target, seconds: number, connections: number): Promise<Run> {
  try {
    const pid = t.servingPid();
    const before = cpuSeconds(pid);
    const { rps, requests } = await loadPort(tool, t.port, seconds, connections);
    const cpu = cpuSeconds(pid) - before;
    return { rps, perCpuSecond: cpu > 0 ? requests / cpu : 0 };
  } catch (err) {
    throw new Error(`${t.name}: ${(err as Error).message}\n--- its output:\n${t.output()}`);
  }
}

async function loadPort(tool: 'wrk' | 'autocannon', port: number, seconds: number, connections: number): Promise<{ rps: number; requests: number }> {
  const url = `http://127.0.0.1:${port}/`;
  if (tool === 'wrk') {
    const out = await new Promise<string>((resolve, reject) => {
      const c = spawn('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, url], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      c.stdout.on('data', (d: Buffer) => (text += d.toString()));
      c.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}`))));
    });
    const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
    const n = /(\d+) requests in/.exec(out);
    if (!m || !n) throw new Error(`cannot read wrk's output:\n${out}`);
    if (/Non-2xx|Socket errors/.test(out)) throw new Error(`errors under load on port ${port}:\n${out}`);
    return { rps: Number(m[1]), requests: Number(n[1]) };
  }
  const { default: autocannon } = (await import('autocannon')) as unknown as {
    default: (o: object) => Promise<{ requests: { average: number; total: number }; errors: number; non2xx: number }>;
  };
  const r = await autocannon({ url, connections, duration: seconds });
  if (r.errors || r.non2xx) throw new Error(`errors under load on port ${port}: ${r.errors} errors, ${r.non2xx} non-2xx`);
  return { rps: r.requests.average, requests: r.requests.total };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

function stop(t: Target): void {
  try {
    process.kill(-t.child.pid!, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/** Time to load an app as a worker does, in a fresh process, with the jiti transform cache under `cacheDir`. */
function loadTime(app: string, cacheDir: string, cwd: string): number {
  const loader = pathToFileURL(path.join(ROOT, 'dist/app/load.js')).href;
  const script = `
    import { performance } from 'node:perf_hooks';
    const { loadApp } = await import(${JSON.stringify(loader)});
    const t = performance.now();
    const { served } = await loadApp(${JSON.stringify(app)}, process.cwd(), { onError() {} });
    const ms = performance.now() - t;
    await served.close?.();
    process.stdout.write(String(ms));
    process.exit(0);`;
  // jiti keeps its cache in node_modules/.cache/jiti of the working directory when there is one, else in
  // the OS temporary directory: a working directory without node_modules and a TMPDIR of our own give a
  // cache nobody else shares.
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd,
    env: { ...process.env, TMPDIR: cacheDir },
    encoding: 'utf8',
  });
  return Number(out);
}

export function measureBoot(apps: string[]): BootTime[] {
  return apps.map((app) => {
    const cacheDir = mkdtempSync(path.join(tmpdir(), 'tunicorn-jiti-'));
    const cwd = mkdtempSync(path.join(tmpdir(), 'tunicorn-cwd-'));
    try {
      const coldMs = loadTime(app, cacheDir, cwd);
      const warm = [0, 1, 2].map(() => loadTime(app, cacheDir, cwd));
      return { app: path.relative(ROOT, app), coldMs, warmMs: median(warm) };
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
      rmSync(cwd, { recursive: true, force: true });
    }
  });
}

export async function runFetchRatio(opts: FetchRatioOptions = {}): Promise<FetchRatioResult> {
  const rounds = opts.rounds ?? 10;
  const seconds = opts.seconds ?? 3;
  const connections = opts.connections ?? 64;
  if (!existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` first');
  const tool = hasWrk() ? 'wrk' : 'autocannon';
  const targets: Target[] = [];
  try {
    const [listener, handler] = opts.routed
      ? [path.join(ROUTED, 'listener.mjs'), path.join(ROUTED, 'fetch.mjs')]
      : [path.join(APPS, 'hello-listener.mjs'), path.join(APPS, 'hello-handler.mjs')];
    targets.push(await startTunicorn('listener', listener));
    targets.push(await startTunicorn('fetch', handler));
    targets.push(await startHono(handler));
    for (const t of targets) await ready(t.port);
    for (const t of targets) await load(tool, t, 1, connections); // warm-up: JIT, connection setup
    const results: PerTarget[] = [];
    const cpuResults: PerTarget[] = [];
    for (let r = 0; r < rounds; r++) {
      // A different order each round: no target always runs first, or after the same one (roundOrder).
      const order = roundOrder(targets, r);
      const row = { listener: 0, fetch: 0, hono: 0 };
      const cpuRow = { listener: 0, fetch: 0, hono: 0 };
      for (const t of order) {
        const run = await load(tool, t, seconds, connections);
        row[t.name] = run.rps;
        cpuRow[t.name] = run.perCpuSecond;
      }
      results.push(row);
      cpuResults.push(cpuRow);
    }
    const medians = (xs: PerTarget[]): PerTarget => ({
      listener: median(xs.map((x) => x.listener)),
      fetch: median(xs.map((x) => x.fetch)),
      hono: median(xs.map((x) => x.hono)),
    });
    const rps = medians(results);
    const perCpuSecond = medians(cpuResults);
    const boot = opts.throughputOnly
      ? []
      : measureBoot([path.join(ROOT, 'examples/hello/app.ts'), path.join(ROOT, 'test/fixtures/apps/nest/app.ts')]);
    // A ratio per round compares runs seconds apart; their median resists load from other processes.
    const fetchVsListener = median(results.map((x) => x.fetch / x.listener));
    const fetchVsHono = median(results.map((x) => x.fetch / x.hono));
    return {
      tool,
      rounds: results,
      cpuRounds: cpuResults,
      rps,
      perCpuSecond,
      fetchVsListener,
      fetchVsHono,
      cpuFetchVsListener: median(cpuResults.map((x) => x.fetch / x.listener)),
      cpuFetchVsHono: median(cpuResults.map((x) => x.fetch / x.hono)),
      routed: opts.routed === true,
      boot,
    };
  } finally {
    for (const t of targets) stop(t);
  }
}

export function formatFetchRatio(r: FetchRatioResult): string {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const lines = [
    `Fetch handler throughput (${r.tool}, loopback, 1 worker, ${r.routed ? "the benchmark's routed apps" : 'hello apps that route nothing'}; medians of ${r.rounds.length} interleaved rounds)`,
    `                            req/s    req per server CPU second`,
    `  raw (req, res) listener   ${fmt(r.rps.listener).padStart(9)}   ${fmt(r.perCpuSecond.listener).padStart(9)}`,
    `  Fetch handler             ${fmt(r.rps.fetch).padStart(9)}   ${fmt(r.perCpuSecond.fetch).padStart(9)}`,
    `  @hono/node-server         ${fmt(r.rps.hono).padStart(9)}   ${fmt(r.perCpuSecond.hono).padStart(9)}`,
    `  Fetch / listener          ${r.fetchVsListener.toFixed(3).padStart(9)}   ${r.cpuFetchVsListener.toFixed(3).padStart(9)}   (target >= 0.9)`,
    `  Fetch / hono              ${r.fetchVsHono.toFixed(3).padStart(9)}   ${r.cpuFetchVsHono.toFixed(3).padStart(9)}   (target >= 1.3)`,
  ];
  if (r.boot.length) {
    lines.push('TypeScript app load at worker boot (import + adapt, fresh process)');
    for (const b of r.boot) lines.push(`  ${b.app.padEnd(34)} cold cache ${b.coldMs.toFixed(0).padStart(5)} ms   warm cache ${b.warmMs.toFixed(0).padStart(5)} ms`);
  }
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const routed = process.argv.includes('--routed');
  const result = await runFetchRatio({ rounds: arg('rounds'), seconds: arg('seconds'), connections: arg('connections'), routed, throughputOnly: routed });
  process.stdout.write(formatFetchRatio(result) + '\n');
}
