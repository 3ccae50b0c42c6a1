/**
 * Turns the raw results into tables: ratios to the baselines of the same run and the issue's targets.
 * `node --import tsx bench/report.ts [results.json]` regenerates docs/benchmarks.md from a results file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sample } from './lib/load.js';
import type { LoadResult, Memory, RawResults } from './lib/types.js';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const ok = (xs: (Sample | null)[] | undefined): Sample[] => (xs ?? []).filter((x): x is Sample => x !== null);

export interface Stats {
  readonly rps: number;
  /** Half the range of the rounds, as a share of the median. */
  readonly spread: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly n: number;
  /** Median CPU time of the server's processes per request, in microseconds. */
  readonly cpu: number;
}

export function stats(load: LoadResult, id: string): Stats | null {
  const s = ok(load.samples[id]);
  if (!s.length) return null;
  const rps = s.map((x) => x.rps);
  const m = median(rps);
  return {
    rps: m,
    spread: s.length > 1 ? (Math.max(...rps) - Math.min(...rps)) / 2 / m : 0,
    p50: median(s.map((x) => x.p50ms)),
    p99: median(s.map((x) => x.p99ms)),
    errors: s.reduce((a, x) => a + x.errors, 0),
    n: s.length,
    cpu: median(s.filter((x) => x.cpuUsPerReq !== undefined).map((x) => x.cpuUsPerReq!)),
  };
}

/** a / b in requests/s (or in p99 latency), round by round (a round's runs are minutes apart at most). */
function roundRatios(load: LoadResult, a: string, b: string, of: 'rps' | 'p99ms' = 'rps'): number[] | null {
  const sa = load.samples[a];
  const sb = load.samples[b];
  if (!sa || !sb) return null;
  const rs: number[] = [];
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) if (sa[i] && sb[i] && sb[i]![of] > 0) rs.push(sa[i]![of] / sb[i]![of]);
  return rs;
}

/** a / b in requests/s: the median of the per-round ratios. */
export function ratio(load: LoadResult, a: string, b: string): number | null {
  const rs = roundRatios(load, a, b);
  return rs?.length ? median(rs) : null;
}

/**
 * The middle half of the per-round ratios a / b (their 25th and 75th percentiles, interpolated), or null with
 * fewer than 4 rounds. How far one run's median can be trusted: a goal inside this range is within the noise.
 * `of`: requests/s, or the p99 latency.
 */
export function ratioQuartiles(load: LoadResult, a: string, b: string, of: 'rps' | 'p99ms' = 'rps'): [number, number] | null {
  const rs = roundRatios(load, a, b, of);
  if (!rs || rs.length < 4) return null;
  const s = [...rs].sort((x, y) => x - y);
  const at = (q: number) => {
    const i = q * (s.length - 1);
    const lo = Math.floor(i);
    return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (i - lo);
  };
  return [at(0.25), at(0.75)];
}

/** CPU per request of a over b: the median of the per-round ratios. */
export function cpuRatio(load: LoadResult, a: string, b: string): number | null {
  const sa = load.samples[a];
  const sb = load.samples[b];
  if (!sa || !sb) return null;
  const rs: number[] = [];
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) if (sa[i]?.cpuUsPerReq && sb[i]?.cpuUsPerReq) rs.push(sa[i]!.cpuUsPerReq! / sb[i]!.cpuUsPerReq!);
  return rs.length ? median(rs) : null;
}

/** The better of the two bare setups (the limit, node:cluster) in this load. */
export function bestBare(load: LoadResult): string | null {
  const l = stats(load, 'limit');
  const c = stats(load, 'cluster');
  if (!l && !c) return null;
  if (!l) return 'cluster';
  if (!c) return 'limit';
  return l.rps >= c.rps ? 'limit' : 'cluster';
}

const fx = (x: number | null | undefined, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));
const mb = (m: number | null | undefined) => (m === null || m === undefined ? '–' : m.toFixed(1));

