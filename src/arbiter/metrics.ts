import { closeSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { statFields } from '../process-tree.js';
import { BUCKETS, requestLabels, residentBytes, type WorkerCounts } from '../workers/request-metrics.js';
import { procUsage, readProcText } from './proc-usage.js';
import type { Family, Sample } from './prometheus.js';
import type { WorkerHandle } from './worker-handle.js';

/**
 * The master's side of the `metrics` setting: the workers' counts, kept so that counters never go down while
 * the master runs (an exited worker's last counts are added to those of the workers gone before), and the
 * families of `GET /metrics` (rendered by prometheus.ts).
 *
 * The counts are asked for when a scrape comes (a `metrics` message to each serving worker, its answer waited
 * for at most COLLECT_MS), not pushed per request: a request costs the worker two increments in its own
 * memory, and the master nothing. They also ride along with each heartbeat and are sent once more as a worker
 * exits, so a worker killed between two scrapes (a timeout) loses at most a heartbeat's worth.
 */

/** How long a scrape waits for the workers' counts: a stuck worker counts with the last ones it sent. */
export const COLLECT_MS = 1000;

/** Why a worker exited (the `reason` label of tunicorn_worker_exits_total). */
export const EXIT_REASONS = [
  'crash',
  'timeout',
  'max_requests',
  'max_worker_memory',
  'reload',
  'scale_down',
  'control',
  'shutdown',
  'killed',
  'exited',
  'boot_failure',
] as const;
export type ExitReason = (typeof EXIT_REASONS)[number];

/** Counts added up over workers (the exited ones, or those running now). */
class Totals {
  readonly requests = new Map<number, number>();
  readonly buckets: number[] = new Array<number>(BUCKETS.length + 1).fill(0);
  seconds = 0;

  /** Adds `c`, less `minus` (what of the same worker was added before). */
  add(c: WorkerCounts, minus: WorkerCounts | null = null): void {
    for (let i = 0; i + 1 < c.requests.length; i += 2) this.requests.set(c.requests[i]!, (this.requests.get(c.requests[i]!) ?? 0) + c.requests[i + 1]!);
    if (minus) for (let i = 0; i + 1 < minus.requests.length; i += 2) this.requests.set(minus.requests[i]!, (this.requests.get(minus.requests[i]!) ?? 0) - minus.requests[i + 1]!);
    for (let b = 0; b < this.buckets.length; b++) this.buckets[b]! += (c.buckets[b] ?? 0) - (minus?.buckets[b] ?? 0);
    this.seconds += c.seconds - (minus?.seconds ?? 0);
  }

  plus(other: Totals): Totals {
    const t = new Totals();
    for (const src of [this, other]) {
      for (const [k, n] of src.requests) t.requests.set(k, (t.requests.get(k) ?? 0) + n);
      src.buckets.forEach((n, b) => (t.buckets[b]! += n));
      t.seconds += src.seconds;
    }
    return t;
  }
}

/** The master's record of one worker for the metrics: kept on its handle. */
export interface WorkerMetricsState {
  counts: WorkerCounts | null;
  /** The most CPU seconds seen for it (from /proc or its counts). */
  cpuSeen: number;
  /** Exited, its counts added to the exited workers': a later message adds only what it brings on top. */
  folded: boolean;
}

export interface MetricsView {
  /** Every worker process the master has now (booting, serving, stopping). */
  readonly workers: readonly WorkerHandle[];
  /** The number of workers wanted (the `workers` setting, TTIN/TTOU). */
  readonly wanted: number;
  readonly listeners: readonly { readonly url: string; readonly fd: number; readonly tcp: boolean }[];
  /** The accept queue's limit: the backlog setting, capped by the kernel's (null where unknown). */
  readonly backlog: number | null;
  readonly started: number;
}

export class MetricsBook {
  readonly #exited = new Totals();
  readonly #exits = new Map<ExitReason, number>(EXIT_REASONS.map((r) => [r, 0]));
  /** The CPU seconds of each slot's exited processes. */
  readonly #slotCpu = new Map<number, number>();
  readonly #waiting = new Map<WorkerHandle, () => void>();
  #collecting: Promise<number> | null = null;
  #started = 0;

  /** Counts from worker `w` (an answer, a heartbeat, its last message). */
  received(w: WorkerHandle, counts: WorkerCounts): void {
    // The channel is the app's too (process.send): a message that only looks like ours is not counted, and
    // must not throw in the master.
    if (!isCounts(counts)) return;
    const m = w.metrics;
    if (m.folded) {
      // After its exit was handled: only what is new since.
      this.#exited.add(counts, m.counts);
      const cpu = Math.max(m.cpuSeen, counts.cpu);
      this.#slotCpu.set(w.id, (this.#slotCpu.get(w.id) ?? 0) + cpu - m.cpuSeen);
      m.cpuSeen = cpu;
    }
    m.counts = counts;
    this.#waiting.get(w)?.();
  }

  /** Worker `w` exited, for `reason`: its counts join the exited workers'. */
  exited(w: WorkerHandle, reason: ExitReason): void {
    this.#exits.set(reason, (this.#exits.get(reason) ?? 0) + 1);
    const m = w.metrics;
    if (m.folded) return;
    m.folded = true;
    if (m.counts) {
      this.#exited.add(m.counts);
      m.cpuSeen = Math.max(m.cpuSeen, m.counts.cpu);
    }
    this.#slotCpu.set(w.id, (this.#slotCpu.get(w.id) ?? 0) + m.cpuSeen);
    this.#waiting.get(w)?.();
  }

  /** Workers started since the master started. */
  started(): void {
    this.#started++;
  }

  /**
   * Asks every serving worker for its counts and resolves once all have answered, or after `ms`, with the
   * number that did not answer. Scrapes that come meanwhile share the one collection.
   */
  collect(workers: readonly WorkerHandle[], ms = COLLECT_MS): Promise<number> {
    return (this.#collecting ??= this.#ask(workers, ms).finally(() => (this.#collecting = null)));
  }

  async #ask(workers: readonly WorkerHandle[], ms: number): Promise<number> {
    const asked = workers.filter((w) => w.state !== 'booting' && !w.metrics.folded && w.send({ t: 'metrics' }));
    if (asked.length === 0) return 0;
    let left = asked.length;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      for (const w of asked)
        this.#waiting.set(w, () => {
          this.#waiting.delete(w);
          if (--left === 0) resolve();
        });
    });
    clearTimeout(timer);
    for (const w of asked) this.#waiting.delete(w);
    return left;
  }

  /** The families of `GET /metrics`; `unanswered`: the workers that did not answer this scrape's collection. */
  families(view: MetricsView, unanswered: number): Family[] {
    const live = view.workers.filter((w) => !w.metrics.folded);
    const totals = new Totals();
    let inflight = 0;
    for (const w of live) {
      if (w.metrics.counts) totals.add(w.metrics.counts);
      inflight += w.metrics.counts?.inflight ?? 0;
    }
    const all = totals.plus(this.#exited);
    const requests: Sample[] = [...all.requests]
      .filter(([, n]) => n > 0)
      .sort(([a], [b]) => a - b)
      .map(([i, n]) => ({ labels: requestLabels(i), value: n }));
    // Each slot's processes: during a replacement, the old one and its successor together.
    const rss = new Map<number, number>();
    const cpu = new Map<number, number>(this.#slotCpu);
    for (const w of live) {
      const usage = procUsage(w.pid);
      const m = w.metrics;
      m.cpuSeen = Math.max(m.cpuSeen, usage.cpu ?? 0, m.counts?.cpu ?? 0);
      cpu.set(w.id, (cpu.get(w.id) ?? 0) + m.cpuSeen);
      const bytes = usage.rss ?? m.counts?.rss ?? null;
      if (bytes !== null) rss.set(w.id, (rss.get(w.id) ?? 0) + bytes);
    }
    const bySlot = (m: Map<number, number>): Sample[] => [...m].sort(([a], [b]) => a - b).map(([slot, v]) => ({ labels: { slot: String(slot) }, value: v }));
    const families: Family[] = [
      { name: 'tunicorn_requests_total', help: 'Requests served, by method (OTHER for any not listed) and status code (none: no response was sent).', type: 'counter', samples: requests },
      {
        name: 'tunicorn_request_duration_seconds',
        help: 'Time from the request reaching the app to its response finished (or cut).',
        type: 'histogram',
        samples: [{ bounds: BUCKETS, counts: all.buckets, sum: all.seconds }],
      },
      { name: 'tunicorn_requests_in_flight', help: 'Requests the app is running now.', type: 'gauge', samples: [{ value: inflight }] },
      { name: 'tunicorn_workers', help: 'Worker processes wanted (the workers setting, changed by TTIN and TTOU).', type: 'gauge', samples: [{ value: view.wanted }] },
      {
        name: 'tunicorn_workers_running',
        help: 'Worker processes that serve (during a reload, old and new ones).',
        type: 'gauge',
        samples: [{ value: view.workers.filter((w) => w.state === 'ready').length }],
      },
      { name: 'tunicorn_workers_started_total', help: 'Worker processes started.', type: 'counter', samples: [{ value: this.#started }] },
      {
        name: 'tunicorn_worker_exits_total',
        help: 'Worker processes that exited, by reason.',
        type: 'counter',
        samples: [...this.#exits].map(([reason, n]) => ({ labels: { reason }, value: n })),
      },
      {
        name: 'tunicorn_workers_unanswered',
        help: `Workers that did not send their counts within ${COLLECT_MS / 1000} s of this scrape (a stuck event loop): their last counts are used.`,
        type: 'gauge',
        samples: [{ value: unanswered }],
      },
      { name: 'tunicorn_worker_resident_memory_bytes', help: 'Resident memory of the worker processes of each slot.', type: 'gauge', samples: bySlot(rss) },
      { name: 'tunicorn_worker_cpu_seconds_total', help: 'CPU time (user and system) of the worker processes of each slot, those exited included.', type: 'counter', samples: bySlot(cpu) },
      { name: 'tunicorn_master_start_time_seconds', help: 'When the master started, in seconds since the Unix epoch.', type: 'gauge', samples: [{ value: view.started }] },
      ...masterFamilies(view.started),
    ];
    const queues = listenQueues(view.listeners);
    if (queues) {
      families.push({
        name: 'tunicorn_listen_queue',
        help: 'Connections accepted by the kernel that no worker has taken yet (a TCP listener\'s accept queue; Linux).',
        type: 'gauge',
        samples: queues.map((q) => ({ labels: { listener: q.url }, value: q.queue })),
      });
      if (view.backlog !== null)
        families.push({
          name: 'tunicorn_listen_queue_limit',
          help: 'The most connections the accept queue holds (the backlog setting, capped by net.core.somaxconn).',
          type: 'gauge',
          samples: queues.map((q) => ({ labels: { listener: q.url }, value: view.backlog! })),
        });
    }
    return families;
  }
}

/**
 * The master's own process, under the names Prometheus's client libraries give every process they run in
 * (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`...), so that the dashboards
 * and alerts written for those (a descriptor leak: `process_open_fds / process_max_fds`) work on the master as
 * they are. The workers are under tunicorn_worker_*, by slot. Read on a scrape only; a part that cannot be read
 * (no /proc: not Linux) is left out.
 */
export function masterFamilies(started: number, proc = '/proc/self'): Family[] {
  const cpu = process.cpuUsage();
  const families: Family[] = [
    { name: 'process_cpu_seconds_total', help: 'CPU time (user and system) of the master process, in seconds.', type: 'counter', samples: [{ value: (cpu.user + cpu.system) / 1e6 }] },
  ];
  // libuv reads /proc/self/stat for it: with every descriptor taken it threw EMFILE, which failed the scrape.
  const rss = residentBytes();
  if (rss !== null) families.push({ name: 'process_resident_memory_bytes', help: 'Resident memory of the master process.', type: 'gauge', samples: [{ value: rss }] });
  families.push({ name: 'process_start_time_seconds', help: 'When the master process started, in seconds since the Unix epoch.', type: 'gauge', samples: [{ value: started }] });
  const stat = readProcText(`${proc}/stat`);
  // vsize, field 23 of the line: the 21st after the command's closing parenthesis.
  const vsize = Number(stat === null ? NaN : statFields(stat)?.fields[20]);
  if (Number.isSafeInteger(vsize)) families.push({ name: 'process_virtual_memory_bytes', help: 'Virtual memory size of the master process.', type: 'gauge', samples: [{ value: vsize }] });
  const limit = fdLimit(proc);
  let open: number | undefined;
  try {
    // The directory's own descriptor, open while it is read, is not counted.
    open = readdirSync(`${proc}/fd`).length - 1;
  } catch (err) {
    // Not Linux; or EMFILE: as many open as the limit allows.
    if ((err as NodeJS.ErrnoException).code === 'EMFILE' && limit !== undefined && limit !== 'unlimited') open = Number(limit);
  }
  if (open !== undefined) families.push({ name: 'process_open_fds', help: 'Open file descriptors of the master process.', type: 'gauge', samples: [{ value: open }] });
  if (limit !== undefined && limit !== 'unlimited')
    families.push({ name: 'process_max_fds', help: 'The most file descriptors the master process may open (its soft limit).', type: 'gauge', samples: [{ value: Number(limit) }] });
  return families;
}

/** The `Max open files` soft limit last read from each /proc directory (masterFamilies). */
const fdLimits = new Map<string, string | undefined>();

/**
 * The soft limit on descriptors as `/proc/.../limits` has it (`unlimited` too), or the one last read: with every
 * descriptor taken the file cannot be opened, and that is when `process_open_fds / process_max_fds` must not go
 * blank. The master's is read when this module loads, before any scrape.
 */
function fdLimit(proc: string): string | undefined {
  const limits = readProcText(`${proc}/limits`);
  if (limits !== null) fdLimits.set(proc, /^Max open files\s+(\d+|unlimited)\s/m.exec(limits)?.[1]);
  return fdLimits.get(proc);
}
fdLimit('/proc/self');


/** The most bytes of /proc/net/tcp read: listening sockets come first there, so the read ends long before. */
const NET_TCP_MAX = 4 << 20;

/**
 * The accept queue of each TCP listener, from /proc/net/tcp and tcp6 (a LISTEN socket's rx_queue is its accept
 * queue's length), found by the socket's inode; null without /proc (not Linux) or when none is TCP.
 */
export function listenQueues(listeners: MetricsView['listeners'], proc = '/proc'): { url: string; queue: number }[] | null {
  const inodes = new Map<string, string>();
  for (const l of listeners) {
    if (!l.tcp) continue;
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`${proc}/self/fd/${l.fd}`));
      if (m) inodes.set(m[1]!, l.url);
    } catch {
      return null;
    }
  }
  if (inodes.size === 0) return null;
  const found = new Map<string, number>();
  for (const file of ['tcp', 'tcp6']) {
    if (found.size === inodes.size) break;
    listenLines(`${proc}/net/${file}`, (queue, inode) => {
      if (inodes.has(inode)) found.set(inode, queue);
      return found.size < inodes.size;
    });
  }
  return [...inodes].map(([inode, url]) => ({ url, queue: found.get(inode) ?? 0 }));
}

/**
 * Calls `each` with the rx_queue and inode of every LISTEN line of a /proc/net/tcp file, until it returns
 * false or the listening sockets end (the kernel lists them before every other socket, so a busy server's
 * thousands of connections are not read).
 */
export function listenLines(file: string, each: (queue: number, inode: string) => boolean): void {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return;
  }
  try {
    const buf = Buffer.alloc(64 * 1024);
    let rest = '';
    let first = true;
    for (let total = 0; total < NET_TCP_MAX; ) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      const lines = (rest + buf.toString('latin1', 0, n)).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        if (first) {
          first = false; // the header
          continue;
        }
        // sl local rem st tx_queue:rx_queue tr tm->when retrnsmt uid timeout inode
        const f = line.trim().split(/\s+/);
        if (f.length < 10) continue;
        if (f[3] !== '0A') return;
        const queue = parseInt(f[4]!.split(':')[1] ?? '', 16);
        if (!each(Number.isFinite(queue) ? queue : 0, f[9]!)) return;
      }
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Why worker `w` exited, for tunicorn_worker_exits_total. `expected`: the master stopped it (or it said it
 * exits after an uncaught exception); `bootFailed`: it exited before it served.
 */
export function exitReason(w: WorkerHandle, bootFailed: boolean, expected: boolean, code: number | null, signal: NodeJS.Signals | null): ExitReason {
  if (w.timedOut) return 'timeout';
  if (bootFailed) return 'boot_failure';
  if (w.crashed) return 'crash';
  if (expected) return w.exitReason ?? 'shutdown';
  // Not asked to: the OOM killer or someone's kill, the app's process.exit().
  if (signal) return 'killed';
  return code ? 'crash' : 'exited';
}

/** Counts as a worker sends them (WorkerCounts), checked where they arrive. */
function isCounts(v: unknown): v is WorkerCounts {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  const numbers = (a: unknown) => Array.isArray(a) && a.every((x) => typeof x === 'number');
  return (
    numbers(c.requests) &&
    numbers(c.buckets) &&
    (c.buckets as unknown[]).length === BUCKETS.length + 1 &&
    typeof c.seconds === 'number' &&
    typeof c.inflight === 'number' &&
    typeof c.cpu === 'number' &&
    (typeof c.rss === 'number' || c.rss === null)
  );
}
