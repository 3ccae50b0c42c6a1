import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { HookServer, HookWorker } from '../config/hook-types.js';
import { loadConfigFile } from '../config/file.js';
import { SETTINGS, type Config } from '../config/registry.js';
import { peerAddress } from '../http/forwarded.js';
import { sameName } from '../http/guard.js';
import { cutResponse, lingerClose, mute } from '../http/cut.js';
import { deadlineRefusal, type Refusal, refusalHeaders } from '../http/refusals.js';
import { sweepEvery } from '../http/keep-alive.js';
import { AccessLog, answeredRaw, sentStatus } from '../logging/access-log.js';
import { RawAnswer, type RefusalLog, UnparsedRequest } from '../logging/refused.js';
import { ErrorLog } from '../logging/error-log.js';
import { ACCESS_LOG, cannotWrite } from '../logging/output-file.js';
import type { SinkTrouble } from '../logging/sink.js';
import { openStatsd, type StatsdClient } from '../logging/statsd.js';
import { RequestMetrics } from './request-metrics.js';
import type { InflightRequest, WorkerMessage } from '../protocol/messages.js';
import type { RequestListener } from '../app/shapes.js';
import { AppResultError } from '../app/errors.js';
import { stopFailures, StopFailure, stopPartRunning } from '../app/stop-parts.js';
import { settledWithin } from '../deadline.js';
import { runBeforeExit } from './before-exit.js';
import { UpgradeAnswer } from '../logging/upgrade-answer.js';
import { parseRequestStart, queueTable } from './queue-time.js';
import { kSlot, SlotTable } from './slot-table.js';
import { acceptTimes } from './serving.js';

/** Hooks a worker process may call, as loaded from the config file in this process. */
export type WorkerHooks = Pick<Config, 'postFork' | 'postWorkerInit' | 'workerInt' | 'workerAbort' | 'preRequest' | 'postRequest' | 'workerExit'>;

const HOOK_KEYS = ['postFork', 'postWorkerInit', 'workerInt', 'workerAbort', 'preRequest', 'postRequest', 'workerExit'] as const;

/** Node's error for a request whose client closed the connection before its body was whole. */
function clientAborted(err: unknown, req: IncomingMessage): boolean {
  const e = err as NodeJS.ErrnoException | null;
  return typeof e === 'object' && e !== null && e.code === 'ECONNRESET' && e.message === 'aborted' && (req.destroyed || req.aborted);
}

/** Loads the worker-side hooks from the config file (functions cannot cross IPC; each process or thread imports it). */
export async function loadHooks(configPath: string | null): Promise<WorkerHooks> {
  const hooks = Object.fromEntries(HOOK_KEYS.map((k) => [k, null])) as Record<string, unknown>;
  if (!configPath) return hooks as WorkerHooks;
  const file = await loadConfigFile(configPath);
  for (const k of HOOK_KEYS) if (file[k] !== undefined) hooks[k] = SETTINGS[k].fromConfig(file[k]);
  return hooks as WorkerHooks;
}

/** A request the worker is running: for the timeout report, the access log and the close handler. */
interface Inflight {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly start: number;
  /** The watchdog slot naming this request, or -1. */
  readonly slot: number;
  readonly queue: number;
  /** The client's address, when the access log names it (read at the start: see peerAddress). */
  readonly peer: string | undefined;
  /** request_deadline's sweep has answered it (or cut it): its close may come later, and must not be acted on twice. */
  overdue: boolean;
  /** Its place in `inflight` (declared here so that adding it does not change the object's shape). */
  [kSlot]: number;
}

/**
 * `X-Request-Start` from rawHeaders: `req.headers` is built on first use, and the app may never use it. Sent
 * twice, it has no single meaning (req.headers would join the two, which parses as no time): undefined.
 */
function requestStartHeader(raw: string[]): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (sameName(name, 'x-request-start')) {
      if (found !== undefined) return undefined;
      found = raw[i + 1];
    }
  }
  return found;
}

/**
 * A response under way whose Content-Type is `text/event-stream`, as sent: Node keeps the header section it
 * wrote (`_header`; headers given to writeHead as a list are in no getHeader()), HTTP/2 the headers of the
 * stream's response.
 */
