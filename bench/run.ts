/**
 * `npm run bench [-- --quick] [-- --only=id,id] [-- --loads=id,id]`: tunicorn against the bare setups and the
 * servers people use today, in one run, interleaved, on loopback only. `--only` starts only those servers,
 * `--loads` runs only those loads (and not the Fetch and worker-class extras); either makes a partial run,
 * written to bench/results/quick.json and not to the report. Writes bench/results/latest.json (raw) and
 * docs/benchmarks.md (generated from it), and prints the table with the ratios.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { roundOrder, runLoad, wrkArgs, type Generator, type LoadSpec } from './lib/load.js';
import { alive, busyShare, freePort, get, sleep, threadSwitches, wakeupsPerS } from './lib/proc.js';
import { ALL_SERVERS, ROOT, Running, seedStackMissing, WORKERS, SEED_WORKERS, type Env } from './lib/servers.js';
import type { LoadResult, RawResults, ServerResult } from './lib/types.js';
import { BUSY_PERCENT, renderMarkdown, renderTerminal, updateReadme } from './report.js';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const onlyArg = argv.find((a) => a.startsWith('--only='))?.slice(7);
const ONLY = onlyArg ? new Set(onlyArg.split(',')) : null;
const loadsArg = argv.find((a) => a.startsWith('--loads='))?.slice(8);
const LOADS_ONLY = loadsArg !== undefined ? new Set(loadsArg.split(',')) : null;
const PARTIAL = QUICK || ONLY !== null || LOADS_ONLY !== null;
const OUT_JSON = path.join(ROOT, 'bench/results', PARTIAL ? 'quick.json' : 'latest.json');
const DOCS = path.join(ROOT, 'docs/benchmarks.md');
/** How long every server is watched at rest, after the loads, for its wakeups a second. */
const IDLE_WAKE_S = QUICK ? 3 : 10;

const body16k = JSON.stringify({ items: Array.from({ length: 400 }, (_, i) => ({ id: i, name: `item-${i}`, ok: i % 2 === 0 })) });

const LOADS: Record<string, LoadSpec> = {
  ka64: { id: 'ka64', label: 'keep-alive, 64 connections, GET / (hello JSON)', path: '/', connections: 64 },
  close: { id: 'close', label: 'Connection: close, 64 connections, GET /', path: '/', connections: 64, close: true },
  // The same load for tunicorn and the limit only, in 3 s rounds: each idles one round between its own runs,
  // where ka64's fourteen servers idle 15-20 s (docs/design.md, "After an idle spell"). Its ratio is printed
  // beside the targets as the steady-state cost; the targets read ka64.
  ka64s: { id: 'ka64s', label: 'keep-alive, 64 connections, GET /, steady state (tunicorn and the limit alone, alternating)', path: '/', connections: 64 },
  ka8: { id: 'ka8', label: 'keep-alive, 8 connections, GET /', path: '/', connections: 8 },
  ka256: { id: 'ka256', label: 'keep-alive, 256 connections, GET /', path: '/', connections: 256 },
  post: { id: 'post', label: `POST /echo, ${Math.round(body16k.length / 1024)} KB JSON echoed, 64 connections`, path: '/echo', connections: 64, body: body16k },
  big: { id: 'big', label: 'GET /big, 1 MB response, 16 connections', path: '/big', connections: 16 },
  slow: { id: 'slow', label: 'GET /slow, I/O-bound handler (awaits 50 ms), 256 connections', path: '/slow', connections: 256 },
  tls: { id: 'tls', label: 'TLS, keep-alive, 64 connections, GET /', path: '/', connections: 64, tls: true },
};

interface Group {
  readonly load: string;
  readonly servers: string[];
  readonly rounds: number;
  readonly seconds: number;
}

