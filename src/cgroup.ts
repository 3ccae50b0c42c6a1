import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * A container's limits, as the kernel's cgroups set them (Linux): the CPU quota that `workers = "auto"` counts,
 * and the memory limit that `max_worker_memory` is compared with at start.
 */

/**
 * How many CPUs this server may use, for `workers = "auto"`. `os.availableParallelism()` counts the CPUs of the
 * affinity mask (a cpuset, `taskset`, `docker run --cpuset-cpus`), but on Node 20 (libuv 1.46) not a CPU quota:
 * `docker run --cpus 1`, a Kubernetes `resources.limits.cpu` or systemd's `CPUQuota=` leave it at the host's
 * count, and a 64-core node would start 129 workers that share one CPU's time. The quota is read here, as
 * Go (1.25) and the JVM read it: cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, rounded up.
 */
export interface UsableCpus {
  /** What `auto` counts: the machine's (affinity) CPUs, lowered to the quota. */
  readonly cpus: number;
  /** os.availableParallelism(). */
  readonly machine: number;
  /** The quota, when one is set: in CPUs (1.5 for `150000 100000`), and the file that sets it. */
  readonly quota: CgroupLimit | null;
}

/** A limit (CPUs, or bytes) and the file that sets it. */
export interface CgroupLimit {
  readonly value: number;
  readonly file: string;
}

/**
 * Test-only: where the cgroup file systems are mounted (/sys/fs/cgroup). The integration tests point it at a
 * folder of fixture files, as a test cannot give this machine a CPU quota unless it runs as root on a host whose
 * cgroups it may change. It is no setting.
 */
export const CGROUP_ROOT_ENV = 'TUNICORN_TEST_CGROUP_ROOT';

type Read = (file: string) => string | null;

const readOrNull: Read = (file) => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
};

/** A quota in CPUs from a quota and a period in microseconds; null for "max" (v2) or -1 (v1): no quota. */
function cpusOf(quota: string | undefined, period: string | undefined): number | null {
  const q = Number(quota);
  const p = Number(period);
  return Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0 ? q / p : null;
}

/** Bytes, or null for v2's "max" and v1's "no limit" (the page-aligned largest value, 2^63 - 4096 on x86-64). */
function bytesOf(text: string | undefined): number | null {
  const n = Number(text);
  return Number.isFinite(n) && n > 0 && n < 2 ** 62 ? n : null;
}

/** What each controller's limit is, where: cgroup v1 (one hierarchy per controller) and v2. */
const CONTROLLERS = {
  cpu: {
    v1: (dir: string, read: Read) => cpusOf(read(path.join(dir, 'cpu.cfs_quota_us'))?.trim(), read(path.join(dir, 'cpu.cfs_period_us'))?.trim()),
    v1File: 'cpu.cfs_quota_us',
    v2: (text: string) => {
      const [quota, period] = text.trim().split(/\s+/);
      return cpusOf(quota, period);
    },
    v2File: 'cpu.max',
  },
  memory: {
    v1: (dir: string, read: Read) => bytesOf(read(path.join(dir, 'memory.limit_in_bytes'))?.trim()),
    v1File: 'memory.limit_in_bytes',
    v2: (text: string) => bytesOf(text.trim()),
    v2File: 'memory.max',
  },
} as const;

/**
 * The lowest limit on the way from this process's cgroup up to the root of the mounted hierarchy: a parent's
 * limit bounds its children's (a Kubernetes pod's over its containers'). The walk up also finds the limit where
 * the path /proc/self/cgroup gives is not the one mounted: under cgroup v1 without a cgroup namespace Docker
 * shows `/docker/ID` there, and mounts that very cgroup as the root of /sys/fs/cgroup/cpu.
 *
 * `procSelfCgroup`: the text of /proc/self/cgroup. A cgroup v1 hierarchy of the controller counts when there is
 * one (a hybrid host mounts v2 without controllers); else the v2 line (`0::/PATH`).
 */
