/**
 * HeldSockets: the shared record of the connections gthread threads hold back. A thread and the process's
 * main thread race for each entry; exactly one of them gets it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeldSockets } from '../../src/workers/held-sockets.js';

describe('HeldSockets', () => {
  it('gives the main thread every held connection with its thread, listener and descriptor', () => {
    const held = new HeldSockets(2);
    const t0 = held.writer(0);
    const t1 = held.writer(1);
    t0.hold(17, 0);
    t1.hold(23, 1);
    t1.hold(24, 0);
    assert.equal(held.count(0), 1);
    assert.equal(held.count(1), 2);
    const claimed = held.claimAll().sort((a, b) => a.fd - b.fd);
    assert.deepEqual(claimed, [
      { thread: 0, listener: 0, fd: 17 },
      { thread: 1, listener: 1, fd: 23 },
      { thread: 1, listener: 0, fd: 24 },
    ]);
    assert.deepEqual(held.claimAll(), [], 'claimed once only');
    assert.equal(held.count(1), 0);
  });

  it('a connection the thread took back is not claimed; one claimed is not the thread\'s any more', () => {
    const held = new HeldSockets(1);
    const w = held.writer(0);
    const served = w.hold(5, 0);
    const waiting = w.hold(6, 0);
    assert.equal(w.take(served), true);
    assert.deepEqual(held.claimAll(), [{ thread: 0, listener: 0, fd: 6 }]);
    assert.equal(w.take(waiting), false, 'claimed: the thread must skip it');
  });

  it('works on the same memory from another view (a thread gets the SharedArrayBuffer)', () => {
    const main = new HeldSockets(3);
    const thread = new HeldSockets(3, main.sab).writer(2);
    thread.hold(41, 2);
    assert.deepEqual(main.claimAll(), [{ thread: 2, listener: 2, fd: 41 }]);
  });

  it('refuses what it cannot record: a full table or a descriptor out of range', () => {
    const held = new HeldSockets(1);
    const w = held.writer(0);
    assert.equal(w.hold(-1, 0), -1);
    assert.equal(w.hold(1 << 24, 0), -1);
    let n = 0;
    while (w.hold(100 + n, 0) >= 0) n++;
    assert.equal(n, 128);
    assert.equal(w.take(-1), true, 'an unrecorded connection is always the thread\'s to serve');
  });
});
