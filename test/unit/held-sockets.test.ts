/**
 * HeldSockets: the shared record of the connections gthread threads hold back (and, in a second one, of their
 * idle kept-alive connections). A thread and the process's main thread race for each entry; exactly one of
 * them gets it. startsRequest: which idle kept-alive connections may go to another worker.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { constants } from 'node:os';
import { startsRequest } from '../../src/workers/gthread.js';
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
  it('claims only the connections of the threads asked for (a stuck thread\'s kept-alive ones)', () => {
    const kept = new HeldSockets(3);
    kept.writer(0).hold(10, 0);
    const t1 = kept.writer(1);
    const token = t1.hold(11, 1);
    kept.writer(2).hold(12, 0);
    assert.deepEqual(kept.claimAll(new Set([1])), [{ thread: 1, listener: 1, fd: 11 }]);
    assert.equal(t1.take(token), false, 'claimed: not the thread\'s any more');
    assert.equal(kept.count(0) + kept.count(2), 2, 'the other threads keep theirs');
  });
});

describe('startsRequest: what may follow an idle kept-alive connection to another worker', () => {
  const at = (text: string) => {
    const b = new Uint8Array(2048);
    const n = Buffer.from(text, 'latin1').copy(b);
    return startsRequest(b, n);
  };
  it('nothing yet, a whole request line, or the start of one', () => {
    assert.equal(startsRequest(new Uint8Array(0), -constants.errno.EAGAIN), true);
    assert.equal(at('GET /x HTTP/1.1\r\nHost: a\r\n\r\n'), true);
    assert.equal(at('\r\nPOST /y HTTP/1.1\r\n'), true);
    assert.equal(at('DELETE /z HT'), true);
    assert.equal(at('PATCH'), true);
  });
  it('not the rest of a request its thread read the start of, a closed client, or an error', () => {
    assert.equal(at('Host: a\r\n\r\n'), false);
    assert.equal(at('st: a\r\n\r\n'), false);
    assert.equal(at('GET /x HTTP/1.1 extra\r\n'), false);
    assert.equal(at('body bytes'), false);
    assert.equal(startsRequest(new Uint8Array(0), 0), false);
    assert.equal(startsRequest(new Uint8Array(0), -constants.errno.EBADF), false);
  });
});