const HEADLINE = ['tunicorn', 'tunicorn-log', 'tunicorn-fetch', 'limit', 'cluster', 'pm2', 'plain', 'hono', 'seed'];
const GROUPS: Group[] = QUICK
  ? [
      { load: 'ka64', servers: HEADLINE, rounds: 2, seconds: 4 },
      { load: 'close', servers: HEADLINE, rounds: 2, seconds: 4 },
    ]
  : [
      // Sized so a whole run (these, the Fetch ratio and the worker-class matrix) stays under 15 minutes. The
      // two loads the targets read get more, shorter rounds: the ratios are medians of per-round ratios, and
      // a round of short runs compares servers measured closer together in time. (Short runs also weigh a
      // server's first second after idling more: docs/design.md, The benchmark.) The other loads run 2 s a
      // round: 3 s took the fresh-clone run (npm ci, the apt-get installs, the build) to 886 s on 2026-12-03.
      // The seed's stack also with uvicorn's h11 parser (seed-h11, seed-asyncio), near the speeds the issue's table
      // measured; the two add about 30 s to a run.
      { load: 'ka64', servers: [...HEADLINE, 'tunicorn-nowatchdog', 'tunicorn-express', 'tunicorn-fastify', 'tunicorn-sync', 'tunicorn-gthread', 'seed-h11', 'seed-asyncio'], rounds: 12, seconds: 1 },
      { load: 'close', servers: HEADLINE, rounds: 12, seconds: 1 },
      { load: 'ka64s', servers: ['tunicorn', 'limit'], rounds: 6, seconds: 3 },
      { load: 'ka8', servers: ['tunicorn', 'tunicorn-fetch', 'limit', 'cluster', 'pm2', 'plain'], rounds: 2, seconds: 2 },
      { load: 'ka256', servers: ['tunicorn', 'tunicorn-fetch', 'limit', 'cluster', 'pm2', 'plain', 'seed'], rounds: 2, seconds: 2 },
      { load: 'post', servers: ['tunicorn', 'tunicorn-fetch', 'tunicorn-express', 'tunicorn-fastify', 'limit', 'cluster', 'plain', 'hono'], rounds: 2, seconds: 2 },
      { load: 'big', servers: ['tunicorn', 'tunicorn-fetch', 'limit', 'cluster', 'plain', 'hono'], rounds: 2, seconds: 2 },
      { load: 'slow', servers: ['tunicorn', 'tunicorn-sync', 'tunicorn-gthread', 'tunicorn-fetch', 'limit', 'cluster', 'pm2', 'plain', 'seed'], rounds: 2, seconds: 2 },
      { load: 'tls', servers: ['tunicorn-tls', 'limit-tls', 'plain-tls'], rounds: 2, seconds: 2 },
    ].filter((g) => !LOADS_ONLY || LOADS_ONLY.has(g.load));
if (GROUPS.length === 0) {
  process.stderr.write(`bench: --loads=${loadsArg} names no load of this run; the loads are ${Object.keys(LOADS).join(', ')}\n`);
  process.exit(2);
}
/** Each group's unrecorded first round: seconds a server (see the measuring loop). */
const WARMUP_ROUND_SECONDS = 1;
/** Started for the memory figures only: what the watchdog thread costs a worker. */
const MEMORY_ONLY = ['tunicorn-nowatchdog', 'tunicorn-ts'];

const STARTED = performance.now();

/** A progress line, with the seconds since the run started (the whole run should stay under 15 minutes). */
function say(line: string): void {
  process.stderr.write(`[bench ${Math.round((performance.now() - STARTED) / 1000)}s] ${line}\n`);
}

function sh(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

function has(cmd: string): boolean {
  return sh('sh', ['-c', `command -v ${cmd}`]).ok;
}

/** Installs Debian packages when we are root; returns why not otherwise. */
let aptUpdated = false;
function aptInstall(pkgs: string[]): string | null {
  if (process.getuid?.() !== 0) return 'not root, cannot apt-get install';
  if (!has('apt-get')) return 'no apt-get on this machine';
  if (!aptUpdated) {
    say('apt-get update');
    sh('apt-get', ['update', '-q']);
    aptUpdated = true;
  }
  say(`apt-get install -y ${pkgs.join(' ')}`);
  const r = sh('apt-get', ['install', '-y', '-q', ...pkgs]);
  return r.ok ? null : `apt-get install ${pkgs.join(' ')} failed: ${r.out.split('\n').pop()}`;
}

function makeCert(tmp: string): Env['tls'] {
  const key = path.join(tmp, 'key.pem');
  const cert = path.join(tmp, 'cert.pem');
  const r = sh('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1']);
  return r.ok ? { key, cert } : null;
}

/** Whether tunicorn's workers load native/NAME.c in this run (src/native.ts): built, and not turned off. */
function nativeBuilt(name: string): boolean {
  return process.env.TUNICORN_NATIVE !== '0' && fs.existsSync(path.join(ROOT, 'dist/native', `${name}.node`));
}