export interface Target {
  readonly what: string;
  readonly goal: string;
  readonly measured: string;
  readonly pass: boolean | null;
  /**
   * For a target that compares tunicorn's listener with another server: the same ratio for the best bare setup
   * of the load, i.e. the most a server with no cost of its own showed in this run; '–' for the others.
   */
  readonly ceiling: string;
  /** For a ratio: the middle half of its per-round values (see ratioQuartiles); '–' for the others. */
  readonly rounds: string;
}

/**
 * A ratio to two places; a miss that two places would round up onto its goal (0.9696 against 0.97) gets three,
 * cut rather than rounded (0.969), so that the figure shown is below the goal too.
 */
export function beside(r: number, goal: number): string {
  const two = r.toFixed(2);
  return r < goal && Number(two) >= goal ? (Math.floor(r * 1000) / 1000).toFixed(3) : two;
}

export function targets(raw: RawResults): Target[] {
  const load = (id: string) => raw.loads.find((l) => l.id === id);
  const out: Target[] = [];
  const addRatio = (what: string, loadId: string, a: string, b: string | null, min: number) => {
    const l = load(loadId);
    const r = l && b ? ratio(l, a, b) : null;
    const bare = l ? bestBare(l) : null;
    const ceiling = a === 'tunicorn' && l && b && bare && bare !== b ? ratio(l, bare, b) : null;
    const q = l && b ? ratioQuartiles(l, a, b) : null;
    out.push({
      what,
      goal: `>= ${min} x`,
      measured: r === null ? 'not measured' : `${beside(r, min)} x${b ? ` (vs ${b})` : ''}`,
      pass: r === null ? null : r >= min,
      ceiling: ceiling === null ? '–' : `${ceiling.toFixed(2)} x (${bare})`,
      rounds: q === null ? '–' : `${q[0].toFixed(2)}-${q[1].toFixed(2)} x`,
    });
  };
  for (const [loadId, name] of [['ka64', 'keep-alive'], ['close', 'Connection: close']] as const) {
    const l = load(loadId);
    const bare = l ? bestBare(l) : null;
    addRatio(`own cost, ${name}, access log off: tunicorn / best bare`, loadId, 'tunicorn', bare, 0.97);
    addRatio(`own cost, ${name}, access log on: tunicorn / best bare`, loadId, 'tunicorn-log', bare, 0.9);
  }
  addRatio('keep-alive: tunicorn / PM2', 'ka64', 'tunicorn', 'pm2', 1.1);
  addRatio('Connection: close: tunicorn / node:cluster', 'close', 'tunicorn', 'cluster', 1.5);
  addRatio('Connection: close: tunicorn / PM2', 'close', 'tunicorn', 'pm2', 3);
  addRatio('Fetch handler / raw listener (both tunicorn), keep-alive', 'ka64', 'tunicorn-fetch', 'tunicorn', 0.9);
  addRatio('Fetch handler: tunicorn / @hono/node-server, keep-alive', 'ka64', 'tunicorn-fetch', 'hono', 1.3);
  addRatio("the seed's stack: tunicorn / Gunicorn+Uvicorn+FastAPI, keep-alive", 'ka64', 'tunicorn', 'seed', 4);
  const t = raw.servers.tunicorn;
  const master = t?.idle?.master ?? null;
  out.push({ what: 'master RSS, idle', goal: '<= 50 MB', measured: master === null ? 'not measured' : `${mb(master)} MB`, pass: master === null ? null : master <= 50, ceiling: '–', rounds: '–' });
  const tw = maxOf(t?.idle?.workers);
  const plain = raw.servers.plain?.idle?.master ?? null;
  out.push({
    what: 'worker RSS, idle, vs one plain Node process + 10 MB',
    goal: plain === null ? '<= plain + 10 MB' : `<= ${mb(plain + 10)} MB`,
    measured: tw === null ? 'not measured' : `${mb(tw)} MB (plain: ${mb(plain)} MB)`,
    pass: tw === null || plain === null ? null : tw <= plain + 10,
    ceiling: '–',
    rounds: '–',
  });
  const l = load('ka64');
  const tp = l ? stats(l, 'tunicorn') : null;
  const lp = l ? stats(l, 'limit') : null;
  const pq = l ? ratioQuartiles(l, 'tunicorn', 'limit', 'p99ms') : null;
  out.push({
    what: "p99 latency, keep-alive 64, vs the limit's + 10 %",
    goal: lp ? `<= ${fx(lp.p99 * 1.1)} ms` : '<= limit x 1.1',
    measured: tp ? `${fx(tp.p99)} ms (limit: ${fx(lp?.p99)} ms)` : 'not measured',
    pass: tp && lp ? tp.p99 <= lp.p99 * 1.1 : null,
    ceiling: '–',
    rounds: pq === null ? '–' : `${pq[0].toFixed(2)}-${pq[1].toFixed(2)} x`,
  });
  return out;
}

