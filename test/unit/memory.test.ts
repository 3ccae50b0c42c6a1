/**
 * max_worker_memory (src/arbiter/memory.ts, sizeSetting in src/config/setting.ts): the size parser and the
 * setting's one-line refusals, the RSS read from /proc, the size in log lines, the refusal where /proc is
 * missing, and the test-only period override.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { checkMemoryLimit, formatSize, MEMORY_PERIOD_MS, memoryPeriodMs, readRss } from '../../src/arbiter/memory.js';
import { cpuOf, procUsage } from '../../src/arbiter/proc-usage.js';
import { SETTINGS } from '../../src/config/registry.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { parseSize } from '../../src/config/setting.js';
import { scratchDir } from '../helpers/scratch.js';

const MiB = 2 ** 20;
const setting = SETTINGS.maxWorkerMemory;

describe('parseSize', () => {
  it('reads K, M, G and T as powers of 1024, with or without B or iB, in any case, and a number alone as bytes', () => {
    const cases: [unknown, number][] = [
      ['512M', 512 * MiB],
      ['512m', 512 * MiB],
      ['1G', 2 ** 30],
      ['1.5G', 1.5 * 2 ** 30],
      ['800MB', 800 * MiB],
      ['800 MiB', 800 * MiB],
      ['2GiB', 2 * 2 ** 30],
      ['64k', 64 * 1024],
      ['1T', 2 ** 40],
      ['.5G', 2 ** 29],
      ['536870912', 536870912],
      ['1048576B', MiB],
      [' 1G ', 2 ** 30],
      [536870912, 536870912],
      ['0', 0],
      [0, 0],
    ];
    for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, String(text));
  });

  it('rounds a fraction of a byte down', () => {
    assert.equal(parseSize('1.0000001K'), 1024);
    assert.equal(parseSize(1048576.7), 1048576);
  });

  it('is NaN for anything else', () => {
    for (const v of ['', 'G', '1.5x', '1 GB extra', '-1G', '+1G', '1e9', '0x100000', 'Infinity', '1,5G', '1P', null, true, {}, [], Infinity, NaN]) {
      assert.ok(Number.isNaN(parseSize(v)), JSON.stringify(v));
    }
  });
});

describe('max_worker_memory setting', () => {
  it('is off (0) by default, and takes a size from the command line or a config file', async () => {
    assert.equal(setting.default, 0);
    assert.equal(setting.fromCli(['512M']), 512 * MiB);
    assert.equal(setting.fromCli(['1G', '1.5G']), 1.5 * 2 ** 30, 'the last flag wins');
    assert.equal(setting.fromConfig('800MB'), 800 * MiB);
    assert.equal(setting.fromConfig(536870912), 536870912);
    assert.equal(setting.fromConfig(0), 0);
    const r = await resolveConfig({ argv: ['--max-worker-memory', '1.5G', 'app.ts'], env: {}, cwd: '/nonexistent', fileValues: {} });
    assert.equal(r.config.maxWorkerMemory, 1.5 * 2 ** 30);
  });

  it('refuses a bad value in one line that says what it accepts', () => {
    const accepts = 'expected a size such as 512M, 1.5G or 800MB (K, M, G, T count 1024s), or a number of bytes, at least 1M; 0 for off';
    const cases: [unknown, string][] = [
      ['lots', '"lots"'],
      ['-1G', '"-1G"'],
      ['1.5x', '"1.5x"'],
      // A number alone counts bytes: 512 meant as megabytes is refused, not taken as a limit nothing fits under.
      ['512', '"512"'],
      [512, '512'],
      ['1023K', '"1023K"'],
      [-1, '-1'],
      [true, 'true'],
      ['99999999T', '"99999999T"'],
    ];
    for (const [v, shown] of cases) {
      assert.throws(
        () => setting.fromConfig(v),
        (err: Error) => err.message === `invalid value for maxWorkerMemory (--max-worker-memory): ${shown}; ${accepts}` && !err.message.includes('\n'),
        String(v),
      );
    }
    assert.equal(setting.fromConfig('1M'), MiB, 'the least it takes');
  });
});

describe('RSS from /proc', () => {
  it("reads a live process's VmRSS in bytes, and null for one that is gone", async () => {
    const rss = await readRss(process.pid);
    assert.ok(rss !== null && rss > 10 * MiB, `rss ${rss}`);
    // Within a few MiB of what Node itself says (both are the kernel's count, read a moment apart).
    assert.ok(Math.abs(rss - process.memoryUsage.rss()) < 16 * MiB);
    assert.equal(await readRss(2 ** 22 + 12345), null, 'no such pid (above pid_max)');
  });

  it('reads VmRSS from a status file, and null when it has none (a zombie)', async () => {
    const proc = scratchDir('tunicorn-proc-');
    mkdirSync(path.join(proc, '42'));
    writeFileSync(path.join(proc, '42', 'status'), 'Name:\tnode\nVmPeak:\t  999 kB\nVmRSS:\t   51200 kB\nThreads:\t7\n');
    assert.equal(await readRss(42, proc), 50 * MiB);
    mkdirSync(path.join(proc, '43'));
    writeFileSync(path.join(proc, '43', 'status'), 'Name:\tnode\nState:\tZ (zombie)\nThreads:\t1\n');
    assert.equal(await readRss(43, proc), null);
  });

  it("procUsage (tunicornc show workers): RSS and CPU time of a live process; nulls for one that is gone", () => {
    const start = procUsage(process.pid);
    // 300 ms of CPU time, as the kernel counts it (a wall-clock spin gets less on a busy machine).
    const used = () => (({ user, system }) => (user + system) / 1000)(process.cpuUsage());
    const end = used() + 300;
    while (used() < end);
    const later = procUsage(process.pid);
    assert.ok(later.rss !== null && Math.abs(later.rss - process.memoryUsage.rss()) < 16 * MiB, `rss ${later.rss}`);
    // It shows as CPU time; and it agrees with what Node counts for itself (both from the kernel).
    assert.ok(later.cpu! - start.cpu! >= 0.25, `cpu ${start.cpu} -> ${later.cpu}`);
    const own = process.cpuUsage();
    assert.ok(Math.abs(later.cpu! - (own.user + own.system) / 1e6) < 0.1, `cpu ${later.cpu} vs ${JSON.stringify(own)}`);
    assert.deepEqual(procUsage(2 ** 22 + 12345), { rss: null, cpu: null }, 'no such pid (above pid_max)');
  });

  it('cpuOf: utime + stime in seconds, counted from the last ")" of a command name with spaces and parentheses', () => {
    const rest = 'S 1 1 1 0 -1 4194560 5000 0 0 0 1234 266 0 0 20 0 11 0 2368823 1000 100 18446744073709551615';
    assert.equal(cpuOf(`4242 (node) ${rest}`), 15);
    assert.equal(cpuOf(`4242 (tunicorn: (w) x) ${rest}`), 15);
    assert.equal(cpuOf('4242 (node) S 1 2'), null, 'cut short');
    assert.equal(cpuOf(''), null);
    assert.equal(cpuOf(null), null);
  });

  it('refuses the setting in one line where there is no /proc, and accepts it (or 0) where there is', () => {
    const cfg = (maxWorkerMemory: number) => ({ maxWorkerMemory }) as Parameters<typeof checkMemoryLimit>[0];
    assert.throws(
      () => checkMemoryLimit(cfg(512 * MiB), '/nonexistent'),
      /^ConfigError: max_worker_memory \(--max-worker-memory\) needs \/nonexistent\/PID\/status to read a worker's memory, and this system has none \(it is Linux-only\): remove the setting, or use max_requests$/,
    );
    assert.doesNotThrow(() => checkMemoryLimit(cfg(0), '/nonexistent'), 'off: nothing to read');
    assert.doesNotThrow(() => checkMemoryLimit(cfg(512 * MiB)));
  });
});

describe('formatSize', () => {
  it('writes sizes for a log line in 1024s, with one decimal when not whole', () => {
    assert.equal(formatSize(512 * MiB), '512 MiB');
    assert.equal(formatSize(1.5 * 2 ** 30), '1.5 GiB');
    assert.equal(formatSize(Math.round(612.42 * MiB)), '612.4 MiB');
    assert.equal(formatSize(2048), '2 KiB');
    assert.equal(formatSize(100), '100 bytes');
    // Just under a unit reads as that unit, not as 1024.0 of the one below.
    assert.equal(formatSize(2 ** 30 - 1), '1.0 GiB');
    assert.equal(formatSize(1024 * 1024 - 1), '1.0 MiB');
  });
});

describe('memoryPeriodMs', () => {
  it('is 5 s unless the test-only variable says otherwise', () => {
    assert.equal(MEMORY_PERIOD_MS, 5000);
    assert.equal(memoryPeriodMs({}), 5000);
    assert.equal(memoryPeriodMs({ TUNICORN_TEST_MEMORY_PERIOD_MS: '200' }), 200);
    assert.equal(memoryPeriodMs({ TUNICORN_TEST_MEMORY_PERIOD_MS: 'soon' }), 5000);
  });
});
