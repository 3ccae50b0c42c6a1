/**
 * The stall watcher (src/workers/watchdog.ts), both kinds: the native thread (native/watchdog.c, which
 * `npm run build` compiles; CI installs a C compiler) and the worker-thread fallback. A child process starts a
 * Watchdog on a pipe, begins seven requests a little apart, ends one, and blocks its event loop; the report
 * it writes while blocked must be the same for both: the five longest-running requests, longest first, their
 * request lines as the client sent them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { scratchDir } from '../helpers/scratch.js';
import { restingCapMs } from '../../src/arbiter/arbiter.js';
import { heartbeatEvery, idleBeatEvery, watchPollMs } from '../../src/workers/watchdog.js';

const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/workers/watchdog.js');

/** Runs in the child: fd 3 is the report pipe; the kind of watcher goes to stdout. */
const CHILD = `
const { Watchdog } = await import(${JSON.stringify(pathToFileURL(DIST).href)});
const w = new Watchdog(3, 1000);
process.stdout.write(w.kind + '\\n');
const spin = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };
const urls = ['/a', '/b?q="x\\\\y"', '/c\\u0001', '/d\\u00e9', '/e', '/f', '/g'];
const slots = [];
for (const u of urls) { slots.push(w.begin('GET', u, Date.now())); spin(30); }
w.end(slots[0]);
w.beat();
spin(2500);
`;

/**
 * An idle loop (Watchdog.pace): it beats every 1.5 s, so the watcher reads every 1.5 s and calls a stall only
 * after 3 s without a beat, not after the 1 s it was started for. The loop then blocks for 5 s.
 */
const PACED = `
const { Watchdog } = await import(${JSON.stringify(pathToFileURL(DIST).href)});
const w = new Watchdog(3, 1000);
process.stdout.write(w.kind + '\\n');
w.pace(1500);
w.beat();
const end = Date.now() + 5000;
while (Date.now() < end);
`;

// A file, not -e: a worker thread inherits the parent's execArgv, and --input-type is refused there.
const dir = scratchDir('tunicorn-watchdog-');
const script = path.join(dir, 'child.mjs');
writeFileSync(script, CHILD);
const paced = path.join(dir, 'paced.mjs');
writeFileSync(paced, PACED);
after(() => rmSync(dir, { recursive: true, force: true }));

interface Report {
  stalledMs: number;
  requests: { method: string; url: string; ms: number }[];
}

async function stallReport(env: NodeJS.ProcessEnv, file = script): Promise<{ kind: string; report: Report }> {
  const child = spawn(process.execPath, [file], {
    stdio: ['ignore', 'pipe', 'inherit', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let reports = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  (child.stdio[3] as NodeJS.ReadableStream).on('data', (c: Buffer) => (reports += c.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 0, 'the child ran to its end');
  const first = reports.split('\n')[0];
  assert.ok(first, `a report was written while the loop was blocked (got ${JSON.stringify(reports)})`);
  return { kind: out.trim(), report: JSON.parse(first) as Report };
}

function check(report: Report): void {
  // The setup above blocks the loop too (7 x 30 ms): the stall limit leaves it room on a loaded machine, where
  // 300 ms once fired before the last requests had begun.
  assert.ok(report.stalledMs >= 1000 && report.stalledMs < 2500, `stalledMs ${report.stalledMs}`);
  // /a ended; of the six still running, the five that started first, longest first.
  assert.deepEqual(
    report.requests.map((r) => `${r.method} ${r.url}`),
    ['GET /b?q="x\\y"', 'GET /c\u0001', 'GET /d\ufffd', 'GET /e', 'GET /f'],
  );
  const ms = report.requests.map((r) => r.ms);
  assert.deepEqual([...ms].sort((a, b) => b - a), ms, 'longest first');
  assert.ok(ms[0]! - ms[4]! >= 90, `started about 30 ms apart: ${ms.join(' ')}`);
}

describe('stall watcher', () => {
  it('reads the beat counter every half stall, at most once a second', () => {
    // The default timeout (30 s): a beat a second, a stall after two missed, a read a second.
    assert.equal(heartbeatEvery(30), 1000);
    assert.equal(watchPollMs(2 * heartbeatEvery(30)), 1000);
    // timeout 0: only the orphan check (a stall of 5 s once the master is gone).
    assert.equal(watchPollMs(5000), 1000);
    // Short timeouts: a stall is still seen within 1.5 x its bound, well before the master's kill at `timeout`.
    assert.equal(watchPollMs(2 * heartbeatEvery(1)), 250);
    assert.equal(watchPollMs(2 * heartbeatEvery(0.1)), 50);
    assert.equal(watchPollMs(5), 10);
  });

  it('an idle worker beats every sixth of the timeout, at most every 10 s', () => {
    // The default 30 s: a stall is then called after 10 s without a beat, and named by 15 s.
    assert.equal(idleBeatEvery(30), 5000);
    assert.equal(idleBeatEvery(120), 10_000);
    // Used only where longer than the serving beat (child.ts): from a timeout of 7 s.
    assert.ok(idleBeatEvery(7) > heartbeatEvery(7));
    assert.ok(idleBeatEvery(6) <= heartbeatEvery(6));
  });

  it("the master's resting tick: at most 10 s, and short enough that a Ctrl-Z it does not see never times out a stopped worker", () => {
    assert.equal(restingCapMs(30), 10_000);
    assert.equal(restingCapMs(5), 1700);
    // Short timeouts keep the steady tick of before (1 s); timeout 0 has only the other timed checks.
    assert.equal(restingCapMs(2), 1000);
    assert.equal(restingCapMs(0), 10_000);
    // A stop unseen by the stall check lasts at most a tick and 0.8 s; the workers' beats are then that old
    // plus one beat period, still short of the timeout.
    for (const t of [3.6, 4, 5, 7, 10, 12, 20, 30, 60, 120, 3600]) {
      const stale = restingCapMs(t) + 800 + Math.max(heartbeatEvery(t), idleBeatEvery(t));
      assert.ok(stale < t * 1000, `timeout ${t} s: a beat ${stale} ms old`);
    }
  });

  it('native thread: names the longest-running requests of a blocked loop', async () => {
    const { kind, report } = await stallReport({});
    assert.equal(kind, 'a native thread', 'dist/native/watchdog.node is built and loads (needs a C compiler at build time)');
    check(report);
  });

  it('worker thread (TUNICORN_NATIVE=0): writes the same report', async () => {
    const { kind, report } = await stallReport({ TUNICORN_NATIVE: '0' });
    assert.match(kind, /^a worker thread \(no native watcher: TUNICORN_NATIVE=0\)$/);
    check(report);
  });

  for (const [kind, env] of [
    ['native thread', {}],
    ['worker thread', { TUNICORN_NATIVE: '0' }],
  ] as const) {
    it(`${kind}: while the loop idles (pace), a stall is called after two of its beat periods`, async () => {
      const { report } = await stallReport(env, paced);
      // Two periods of 1.5 s: not the 1 s it was started with. A read every 1.5 s: at the latest 4.5 s.
      assert.ok(report.stalledMs >= 3000 && report.stalledMs < 5000, `stalledMs ${report.stalledMs}`);
      assert.deepEqual(report.requests, []);
    });
  }
});