function maxOf(xs: (number | null)[] | undefined): number | null {
  const v = (xs ?? []).filter((x): x is number => x !== null);
  return v.length ? Math.max(...v) : null;
}

function memCell(m: Memory | null): [string, string] {
  if (!m) return ['–', '–'];
  return [mb(m.master), m.workers.length ? m.workers.map(mb).join(', ') : '(none)'];
}

function loadTable(raw: RawResults, load: LoadResult): string {
  const bare = bestBare(load);
  const has = (id: string) => load.servers.includes(id) && stats(load, id) !== null;
  const cols: [string, string | null][] = [
    [`vs best bare${bare ? ` (${bare})` : ''}`, bare],
    ['vs node:cluster', has('cluster') ? 'cluster' : null],
    ['vs PM2', has('pm2') ? 'pm2' : null],
    ['vs plain', has('plain') ? 'plain' : null],
    ['vs seed', has('seed') ? 'seed' : null],
  ];
  if (load.id === 'tls') cols.splice(0, 5, ['vs limit (TLS)', has('limit-tls') ? 'limit-tls' : null], ['vs plain (TLS)', has('plain-tls') ? 'plain-tls' : null]);
  const used = cols.filter(([, id]) => id !== null);
  const head = ['server', 'req/s', '±', 'p50 ms', 'p99 ms', 'errors', 'CPU µs/req', ...used.map(([n]) => n)];
  const rows = load.servers.map((id) => {
    const s = stats(load, id);
    const label = raw.servers[id]?.label ?? id;
    if (!s) return [label, 'failed', '', '', '', '', '', ...used.map(() => '')];
    return [
      label,
      Math.round(s.rps).toLocaleString('en-US'),
      `${Math.round(s.spread * 100)} %`,
      fx(s.p50),
      fx(s.p99),
      String(s.errors),
      fx(s.cpu, 1),
      ...used.map(([, b]) => (b === id ? '1.00' : fx(ratio(load, id, b!)))),
    ];
  });
  return table(head, rows);
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n') + '\n';
}

/**
 * The steady-state keep-alive figure (load ka64s: tunicorn and the limit alone), beside the target's: in ka64
 * every server idles while the thirteen others run, and this figure shows whether that idling changes the ratio.
 */
export function steadyNote(raw: RawResults): string {
  const s = raw.loads.find((x) => x.id === 'ka64s');
  const r = s ? ratio(s, 'tunicorn', 'limit') : null;
  if (!s || r === null) return '';
  const cpu = cpuRatio(s, 'tunicorn', 'limit');
  return (
    `\nSteady state at keep-alive (tunicorn and the limit alone, alternating in ${s.rounds} rounds of ${s.seconds} s, so neither idles longer than one round): ` +
    `tunicorn ${fx(r)} x the limit's requests/s${cpu === null ? '' : `, ${fx(cpu)} x its CPU per request`}. ` +
    'The keep-alive target above is read from the load with every server, where each idles 15-20 s between its 1 s runs (docs/design.md, "After an idle spell").\n'
  );
}

