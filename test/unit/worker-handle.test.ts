/**
 * The master's handle on a worker: a message to a worker that has just closed its channel (it got the signal
 * itself, as with a TERM or INT sent to the whole process group) is not an error.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { WorkerHandle } from '../../src/arbiter/worker-handle.js';
import { until } from '../helpers/server.js';

/** Blocks this thread (its event loop included) until `pid` has exited, at most `ms`. */
function blockUntilExited(pid: number, ms: number): void {
  const tick = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + ms;
  // Not reaped while this loop is blocked: the exited child shows as a zombie (state Z).
  while (!/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) {
    if (Date.now() > end) throw new Error(`process ${pid} did not exit within ${ms} ms`);
    Atomics.wait(tick, 0, 0, 5);
  }
}

describe('WorkerHandle.send', () => {
  it('logs a message lost to a closed channel at debug level, and emits no error', async () => {
    const child = spawn(process.execPath, ['-e', "process.send('closing'); process.disconnect();"], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const lines: string[] = [];
    const record = (level: string) => (msg: string) => void lines.push(`${level} ${msg}`);
    const log = { debug: record('debug'), info: record('info'), warning: record('warning'), error: record('error'), critical: record('critical') };
    const errors: Error[] = [];
    child.on('error', (err) => errors.push(err));
    try {
      const w = new WorkerHandle(1, 1, child, log, Date.now());
      await once(child, 'message');
      // The child closes its end and exits while this event loop is blocked: the channel still looks open here,
      // so the write below fails (EPIPE), as when the master and its workers get a group's TERM together.
      blockUntilExited(child.pid!, 5000);
      assert.equal(child.connected, true);
      let sent = false;
      assert.equal(w.send({ t: 'stop', graceful: true, drain: false, handOver: false }, undefined, () => (sent = true)), true);
      await until(() => sent && lines.length > 0, 5000);
      assert.deepEqual(lines, [`debug Worker ${child.pid} closed its channel before the 'stop' message reached it`]);
      assert.deepEqual(errors, []);
      if (child.exitCode === null) await once(child, 'exit');
      assert.equal(w.send({ t: 'stop', graceful: true, drain: false, handOver: false }), false, 'a closed channel: nothing sent');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('WorkerHandle.servingReport', () => {
  it('never shows a request with a negative duration (the report and the request read two clocks)', async () => {
    const child = spawn(process.execPath, ['-e', ''], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const log = { debug() {}, info() {}, warning() {}, error() {}, critical() {} };
    try {
      const w = new WorkerHandle(1, 1, child, log, Date.now());
      w.slow = [
        { method: 'GET', url: '/busy', ms: 4100 },
        { method: 'GET', url: '/', ms: -3 },
      ];
      assert.equal(w.servingReport(Date.now()), '; it was serving GET /busy (4.1 s), GET / (0.0 s)');
    } finally {
      await once(child, 'exit');
    }
  });
});
