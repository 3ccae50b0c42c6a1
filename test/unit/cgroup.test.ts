/**
 * A container's limits (src/cgroup.ts), read from fixture file trees as the kernel lays them out:
 * - cgroup v2 `cpu.max` in a cgroup namespace (`0::/`), under a path with a lower limit above it (a pod's),
 *   and `max` (no quota)
 * - cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: no quota), mounted as `cpu` or as `cpu,cpuacct`,
 *   and Docker's v1 layout without a cgroup namespace (the path says /docker/ID, the mount's root is that cgroup)
 * - a hybrid host (v1 controllers, v2 mounted without them): the v1 hierarchy counts
 * - memory: v2 `memory.max`, v1 `memory.limit_in_bytes` and its "no limit" value
 * - usableCpus: the quota rounded up, at least 1, never above the machine's CPUs; `workers = "auto"` from it
 * - the start line for `auto`
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { autoWorkersLine, CGROUP_ROOT_ENV, cgroupLimit, memoryLimit, usableCpus } from '../../src/cgroup.js';
import { resolveConfig } from '../../src/config/resolve.js';

const ROOT = '/sys/fs/cgroup';

/** A read() over a map of files (paths under ROOT), as the kernel would answer them. */
function files(tree: Record<string, string>): (file: string) => string | null {
  return (file) => tree[file] ?? null;
}
const at = (...parts: string[]) => path.join(ROOT, ...parts);

describe('cgroupLimit: cpu', () => {
  it('reads cgroup v2 cpu.max in a cgroup namespace (the container sees its cgroup as /)', () => {
    const read = files({ [at('cpu.max')]: '150000 100000\n' });
    assert.deepEqual(cgroupLimit('cpu', '0::/\n', ROOT, read), { value: 1.5, file: at('cpu.max') });
  });

  it('takes the lowest quota on the way up from the cgroup (a pod limits its containers)', () => {
    const read = files({
      [at('kubepods/pod1/c1/cpu.max')]: '400000 100000\n',
      [at('kubepods/pod1/cpu.max')]: '200000 100000\n',
      [at('kubepods/cpu.max')]: 'max 100000\n',
    });
    assert.deepEqual(cgroupLimit('cpu', '0::/kubepods/pod1/c1\n', ROOT, read), { value: 2, file: at('kubepods/pod1/cpu.max') });
  });

  it('reads "max" as no quota', () => {
    assert.equal(cgroupLimit('cpu', '0::/\n', ROOT, files({ [at('cpu.max')]: 'max 100000\n' })), null);
  });

  it('reads cgroup v1 cpu.cfs_quota_us over cpu.cfs_period_us, mounted as cpu or as cpu,cpuacct', () => {
    const self = '12:memory:/x\n4:cpu,cpuacct:/\n0::/\n';
    const asCpu = files({ [at('cpu/cpu.cfs_quota_us')]: '50000\n', [at('cpu/cpu.cfs_period_us')]: '100000\n' });
    assert.deepEqual(cgroupLimit('cpu', self, ROOT, asCpu), { value: 0.5, file: at('cpu/cpu.cfs_quota_us') });
    const joined = files({ [at('cpu,cpuacct/cpu.cfs_quota_us')]: '300000\n', [at('cpu,cpuacct/cpu.cfs_period_us')]: '100000\n' });
    assert.deepEqual(cgroupLimit('cpu', self, ROOT, joined), { value: 3, file: at('cpu,cpuacct/cpu.cfs_quota_us') });
  });

  it('reads a v1 quota of -1 as none', () => {
    const read = files({ [at('cpu/cpu.cfs_quota_us')]: '-1\n', [at('cpu/cpu.cfs_period_us')]: '100000\n' });
    assert.equal(cgroupLimit('cpu', '1:cpu:/\n', ROOT, read), null);
  });

  it("finds the quota of Docker's v1 layout without a cgroup namespace: the path is /docker/ID, the mount is that cgroup", () => {
    const read = files({ [at('cpu/cpu.cfs_quota_us')]: '100000\n', [at('cpu/cpu.cfs_period_us')]: '100000\n' });
    assert.deepEqual(cgroupLimit('cpu', '3:cpu,cpuacct:/docker/0123abcd\n', ROOT, read), { value: 1, file: at('cpu/cpu.cfs_quota_us') });
  });

  it('on a hybrid host, takes the v1 hierarchy of the controller rather than the v2 mount without controllers', () => {
    const read = files({
      [at('cpu/app/cpu.cfs_quota_us')]: '100000\n',
      [at('cpu/app/cpu.cfs_period_us')]: '100000\n',
      [at('cpu.max')]: '800000 100000\n',
    });
    assert.deepEqual(cgroupLimit('cpu', '1:cpu:/app\n0::/\n', ROOT, read), { value: 1, file: at('cpu/app/cpu.cfs_quota_us') });
  });

  it('no cgroup files (not Linux, /sys not mounted): no quota', () => {
    assert.equal(cgroupLimit('cpu', '0::/\n', ROOT, files({})), null);
    assert.equal(cgroupLimit('cpu', '', ROOT, files({})), null);
  });
});