/**
 * The Fetch targets' handler (bench/servers/apps/fetch.mjs) routes with `new URL(request.url)`, as idiomatic
 * Fetch code does, where the raw listener compares `req.url`: the parse is the app's cost, not the bridge's. The
 * fetch-ratio study serves a hello handler and listener that route nothing (one worker each), and gives the
 * bridge's own ratio; printed beside the targets when the run has it. Its `--routed` run serves the keep-alive
 * load's own apps, one process a server: with the gain of a second process on this machine (the limit over one
 * plain process), it says what the target against one @hono/node-server process asks of each worker.
 */
export function fetchNote(raw: RawResults): string {
  const f = raw.extra.fetchRatio as { fetchVsListener?: unknown; cpuFetchVsListener?: unknown } | undefined;
  let md = '';
  if (f && typeof f.fetchVsListener === 'number') {
    const cpu = typeof f.cpuFetchVsListener === 'number' && f.cpuFetchVsListener > 0 ? f.cpuFetchVsListener : null;
    md +=
      '\nFetch handler without routing: the Fetch targets\' handler parses its URL (`new URL(request.url)`, as idiomatic Fetch ' +
      'code does; the raw listener compares `req.url`), and that parse is the app\'s cost. The fetch-ratio study below serves ' +
      `a hello handler and listener that route nothing, one worker each: the Fetch handler at ${fx(f.fetchVsListener)} x the listener's requests/s` +
      `${cpu === null ? '' : `, ${fx(1 / cpu)} x its CPU per request`} (docs/design.md, "The Fetch bridge's own cost").\n`;
  }
  const g = raw.extra.fetchRatioRouted as { fetchVsHono?: unknown; cpuFetchVsHono?: unknown; fetchVsListener?: unknown } | undefined;
  if (g && typeof g.fetchVsHono === 'number' && typeof g.fetchVsListener === 'number') {
    const l = raw.loads.find((x) => x.id === 'ka64');
    const two = l ? ratio(l, 'limit', 'plain') : null;
    const cpu = typeof g.cpuFetchVsHono === 'number' ? `, ${fx(g.cpuFetchVsHono)} x its requests per CPU second` : '';
    md +=
      `\nThe Fetch targets with one process a server (the fetch-ratio study's \`--routed\` run, with the keep-alive load's own apps): ` +
      `tunicorn's Fetch handler at ${fx(g.fetchVsHono)} x @hono/node-server's requests/s${cpu}, and ${fx(g.fetchVsListener)} x the raw listener's.`;
    if (two !== null && two > 0)
      md +=
        ` A second process gave ${fx(two)} x on this machine, where the load generator shares the cores (the limit over one plain ` +
        `node:http process, keep-alive 64): against one @hono/node-server process, the 1.3 x target asks each of tunicorn's two ` +
        `workers for ${fx(1.3 / two)} x what that process serves.`;
    md += '\n';
  }
  return md;
}

/**
 * The seed's stack three ways at keep-alive 64: the target reads its best configuration (uvloop and httptools);
 * the issue's own table, where the 4 x was set, measured it at the speed of uvicorn's pure-Python h11 parser
 * (seed-h11 with uvloop, seed-asyncio with asyncio's loop). Says how tunicorn and the limit compare with each.
 */
export function seedNote(raw: RawResults): string {
  const l = raw.loads.find((x) => x.id === 'ka64');
  if (!l || !l.servers.includes('seed')) return '';
  const each = (id: string, how: string) => {
    const r = stats(l, id)?.rps ?? null;
    if (r === null) return null;
    const vsCluster = ratio(l, id, 'cluster');
    const us = ratio(l, 'tunicorn', id);
    const limit = ratio(l, 'limit', id);
    return (
      `${how}, ${Math.round(r).toLocaleString('en-US')} requests/s` +
      `${vsCluster === null ? '' : ` (${fx(vsCluster)} x node:cluster)`}` +
      `${us === null ? '' : `: tunicorn ${fx(us)} x it`}${limit === null ? '' : `, the limit ${fx(limit)} x`}`
    );
  };
  const best = each('seed', 'uvloop and httptools');
  const h11 = [each('seed-h11', 'uvloop and h11'), each('seed-asyncio', 'asyncio and h11')].filter((x) => x !== null);
  if (best === null || h11.length === 0) return '';
  return (
    `\nThe seed's stack three ways (keep-alive 64), as its target reads it: its best configuration, ${best}. ` +
    `With uvicorn's pure-Python h11 parser, as it runs where httptools is not installed (Debian's python3-uvicorn does ` +
    `not depend on it, and pip's \`uvicorn\` without \`[standard]\` brings neither httptools nor uvloop): ${h11.join('; ')}. ` +
    `The issue's table, where the 4 x goal was set, had the seed's stack at 0.21 x node:cluster with uvloop and 0.10 x ` +
    `with asyncio (docs/design.md, "The seed's stack, three ways").\n`
  );
}

