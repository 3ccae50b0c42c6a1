/**
 * A storm of operator signals under load: HUP, TTIN, TTOU and USR1 every 100-400 ms for a few seconds, in an
 * order drawn from a seeded generator, while keep-alive clients send requests (some that wait and then block
 * the worker a little, so that requests are in flight when the signals come) and max_requests recycles workers
 * on its own. Each signal alone is tested elsewhere; here they overlap: a HUP while the last one's workers
 * boot, a TTOU while a recycled worker's replacement starts, a USR1 between them.
 *
 * What must hold, for async, sync and gthread: no request fails (every one gets its 200; the load client retries
 * only a request it wrote on a kept-alive connection the worker had already closed, as browsers do, which a
 * client stalled past a stop's 1 s grace on a loaded machine does: test/helpers/load.ts), a last HUP brings the
 * server back to its two workers and nothing else (no worker left over, no zombie), and the master holds as
 * many descriptors as before the storm (each worker's pipes closed with it).
 *
 * The seed is printed with any failure; `TUNICORN_STORM_SEED=N` replays a storm.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Load, stopAllLoads } from '../helpers/load.js';
import { childrenOf, FIXTURES, Server, stopAll, until } from '../helpers/server.js';

const APP = path.join(FIXTURES, 'zero-downtime-app.mjs');
const STORM_MS = 5000;

after(async () => {
  await stopAllLoads();
  await stopAll();
});

/** mulberry32: a small seeded generator, so that a failing storm can be replayed. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function descriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Children of `pid` that are zombies: exited, never waited for. */
function zombiesOf(pid: number): number[] {
  return childrenOf(pid).filter((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
    } catch {
      return false;
    }
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a storm of HUP, TTIN, TTOU and USR1 under load', { concurrency: false }, () => {
  for (const [name, args] of [
    ['async', ['--max-requests', '400', '--max-requests-jitter', '100']],
    ['sync', ['-k', 'sync', '--max-requests', '100', '--max-requests-jitter', '20']],
    ['gthread', ['-k', 'gthread', '--threads', '2', '--max-requests', '300', '--max-requests-jitter', '50']],
  ] as const) {
    it(`${name}: no request fails, and the server comes back to its workers with nothing left over`, async () => {
      const seed = Number(process.env.TUNICORN_STORM_SEED) || Date.now() % 1_000_000;
      const random = generator(seed);
      const s = new Server(['-b', '127.0.0.1:0', '-w', '2', '--graceful-timeout', '10', ...args, APP]);
      const port = await s.port();
      await s.waitFor(/Ready: 2 worker\(s\) serving/);
      const before = descriptors(s.pid);

      const quick = new Load(port, { connections: 6, path: '/pid' });
      // Waits 20 ms, then blocks its worker 3 ms: in flight through the signals.
      const slow = new Load(port, { connections: 4, path: '/spin?ms=3&wait=20' });
      await quick.okAtLeast(50);

      const sent: string[] = [];
      let workers = 2;
      const end = Date.now() + STORM_MS;
      while (Date.now() < end) {
        await sleep(100 + random() * 300);
        const roll = random();
        let sig: NodeJS.Signals;
        if (roll < 0.35) sig = 'SIGHUP';
        else if (roll < 0.6 && workers < 4) sig = 'SIGTTIN';
        else if (roll < 0.85 && workers > 1) sig = 'SIGTTOU';
        else sig = 'SIGUSR1';
        if (sig === 'SIGHUP') workers = 2;
        else if (sig === 'SIGTTIN') workers++;
        else if (sig === 'SIGTTOU') workers--;
        sent.push(sig.slice(3));
        s.signal(sig);
      }
      const what = () => `seed ${seed}, signals ${sent.join(' ')}`;
      // On a slow or loaded machine the storm may end before a worker served its max_requests: the load goes on
      // until one has (gthread, as before, is not held to it).
      if (name !== 'gthread') await until(() => s.count(/reached max_requests/) > 0, 30000, `max_requests never recycled a worker; ${what()}`);
      // Signals sent back to back may be taken in another order (the kernel delivers the lowest number first: a
      // HUP before a TTIN sent just before it, which then left 3 workers): the last HUP waits until the master
      // has taken every signal of the storm. Bounded, and not an error: two of a kind sent close together may
      // be merged into one.
      await until(() => s.count(/Handling signal: /) >= sent.length, 10000).catch(() => {});
      // The load goes on through the last HUP too.
      const from = s.log.length;
      s.signal('SIGHUP');
      await s.waitFor(/Ready: 2 worker\(s\) serving/, 30000, from);
      await quick.okAtLeast(50);
      const stats = [await quick.stop(), await slow.stop()];

      for (const [i, st] of stats.entries()) {
        // Retried (not failed): written on a kept-alive connection the worker had closed, unread (load.ts).
        assert.equal(st.failed.length, 0, `${i ? 'slow' : 'quick'} load: ${st.failed.length} failed of ${st.ok + st.failed.length} (${st.retried} retried): ${JSON.stringify(st.failed.slice(0, 5))}; ${what()}`);
        assert.ok(st.ok > 0, `${i ? 'slow' : 'quick'} load: no request answered; ${what()}`);
      }
      await until(() => childrenOf(s.pid).length === 2 && zombiesOf(s.pid).length === 0, 30000, `two workers and no zombie (now ${childrenOf(s.pid).length}); ${what()}`);
      await until(() => descriptors(s.pid) === before, 10000, `the master's descriptors back to ${before} (now ${descriptors(s.pid)}); ${what()}`);
      assert.doesNotMatch(s.log, /\[(ERROR|CRITICAL)\]/, what());
      assert.equal(s.child.exitCode, null, `the master exited; ${what()}`);

      const stopFrom = s.log.length;
      s.signal('SIGTERM');
      const exit = await s.exited;
      assert.equal(exit.code, 0, `${what()}\n${s.log.slice(stopFrom)}`);
    });
  }
});