export function cgroupLimit(controller: keyof typeof CONTROLLERS, procSelfCgroup: string, root: string, read: Read = readOrNull): CgroupLimit | null {
  const how = CONTROLLERS[controller];
  const lines = procSelfCgroup.split('\n').map((l) => {
    const [, , controllers = '', at = ''] = /^(\d+):([^:]*):(.*)$/.exec(l.trim()) ?? [];
    return { controllers: controllers.split(','), at };
  });
  const v1 = lines.find((l) => l.controllers.includes(controller));
  const v2 = lines.find((l) => l.controllers.length === 1 && l.controllers[0] === '' && l.at.startsWith('/'));
  let best: CgroupLimit | null = null;
  const consider = (value: number | null, file: string): void => {
    if (value !== null && (best === null || value < best.value)) best = { value, file };
  };
  if (v1) {
    if (!v1.at.startsWith('/')) return null;
    // Mounted under the controller's name (cpu: often a link to cpu,cpuacct) or under the joined name of its
    // controllers.
    for (const mount of new Set([controller, v1.controllers.join(',')])) {
      for (const at of upFrom(v1.at)) {
        const dir = path.join(root, mount, at);
        if (read(path.join(dir, how.v1File)) === null) continue;
        consider(how.v1(dir, read), path.join(dir, how.v1File));
      }
      if (best) break;
    }
  } else if (v2) {
    for (const at of upFrom(v2.at)) {
      const file = path.join(root, at, how.v2File);
      const text = read(file);
      if (text !== null) consider(how.v2(text), file);
    }
  }
  return best;
}

/** `/a/b`, `/a`, `/`. */
function upFrom(at: string): string[] {
  const list: string[] = [];
  for (let d = path.posix.normalize(at); ; d = path.posix.dirname(d)) {
    list.push(d);
    if (d === '/') return list;
  }
}

/** This process's limit of `controller`, or null (none, or not Linux). */
function ownLimit(controller: keyof typeof CONTROLLERS, env: NodeJS.ProcessEnv, read: Read): CgroupLimit | null {
  const self = process.platform === 'linux' ? read('/proc/self/cgroup') : null;
  return self === null ? null : cgroupLimit(controller, self, env[CGROUP_ROOT_ENV] || '/sys/fs/cgroup', read);
}

/** The CPUs `auto` counts; see UsableCpus. */
export function usableCpus(env: NodeJS.ProcessEnv = process.env, read: Read = readOrNull): UsableCpus {
  const machine = os.availableParallelism();
  const quota = ownLimit('cpu', env, read);
  // Rounded as the start line shows it (to 1/100 CPU) before rounding up: 100001 / 100000 is 1 CPU. At least
  // one: a quota of 0.5 CPU still runs one process at a time.
  const cpus = quota ? Math.max(1, Math.min(machine, Math.ceil(Math.round(quota.value * 100) / 100))) : machine;
  return { cpus, machine, quota };
}

/** The memory limit of this process's cgroup (a container's), in bytes, or null. */
export function memoryLimit(env: NodeJS.ProcessEnv = process.env, read: Read = readOrNull): CgroupLimit | null {
  return ownLimit('memory', env, read);
}

/** `1.5` for 1.5, `1` for 1.00001 (a quota is set in whole microseconds): for the start line. */
export function formatCpus(n: number): string {
  return String(Math.round(n * 100) / 100);
}

/**
 * The start line for `workers = "auto"`: what it counted, so that a count far from the host's CPUs (a container's
 * quota) or the host's count where a quota was expected is seen at once.
 */
export function autoWorkersLine(workers: number, at: UsableCpus = usableCpus()): string {
  const cpus = (n: number): string => `${n} CPU${n === 1 ? '' : 's'}`;
  const quota = at.quota && at.quota.value < at.machine ? `; the CPU quota, ${formatCpus(at.quota.value)} of the machine's ${cpus(at.machine)}: ${at.quota.file}` : '';
  return `Workers: auto = ${workers} ((2 x ${cpus(at.cpus)}) + 1${quota})`;
}
