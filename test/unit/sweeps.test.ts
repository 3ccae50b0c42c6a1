/**
 * The sweeps of a thread (src/http/keep-alive.ts `sweepEvery`: keep-alive, body_timeout, request_deadline): they
 * run while the thread has a connection open, sleep once it has none (after one last run, which lets go of what
 * they kept), and the next connection wakes them. A file of its own: the sweeps are the module's, one set per
 * thread, as in a worker.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sleepSweepsWhenIdle, sweepEvery, wakeSweeps } from '../../src/http/keep-alive.js';

it('sweeps run while a connection is open, sleep without one, and the next connection wakes them', { timeout: 10_000 }, async (t) => {
  // The sweeps' timers are unref'd, as in a worker, whose listening sockets keep it up: this keeps the test's.
  const alive = setInterval(() => {}, 1000);
  t.after(() => clearInterval(alive));
  let open = 1;
  let runs = 0;
  const ran = new EventEmitter();
  sleepSweepsWhenIdle(() => open);
  sweepEvery(20, () => {
    runs++;
    ran.emit('run');
  });
  // Open: each tick runs it (the test's timeout, 10 s, bounds these waits). Then none open: the next tick runs it a
  // last time and stops the timer, and twenty ticks' time later it has not run again.
  const runsThenSleeps = async (): Promise<void> => {
    await once(ran, 'run');
    await once(ran, 'run');
    open = 0;
    await once(ran, 'run');
    const last = runs;
    await sleep(400);
    assert.equal(runs, last, 'no run while no connection is open');
  };
  await runsThenSleeps();
  // A connection (twice: a second wake starts no second timer, which would run on after the next sleep).
  open = 1;
  wakeSweeps();
  wakeSweeps();
  await runsThenSleeps();
});