function isEventStream(req: IncomingMessage, res: ServerResponse): boolean {
  if (!res.headersSent) return false;
  const sent = (req as { stream?: { sentHeaders?: Record<string, unknown> } }).stream?.sentHeaders;
  if (sent) return EVENT_STREAM.test(String(sent['content-type'] ?? ''));
  const head = (res as { _header?: unknown })._header;
  return typeof head === 'string' && EVENT_STREAM_FIELD.test(head);
}
const EVENT_STREAM = /^\s*text\/event-stream\s*(;|$)/i;
const EVENT_STREAM_FIELD = /\r\ncontent-type:[ \t]*text\/event-stream[ \t]*(;|\r\n)/i;

/** Shared-memory record of the requests running, readable while the thread that serves them is stuck. */
export interface RequestSlots {
  /** Returns a slot number, or -1 when none is free. */
  begin(method: string | undefined, url: string | undefined, at: number): number;
  end(slot: number): void;
}

/**
 * After the deadline's 503 over HTTP/2, how long the client may take to close its stream before it is reset
 * (HTTP/1: lingerClose).
 */
const DEADLINE_LINGER_MS = 1000;

/**
 * What every worker class shares inside a worker process: the config, the logs, the hooks, request
 * accounting (max_requests, in-flight requests for the timeout report) and the drain switch.
 */
export class WorkerRuntime {
  readonly log: ErrorLog;
  readonly accessLog: AccessLog | null;
  /** StatsD (statsd_host): this process's or thread's client; null when off. */
  readonly statsd: StatsdClient | null;
  /** The counters of the master's /metrics (the `metrics` setting); null when off. A gthread thread's are shared. */
  metrics: RequestMetrics | null;
  /**
   * The access-log line and StatsD count of a request tunicorn answered itself, before the app saw it (a limit,
   * a malformed request, a bad Host, header_timeout): Gunicorn's handle_error logs one for a request it parsed,
   * this one for every answer sent. Not a request of the app's: no max_requests count, no hook, no watchdog
   * slot. Null when both logs and /metrics are off. An answer written to the socket has no time of its own: its start is
   * its end (a request never parsed has no start to count from).
   */
  readonly refusalLog: RefusalLog | null;
  readonly self: HookWorker;
  readonly server: HookServer;
  readonly maxRequests: number;
  requests = 0;
  /** Once set, every response closes its connection (graceful stop). */
  draining = false;
  /** A TERM stop: keep accepting until the kernel backlog is empty before closing the listeners. */
  acceptDrain = false;
  /** A stop while other workers serve on: connections held back unread may be handed to them (gthread). */
  handOverOnStop = false;
  readonly inflight = new SlotTable<Inflight>();
  /** Where running requests are written for a stall report (the Watchdog, or a gthread thread's slot). */
  watchdog: RequestSlots | null = null;
  #retiring = false;
  #shared: Int32Array | null = null;
  /** request_deadline's 503, made on first use. */
  #deadline503: Refusal | null = null;
  /** Upgraded connections still open, each with the access-log line it owes (see `upgrading`). */
  readonly #upgraded = new Set<() => void>();
  /**
   * Set by a graceful stop when the app's own TERM listeners are due (see runAppTermListeners): when the stop
   * began, and tunicorn's own listener, which is skipped. Null: not due (a quick stop, or a real SIGTERM that
   * reached them in the same emit).
   */
  termListeners: { stoppedAt: number; own: unknown } | null = null;
  /** A gthread thread's: what to do about an error a request threw that only a thread has (thread-hints.ts). */
  errorHint: ((err: unknown) => string) | null = null;
  #shutdown: Promise<void> | null = null;
  /** TLS: the session-ticket keys the master shares (base64; see src/arbiter/ticket-keys.ts), null without TLS. */
  #ticketKeys: string | null = null;
  /** Who applies new ticket keys: this process's or thread's TLS server, a gthread worker's threads. */
  readonly #ticketKeyUsers: ((keys: string) => void)[] = [];
  /** When this worker's (or thread's) stop began: the app's close is bounded from it. */
  #stopBegan = 0;

