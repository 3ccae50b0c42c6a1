/**
 * A gthread worker's thread beats (src/workers/thread-beats.ts): which threads the process calls stuck, the time
 * its beat file holds, and a thread's pace: quick while it serves, its idle period once a beat finds it idle,
 * quick again at once when a request begins.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ThreadBeats } from '../../src/workers/thread-beats.js';
import type { RequestSlots } from '../../src/workers/runtime.js';
import { until } from '../helpers/server.js';

const MS = 1_000_000n;

/** Thread `t` last beat `ageMs` before `now` and beats every `paceMs` (0: the quick period). */
function set(b: ThreadBeats, t: number, now: bigint, ageMs: number, paceMs: number): void {
  new BigInt64Array(b.sab, 0, b.threads)[t] = now - BigInt(ageMs) * MS;
  new Int32Array(b.sab, 8 * b.threads, b.threads)[t] = paceMs;
}

const paceOf = (b: ThreadBeats, t: number) => Atomics.load(new Int32Array(b.sab, 8 * b.threads, b.threads), t);
const beatOf = (b: ThreadBeats, t: number) => Atomics.load(new BigInt64Array(b.sab, 0, b.threads), t);

describe('thread beats', () => {
  it('a thread is stuck after two of its periods: the quick one, or its idle one', () => {
    const b = new ThreadBeats(3);
    const now = process.hrtime.bigint();
    set(b, 0, now, 1900, 0);
    set(b, 1, now, 2100, 0);
    set(b, 2, now, 9000, 5000);
    assert.deepEqual(b.stuck(1000, now), [1]);
    set(b, 2, now, 10_100, 5000);
    assert.deepEqual(b.stuck(1000, now), [1, 2]);
    // An idle period shorter than the quick one (never set so) does not shorten it.
    set(b, 1, now, 1900, 500);
    assert.deepEqual(b.stuck(1000, now), [2]);
    b.reset(now);
    assert.deepEqual(b.stuck(1000, now), []);
    assert.equal(b.allIdle(), false);
  });

  it("the beat file's time: a quick thread's last beat, an idle one's next due less the quick period, at most now", () => {
    const b = new ThreadBeats(2);
    const now = process.hrtime.bigint();
    set(b, 0, now, 700, 0);
    set(b, 1, now, 4500, 5000);
    assert.equal(b.fileTime(1000, now), now - 700n * MS);
    // Thread 1 is due in 500 ms: as if it had beaten 500 ms ago at the quick period.
    set(b, 0, now, 300, 0);
    assert.equal(b.fileTime(1000, now), now - 500n * MS);
    // Stuck on a request since 8 s (its beat when the request began): the idle one does not make the file older.
    set(b, 0, now, 8000, 0);
    assert.equal(b.fileTime(1000, now), now - 8000n * MS);
    // Both just beat, one at its idle period: never later than now.
    set(b, 0, now, 0, 0);
    set(b, 1, now, 0, 5000);
    assert.equal(b.fileTime(1000, now), now);
    set(b, 0, now, 100, 5000);
    assert.equal(b.allIdle(), true);
  });

  it('a thread idles after a beat with no request, and a request that begins puts its quick period back at once', async () => {
    const b = new ThreadBeats(2);
    b.reset();
    const ended: number[] = [];
    const inner: RequestSlots = { begin: () => 0, end: (slot) => void ended.push(slot) };
    const w = b.writer(1, 20, 400);
    const slots = w.watching(inner);
    w.start();
    // One beat sees no request: idle from then on.
    await until(() => paceOf(b, 1) === 400, 2000, 'the idle pace');
    assert.equal(paceOf(b, 0), 0, 'thread 0 has its own word');
    const before = beatOf(b, 1);
    assert.equal(slots.begin('GET', '/', Date.now()), 0);
    assert.equal(paceOf(b, 1), 0, 'quick at once');
    assert.ok(beatOf(b, 1) > before, 'and a beat with it');
    // Running: quick, beat after beat (read every 50 ms), for longer than an idle period.
    let seen = beatOf(b, 1);
    let beats = 0;
    await until(() => {
      assert.equal(paceOf(b, 1), 0, `quick while running, after ${beats} beats`);
      if (beatOf(b, 1) !== seen) beats++;
      seen = beatOf(b, 1);
      return beats >= 12;
    }, 3000, '12 beats while running');
    slots.end(0);
    assert.deepEqual(ended, [0]);
    await until(() => paceOf(b, 1) === 400, 2000, 'idle again');
  });
});
