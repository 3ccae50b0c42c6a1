/**
 * A load driver for the zero-downtime tests: N loops, each sending requests one after another through one
 * shared keep-alive agent (so N keep-alive connections), until stopped. Every request ends as exactly one of:
 *   ok       a complete 200 response
 *   failed   anything else after the request was sent: reset, hang-up, timeout, a non-200 status
 *   refused  ECONNREFUSED at connect: the server no longer listened; nothing was sent (only expected after a stop)
 * Each response carries the serving worker's pid (the fixture's /pid route), so a failure can be attributed
 * to the worker its connection was on.
 *
 * One failure is not counted but retried, once, as browsers do for an idempotent request and as Node's
 * documentation shows (`request.reusedSocket`; undici leaves it to its retry interceptor): a request written on
 * a kept-alive connection the server had already closed (its FIN was there, unread, when the request was
 * written: the loop had not seen it yet) that got no answer. No server can answer it, and every server closes
 * idle connections (its keep-alive timeout, a stop): on a loaded machine, a client stalled past a stop's 1 s
 * grace writes requests so (signal-storm.test.ts). A request written while its connection was open is never
 * retried: its loss is the server's.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
// The built module, whose native part (dist/native/peek.node) it finds beside it: the tests run after a build.
import { fdOf, openPeek, type Peek } from '../../dist/http/peek.js';

export interface Failure {
  readonly error: string;
  /** The pid of the worker that last answered on this connection; null for a connection never answered. */
  readonly pid: number | null;
}

export interface LoadStats {
  ok: number;
  failed: Failure[];
  refused: number;
  /** Responses that said `Connection: close`. */
  closes: number;
  /** Requests sent again: written on a kept-alive connection the server had closed, no answer (see above). */
  retried: number;
  pids: Set<number>;
}

export interface LoadOptions {
  connections?: number;
  path?: string;
  /**
   * A loop stops after a `Connection: close` answer (a client told the server is going away); see also
   * stopAtNextClose(), for classes that close every connection (sync, gthread).
   */
  stopOnClose?: boolean;
  /** A loop stops at ECONNREFUSED (the server is gone) instead of trying again. */
  stopOnRefused?: boolean;
  /** Safety bound: no loop sends more than this. */
  maxRequests?: number;
}

const active = new Set<Load>();

/** Stops every load still running (call in after(): a failed test must not leave loops behind). */
export async function stopAllLoads(): Promise<void> {
  await Promise.all([...active].map((l) => l.stop()));
}

export class Load {
  readonly stats: LoadStats = { ok: 0, failed: [], refused: 0, closes: 0, retried: 0, pids: new Set() };
  /** Looks at what the kernel holds for a connection before a request is written on it (native/peek.c). */
  readonly #peek: Peek | null;
  readonly #agent: http.Agent;
  readonly #pidOf = new WeakMap<Socket, number>();
  #running = true;
  #stopOnClose: boolean;
  readonly #loops: Promise<void>[];