  constructor(
    readonly config: Config,
    readonly hooks: WorkerHooks,
    id: number,
    age: number,
    masterPid: number,
    private readonly send: (m: WorkerMessage) => void,
    /** A gthread thread's number: its error-log lines carry it where they are JSON. */
    thread?: number,
  ) {
    this.log = new ErrorLog(config.errorlog, config.loglevel, { format: config.logFormat, role: 'worker', ...(thread === undefined ? {} : { fields: { thread } }) });
    this.accessLog = config.accesslog
      ? new AccessLog(config.accesslog, config.accessLogFormat, this.accessLogTrouble(config.accesslog), config.logFormat)
      : null;
    this.statsd = openStatsd(config, this.log);
    // gthread: each thread gets its part of the process's shared memory instead (gthread-thread.ts).
    this.metrics = config.metrics && config.workerClass !== 'gthread' ? new RequestMetrics() : null;
    this.refusalLog = this.makeRefusalLog();
    this.self = { pid: process.pid, id, age, log: this.log };
    this.server = { pid: masterPid, cfg: config, log: this.log, numWorkers: config.workers };
    const jitter = config.maxRequestsJitter > 0 ? Math.floor(Math.random() * (config.maxRequestsJitter + 1)) : 0;
    this.maxRequests = config.maxRequests > 0 ? config.maxRequests + jitter : 0;
  }

  /** The master's TLS session-ticket keys (base64), null without TLS. */
  get ticketKeys(): string | null {
    return this.#ticketKeys;
  }