function versionOf(pkg: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

function debVersion(pkg: string): string {
  const r = sh('dpkg-query', ['-W', '-f=${Version}', pkg]);
  return r.ok && r.out ? r.out : 'not installed';
}

function machine(): Record<string, string | number> {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  return {
    nproc: os.availableParallelism(),
    cpu,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    // Other work on the machine moves absolute numbers a lot; ratios within the run much less.
    loadAverageAtStart: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

/** How busy the machine is with work not ours, in % of all cores: measured while none of the bench's processes run. */
async function otherWork(): Promise<string> {
  const share = await busyShare(3000);
  return share === null ? 'unknown' : (share * 100).toFixed(0);
}

/** Seconds for a HUP to replace every worker: all old pids gone, the full count back, and an answer on GET /. */
async function hupTime(r: Running): Promise<number> {
  const master = r.masterPid;
  const old = new Set(r.workerPids());
  const t0 = performance.now();
  process.kill(master, 'SIGHUP');
  for (;;) {
    const now = r.workerPids();
    if (now.length >= WORKERS && now.every((p) => !old.has(p)) && [...old].every((p) => !alive(p) || !now.includes(p))) {
      if ((await get(r.port, '/', !!r.spec.tls)) === 200) return performance.now() - t0;
    }
    if (performance.now() - t0 > 60_000) throw new Error('HUP did not replace the workers within 60 s');
    await sleep(10);
  }
}

async function optionalExtra(file: string, fn: string, opts: Record<string, number | boolean> = {}): Promise<unknown> {
  const full = path.join(ROOT, 'bench', file);
  if (!fs.existsSync(full)) return { skipped: `${file} is not present` };
  try {
    const mod = (await import(full)) as Record<string, (opts: Record<string, number | boolean>) => Promise<unknown>>;
    if (typeof mod[fn] !== 'function') return { skipped: `${file} does not export ${fn}()` };
    say(`running ${file} ${fn}()`);
    return await mod[fn]!(opts);
  } catch (err) {
    return { failed: String(err instanceof Error ? err.message : err) };
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const machineAtStart = { ...machine(), busyPercentAtStart: await otherWork() };
  if (Number(machineAtStart.busyPercentAtStart) > BUSY_PERCENT)
    say(`warning: ${machineAtStart.busyPercentAtStart} % of the cores are busy with other work before the run starts; the figures will carry that noise`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunicorn-bench-'));
  const skipped: { what: string; why: string }[] = [];

  let generator: Generator = 'wrk';
  if (!has('wrk')) {
    const why = aptInstall(['wrk']);
    if (why || !has('wrk')) {
      generator = 'autocannon';
      skipped.push({ what: 'wrk', why: `${why ?? 'wrk still missing after apt-get'}; using autocannon, which runs in Node and loads the machine differently (ratios only compare within this run)` });
    }
  }
  if (seedStackMissing()) {
    const why = aptInstall(['gunicorn', 'python3-uvicorn', 'python3-fastapi', 'python3-uvloop', 'python3-httptools']);
    if (why) say(why);
  }
  const tls = has('openssl') ? makeCert(tmp) : null;
  const tunicornTls = sh(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), '--help']).out.includes('--certfile');
  const env: Env = { tmp, tls, tunicornTls };

  const wanted = new Set([...GROUPS.flatMap((g) => g.servers), ...MEMORY_ONLY].filter((id) => !ONLY || ONLY.has(id)));
  const specs = ALL_SERVERS.filter((s) => wanted.has(s.id));
  const running = new Map<string, Running>();
  const results: Record<string, ServerResult> = {};
  const cleanup = async () => {
    for (const r of running.values()) await r.stop();
  };
  process.on('SIGINT', () => void cleanup().finally(() => process.exit(130)));

  try {
    for (const spec of specs) {
      const why = spec.unavailable?.(env) ?? null;
      if (why) {
        skipped.push({ what: spec.label, why });
        say(`skip ${spec.id}: ${why}`);
        continue;
      }
      if (spec.id === 'tunicorn-tls' && generator !== 'wrk') continue;
      const r = new Running(spec, await freePort(), env);
      results[spec.id] = { label: spec.label, tunicorn: spec.tunicorn, command: r.commandLine, startupMs: null, idle: null, loaded: null, hupMs: [] };
      say(`start ${spec.id}: ${r.commandLine}`);
      try {
        await r.start();
        running.set(spec.id, r);
        results[spec.id]!.startupMs = Math.round(r.startupMs);
        const expected = spec.id === 'seed' ? SEED_WORKERS : spec.id === 'plain' || spec.id === 'hono' || spec.id === 'plain-tls' ? 0 : WORKERS;
        await r.settle(expected, 10_000);
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        results[spec.id]!.error = msg;
        skipped.push({ what: spec.label, why: `did not start: ${msg}` });
        say(`FAILED ${spec.id}: ${msg}`);
        await r.stop();
      }
    }

    // Idle memory once every server has had a second to settle (one pause for all, not one each).
    await sleep(1000);
    for (const [id, r] of running) results[id]!.idle = r.memory();

    // Warm every server up (JIT, connection pools) before anything is measured; each load then has its own
    // unrecorded round (below). With that round alone, the first recorded round at keep-alive still made
    // 0.67 x a Node server's median (one run, 2026-12-03); with both, 0.77-1.05 x (three runs).
    for (const [id, r] of running) {
      if (!GROUPS.some((g) => g.servers.includes(id))) continue;
      const warm = r.spec.tls ? LOADS.tls! : LOADS.ka64!;
      await runLoad(generator, warm, r.port, QUICK ? 1 : 2, tmp).catch(() => null);
    }

    const dropAccessLog = () => fs.rmSync(path.join(tmp, 'access.log'), { force: true });
    const loads: LoadResult[] = [];
    for (const g of GROUPS) {
      const load = LOADS[g.load]!;
      if (load.tls && generator !== 'wrk') {
        skipped.push({ what: load.label, why: 'autocannon is not set up for TLS here' });
        continue;
      }
      const ids = g.servers.filter((id) => running.has(id));
      if (ids.length < 2) continue;
      const result: LoadResult = {
        id: load.id,
        label: load.label,
        rounds: g.rounds,
        seconds: g.seconds,
        warmupSeconds: WARMUP_ROUND_SECONDS,
        command: generator === 'wrk' ? `wrk ${wrkArgs(load, 0, g.seconds, `bench-${load.id}.lua`).join(' ').replace(':0/', ':PORT/')}` : `autocannon -c ${load.connections} -d ${g.seconds}`,
        servers: ids,
        samples: Object.fromEntries(ids.map((id) => [id, []])),
      };
      // One unrecorded pass of this load first, 1 s a server in a round's order. A Node server's first run of
      // a load is slow while V8 compiles the code that load reaches (its connection set-up and teardown, its
      // body reading). Until 2026-12-03 the warm-up above was all: in the twelve full runs of 2026-11-27 to
      // 2026-12-03, a Node server's first recorded round made a median 0.77 x its own median at keep-alive
      // and 0.65 x at Connection: close, its second 0.98 x and 0.97 x; the seed's Python 0.99 x and 1.07 x in
      // its first (docs/design.md, The benchmark).
      for (const id of roundOrder(ids, -1)) await runLoad(generator, load, running.get(id)!.port, WARMUP_ROUND_SECONDS, tmp).catch(() => null);
      if (ids.includes('tunicorn-log')) dropAccessLog();
      for (let round = 0; round < g.rounds; round++) {
        const order = roundOrder(ids, round);
        for (const id of order) {
          const r = running.get(id)!;
          try {
            const cpu0 = r.cpuMs();
            const s = await runLoad(generator, load, r.port, g.seconds, tmp);
            if (s.requests > 0) s.cpuUsPerReq = Math.round(((r.cpuMs() - cpu0) * 1000 * 10) / s.requests) / 10;
            result.samples[id]!.push(s);
            say(`${load.id} round ${round + 1}/${g.rounds} ${id}: ${s.rps} req/s, ${s.cpuUsPerReq} us CPU/req, p99 ${s.p99ms.toFixed(2)} ms${s.errors ? `, errors: ${s.errorDetail}` : ''}`);
          } catch (err) {
            result.samples[id]!.push(null);
            say(`${load.id} round ${round + 1} ${id} FAILED: ${err instanceof Error ? err.message : err}`);
          }
          if (id === 'tunicorn-log') dropAccessLog();
        }
      }
      loads.push(result);
    }

    await sleep(1000);
    for (const [id, r] of running) results[id]!.loaded = r.memory();

    // What an idle server costs the machine: how often its threads wake, every server at rest after the loads,
    // one window for all (docs/design.md, "An idle server").
    const switches = new Map([...running].map(([id, r]) => [id, threadSwitches(r.processes())]));
    await sleep(IDLE_WAKE_S * 1000);
    for (const [id, r] of running) results[id]!.idleWakeups = wakeupsPerS(switches.get(id)!, threadSwitches(r.processes()), IDLE_WAKE_S);

    for (const id of ['tunicorn', 'tunicorn-fetch']) {
      const r = running.get(id);
      if (!r) continue;
      for (let i = 0; i < (QUICK ? 1 : 3); i++) {
        try {
          results[id]!.hupMs.push(Math.round(await hupTime(r)));
        } catch (err) {
          say(`HUP ${id}: ${err instanceof Error ? err.message : err}`);
        }
        await sleep(500);
      }
    }
    await cleanup();
    running.clear();
    // Every server is stopped: what keeps the cores busy now is not ours.
    const busyPercentAtEnd = await otherWork();

    const extra: Record<string, unknown> =
      LOADS_ONLY
        ? { skipped: `--loads=${loadsArg}: a partial run` }
        : {
            // Shorter than their own defaults (10 rounds; 5 s a case), so the whole run stays under 15 minutes
            // on a 2-core machine where the packages are still to be installed.
            fetchRatio: await optionalExtra('fetch-ratio.ts', 'runFetchRatio', { rounds: 6 }),
            // The keep-alive load's own apps, one process a server: what the Fetch targets ask of each worker.
            fetchRatioRouted: await optionalExtra('fetch-ratio.ts', 'runFetchRatio', { rounds: 6, seconds: 2, routed: true, throughputOnly: true }),
            concurrency: await optionalExtra('concurrency.ts', 'runConcurrency', { seconds: 2 }),
          };

    const raw: RawResults = {
      date: new Date().toISOString(),
      mode: QUICK ? 'quick' : 'full',
      durationS: Math.round((performance.now() - t0) / 1000),
      machine: { ...machineAtStart, loadAverageAtEnd: os.loadavg().map((x) => x.toFixed(2)).join(' '), busyPercentAtEnd },
      versions: {
        tunicorn: (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
        node: process.version,
        wrk: generator === 'wrk' ? debVersion('wrk') : 'not used',
        autocannon: generator === 'autocannon' ? versionOf('autocannon') : 'not used',
        pm2: versionOf('pm2'),
        '@hono/node-server': versionOf('@hono/node-server'),
        express: versionOf('express'),
        fastify: versionOf('fastify'),
        gunicorn: debVersion('gunicorn'),
        'python3-uvicorn': debVersion('python3-uvicorn'),
        'python3-fastapi': debVersion('python3-fastapi'),
        'python3-uvloop': debVersion('python3-uvloop'),
        'python3-httptools': debVersion('python3-httptools'),
        'python3-h11': debVersion('python3-h11'),
        python3: sh('/usr/bin/python3', ['--version']).out.replace('Python ', ''),
        // Which stall watcher tunicorn's workers ran (src/workers/watchdog.ts): it decides their idle RSS.
        'stall watcher': nativeBuilt('watchdog') ? 'native thread' : 'worker thread',
        // How the connection gate saw first request lines (src/http/connection.ts): it weighs on Connection: close.
        'first bytes': nativeBuilt('peek') ? 'native peek' : 'read in JavaScript',
      },
      generator,
      command: `npm run bench${QUICK ? ' -- --quick' : ''}${onlyArg ? ` -- --only=${onlyArg}` : ''}${loadsArg ? ` -- --loads=${loadsArg}` : ''}`,
      skipped,
      servers: results,
      loads,
      idleWakeSeconds: IDLE_WAKE_S,
      extra,
    };
    fs.mkdirSync(path.dirname(OUT_JSON), { recursive: true });
    fs.writeFileSync(OUT_JSON, JSON.stringify(raw, null, 2) + '\n');
    if (!PARTIAL) {
      fs.writeFileSync(DOCS, renderMarkdown(raw, path.relative(ROOT, OUT_JSON)));
      const readme = path.join(ROOT, 'README.md');
      fs.writeFileSync(readme, updateReadme(fs.readFileSync(readme, 'utf8'), raw));
    }
    process.stdout.write(renderTerminal(raw));
    say(`raw results: ${path.relative(ROOT, OUT_JSON)}${!PARTIAL ? `; report: ${path.relative(ROOT, DOCS)}` : ' (docs/benchmarks.md is written by a full run only)'}; took ${raw.durationS} s`);
  } finally {
    await cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