/**
 * How often each server's threads woke at rest, tunicorn's beside the setups it is compared with; printed
 * beside the targets (and in the README) when the run counted them.
 */
export function idleNote(raw: RawResults): string {
  const parts = ['tunicorn', 'limit', 'cluster', 'pm2', 'seed'].flatMap((id) => {
    const s = raw.servers[id];
    return s?.idleWakeups == null ? [] : [`${s.label}: ${s.idleWakeups}`];
  });
  if (parts.length === 0) return '';
  return (
    `\nAt rest after the loads, the threads of each server's processes woke this many times a second${idleWindow(raw)}: ` +
    `${parts.join('; ')} (every server in the Memory table below; docs/design.md, "An idle server").\n`
  );
}

function sections(raw: RawResults): string {
  let md = '';
  md += '## Targets\n\n';
  md += targetsTable(raw, '**missed**');
  md += CEILING_NOTE;
  const cpuNotes: string[] = [];
  for (const id of ['ka64', 'close']) {
    const l = raw.loads.find((x) => x.id === id);
    const bare = l ? bestBare(l) : null;
    if (!l || !bare) continue;
    for (const t of ['tunicorn', 'tunicorn-log']) {
      const r = cpuRatio(l, t, bare);
      if (r !== null) cpuNotes.push(`${t} ${fx(r)} x the CPU per request of ${bare} (${id === 'ka64' ? 'keep-alive' : 'Connection: close'})`);
    }
  }
  if (cpuNotes.length)
    md += `\nThe same cost as CPU time per request (master and workers, from /proc; less sensitive than req/s to what else the machine runs): ${cpuNotes.join('; ')}.\n`;
  md += steadyNote(raw);
  md += fetchNote(raw);
  md += seedNote(raw);
  md += idleNote(raw);
  for (const load of raw.loads) {
    const warm = load.warmupSeconds ? `, after an unrecorded round of ${load.warmupSeconds} s a server` : '';
    md += `\n## ${load.label}\n\n${load.rounds} interleaved round(s) of ${load.seconds} s${warm}; \`${load.command}\`\n\n`;
    md += loadTable(raw, load);
  }
  md += `\n## Memory (RSS, MB), start-up and idle wakeups\n\nRSS is VmRSS from /proc; workers are the master's child processes (PM2: its daemon's). Start-up is the time from spawning the command to the first 200 on GET /. Idle wakeups: how many times a second the threads of the master and its workers woke (voluntary context switches, /proc), every server at rest after the loads${idleWindow(raw)}.\n\n`;
  md += table(
    ['server', 'start-up ms', 'master idle', 'workers idle', 'master after load', 'workers after load', 'idle wakeups/s'],
    Object.entries(raw.servers).map(([, s]) => {
      const [mi, wi] = memCell(s.idle);
      const [ml, wl] = memCell(s.loaded);
      return [s.label, s.startupMs === null ? '–' : String(s.startupMs), mi, wi, ml, wl, s.idleWakeups == null ? '–' : String(s.idleWakeups)];
    }),
  );
  const hups = Object.entries(raw.servers).filter(([, s]) => s.hupMs.length);
  if (hups.length) {
    md += '\n## HUP: time to replace every worker\n\nFrom `kill -HUP master` until none of the old workers is a child any more, the full count is back and GET / answers.\n\n';
    md += table(['server', 'HUP ms (each)', 'median'], hups.map(([, s]) => [s.label, s.hupMs.join(', '), String(median(s.hupMs))]));
  }
  const w = raw.servers.tunicorn?.idle;
  const nw = raw.servers['tunicorn-nowatchdog']?.idle;
  if (w && nw) {
    const a = maxOf(w.workers);
    const b = maxOf(nw.workers);
    if (a !== null && b !== null)
      md += `\nThe heartbeat (on while \`timeout\` > 0): a worker with it ${mb(a)} MB idle, with \`-t 0\` ${mb(b)} MB. The stall watcher (a ${raw.versions['stall watcher'] ?? 'worker thread'} in this run) runs in both: with \`-t 0\` it ends a worker stuck once its master is gone.\n`;
  }
  return md;
}