  constructor(
    private readonly port: number,
    private readonly opts: LoadOptions = {},
  ) {
    const n = opts.connections ?? 20;
    this.#stopOnClose = opts.stopOnClose ?? false;
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: n });
    const peek = openPeek();
    // Without the native module (not built) nothing is retried: every failure counts.
    this.#peek = typeof peek === 'string' ? null : peek;
    this.#loops = Array.from({ length: n }, () => this.loop());
    active.add(this);
  }

  get total(): number {
    return this.stats.ok + this.stats.failed.length + this.stats.refused;
  }

  /** Resolves once at least `n` more requests succeeded (bounded by `ms`). */
  async okAtLeast(n: number, ms = 20000): Promise<void> {
    const target = this.stats.ok + n;
    const end = Date.now() + ms;
    while (this.stats.ok < target) {
      if (Date.now() > end) throw new Error(`load: only ${this.stats.ok}/${target} ok after ${ms} ms; ${this.summary()}`);
      if (!this.#running) throw new Error(`load stopped early; ${this.summary()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * From now on a loop stops at its next `Connection: close` answer. Before, a close only made it reconnect
   * (sync and gthread answer every request with `Connection: close`).
   */
  stopAtNextClose(): void {
    this.#stopOnClose = true;
  }

  /** Stops the loops after their current request; resolves with the stats. */
  async stop(): Promise<LoadStats> {
    this.#running = false;
    active.delete(this);
    await Promise.all(this.#loops);
    this.#agent.destroy();
    return this.stats;
  }

  /** Resolves when every loop has ended by itself (stopOnClose / stopOnRefused), bounded by `ms`. */
  async ended(ms = 20000): Promise<LoadStats> {
    const t = setTimeout(() => (this.#running = false), ms);
    await Promise.all(this.#loops);
    clearTimeout(t);
    active.delete(this);
    this.#agent.destroy();
    return this.stats;
  }

  summary(): string {
    const f = this.stats.failed;
    return `ok=${this.stats.ok} failed=${f.length} refused=${this.stats.refused} closes=${this.stats.closes} retried=${this.stats.retried}${f.length ? ` first failures: ${JSON.stringify(f.slice(0, 5))}` : ''}`;
  }

  private async loop(): Promise<void> {
    let sent = 0;
    const max = this.opts.maxRequests ?? 100_000;
    while (this.#running && sent++ < max) {
      const r = await this.one();
      if (r === 'close' && this.#stopOnClose) return;
      if (r === 'refused' && this.opts.stopOnRefused) return;
      // Never a tight loop against a server that is gone or failing.
      if (r === 'refused' || r === 'failed') await new Promise((res) => setTimeout(res, 20));
    }
  }

  private one(retry = true): Promise<'ok' | 'close' | 'failed' | 'refused'> {
    return new Promise((resolve) => {
      let socket: Socket | null = null;
      let done = false;
      /** A kept-alive connection the server had closed before the request was written (its FIN waiting unread). */
      let closedFirst = false;
      let answered = false;
      const fail = (error: string) => {
        if (done) return;
        done = true;
        if (retry && closedFirst && !answered) {
          this.stats.retried++;
          return void this.one(false).then(resolve);
        }
        this.stats.failed.push({ error, pid: socket ? (this.#pidOf.get(socket) ?? null) : null });
        resolve('failed');
      };
      const req = http.get({ host: '127.0.0.1', port: this.port, path: this.opts.path ?? '/pid', agent: this.#agent, timeout: 15000 }, (res) => {
        answered = true;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('error', (e) => fail(e.message));
        res.on('end', () => {
          if (done) return;
          if (res.statusCode !== 200) return fail(`status ${res.statusCode}: ${body.slice(0, 200)}`);
          let pid: number;
          try {
            pid = (JSON.parse(body) as { pid: number }).pid;
          } catch {
            return fail(`bad body ${body.slice(0, 100)}`);
          }
          done = true;
          this.stats.ok++;
          this.stats.pids.add(pid);
          if (socket) this.#pidOf.set(socket, pid);
          const close = res.headers.connection === 'close';
          if (close) this.stats.closes++;
          resolve(close ? 'close' : 'ok');
        });
      });
      req.on('socket', (s: Socket) => {
        socket = s;
        // Emitted before the request is written. A peek of 0 bytes: the server's FIN is there (a new connection,
        // still connecting, gives -ENOTCONN or -EAGAIN). Not only when req.reusedSocket: Node's agent leaves it
        // false on a kept-alive socket it hands straight to a request that was waiting for one.
        const fd = fdOf(s);
        if (this.#peek && fd >= 0) closedFirst = this.#peek(fd) === 0;
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (done) return;
        if (e.code === 'ECONNREFUSED') {
          done = true;
          this.stats.refused++;
          resolve('refused');
          return;
        }
        fail(`${e.code ?? ''} ${e.message}`.trim());
      });
    });
  }
}