describe('cgroupLimit: memory', () => {
  it('reads v2 memory.max, and "max" as none', () => {
    assert.deepEqual(cgroupLimit('memory', '0::/\n', ROOT, files({ [at('memory.max')]: '1073741824\n' })), {
      value: 2 ** 30,
      file: at('memory.max'),
    });
    assert.equal(cgroupLimit('memory', '0::/\n', ROOT, files({ [at('memory.max')]: 'max\n' })), null);
  });

  it("reads v1 memory.limit_in_bytes, and the kernel's no-limit value as none", () => {
    const self = '4:memory:/docker/abc\n';
    assert.deepEqual(cgroupLimit('memory', self, ROOT, files({ [at('memory/memory.limit_in_bytes')]: '536870912\n' })), {
      value: 2 ** 29,
      file: at('memory/memory.limit_in_bytes'),
    });
    assert.equal(cgroupLimit('memory', self, ROOT, files({ [at('memory/memory.limit_in_bytes')]: '9223372036854771712\n' })), null);
  });

  it('memoryLimit reads this process through the root the tests may move', () => {
    const env = { [CGROUP_ROOT_ENV]: '/fixture' };
    const read = files({ '/proc/self/cgroup': '0::/\n', '/fixture/memory.max': '2147483648\n' });
    assert.deepEqual(memoryLimit(env, read), { value: 2 ** 31, file: '/fixture/memory.max' });
  });
});

describe('usableCpus', { skip: process.platform !== 'linux' && 'cgroups are Linux only' }, () => {
  const machine = os.availableParallelism();
  const withQuota = (cpuMax: string) => usableCpus({}, files({ '/proc/self/cgroup': '0::/\n', [at('cpu.max')]: cpuMax }));

  it('rounds a quota up, to at least one CPU, and never above the machine', () => {
    assert.equal(withQuota('50000 100000').cpus, 1);
    assert.equal(withQuota('100000 100000').cpus, 1);
    // A quota set in whole microseconds a hair above one CPU is one CPU.
    assert.equal(withQuota('100001 100000').cpus, 1);
    assert.equal(withQuota('150000 100000').cpus, Math.min(2, machine));
    assert.equal(withQuota(`${(machine + 4) * 100000} 100000`).cpus, machine);
    assert.equal(withQuota('max 100000').cpus, machine);
    assert.equal(withQuota('max 100000').machine, machine);
  });

  it('says in the start line what auto counted, and the quota when it is below the machine', () => {
    assert.equal(autoWorkersLine(3, { cpus: 1, machine: 64, quota: { value: 1, file: '/sys/fs/cgroup/cpu.max' } }),
      "Workers: auto = 3 ((2 x 1 CPU) + 1; the CPU quota, 1 of the machine's 64 CPUs: /sys/fs/cgroup/cpu.max)");
    assert.equal(autoWorkersLine(5, { cpus: 2, machine: 64, quota: { value: 1.5, file: '/q' } }),
      "Workers: auto = 5 ((2 x 2 CPUs) + 1; the CPU quota, 1.5 of the machine's 64 CPUs: /q)");
    assert.equal(autoWorkersLine(9, { cpus: 4, machine: 4, quota: null }), 'Workers: auto = 9 ((2 x 4 CPUs) + 1)');
    assert.equal(autoWorkersLine(9, { cpus: 4, machine: 4, quota: { value: 8, file: '/q' } }), 'Workers: auto = 9 ((2 x 4 CPUs) + 1)');
  });
});

describe('workers "auto": resolved, and remembered as auto', () => {
  const resolve = (argv: string[], env: NodeJS.ProcessEnv = {}, fileValues?: Record<string, unknown>) =>
    resolveConfig({ argv, env, cwd: process.cwd(), fileValues: fileValues ?? {} });

  it('from the command line, TUNICORN_CMD_ARGS, WEB_CONCURRENCY and a config file; not for a number', async () => {
    const auto = 2 * usableCpus().cpus + 1;
    for (const r of [
      await resolve(['-w', 'auto', 'app.ts']),
      await resolve(['app.ts'], { TUNICORN_CMD_ARGS: '--workers auto' }),
      await resolve(['app.ts'], { WEB_CONCURRENCY: 'auto' }),
      await resolve(['app.ts'], {}, { workers: 'auto' }),
    ]) {
      assert.equal(r.config.workers, auto);
      assert.equal(r.workersAuto, true);
    }
    assert.equal((await resolve(['-w', '3', 'app.ts'])).workersAuto, false);
    assert.equal((await resolve(['app.ts'], { WEB_CONCURRENCY: '2' })).workersAuto, false);
    // The command line over the config file's auto.
    assert.equal((await resolve(['-w', '2', 'app.ts'], {}, { workers: 'auto' })).workersAuto, false);
    assert.equal((await resolve(['app.ts'])).workersAuto, false);
  });
});