/** The idle-wakeups window, as the report says it. */
function idleWindow(raw: RawResults): string {
  return raw.idleWakeSeconds ? `, over ${raw.idleWakeSeconds} s` : '';
}

/** Other work above this share of the cores, before or after a run, makes its figures suspect. */
export const BUSY_PERCENT = 25;
const RERUN = 'its figures carry that noise. Rerun `npm run bench` on an idle machine before relying on them.';

/**
 * A run made while other work kept the cores busy says so: its ratios are mostly that work's noise. Measured
 * (from /proc/stat) just before the servers start and just after they stop, so the run's own load does not
 * count. Results from before that measurement existed are judged by their load averages, which do count it.
 */
export function busyWarning(raw: RawResults): string | null {
  const cores = Number(raw.machine.nproc);
  const measured = [raw.machine.busyPercentAtStart, raw.machine.busyPercentAtEnd].filter((v) => v !== undefined && v !== 'unknown').map(Number);
  if (measured.length) {
    const worst = Math.max(...measured);
    if (!(worst > BUSY_PERCENT)) return null;
    return `Other work kept ${worst} % of the ${cores} cores busy around this run (measured with none of its servers running): ${RERUN}`;
  }
  const loads = [raw.machine.loadAverageAtStart, raw.machine.loadAverageAtEnd].map((l) => Number(String(l ?? '0').split(' ')[0]));
  const worst = Math.max(...loads);
  if (!(worst > 1.5 * cores)) return null;
  return `The machine was busy during this run (1-minute load average up to ${worst} on ${cores} cores): ${RERUN}`;
}

export function renderTerminal(raw: RawResults): string {
  const busy = busyWarning(raw);
  let out = `\n${raw.mode} run, ${raw.durationS} s, load generator ${raw.generator}\n${busy ? `\nWARNING: ${busy}\n` : ''}\n${sections(raw)}`;
  if (raw.skipped.length) out += `\nSkipped:\n${raw.skipped.map((s) => `- ${s.what}: ${s.why}`).join('\n')}\n`;
  return out;
}

