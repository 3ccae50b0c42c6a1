import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { HookServer, HookWorker } from '../config/hook-types.js';
import type { Config } from '../config/registry.js';
import { AccessLog } from '../logging/access-log.js';
import { ErrorLog } from '../logging/error-log.js';
import type { InflightRequest, WorkerMessage } from '../protocol/messages.js';
import type { RequestListener } from '../app/shapes.js';
import type { Watchdog } from './watchdog.js';

/** Hooks a worker process may call, as loaded from the config file in this process. */
export type WorkerHooks = Pick<Config, 'postFork' | 'postWorkerInit' | 'workerInt' | 'workerAbort' | 'preRequest' | 'postRequest' | 'workerExit'>;

interface Inflight {
  readonly req: IncomingMessage;
  readonly start: number;
  /** The watchdog slot naming this request, or -1. */
  readonly slot: number;
}

/**
 * What every worker class shares inside a worker process: the config, the logs, the hooks, request
 * accounting (max_requests, in-flight requests for the timeout report) and the drain switch.
 */
export class WorkerRuntime {
  readonly log: ErrorLog;
  readonly accessLog: AccessLog | null;
  readonly self: HookWorker;
  readonly server: HookServer;
  readonly maxRequests: number;
  requests = 0;
  /** Once set, every response closes its connection (graceful stop). */
  draining = false;
  readonly inflight = new Set<Inflight>();
  /** Set by the worker process when the heartbeat runs (timeout > 0). */
  watchdog: Watchdog | null = null;
  #retiring = false;

  constructor(
    readonly config: Config,
    readonly hooks: WorkerHooks,
    id: number,
    age: number,
    masterPid: number,
    private readonly send: (m: WorkerMessage) => void,
  ) {
    this.log = new ErrorLog(config.errorlog, config.loglevel);
    this.accessLog = config.accesslog ? new AccessLog(config.accesslog, config.accessLogFormat) : null;
    this.self = { pid: process.pid, id, age, log: this.log };
    this.server = { pid: masterPid, cfg: config, log: this.log, numWorkers: config.workers };
    const jitter = config.maxRequestsJitter > 0 ? Math.floor(Math.random() * (config.maxRequestsJitter + 1)) : 0;
    this.maxRequests = config.maxRequests > 0 ? config.maxRequests + jitter : 0;
  }

  /** Runs a hook; a hook that throws is logged and does not take the worker down. */
  async runHook<K extends keyof WorkerHooks>(name: K, ...args: Parameters<NonNullable<WorkerHooks[K]>>): Promise<void> {
    const fn = this.hooks[name] as ((...a: unknown[]) => unknown) | null;
    if (!fn) return;
    try {
      await fn(...args);
    } catch (err) {
      this.log.exception(`Exception in ${name} hook`, err);
    }
  }

  /** The same, for hooks on the request path: synchronous, a returned promise is not awaited. */
  runHookSync<K extends keyof WorkerHooks>(name: K, ...args: Parameters<NonNullable<WorkerHooks[K]>>): void {
    const fn = this.hooks[name] as ((...a: unknown[]) => unknown) | null;
    if (!fn) return;
    try {
      const r = fn(...args);
      if (r && typeof (r as Promise<unknown>).then === 'function')
        (r as Promise<unknown>).then(undefined, (err) => this.log.exception(`Exception in ${name} hook`, err));
    } catch (err) {
      this.log.exception(`Exception in ${name} hook`, err);
    }
  }

  /** An error from the app: 500 if nothing was sent, else the connection is cut. Nothing reaches the client. */
  readonly onAppError = (err: unknown, req: IncomingMessage, res: ServerResponse): void => {
    this.log.exception(`Error handling request ${req.method} ${req.url}`, err);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const body = 'Internal Server Error\n';
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  };

  /**
   * Wraps the app's listener with what the server owes every request. The hot path adds one Set entry, a
   * watchdog slot and one 'close' listener (`on`, not `once`: once allocates a wrapper and a bound function
   * per call); logging and hooks cost only when configured.
   */
  wrap(listener: RequestListener): RequestListener {
    const accessLog = this.accessLog;
    const hasPre = this.hooks.preRequest !== null;
    const hasPost = this.hooks.postRequest !== null;
    const noKeepAlive = this.config.keepalive === 0;
    const inflight = this.inflight;
    const runtime = this;
    const onClose = (entry: Inflight, res: ServerResponse): void => {
      // 'close' is emitted once per response; the delete guards the slot and the log line if it ever is not.
      if (!inflight.delete(entry)) return;
      if (entry.slot >= 0) runtime.watchdog?.end(entry.slot);
      if (accessLog) accessLog.log({ req: entry.req, res, start: entry.start, end: performance.now() });
      if (hasPost) runtime.runHookSync('postRequest', runtime.self, entry.req, res);
    };
    return (req, res) => {
      const watchdog = this.watchdog;
      const entry: Inflight = { req, start: performance.now(), slot: watchdog ? watchdog.begin(req.method, req.url) : -1 };
      inflight.add(entry);
      if (this.draining || noKeepAlive) res.shouldKeepAlive = false;
      // A closure, not a property on res: a property added to Node's own objects changes their shape, and
      // Node's http code then runs on polymorphic inline caches.
      res.on('close', () => onClose(entry, res));
      if (hasPre) this.runHookSync('preRequest', this.self, req, res);
      this.countRequest();
      listener(req, res);
    };
  }

  countRequest(): void {
    this.requests++;
    if (this.maxRequests > 0 && this.requests >= this.maxRequests && !this.#retiring) {
      this.#retiring = true;
      this.log.info(`Worker reached max_requests (${this.requests}): asking the master for a replacement`);
      this.send({ t: 'retire', requests: this.requests });
    }
  }

  /** Requests running longer than `minMs`, oldest first (at most 5), for the master's timeout report. */
  slowRequests(minMs: number): InflightRequest[] {
    if (this.inflight.size === 0) return [];
    const now = performance.now();
    const out: InflightRequest[] = [];
    for (const e of this.inflight) {
      const ms = Math.round(now - e.start);
      if (ms >= minMs) out.push({ method: e.req.method ?? '?', url: e.req.url ?? '?', ms });
      if (out.length >= 5) break;
    }
    return out;
  }

  reopenLogs(): void {
    this.log.reopen();
    this.accessLog?.reopen();
  }

  closeLogs(): void {
    this.accessLog?.close();
    this.log.close();
  }
}