  /** New ticket keys from the master (at boot, and at each rotation): passed on to those who apply them. */
  setTicketKeys(keys: string | null): void {
    if (keys === null || keys === this.#ticketKeys) return;
    this.#ticketKeys = keys;
    for (const use of this.#ticketKeyUsers) use(keys);
  }

  /** Calls `use` with each new set of ticket keys from now on (the current ones are `ticketKeys`). */
  onTicketKeys(use: (keys: string) => void): void {
    this.#ticketKeyUsers.push(use);
  }

  /** What the error log says when the access log cannot be written (a full disk), and when it can again. */
  private accessLogTrouble(target: string): SinkTrouble {
    const what = { ...ACCESS_LOG, verb: 'write' as const };
    return {
      failed: (err) =>
        this.log.error(
          target === '-'
            ? `Cannot write the access log to stdout: ${err.code === 'EPIPE' ? 'its reader closed the pipe' : err.message} (${err.code ?? 'error'}). Access log lines are lost until it can be written again`
            : `${cannotWrite(what, target, err, true)}. Access log lines are lost until it can be written again`,
        ),
      recovered: (lost, err) =>
        this.log.warning(`The access log ${JSON.stringify(target)} could be written again: ${lost} line(s) were lost while it could not (${err.code ?? err.message})`),
    };
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

  /**
   * The same, for hooks on the request path: no promise of ours when the hook returns none. A promise it
   * returns comes back (settled as fulfilled, a rejection logged) for the caller to wait on, or not.
   */
  runHookSync<K extends keyof WorkerHooks>(name: K, ...args: Parameters<NonNullable<WorkerHooks[K]>>): Promise<void> | undefined {
    const fn = this.hooks[name] as ((...a: unknown[]) => unknown) | null;
    if (!fn) return;
    try {
      const r = fn(...args);
      if (r && typeof (r as Promise<unknown>).then === 'function')
        return Promise.resolve(r as Promise<unknown>).then(
          () => undefined,
          (err) => this.log.exception(`Exception in ${name} hook`, err),
        );
    } catch (err) {
      this.log.exception(`Exception in ${name} hook`, err);
    }
    return undefined;
  }

  /**
   * An error from the app: 500 if nothing was sent; else, once the head has gone out, the response is cut
   * (cutResponse: the client gets what was written, then sees it end short). One that was whole (an error
   * after `res.end()`) stays as it is. The error itself never reaches the client.
   */
  readonly onAppError = (err: unknown, req: IncomingMessage, res: ServerResponse): void => {
    // The client went away while the app read its body (Node's `aborted`, or a Fetch body read that failed
    // with it): nothing to answer, and no fault of the app's. As Gunicorn's "Ignoring connection reset".
    if (clientAborted(err, req)) {
      this.log.debug(`Ignoring connection reset: the client closed the connection during ${req.method} ${req.url}`);
      res.destroy();
      return;
    }
    if (err instanceof AppResultError) this.log.error(`Error handling request ${req.method} ${req.url}: ${err.message}`);
    else this.log.exception(`Error handling request ${req.method} ${req.url}${this.errorHint?.(err) ?? ''}`, err);
    if (res.destroyed) return;
    // Ended by the app: the client has, or gets, the whole response; cutting it would only lose its end.
    if (res.writableEnded) return;
    if (res.headersSent) return cutResponse(res);
    // The 500 is tunicorn's, as Gunicorn's error page is a response of its own: none of the fields the app set
    // before it failed go with it (its Set-Cookie, its Transfer-Encoding beside this Content-Length). Over
    // HTTP/2 a field the app set may be what failed (two values of one HTTP/2 takes once, such as ETag): kept,
    // it threw again from this writeHead, out of the worker.
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    const body = 'Internal Server Error\n';
    const head: Record<string, string | number> = { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) };
    // HTTP/2 has no Connection field: Node drops it with an UnsupportedWarning in the error log that blames the
    // app (the session serves on, as for a refusal: refusalHeaders). Over HTTP/1, with the request's body still
    // coming, unread, Node's close once the 500 is sent lingers (lingerWhileReceiving).
    // The reason phrase is tunicorn's too: Node keeps one the app set (res.statusMessage), and one with CR or
    // LF in it (what made the app's own writeHead throw) would throw here again, out of the worker. HTTP/2 has
    // none (Node warns of one given).
    if (req.httpVersionMajor < 2) {
      head.connection = 'close';
      res.writeHead(500, 'Internal Server Error', head);
    } else res.writeHead(500, head);
    res.end(body);
  };

  /**
   * Wraps the app's listener with what the server owes every request. The hot path adds one SlotTable entry,
   * a watchdog slot and one 'close' listener; logging and hooks cost only when configured. Nothing is stored
   * on Node's request and response objects (see SlotTable.put): the listener is a closure over the entry.
   */
  wrap(listener: RequestListener): RequestListener {
    const hasPre = this.hooks.preRequest !== null;
    const noKeepAlive = this.config.keepalive === 0;
    const deadlineMs = this.config.requestDeadline * 1000;
    const logsPeer = this.accessLog?.needsPeer === true;
    // Read once: the getter calls into C++ each time, and the origin never changes.
    const timeOrigin = performance.timeOrigin;
    const queueTimes = queueTable((req) => this.runningQueueTime(req));
    const metrics = this.metrics;
    if (deadlineMs > 0) this.sweepDeadlines(deadlineMs);
    return (req, res) => {
      const watchdog = this.watchdog;
      const start = performance.now();
      const queue = this.queueTime(req, start);
      const entry: Inflight = {
        req,
        res,
        start,
        // The wall-clock start from the monotonic one: one clock read per request, not two.
        slot: watchdog ? watchdog.begin(req.method, req.url, timeOrigin + start) : -1,
        queue,
        peer: logsPeer ? peerAddress(req) : undefined,
        overdue: false,
        [kSlot]: -1,
      };
      if (queue > 0 && queueTimes.asked) queueTimes.times.set(req, queue);
      this.inflight.add(entry);
      metrics?.begin();
      if (this.draining || noKeepAlive) res.shouldKeepAlive = false;
      // on, not once: 'close' is emitted once anyway, and once() would wrap the listener in one more function.
      res.on('close', () => this.closed(entry));
      const pending = hasPre ? this.runHookSync('preRequest', this.self, req, res) : undefined;
      this.countRequest();
      // An async pre_request (an auth or tracing call) is waited for: the app sees the request after it.
      if (pending) return void pending.then(() => listener(req, res)).catch((err) => this.onAppError(err, req, res));
      listener(req, res);
    };
  }

  /**
   * An 'upgrade' (WebSocket) or 'connect' request passed the checks and goes to the app's listeners, which
   * answer it on the socket. With the access log on it gets a line when the connection closes (or when the
   * worker exits, if it is still open), as Gunicorn logs a WebSocket request once its handler returns: the
   * status the app wrote (101 when it accepted), the connection's whole life as the request time; StatsD
   * counts it then too. It counts toward max_requests as one request.
   */
  readonly upgrading = (req: IncomingMessage, socket: Duplex): void => {
    this.countRequest();
    const { accessLog: log, statsd, metrics } = this;
    if (!log && !statsd && !metrics) return;
    const start = performance.now();
    const queue = this.queueTime(req, start);
    const peer = log?.needsPeer ? peerAddress(req) : undefined;
    const res = new UpgradeAnswer(socket) as unknown as ServerResponse;
    const done = (): void => {
      if (!this.#upgraded.delete(done)) return;
      const end = performance.now();
      statsd?.request(res.statusCode as number | undefined, end - start);
      metrics?.count(req.method, res.statusCode as number | undefined, (end - start) / 1000);
      log?.log({ req, res, start, end, queue, peer });
    };
    this.#upgraded.add(done);
    socket.once('close', done);
  };

  /** The access-log line and StatsD count of a request tunicorn answered itself (see refusalLog). */
  private makeRefusalLog(): RefusalLog | null {
    if (this.accessLog === null && this.statsd === null && !this.config.metrics) return null;
    const note = (req: IncomingMessage, res: ServerResponse, start: number, end: number, peer: string | undefined): void => {
      this.statsd?.request(sentStatus(res), end - start);
      // Read here: a gthread thread's counters are given after the constructor.
      this.metrics?.count(req.method, sentStatus(res), (end - start) / 1000);
      this.accessLog?.log({ req, res, start, end, peer });
    };
    return {
      response: (req, res) => {
        const start = performance.now();
        const peer = this.accessLog?.needsPeer ? peerAddress(req) : undefined;
        res.once('close', () => note(req, res, start, performance.now(), peer));
      },
      raw: (req, socket, status, head, body) => {
        const now = performance.now();
        const request = req ?? (new UnparsedRequest(socket) as unknown as IncomingMessage);
        note(request, new RawAnswer(status, head, body) as unknown as ServerResponse, now, now, this.accessLog?.needsPeer ? peerAddress(request) : undefined);
      },
    };
  }

  /**
   * A response closed (sent, or its connection gone): the request is no longer running. Its access-log line,
   * StatsD metrics and /metrics counts are made here, with one clock read for all and none when all are off.
   */
  private closed(entry: Inflight): void {
    // The check guards the slot and the log line should 'close' ever come twice. The entry leaves the table
    // after post_request: the hook may be the first caller of queueTime(), which looks there (runningQueueTime).
    if (!this.inflight.has(entry)) return;
    if (entry.slot >= 0) this.watchdog?.end(entry.slot);
    const { req, res } = entry;
    const { accessLog, statsd, metrics } = this;
    if (accessLog !== null || statsd !== null || metrics !== null) {
      const end = performance.now();
      statsd?.request(sentStatus(res), end - entry.start);
      metrics?.end(req.method, sentStatus(res), (end - entry.start) / 1000);
      accessLog?.log({ req, res, start: entry.start, end, queue: entry.queue, peer: entry.peer });
    }
    if (this.hooks.postRequest !== null) this.runHookSync('postRequest', this.self, req, res);
    this.inflight.delete(entry);
  }

  /**
   * The queue time of a request running now (or in its post_request hook), for queueTime() calls before the
   * first one has made the worker record every queue time (see QueueTable): a scan of the running requests.
   */
  private runningQueueTime(req: IncomingMessage): number | undefined {
    return this.inflight.values().find((e) => e.req === req)?.queue;
  }

  /**
   * Milliseconds between the connection being accepted (or, with `X-Request-Start`, the proxy seeing the
   * request) and the request reaching the app. Later requests on a keep-alive connection did not wait for a
   * connection slot: their queue time is 0 unless a proxy says otherwise, or a gthread thread queued them
   * behind another request (OneAtATime records when, as the connection's accept time).
   */
  queueTime(req: IncomingMessage, now: number): number {
    const proxy = parseRequestStart(requestStartHeader(req.rawHeaders));
    if (proxy !== undefined) return Math.max(0, Date.now() - proxy);
    const accepted = acceptTimes.take(req.socket);
    if (accepted === undefined) return 0;
    return Math.max(0, now - accepted);
  }

  /**
   * request_deadline, kept by one sweep of the running requests every 0.5 s (or every `ms`, if shorter:
   * sweepEvery) rather than a timer per request: a timer set and cleared for each request cost 2,000 instructions a
   * keep-alive request (bench/instructions.sh: 58.2 k with `--request-deadline 30` against 56.2 k without), the
   * sweep nothing per request. A request is answered between `ms` and `ms` + the sweep's period after it began.
   */
  private sweepDeadlines(ms: number): void {
    const sweep = (): void => {
      if (this.inflight.size === 0) return;
      const now = performance.now();
      for (const e of this.inflight.values()) {
        if (e.overdue || now - e.start < ms) continue;
        e.overdue = true;
        this.deadlineExceeded(e.req, e.res, e.start);
      }
    };
    sweepEvery(ms, sweep);
  }

  /**
   * `request_deadline` passed: 503 if nothing was sent (written to the socket, so the response object is
   * left unfinished and its close tells the app: a Fetch request's signal aborts, the Node request emits
   * close), else cut the connection. Whatever the app writes later is dropped. Over HTTP/2 the 503 goes on
   * the request's stream, and the session serves on.
   */
  private deadlineExceeded(req: IncomingMessage, res: ServerResponse, start: number): void {
    const secs = ((performance.now() - start) / 1000).toFixed(1);
    const stream = (res as unknown as { stream?: ServerHttp2Stream }).stream;
    const socket = res.socket;
    const answered =
      // A stream the client reset with NO_ERROR is closed, not yet destroyed, while the app holds unread body
      // data: respond() throws on it (ERR_HTTP2_INVALID_STREAM), in this timer, and the worker goes down.
      stream !== undefined
        ? !stream.headersSent && !stream.destroyed && !stream.closed
        : !res.headersSent && socket !== null && socket.writable;
    this.log.error(
      `Request deadline exceeded: ${req.method} ${req.url?.split('?')[0]} after ${secs} s ` +
        `(request_deadline ${this.config.requestDeadline} s); ${answered ? 'answered 503' : 'connection cut'}`,
    );
    mute(res);
    if (answered) {
      const r = (this.#deadline503 ??= deadlineRefusal(this.config));
      const head = req.method === 'HEAD';
      answeredRaw(res, 503, head ? 0 : r.length);
      if (stream !== undefined) {
        // On the stream, not through the response object: it stays unfinished, as over HTTP/1.
        stream.respond({ ':status': 503, ...refusalHeaders(r, true) }, { endStream: head });
        if (!head) stream.end(r.body);
        setTimeout(() => res.destroy(), DEADLINE_LINGER_MS).unref();
      } else {
        // The request's unread body must not turn the close into a reset that loses the 503 (lingerClose).
        socket!.end(head ? r.rawHead : r.raw);
        lingerClose(socket!);
      }
    } else {
      cutResponse(res);
    }
  }

  /**
   * Counts requests in shared memory instead of this instance (gthread: the threads of one process share
   * one max_requests budget).
   */
  shareCount(counter: Int32Array): void {
    this.#shared = counter;
  }

  countRequest(): void {
    this.requests = this.#shared ? Atomics.add(this.#shared, 0, 1) + 1 : this.requests + 1;
    // Shared (gthread): only the thread whose request reached the limit says so, once for the process.
    if (this.maxRequests > 0 && (this.#shared ? this.requests === this.maxRequests : this.requests >= this.maxRequests)) this.retire(this.requests);
  }

  /**
   * Asks the master, once, for a replacement (max_requests reached). `say`: false in a gthread process, whose
   * thread has logged it already.
   */
  retire(requests: number, say = true): void {
    if (this.#retiring) return;
    this.#retiring = true;
    if (say) this.log.info(`Worker reached max_requests (${requests}): asking the master for a replacement`);
    this.send({ t: 'retire', requests });
  }

  /**
   * The end of a worker's (or gthread thread's) stop, under every class: waits for `draining` (its requests)
   * until 80 % of graceful_timeout, then runs the app's shutdown, so that it runs before the master's kill
   * at graceful_timeout even when a request outlasts it (the requests still running are logged, and cut as
   * the worker exits).
   */
  async finishStop(draining: Promise<unknown>, shutdown: () => Promise<void>): Promise<void> {
    this.#stopBegan ||= Date.now();
    if (!(await settledWithin(draining, this.config.gracefulTimeout * 800))) {
      const cut = this.runningList();
      if (cut) this.log.warning(`Graceful stop: cutting the requests still running at 80 % of graceful_timeout, so the app's shutdown runs before the master's kill: ${cut}`);
      // No request left: what holds the drain is upgraded connections, which Serving closes at this same
      // moment (and says so); it gets until 90 % to end before the shutdown runs regardless.
      else await settledWithin(draining, this.config.gracefulTimeout * 100);
    }
    await shutdown();
  }

  /**
   * The app's own shutdown at the end of a stop: its `close` (a framework's close(), the `shutdown` export),
   * then, on a graceful stop, its TERM listeners. A graceful stop runs it once: when the class's connections
   * are done, or as soon as every connection left is an upgraded one (Serving.stop), since only the app can
   * end a WebSocket politely (its listener's `ws.close(1001)`), and waiting for those first would hold every
   * stop with a WebSocket open until the class gives up on its connections. A quick stop runs only `close`,
   * without waiting for a graceful one's shutdown that may be under way.
   */
  shutdownApp(graceful: boolean, close?: () => unknown): Promise<void> {
    if (!graceful) return Promise.resolve(close?.()).then(() => {});
    this.#stopBegan ||= Date.now();
    return (this.#shutdown ??= this.runShutdown(close));
  }

  private async runShutdown(close: (() => unknown) | undefined): Promise<void> {
    try {
      if (close) await this.closeApp(close);
    } finally {
      const due = this.termListeners;
      if (due) await this.runAppTermListeners(due.stoppedAt, due.own);
      if (due) await this.runAppBeforeExit(due.stoppedAt);
    }
  }

  /** The app's (its agents') `beforeExit` listeners, which the worker's process.exit() would skip (before-exit.ts). */
  private async runAppBeforeExit(stoppedAt: number): Promise<void> {
    const left = Math.max(0, stoppedAt + this.config.gracefulTimeout * 900 - Date.now());
    const done = await runBeforeExit(left, (err) => this.log.exception("Exception in the app's beforeExit listener", err));
    if (!done) this.log.warning(`The app's beforeExit listener(s) (an agent's last export?) had not finished ${this.intoStop(stoppedAt)}; exiting`);
  }

  /**
   * The app's close, until 90 % of graceful_timeout into the stop: one that hangs there (a shutdown export
   * awaiting a pool that never drains) is named, and the worker exits without it, itself, so that its
   * workerExit hook runs and its last log lines are written, rather than the master's kill cutting both. What
   * the close threw is logged part by part (stop-parts.ts).
   */
  private async closeApp(close: () => unknown): Promise<void> {
    let failure: { err: unknown } | null = null;
    const closing = Promise.resolve()
      .then(close)
      .catch((err: unknown) => {
        failure = { err };
      });
    const left = Math.max(0, this.#stopBegan + this.config.gracefulTimeout * 900 - Date.now());
    if (!(await settledWithin(closing, left))) {
      const part = stopPartRunning() ?? "the app's close";
      this.log.warning(
        `Graceful stop: ${part} had not finished ${((Date.now() - this.#stopBegan) / 1000).toFixed(1)} s into the stop; ` +
          `the worker exits without it, before the master's kill at graceful_timeout (${this.config.gracefulTimeout} s)`,
      );
      return;
    }
    if (failure) this.logStopError((failure as { err: unknown }).err);
  }

  /** What the app's stop threw: each part that failed on its own, named, with the stack of what it threw. */
  logStopError(err: unknown, what = 'Error while stopping'): void {
    for (const e of stopFailures(err)) {
      if (e instanceof StopFailure) this.log.exception(`${what}: ${e.part} failed`, e.cause);
      else this.log.exception(what, e);
    }
  }

  /**
   * The app's own TERM listeners (NestJS's enableShutdownHooks(), a `process.on('SIGTERM', ...)` that closes a
   * database pool), at the end of a graceful stop, once the requests are finished: the master stops a worker
   * with a message, not a signal, and a gthread thread gets no signals at all, so they would not run. A
   * listener that returns a promise is waited for, until the master's kill at graceful_timeout (counted from
   * `stoppedAt`) draws near. A framework close() that removed its listener already (Nest's, for an exported
   * Nest app) does not run it twice. `own`: tunicorn's listener, skipped.
   */
  private async runAppTermListeners(stoppedAt: number, own: unknown): Promise<void> {
    const listeners = process.listeners('SIGTERM').filter((l) => l !== own);
    if (listeners.length === 0) return;
    const left = Math.max(0, stoppedAt + this.config.gracefulTimeout * 900 - Date.now());
    const calls = listeners.map(async (l) => {
      try {
        await (l as (signal: NodeJS.Signals) => unknown)('SIGTERM');
      } catch (err) {
        this.log.exception("Exception in the app's SIGTERM listener", err);
      }
    });
    if (!(await settledWithin(Promise.all(calls), left)))
      this.log.warning(`The app's SIGTERM listener(s) had not finished ${this.intoStop(stoppedAt)}; exiting`);
  }

  /**
   * When a part of the stop given until 90 % of graceful_timeout is left behind: the time since the stop began
   * (what was left of the budget may be a fraction of a second, or nothing, when the app's close took it).
   */
  private intoStop(stoppedAt: number): string {
    return `${((Date.now() - stoppedAt) / 1000).toFixed(1)} s into the stop (it gets until 90 % of graceful_timeout, ${this.config.gracefulTimeout} s)`;
  }

  /**
   * A graceful stop began: from now on every response says `Connection: close`, also those of the requests
   * already running whose headers are not sent yet, so that their clients do not send another request on a
   * connection about to close.
   */
  beginDrain(): void {
    this.draining = true;
    for (const e of this.inflight.values()) if (!e.res.headersSent) e.res.shouldKeepAlive = false;
  }

  /**
   * --reload: files of the app loaded here (a gthread thread's go through its process), for the master to watch;
   * `missing`: those a load that failed looked for and did not find (missingFiles).
   */
  reportFiles(files: readonly string[], missing: readonly string[] = []): void {
    if (files.length > 0 || missing.length > 0) this.send(missing.length > 0 ? { t: 'files', files, missing } : { t: 'files', files });
  }

  /** TERM: this worker (or gthread thread) accepted what the backlog held and closed its listeners. */
  reportDrained(): void {
    this.send({ t: 'drained' });
  }

  /**
   * During a graceful stop: how many connections carry nothing but event streams (a `text/event-stream`
   * response under way), or -1 while any other request runs. Like a WebSocket, an event stream ends only when
   * the app ends it (an EventSource reconnects, to another worker), so it must not hold back the app's
   * shutdown and TERM listeners, which are where an app ends its streams (Serving.checkUpgradesOnly). Asked
   * only during a stop, never per request.
   */
  eventStreamConnections(): number {
    if (this.inflight.size === 0) return 0;
    const connections = new Set<unknown>();
    for (const { req, res } of this.inflight.values()) {
      if (!isEventStream(req, res)) return -1;
      // The connection: an HTTP/2 stream's session (its socket is a proxy, a new object), else the socket.
      const stream = (req as { stream?: { session?: unknown } }).stream;
      connections.add(stream ? stream.session : req.socket);
    }
    return connections.size;
  }

  /** Requests running longer than `minMs`, oldest first (at most 5), for the master's timeout report. */
  slowRequests(minMs: number): InflightRequest[] {
    if (this.inflight.size === 0) return [];
    const now = performance.now();
    return this.inflight
      .values()
      .filter((e) => e.start <= now - minMs)
      .sort((a, b) => a.start - b.start)
      .slice(0, 5)
      .map((e) => ({ method: e.req.method ?? '?', url: e.req.url ?? '?', ms: Math.round(now - e.start) }));
  }

  /**
   * The requests running now, oldest first, for a log line: `GET /a (1.2 s), POST /b (0.3 s)`, the first five
   * and how many more; '' when none runs.
   */
  runningList(): string {
    const first = this.slowRequests(0);
    if (first.length === 0) return '';
    const more = this.inflight.size - first.length;
    return first.map((r) => `${r.method} ${r.url} (${(r.ms / 1000).toFixed(1)} s)`).join(', ') + (more > 0 ? ` and ${more} more` : '');
  }

  /**
   * The requests still running as the worker (or gthread thread) exits, cut by its exit (a graceful stop's 80 %
   * of graceful_timeout, a quick stop, a client that does not read the response, an event stream the app ended
   * in its shutdown whose 'close' has not come yet): each gets its access-log line and StatsD count now, with
   * the status sent (a `-` if none) and the bytes written, as a request cut otherwise has. Their 'close' would
   * come with the connection's, after the exit: they were in no log, over HTTP/1.1 or HTTP/2.
   */
  private logUnfinished(): void {
    const { accessLog, statsd, metrics } = this;
    if (this.inflight.size === 0 || (accessLog === null && statsd === null && metrics === null)) return;
    const end = performance.now();
    for (const entry of [...this.inflight.values()]) {
      this.inflight.delete(entry);
      const { req, res } = entry;
      statsd?.request(sentStatus(res), end - entry.start);
      metrics?.end(req.method, sentStatus(res), (end - entry.start) / 1000);
      accessLog?.log({ req, res, start: entry.start, end, queue: entry.queue, peer: entry.peer });
    }
  }

  /** USR1. Returns why a log could not be opened again, for each that could not (the old one stays in use). */
  reopenLogs(): string[] {
    return [this.log.reopen(), this.accessLog?.reopen() ?? null].filter((p): p is string => p !== null);
  }

  closeLogs(): void {
    for (const done of this.#upgraded) done();
    this.logUnfinished();
    this.accessLog?.close();
    this.statsd?.close();
    this.log.close();
  }
}
