/**
 * bench/soak.ts ends the server it runs however it is ended itself: a HUP (its terminal or ssh session gone)
 * reaches the soak only, the master leading its own session; the master and its workers end with the soak.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { alive, childrenOf, ROOT, until } from '../helpers/server.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tunicorn-soak-test-'));
const started: number[] = [];
after(() => {
  // What the old code left running: the master's group (its workers, what they started).
  for (const pid of started) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  rmSync(tmp, { recursive: true, force: true });
});

const title = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
};

describe('bench/soak.ts', () => {
  it('ends the server it runs when a HUP ends it', async () => {
    const soak = spawn(process.execPath, ['--import', 'tsx', 'bench/soak.ts', '--minutes', '2', '--classes', 'async', '--no-snapshots'], {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    soak.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = once(soak, 'exit');
    let master = 0;
    let workers: number[] = [];
    try {
      await until(() => {
        master = childrenOf(soak.pid!).find((p) => title(p).startsWith('tunicorn: master')) ?? 0;
        workers = master ? childrenOf(master).filter((p) => title(p).startsWith('tunicorn: worker')) : [];
        return workers.length === 2;
      }, 30000, `the soak's server and its 2 workers; soak's stderr:\n${err}`);
      started.push(master);
      soak.kill('SIGHUP');
      await exited;
      await until(() => !alive(master) && workers.every((w) => !alive(w)), 10000, `the master ${master} and its workers ${workers.join(', ')} gone`);
    } finally {
      soak.kill('SIGKILL');
    }
    assert.ok(!alive(master));
  });
});
