/**
 * The seed's advice, measured: each worker class and worker count against three stock apps (bench/apps/):
 * I/O-bound (awaits 50 ms), CPU-bound (computes 5 ms) and memory-heavy (a 200 MB heap at start). For each:
 * requests/s and p99 latency from wrk on loopback, and the total RSS of the master and all its workers.
 *
 *   npm run build && node --import tsx bench/concurrency.ts      (or npm run bench, which calls runConcurrency)
 *
 * Needs `wrk` (apt-get install -y wrk). The whole run takes about two minutes.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { MASTER_NODE_FLAGS } from '../src/cli/node-flags.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const app = (name: string) => fileURLToPath(new URL(`./apps/${name}.ts`, import.meta.url));

export interface Case {
  readonly app: 'io' | 'cpu' | 'memory';
  readonly label: string;
  readonly args: readonly string[];
  /** Processes + threads that serve (for the table). */
  readonly connections: number;
}

export interface Result extends Case {
  readonly rps: number;
  readonly p99ms: number;
  readonly rssMb: number;
  readonly errors: number;
}

const auto = 2 * os.availableParallelism() + 1;

/** The matrix: what the seed's advice is about, one row per choice. */
export const CASES: readonly Case[] = [
  { app: 'io', label: 'async -w 1', args: ['-k', 'async', '-w', '1'], connections: 100 },
  { app: 'io', label: `async -w ${auto} (auto)`, args: ['-k', 'async', '-w', 'auto'], connections: 100 },
  { app: 'io', label: `sync -w ${auto} (auto)`, args: ['-k', 'sync', '-w', 'auto'], connections: 100 },
  { app: 'io', label: `gthread -w 1 --threads ${auto}`, args: ['-k', 'gthread', '-w', '1', '--threads', String(auto)], connections: 100 },
  { app: 'cpu', label: 'async -w 1', args: ['-k', 'async', '-w', '1'], connections: 20 },
  { app: 'cpu', label: 'async -w 2 (= cores)', args: ['-k', 'async', '-w', '2'], connections: 20 },
  { app: 'cpu', label: `async -w ${auto} (auto)`, args: ['-k', 'async', '-w', 'auto'], connections: 20 },
  { app: 'cpu', label: 'sync -w 2', args: ['-k', 'sync', '-w', '2'], connections: 20 },
  { app: 'cpu', label: 'gthread -w 1 --threads 2', args: ['-k', 'gthread', '-w', '1', '--threads', '2'], connections: 20 },
  { app: 'memory', label: 'async -w 4', args: ['-k', 'async', '-w', '4'], connections: 20 },
  { app: 'memory', label: 'sync -w 4', args: ['-k', 'sync', '-w', '4'], connections: 20 },
  { app: 'memory', label: 'gthread -w 1 --threads 4', args: ['-k', 'gthread', '-w', '1', '--threads', '4'], connections: 20 },
];

/** Resident memory of a process and all its descendants, from /proc (threads are in their process's RSS). */
export function treeRssMb(root: number): number {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* exited */
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid; p && p > 1; p = parent.get(p)) if (p === root) return true;
    return false;
  };
  let kb = 0;
  for (const pid of parent.keys()) {
    if (!inTree(pid)) continue;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      /* exited */
    }
  }
  return kb / 1024;
}

function get(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

async function startServer(c: Case): Promise<{ child: ChildProcess; port: number; log: () => string }> {
  let log = '';
  const child = spawn(process.execPath, [...MASTER_NODE_FLAGS, CLI, '-b', '127.0.0.1:0', '--timeout', '120', ...c.args, app(c.app)], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PORT: '', WEB_CONCURRENCY: '', TUNICORN_CMD_ARGS: '' },
    detached: true,
  });
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const deadline = Date.now() + 60_000;
  let port = 0;
  while (!port) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`server did not start: ${log}`);
    port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(log)?.[1] ?? 0);
    if (!port) await new Promise((r) => setTimeout(r, 100));
  }
  // Ready when the master says every worker serves (each has loaded the app, so the memory app's heaps are
  // built), and one request is answered.
  while (!/\] Ready: /.test(log) || (await get(port)) !== 200) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`server did not get ready: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port, log: () => log };
}

interface Wrk {
  rps: number;
  p99ms: number;
  errors: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

function runWrk(port: number, connections: number, seconds: number): Promise<Wrk> {
  return new Promise((resolve, reject) => {
    execFile(
      'wrk',
      ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '--timeout', '10s', '--latency', `http://127.0.0.1:${port}/`],
      { timeout: (seconds + 20) * 1000 },
      (err, out) => {
        if (err) return reject(err);
        const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
        const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '';
        const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
        const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
        const errors = non2xx + (sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0);
        resolve({ rps, p99ms: toMs(p99), errors });
      },
    );
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    /* gone */
  }
  await exited;
}

/**
 * Runs the matrix and prints one table per app. `seconds`: wrk duration per case (default 5; the whole run
 * stays under 4 minutes on a 2-core machine).
 */
export async function runConcurrency(opts: { seconds?: number; cases?: readonly Case[]; print?: (line: string) => void } = {}): Promise<Result[]> {
  const seconds = opts.seconds ?? 5;
  const print = opts.print ?? ((l: string) => console.log(l));
  if (!existsSync(CLI)) throw new Error('dist/ is missing: run npm run build first');
  const results: Result[] = [];
  print(`# Worker classes: ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model.trim()}), Node ${process.version}, wrk ${seconds} s per case, loopback`);
  let current = '';
  for (const c of opts.cases ?? CASES) {
    if (c.app !== current) {
      current = c.app;
      print(`\n## ${c.app}\n\n| configuration | connections | requests/s | p99 latency | total RSS | errors |\n|---|---:|---:|---:|---:|---:|`);
    }
    const server = await startServer(c);
    try {
      const w = await runWrk(server.port, c.connections, seconds);
      const rssMb = treeRssMb(server.child.pid!);
      const r: Result = { ...c, ...w, rssMb };
      results.push(r);
      print(`| ${c.label} | ${c.connections} | ${r.rps.toFixed(0)} | ${r.p99ms.toFixed(1)} ms | ${r.rssMb.toFixed(0)} MB | ${r.errors} |`);
    } finally {
      await stop(server.child);
    }
  }
  return results;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runConcurrency().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
