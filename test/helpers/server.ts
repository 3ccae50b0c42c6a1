/**
 * Runs the real CLI (dist/cli/main.js) as a child process and reads its error log. Every server started here
 * is killed (with its workers) in `stopAll()`, which each test file calls in its after() hook.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import http from 'node:http';
import type http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { MASTER_NODE_FLAGS } from '../../src/cli/node-flags.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

const running = new Set<Server>();

export class Server {
  readonly child: ChildProcess;
  log = '';
  stdout = '';
  readonly #waiters: { re: RegExp; from: number; resolve: (m: RegExpMatchArray) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the server and every process holding its stdout or stderr have closed them: the log is whole. */
  readonly drained: Promise<void>;

  /**
   * `wrapper`: a command that execs the rest (`sh -c '... exec "$0" "$@"'`), for tests that need the pid
   * before the server starts (systemd's LISTEN_PID). `fds`: passed to the server as fd 3 and up. `bin`: run
   * dist/cli/main.js itself, through its `#!` line, as a shell runs the `tunicorn` bin. `cli`: that file of
   * another copy of tunicorn (a package installed from the tarball) instead of dist/'s.
   */
  constructor(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; wrapper?: string[]; fds?: number[]; bin?: boolean; cli?: string } = {}) {
    const cli = opts.cli ?? CLI;
    const [cmd, ...pre] = opts.bin ? [cli] : (opts.wrapper ?? [process.execPath]);
    // Otherwise as the bin starts it too: node with the master's options, then the CLI.
    const node = opts.bin ? [] : [...(opts.wrapper ? [process.execPath] : []), ...MASTER_NODE_FLAGS, cli];
    this.child = spawn(cmd!, [...pre, ...node, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, PORT: '', WEB_CONCURRENCY: '', TUNICORN_CMD_ARGS: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe', ...(opts.fds ?? [])],
      detached: true, // its own process group, so cleanup can kill the workers too
    });
    running.add(this);
    this.child.stderr!.on('data', (d: Buffer) => {
      this.log += d.toString();
      this.check();
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
    });
    this.drained = once(this.child, 'close').then(() => undefined);
    this.exited = once(this.child, 'exit').then(([code, signal]) => {
      running.delete(this);
      return { code: code as number | null, signal: signal as NodeJS.Signals | null };
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  private check(): void {
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      const w = this.#waiters[i]!;
      const m = this.log.slice(w.from).match(w.re);
      if (m) {
        this.#waiters.splice(i, 1);
        w.resolve(m);
      }
    }
  }

  /** Resolves when the log (from `from`, default: the start) matches; rejects after `ms` or on exit. */
  waitFor(re: RegExp, ms = 15000, from = 0): Promise<RegExpMatchArray> {
    const m = this.log.slice(from).match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${re}; log:\n${this.log}`)), ms);
      const w = { re, from, resolve: (x: RegExpMatchArray) => (clearTimeout(t), resolve(x)) };
      this.#waiters.push(w);
      void this.exited.then(() => {
        setTimeout(() => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) {
            this.#waiters.splice(i, 1);
            clearTimeout(t);
            reject(new Error(`server exited while waiting for ${re}; log:\n${this.log}`));
          }
        }, 50);
      });
    });
  }

  /** Counts matches of a pattern in the log. */
  count(re: RegExp): number {
    return (this.log.match(new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g')) ?? []).length;
  }

  /** Waits for `Listening at` and returns the port of the first TCP listener. */
  async port(): Promise<number> {
    const m = await this.waitFor(/Listening at: https?:\/\/[^\s]*:(\d+)/);
    return Number(m[1]);
  }

  /** Waits until `n` workers have booted and are serving (pids, in boot order). */
  async workersBooted(n: number, from = 0): Promise<number[]> {
    const m = await this.waitFor(new RegExp(`(?:[\\s\\S]*?Booting worker with pid: \\d+){${n}}`), 20000, from);
    return [...m[0].matchAll(/Booting worker with pid: (\d+)/g)].map((x) => Number(x[1]));
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** Kills the whole process group (master and workers) and waits for the master. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      killGroup(this.pid);
      return;
    }
    killGroup(this.pid);
    await this.exited;
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((s) => s.kill()));
}

/** Live worker pids of a master, from /proc. */
export function childrenOf(pid: number): number[] {
  const { readdirSync, readFileSync } = fs;
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      /* raced with exit */
    }
  }
  return out;
}

/** A worker's beat files (src/protocol/beat-file.ts) as /proc shows them: descriptor and `PATH (deleted)`. */
function beatFds(pid: number): { fd: string; target: string }[] {
  const out: { fd: string; target: string }[] = [];
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (/\/tunicorn-beat-\d+-[0-9a-f]+ \(deleted\)$/.test(target)) out.push({ fd, target });
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    /* gone */
  }
  return out;
}

/** The beat files a worker holds open, as /proc names them (unlinked: `PATH (deleted)`). */
export const beatFilesOf = (pid: number): string[] => beatFds(pid).map((b) => b.target);

/**
 * The last heartbeat a worker wrote into its beat file: its `process.hrtime.bigint()` then, on the clock this
 * process reads too. Read through /proc, since the master unlinked the file; null when the worker holds none
 * (or is gone).
 */
export function lastBeatOf(pid: number): bigint | null {
  const [b] = beatFds(pid);
  if (!b) return null;
  try {
    const buf = fs.readFileSync(`/proc/${pid}/fd/${b.fd}`);
    return buf.length >= 8 ? buf.readBigUInt64LE(0) : null;
  } catch {
    return null;
  }
}

/**
 * Milliseconds since a worker's last heartbeat (see lastBeatOf); NaN, which no comparison holds for, when it has
 * no beat file or has not beaten yet.
 */
export function sinceBeatMs(pid: number): number {
  const b = lastBeatOf(pid);
  return b === null ? NaN : Number(process.hrtime.bigint() - b) / 1e6;
}

/**
 * The gaps in ms between a worker's next `n + 1` heartbeats, read from its beat file every 50 ms (see
 * lastBeatOf); `tick` runs at each read (a load to keep it busy). Bounded by `ms`.
 */
export async function beatGaps(pid: number, n: number, ms: number, tick?: () => void): Promise<number[]> {
  const seen: bigint[] = [];
  let last = lastBeatOf(pid);
  await until(() => {
    tick?.();
    const b = lastBeatOf(pid);
    if (b !== null && b !== last) {
      seen.push(b);
      last = b;
    }
    return seen.length > n;
  }, ms, `${n + 1} heartbeats of worker ${pid}`);
  return seen.slice(1).map((b, i) => Number(b - seen[i]!) / 1e6);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls a condition every 50 ms, bounded by `ms`. */
export async function until(cond: () => boolean, ms = 10000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `p`, or an error naming `what` once `ms` have passed. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, bound]).finally(() => clearTimeout(timer));
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request on a new connection, or through `agent` (to reuse its keep-alive connections). */
export function request(
  port: number,
  path = '/',
  opts: { method?: string; headers?: Record<string, string>; body?: string; host?: string; timeout?: number; agent?: http.Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: opts.host ?? '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false, timeout: opts.timeout ?? 10000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * `request(port, path)` again until one is answered, for up to `ms`, 20 ms between tries: a worker whose
 * connections were all taken (its open-file limit) serves again once it has seen them close, and the tries
 * before that are closed unanswered. A count of tries made at once was spent in a few milliseconds on a busy
 * host (Node 26, a loaded run: 51 resets in 375 ms).
 */
export async function requestUntilServed(port: number, path: string, ms = 10000): Promise<Reply> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await request(port, path);
    } catch (err) {
      if (Date.now() >= end) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** One HTTP/2 request on `session` (its body read and dropped): the status it was answered with. */
export function h2Status(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    session.on('error', reject);
    const req = session.request(headers);
    let code = 0;
    req.on('response', (h) => (code = Number(h[':status'])));
    req.resume();
    req.on('end', () => resolve(code));
    req.on('error', reject);
    req.end();
  });
}