export function renderMarkdown(raw: RawResults, jsonPath: string): string {
  const m = raw.machine;
  let md = `# Benchmarks\n\nGenerated by \`${raw.command}\` from [${path.basename(jsonPath)}](../${jsonPath}) (raw results); do not edit by hand.\n`;
  md += 'Every figure is from one run; servers ran side by side and were measured in interleaved rounds (A B C, B C A, ...), ';
  md += 'so ratios between servers of this run are what counts: absolute numbers move by ±15 % between runs on this machine. ';
  md += 'Load generator and servers share the 2 cores; loopback only.\n\n';
  const busy = busyWarning(raw);
  if (busy) md += `> **${busy}**\n\n`;
  md += `- Date: ${raw.date}; the run took ${raw.durationS} s\n`;
  md += `- Machine: ${m.nproc} cores (${m.cpu}), ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}; load average (1, 5, 15 min) ${m.loadAverageAtStart} at the start, ${m.loadAverageAtEnd} at the end${m.busyPercentAtStart !== undefined ? `; other work ${m.busyPercentAtStart} % of the cores before the run, ${m.busyPercentAtEnd ?? 'unknown'} % after it` : ''}\n`;
  md += `- Versions: ${Object.entries(raw.versions).map(([k, v]) => `${k} ${v}`).join(', ')}\n`;
  md += `- Load generator: ${raw.generator}, one Lua script per load (\`-s\`) that sets the method, body and headers and prints the exact percentiles\n`;
  md += `- Workers: 2 per multi-process server (one per core); the seed's stack 3 (its best measured configuration, uvloop and httptools${raw.servers['seed-h11'] ? "; at keep-alive 64 also with uvicorn's h11 parser" : ''})\n\n`;
  md += sections(raw);
  md += '\n## Commands\n\n';
  md += table(['server', 'command'], Object.values(raw.servers).map((s) => [s.label, `\`${s.command.replace(/\|/g, '\\|')}\``]));
  md += '\nPORT is a free port picked per run; $TMP a temporary folder. PM2 runs with its own PM2_HOME there and its daemon is killed afterwards.\n';
  if (raw.skipped.length) md += `\n## Skipped\n\n${raw.skipped.map((s) => `- ${s.what}: ${s.why}`).join('\n')}\n`;
  const extras = Object.entries(raw.extra).filter(([, v]) => v !== undefined);
  if (extras.length) {
    md += '\n## Other measurements in this run\n\n';
    for (const [k, v] of extras) md += `### ${k}\n\n\`\`\`json\n${JSON.stringify(v, null, 2)}\n\`\`\`\n\n`;
  }
  return md;
}

const README_START = '<!-- bench:start (generated by npm run bench from bench/results/latest.json) -->';
const README_END = '<!-- bench:end -->';

/** The README's headline ratios: the targets table of the run, between markers, so every full run updates it. */
export function updateReadme(readme: string, raw: RawResults): string {
  const a = readme.indexOf(README_START);
  const b = readme.indexOf(README_END);
  if (a < 0 || b < a) return readme;
  const busy = busyWarning(raw);
  let block = `${README_START}\n`;
  block += `From the run of ${raw.date.slice(0, 10)} on ${raw.machine.nproc} cores, Node ${raw.machine.node} ([all figures, commands and versions](docs/benchmarks.md)):\n\n`;
  if (busy) block += `> ${busy}\n\n`;
  block += targetsTable(raw, 'missed') + CEILING_NOTE + seedNote(raw) + idleNote(raw);
  return readme.slice(0, a) + block + readme.slice(b);
}

const CEILING = 'best bare, same ratio';
const ROUNDS = 'rounds, middle half';
const CEILING_NOTE =
  `\n"${ROUNDS}": the 25th to 75th percentile of the per-round ratios whose median is "measured"; where the goal ` +
  'lies inside it, this run cannot tell met from missed (on this machine one server\'s requests/s can differ by ' +
  'half between two consecutive 2 s runs: docs/design.md, "The benchmark"). For the p99 row: tunicorn\'s p99 over ' +
  `the limit's, round by round, against the goal's 1.10 x. "${CEILING}": the same ratio for the best ` +
  'bare setup of that load, a server with no cost of its own; a goal above it was not reached by node:http itself, ' +
  'with nothing added, in this run.\n';

/** The targets as a table; `missed` is how a missed one is marked. */
function targetsTable(raw: RawResults, missed: string): string {
  return table(
    ['target', 'goal', 'measured', '', ROUNDS, CEILING],
    targets(raw).map((t) => [t.what, t.goal, t.measured, t.pass === null ? 'not measured' : t.pass ? 'met' : missed, t.rounds, t.ceiling]),
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const file = process.argv[2] ?? path.join(root, 'bench/results/latest.json');
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as RawResults;
  fs.writeFileSync(path.join(root, 'docs/benchmarks.md'), renderMarkdown(raw, path.relative(root, file)));
  const readme = path.join(root, 'README.md');
  fs.writeFileSync(readme, updateReadme(fs.readFileSync(readme, 'utf8'), raw));
  process.stdout.write(renderTerminal(raw));
}
