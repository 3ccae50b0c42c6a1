/**
 * The benchmark's arithmetic (bench/report.ts): ratios are taken round by round within one run, the better
 * bare setup is the baseline, targets are judged from the figures, and the report carries the machine and
 * the commands, and it warns when other work kept the machine busy. No speed is measured here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { roundOrder, type Sample } from '../../bench/lib/load.js';
import type { LoadResult, RawResults } from '../../bench/lib/types.js';
import { beside, bestBare, busyWarning, idleNote, median, seedNote, ratio, ratioQuartiles, renderMarkdown, stats, steadyNote, fetchNote, targets } from '../../bench/report.js';

const sample = (rps: number, p99 = 2, cpu = 20): Sample => ({ rps, p50ms: 1, p99ms: p99, requests: rps * 5, errors: 0, errorDetail: '', cpuUsPerReq: cpu });

function load(id: string, samples: Record<string, (Sample | null)[]>): LoadResult {
  return { id, label: id, rounds: 3, seconds: 5, command: `wrk ${id}`, servers: Object.keys(samples), samples };
}

function raw(loads: LoadResult[]): RawResults {
  const server = (label: string, master: number, workers: number[]) => ({
    label, tunicorn: label.startsWith('tunicorn'), command: `run ${label}`, startupMs: 100, idle: { master, workers }, loaded: null, hupMs: [],
  });
  return {
    date: '2026-11-26T00:00:00Z', mode: 'full', durationS: 600,
    machine: { nproc: 2, cpu: 'test cpu', memoryGiB: 24, kernel: 'Linux', node: 'v20', loadAverageAtStart: '0', loadAverageAtEnd: '0' },
    versions: { node: 'v20', wrk: '4.1.0' }, generator: 'wrk', command: 'npm run bench', skipped: [{ what: 'TLS', why: 'no cert' }],
    servers: { tunicorn: server('tunicorn', 45, [50, 52]), plain: server('plain', 44, []), limit: server('limit', 43, [44, 44]) },
    loads, extra: {},
  };
}

describe('bench report', () => {
  it('takes the median of the per-round ratios, skipping failed rounds', () => {
    const l = load('ka64', { a: [sample(90), sample(50), sample(100), sample(1)], b: [sample(100), sample(100), sample(100), null] });
    assert.equal(ratio(l, 'a', 'b'), 0.9);
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
    assert.equal(ratio(l, 'a', 'missing'), null);
  });

  it('gives the middle half of the per-round ratios beside a target, from 4 rounds on', () => {
    // Per-round ratios 0.8, 0.9, 1.0, 1.1, 1.2 (given out of order): quartiles 0.9 and 1.1.
    const l = load('ka64', {
      tunicorn: [sample(100), sample(80), sample(120), sample(90), sample(110)],
      limit: [sample(100), sample(100), sample(100), sample(100), sample(100)],
    });
    const q = ratioQuartiles(l, 'tunicorn', 'limit')!;
    assert.deepEqual(q.map((x) => Math.round(x * 1000) / 1000), [0.9, 1.1]);
    // Between two ratios the quartile is interpolated: 0.8, 0.9, 1.0, 1.1 give 0.875 and 1.025.
    const four = load('ka64', { a: [sample(80), sample(90), sample(100), sample(110)], b: [sample(100), sample(100), sample(100), sample(100)] });
    assert.deepEqual(ratioQuartiles(four, 'a', 'b')!.map((x) => Math.round(x * 1000) / 1000), [0.875, 1.025]);
    assert.equal(ratioQuartiles(load('ka64', { a: [sample(1), sample(2), sample(3)], b: [sample(1), sample(1), sample(1)] }), 'a', 'b'), null, 'three rounds');
    const t = targets(raw([l])).find((x) => /own cost, keep-alive, access log off/.test(x.what))!;
    assert.equal(t.rounds, '0.90-1.10 x');
    assert.equal(t.measured, '1.00 x (vs limit)');
    assert.equal(targets(raw([l])).find((x) => /master RSS/.test(x.what))!.rounds, '–');
  });

  it("gives the p99 target the middle half of tunicorn's p99 over the limit's, round by round", () => {
    // Per-round p99 ratios 1.5, 0.5, 1.0, 2.0, 1.0 (rps alike): quartiles 1.0 and 1.5; the medians' goal still decides.
    const l = load('ka64', {
      tunicorn: [sample(100, 6), sample(100, 2), sample(100, 4), sample(100, 8), sample(100, 4)],
      limit: [sample(100, 4), sample(100, 4), sample(100, 4), sample(100, 4), sample(100, 4)],
    });
    assert.deepEqual(ratioQuartiles(l, 'tunicorn', 'limit', 'p99ms')!.map((x) => Math.round(x * 1000) / 1000), [1, 1.5]);
    const p99 = targets(raw([l])).find((x) => /p99/.test(x.what))!;
    assert.equal(p99.rounds, '1.00-1.50 x');
    assert.equal(p99.measured, '4.00 ms (limit: 4.00 ms)');
    assert.equal(p99.pass, true);
    const three = load('ka64', { tunicorn: [sample(100, 6), sample(100, 2), sample(100, 4)], limit: [sample(100, 4), sample(100, 4), sample(100, 4)] });
    assert.equal(targets(raw([three])).find((x) => /p99/.test(x.what))!.rounds, '–', 'three rounds');
  });

  it('reports the median, the spread and the errors of a server', () => {
    const l = load('ka64', { a: [sample(90), sample(110), sample(100)] });
    const s = stats(l, 'a')!;
    assert.equal(s.rps, 100);
    assert.equal(Math.round(s.spread * 100), 10);
    assert.equal(s.cpu, 20);
    assert.equal(stats(load('x', { a: [null] }), 'a'), null);
  });

  it('measures against the better of the limit and node:cluster', () => {
    assert.equal(bestBare(load('ka64', { limit: [sample(100)], cluster: [sample(120)] })), 'cluster');
    assert.equal(bestBare(load('ka64', { limit: [sample(130)], cluster: [sample(120)] })), 'limit');
    assert.equal(bestBare(load('ka64', { limit: [sample(130)] })), 'limit');
    assert.equal(bestBare(load('ka64', {})), null);
  });

  it('judges each target from the figures, and says when one was not measured', () => {
    const ka = load('ka64', { tunicorn: [sample(98, 2.1)], limit: [sample(100, 2)], cluster: [sample(90)], pm2: [sample(80)] });
    const t = targets(raw([ka]));
    const find = (re: RegExp) => t.find((x) => re.test(x.what))!;
    assert.equal(find(/own cost, keep-alive, access log off/).pass, true);
    assert.equal(find(/keep-alive: tunicorn \/ PM2/).pass, true, '98 / 80 >= 1.1');
    assert.equal(find(/Connection: close: tunicorn \/ PM2/).pass, null);
    assert.equal(find(/master RSS/).pass, true);
    assert.equal(find(/worker RSS/).pass, true, '52 <= 44 + 10');
    assert.equal(find(/p99/).pass, true, '2.1 <= 2 x 1.1');
    // The ceiling: the same comparison with the best bare setup (here the limit) in tunicorn's place.
    assert.equal(find(/keep-alive: tunicorn \/ PM2/).ceiling, '1.25 x (limit)', '100 / 80');
    assert.equal(find(/own cost, keep-alive, access log off/).ceiling, '–', 'the limit against itself says nothing');
    assert.equal(find(/Fetch handler \/ raw listener/).ceiling, '–', 'not a comparison of the listener with another server');
    assert.equal(find(/Connection: close: tunicorn \/ PM2/).ceiling, '–', 'not measured');
    const slow = targets(raw([load('ka64', { tunicorn: [sample(90, 3)], limit: [sample(100, 2)] })]));
    assert.equal(slow.find((x) => /own cost, keep-alive, access log off/.test(x.what))!.pass, false);
    assert.equal(slow.find((x) => /p99/.test(x.what))!.pass, false);
  });

  it('writes the machine, the versions, the commands and what was skipped into the report', () => {
    const md = renderMarkdown(raw([load('ka64', { tunicorn: [sample(98)], limit: [sample(100)] })]), 'bench/results/latest.json');
    assert.match(md, /2 cores \(test cpu\), 24 GiB/);
    assert.match(md, /wrk 4\.1\.0/);
    assert.match(md, /`run tunicorn`/);
    assert.match(md, /`wrk ka64`/);
    assert.match(md, /TLS: no cert/);
    assert.match(md, /\| tunicorn \| 98 \|/);
  });

  it("gives each server's idle wakeups a second, and a dash for results from before they were counted", () => {
    const r = raw([load('ka64', { tunicorn: [sample(98)], limit: [sample(100)] })]);
    const counted: RawResults = { ...r, idleWakeSeconds: 10, servers: { ...r.servers, tunicorn: { ...r.servers.tunicorn!, idleWakeups: 7.2 }, limit: { ...r.servers.limit!, idleWakeups: 0 } } };
    const md = renderMarkdown(counted, 'x.json');
    assert.match(md, /at rest after the loads, over 10 s\./);
    assert.match(md, /\| tunicorn \| 100 \| 45\.0 \| [^|]+ \| – \| – \| 7\.2 \|/);
    assert.match(md, /\| limit \| 100 \| [^\n]+ \| 0 \|/);
    assert.match(md, /\| plain \| 100 \| [^\n]+ \| – \|\n/);
    assert.match(renderMarkdown(r, 'x.json'), /at rest after the loads\./);
    // Beside the targets, tunicorn's and the baselines' (those the run has).
    assert.match(md, /woke this many times a second, over 10 s: tunicorn: 7\.2; limit: 0 \(every server/);
    assert.equal(idleNote(r), '', 'none counted: no note');
  });

  it('gives a missed ratio a third place, cut, where two would round it onto its goal', () => {
    assert.equal(beside(0.9696, 0.97), '0.969');
    assert.equal(beside(0.89999, 0.9), '0.899');
    assert.equal(beside(0.974, 0.97), '0.97');
    assert.equal(beside(0.9649, 0.97), '0.96');
    assert.equal(beside(1.1, 1.1), '1.10');
  });

  it('says when a load had an unrecorded warm-up round, and says nothing for runs from before there was one', () => {
    const samples = { tunicorn: [sample(98)], limit: [sample(100)] };
    const warmed = renderMarkdown(raw([{ ...load('ka64', samples), warmupSeconds: 1 }]), 'bench/results/latest.json');
    assert.match(warmed, /3 interleaved round\(s\) of 5 s, after an unrecorded round of 1 s a server; `wrk ka64`/);
    const older = renderMarkdown(raw([load('ka64', samples)]), 'bench/results/latest.json');
    assert.match(older, /3 interleaved round\(s\) of 5 s; `wrk ka64`/);
  });

  it('gives the steady-state keep-alive ratio beside the targets, which read the load with every server', () => {
    const steady = load('ka64s', { tunicorn: [sample(99, 2, 21), sample(97, 2, 20)], limit: [sample(100, 2, 20), sample(100, 2, 20)] });
    const r = raw([load('ka64', { tunicorn: [sample(86)], limit: [sample(100)] }), steady]);
    assert.match(steadyNote(r), /alternating in 3 rounds of 5 s.*tunicorn 0\.98 x the limit's requests\/s, 1\.02 x its CPU per request/);
    assert.match(renderMarkdown(r, 'x.json'), /Steady state at keep-alive/);
    // The target is still the figure of the load with every server.
    assert.equal(targets(r).find((x) => /own cost, keep-alive, access log off/.test(x.what))!.measured, '0.86 x (vs limit)');
    assert.equal(steadyNote(raw([load('ka64', { tunicorn: [sample(86)], limit: [sample(100)] })])), '');
  });

  it('gives the fetch-ratio study\'s Fetch / listener ratio beside the targets, whose handler parses its URL', () => {
    const r = raw([load('ka64', { 'tunicorn-fetch': [sample(88)], tunicorn: [sample(100)] })]);
    assert.equal(fetchNote(r), '', 'no study in the run');
    // Requests per CPU second 0.8 x the listener's: 1.25 x its CPU per request.
    const withStudy = { ...r, extra: { fetchRatio: { fetchVsListener: 0.963, cpuFetchVsListener: 0.8 } } };
    assert.match(fetchNote(withStudy), /route nothing, one worker each: the Fetch handler at 0\.96 x the listener's requests\/s, 1\.25 x its CPU per request/);
    assert.match(renderMarkdown(withStudy, 'x.json'), /Fetch handler without routing/);
  });

  it('says what the Fetch target against one hono process asks of each worker, from the routed study and a second process\'s gain', () => {
    const ka = load('ka64', { limit: [sample(108), sample(110), sample(105)], plain: [sample(100), sample(100), sample(100)] });
    const routed = { fetchVsHono: 1.04, cpuFetchVsHono: 1.07, fetchVsListener: 0.9 };
    const md = fetchNote({ ...raw([ka]), extra: { fetchRatioRouted: routed } });
    assert.match(md, /Fetch handler at 1\.04 x @hono\/node-server's requests\/s, 1\.07 x its requests per CPU second, and 0\.90 x the raw listener's/);
    // The median of the rounds' 1.08, 1.10 and 1.05: 1.3 / 1.08 = 1.20.
    assert.match(md, /A second process gave 1\.08 x .* asks each of tunicorn's two workers for 1\.20 x what that process serves/);
    assert.doesNotMatch(md, /without routing/, 'no hello study in this run');
    // Without the plain process in the load, the study's own figures only.
    const alone = fetchNote({ ...raw([load('ka64', { limit: [sample(108)] })]), extra: { fetchRatioRouted: routed } });
    assert.match(alone, /1\.04 x @hono/);
    assert.doesNotMatch(alone, /second process/);
  });

  it("compares tunicorn and the limit with the seed's stack three ways, and says nothing without the h11 runs", () => {
    const ka = load('ka64', {
      tunicorn: [sample(60), sample(62), sample(58)], limit: [sample(62), sample(62), sample(62)], cluster: [sample(55), sample(55), sample(55)],
      seed: [sample(30), sample(31), sample(29)], 'seed-h11': [sample(15), sample(15.5), sample(14.5)], 'seed-asyncio': [sample(12), sample(12), sample(12)],
    });
    const md = seedNote(raw([ka]));
    // Medians of the per-round ratios: tunicorn 60/30, 62/31, 58/29 (2.00 each); the limit 62/30, 62/31, 62/29 (2.07).
    assert.match(md, /best configuration, uvloop and httptools, 30 requests\/s \(0\.55 x node:cluster\): tunicorn 2\.00 x it, the limit 2\.07 x\./);
    assert.match(md, /uvloop and h11, 15 requests\/s \(0\.27 x node:cluster\): tunicorn 4\.00 x it, the limit 4\.13 x; asyncio and h11, 12 requests\/s \(0\.22 x node:cluster\): tunicorn 5\.00 x it, the limit 5\.17 x\./);
    assert.match(renderMarkdown(raw([ka]), 'x.json'), /The seed's stack three ways/);
    const bestOnly = load('ka64', { tunicorn: [sample(60)], seed: [sample(30)] });
    assert.equal(seedNote(raw([bestOnly])), '', 'results from before the h11 runs');
    assert.equal(seedNote(raw([load('ka64', { tunicorn: [sample(60)], 'seed-h11': [sample(15)] })])), '', 'no best configuration to read the target from');
  });

  it('warns about other work measured around the run, not about the run\'s own load', () => {
    const at = (machine: Record<string, string | number>): RawResults => ({ ...raw([]), machine: { ...raw([]).machine, ...machine } });
    // The run's own load lifts the load average at its end; the shares measured with no server running decide.
    assert.equal(busyWarning(at({ loadAverageAtEnd: '3.65', busyPercentAtStart: '3', busyPercentAtEnd: '9' })), null);
    assert.match(busyWarning(at({ busyPercentAtStart: '2', busyPercentAtEnd: '60' })) ?? '', /Other work kept 60 % of the 2 cores busy/);
    assert.equal(busyWarning(at({ busyPercentAtStart: 'unknown', busyPercentAtEnd: 'unknown' })), null);
    // Older results carry only load averages.
    assert.match(busyWarning(at({ loadAverageAtStart: '3.10 1 1' })) ?? '', /load average up to 3\.1 on 2 cores/);
    assert.equal(busyWarning(at({ loadAverageAtStart: '1.20 1 1' })), null);
    assert.match(renderMarkdown(at({ busyPercentAtStart: '3', busyPercentAtEnd: '9' }), 'x.json'), /other work 3 % of the cores before the run, 9 % after it/);
  });
});

describe('the order of a round', () => {
  it('is a shuffle that changes every round, the same in every run, so that neighbours change', () => {
    const ids = Array.from({ length: 14 }, (_, i) => `s${i}`);
    const rounds = Array.from({ length: 12 }, (_, r) => roundOrder(ids, r));
    for (const order of rounds) assert.deepEqual([...order].sort(), [...ids].sort());
    assert.deepEqual(roundOrder(ids, 3), rounds[3], 'seeded by the round');
    // Who runs just before each server: not always the same one (a rotation would give one neighbour each).
    for (const id of ids) {
      const before = new Set(rounds.map((o) => o[o.indexOf(id) - 1] ?? 'first'));
      assert.ok(before.size >= 4, `${id} ran after only ${[...before].join(', ')}`);
    }
    assert.ok(new Set(rounds.map((o) => o[0])).size >= 6, 'different servers go first');
  });
});
