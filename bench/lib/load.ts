/** The load generator: wrk (Debian's package) where present, else autocannon, always against loopback. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LoadSpec {
  readonly id: string;
  readonly label: string;
  readonly path: string;
  readonly connections: number;
  readonly close?: boolean;
  readonly body?: string;
  readonly tls?: boolean;
}

export interface Sample {
  readonly rps: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly requests: number;
  readonly errors: number;
  readonly errorDetail: string;
  /** CPU time of the server's processes (master and workers) per request, in microseconds. */
  cpuUsPerReq?: number;
}

export type Generator = 'wrk' | 'autocannon';

/** The Lua script that makes wrk send the load's request and print exact figures as one JSON line. */
function wrkScript(load: LoadSpec, dir: string): string {
  const lines: string[] = [];
  if (load.body !== undefined) {
    const bodyFile = path.join(dir, `${load.id}.body`);
    fs.writeFileSync(bodyFile, load.body);
    lines.push('wrk.method = "POST"', `local f = io.open("${bodyFile}", "rb")`, 'wrk.body = f:read("*a")', 'f:close()');
    lines.push('wrk.headers["Content-Type"] = "application/json"');
  }
  if (load.close) lines.push('wrk.headers["Connection"] = "close"');
  lines.push(
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format(\'BENCHJSON {"requests":%d,"us":%d,"p50":%d,"p99":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n\',',
    '    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))',
    'end',
  );
  const file = path.join(dir, `${load.id}.lua`);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

export function wrkArgs(load: LoadSpec, port: number, seconds: number, script: string): string[] {
  const threads = Math.min(2, load.connections);
  const url = `${load.tls ? 'https' : 'http'}://127.0.0.1:${port}${load.path}`;
  return ['-t', String(threads), '-c', String(load.connections), '-d', `${seconds}s`, '--timeout', '5s', '-s', script, url];
}

export async function runLoad(gen: Generator, load: LoadSpec, port: number, seconds: number, tmp: string): Promise<Sample> {
  return gen === 'wrk' ? runWrk(load, port, seconds, tmp) : runAutocannon(load, port, seconds);
}

async function runWrk(load: LoadSpec, port: number, seconds: number, tmp: string): Promise<Sample> {
  const script = wrkScript(load, tmp);
  const child = spawn('wrk', wrkArgs(load, port, seconds, script), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const m = out.match(/BENCHJSON (\{.*\})/);
  if (!m) throw new Error(`wrk exited with ${code} and no result: ${out.trim().slice(0, 300)}`);
  const j = JSON.parse(m[1]!) as Record<string, number>;
  const non2xx = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const errors = j.connect! + j.read! + j.write! + j.timeout! + non2xx;
  const parts = (['connect', 'read', 'write', 'timeout'] as const).filter((k) => j[k]! > 0).map((k) => `${k} ${j[k]}`);
  if (non2xx) parts.push(`non-2xx ${non2xx}`);
  return {
    rps: Math.round(j.requests! / (j.us! / 1e6)),
    p50ms: j.p50! / 1000,
    p99ms: j.p99! / 1000,
    requests: j.requests!,
    errors,
    errorDetail: parts.join(', '),
  };
}

async function runAutocannon(load: LoadSpec, port: number, seconds: number): Promise<Sample> {
  const name = 'autocannon'; // untyped package: imported by name so the type checker does not ask for types
  const { default: autocannon } = (await import(name)) as { default: (o: object) => Promise<any> };
  const headers: Record<string, string> = {};
  if (load.close) headers.connection = 'close';
  if (load.body !== undefined) headers['content-type'] = 'application/json';
  const r = await autocannon({
    url: `http://127.0.0.1:${port}${load.path}`,
    connections: load.connections,
    duration: seconds,
    method: load.body !== undefined ? 'POST' : 'GET',
    body: load.body,
    headers,
  });
  return {
    rps: Math.round(r.requests.total / (r.duration || seconds)),
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    requests: r.requests.total,
    errors: r.errors + r.timeouts + r.non2xx,
    errorDetail: r.errors + r.timeouts + r.non2xx ? `errors ${r.errors}, timeouts ${r.timeouts}, non-2xx ${r.non2xx}` : '',
  };
}

/**
 * The order the servers run in, round `round`: a different shuffle each round (seeded by the round, so a run
 * can be repeated), so that no server always runs first, or always just after the same neighbour. What the
 * server before did matters for a 1 s run: its garbage collection and the kernel's clean-up after a busy
 * load run into the next server's second. Measured on 2026-11-27 with four servers and 1 s runs (14 rounds):
 * tunicorn / the limit was 1.20 x when tunicorn ran after a gthread server and the limit after a Fetch one,
 * 0.86 x the other way round. A rotation (the order before) keeps every server behind the same neighbour.
 */
export function roundOrder<T>(ids: readonly T[], round: number): T[] {
  const out = [...ids];
  // mulberry32
  let seed = (round + 1) * 0x9e3779b9;
  const next = (): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
