import type { Socket } from 'node:dgram';
import { lazy } from '../lazy.js';
import { countLogLines } from './error-log.js';
import { formatStatsdAddress, LOG_METRIC, parseStatsdHost, STATSD_DELAY_MS, StatsdBatch, statsdPrefix, statsdTags, type StatsdAddress } from './statsd-lines.js';
import { startupIsIP } from '../ip.js';

/**
 * StatsD metrics, as Gunicorn's `statsd_host` sends them: each worker (each gthread thread) its requests'
 * metrics, the master the number of workers, and every process its error-log lines of level warning and up.
 * Lines are gathered into datagrams of several lines (newline-separated, the StatsD convention), and sent
 * when the next line would not fit or at most STATSD_DELAY_MS after the first, never one per request.
 */

/** Datagrams kept while the host name resolves; later ones are dropped and counted as failed sends. */
const QUEUED_MAX = 64;
/** After a host name failed to resolve, the next try comes with a send at least this much later. */
const RESOLVE_RETRY_MS = 10_000;

/** The clients open in this process (or thread): flushed before it kills itself (see flushStatsd). */
const open = new Set<StatsdClient>();
/** The client that counts this process's error-log lines (see openStatsd). */
let counting: StatsdClient | null = null;

/** This process (or thread) said its warning of failed sends. */
let warnedHere = false;
/** Under gthread, the same for the process and all its threads, in shared memory (see shareStatsdWarning). */
let warnedShared: Int32Array | null = null;

/**
 * gthread: the process and each of its threads have a client of their own; the warning of failed sends is
 * said once for them all, by the first to fail. `flag`: one Int32 of memory they share, 0 at first.
 */
export function shareStatsdWarning(flag: Int32Array): void {
  warnedShared = flag;
  if (warnedHere) Atomics.store(flag, 0, 1);
}

/** Whether this is the process's first warning of failed sends (it is then said). */
function firstWarning(): boolean {
  if (warnedHere) return false;
  warnedHere = true;
  return warnedShared === null || Atomics.exchange(warnedShared, 0, 1) === 0;
}

/** Sends what every client of this process has gathered: before a worker kills itself (a kill runs no 'exit'). */
export function flushStatsd(): void {
  for (const c of open) c.flush();
}

/** Why a send failed, in words. */
function describe(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'nothing listens there (ECONNREFUSED)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name does not resolve (${err.code})`;
    case 'EMSGSIZE':
      return 'a datagram was too large (EMSGSIZE)';
    default:
      return err.code ?? err.message;
  }
}

/** Where a client says that sends fail: the error log of the process, as it is when it says so. */
export interface StatsdLog {
  warning(message: string): void;
  debug(message: string): void;
}

export interface StatsdSettings {
  readonly statsdHost: string | null;
  readonly statsdPrefix: string;
  readonly dogstatsdTags: string;
}

/**
 * One process's (or gthread thread's) StatsD client: its lines, gathered by a StatsdBatch, go out on one UDP
 * socket connected to the server (the host name is resolved once). A connected socket hears of a server that
 * is not there (ECONNREFUSED, from the ICMP answer to an earlier datagram). A failed send is counted, the
 * process's first is a warning in the error log, and the count a debug line on close(); nothing throws. The
 * socket does not keep the process alive, and what is gathered is sent on close() and when the process exits.
 */
export class StatsdClient {
  readonly address: StatsdAddress;
  readonly #batch: StatsdBatch;
  #socket: Socket | null = null;
  #state: 'idle' | 'connecting' | 'connected' | 'closed' = 'idle';
  /** close() came while the socket was connecting: it closes once what was queued is sent. */
  #closeOnConnect = false;
  /** Datagrams made before the socket was connected. */
  readonly #queued: Buffer[] = [];
  #retryAt = 0;
  #scheduled = false;
  /** Datagrams handed to the socket. */
  sent = 0;
  /** Datagrams that could not be sent (or errors the socket reported). */
  errors = 0;
  readonly #tick = (): void => {
    this.#scheduled = false;
    this.flush();
  };
  readonly #onExit = (): void => this.flush();
  readonly #afterSend = (err: Error | null): void => {
    if (err) this.#failed(err as NodeJS.ErrnoException);
  };
  readonly #onError = (err: Error): void => this.#failed(err as NodeJS.ErrnoException);

  constructor(
    settings: StatsdSettings,
    private readonly log: StatsdLog,
  ) {
    const address = parseStatsdHost(settings.statsdHost ?? '');
    // Checked when the config was read: this is a bug, not a user's mistake.
    if (typeof address === 'string') throw new Error(`statsd_host: ${address}`);
    this.address = address;
    this.#batch = new StatsdBatch(statsdPrefix(settings.statsdPrefix), statsdTags(settings.dogstatsdTags), (d) => this.#send(d));
    open.add(this);
    process.on('exit', this.#onExit);
    this.#connect();
  }

  /** A response finished: its time, and the request and status counters. `status`: none for an upgrade the app did not answer. */
  request(status: number | undefined, ms: number): void {
    if (this.#state === 'closed') return;
    this.#batch.request(status, ms);
    this.#schedule();
  }

  count(name: string, n = 1): void {
    if (this.#state === 'closed') return;
    this.#batch.count(name, n);
    this.#schedule();
  }

  gauge(name: string, value: number): void {
    if (this.#state === 'closed') return;
    this.#batch.gauge(name, value);
    this.#schedule();
  }

  /** Sends what is gathered now. */
  flush(): void {
    if (this.#state !== 'closed' && !this.#batch.empty) this.#batch.flush();
  }

  /** Sends what is gathered and closes the socket; later metrics are dropped. */
  close(): void {
    if (this.#state === 'closed') return;
    this.flush();
    const connecting = this.#state === 'connecting' && this.#socket !== null && this.#queued.length > 0;
    this.#state = 'closed';
    open.delete(this);
    if (counting === this) {
      counting = null;
      countLogLines(null);
    }
    process.off('exit', this.#onExit);
    if (this.errors > 0) this.log.debug(`StatsD: ${this.sent} datagram(s) sent to ${formatStatsdAddress(this.address)}, ${this.errors} send(s) failed`);
    // A datagram sent above went out in the send itself (libuv tries at once); closing cannot take it back.
    // One made before the socket was connected goes once it is (the socket does not hold the process).
    if (connecting) this.#closeOnConnect = true;
    else this.#socket?.close();
    this.#socket = null;
  }

  #schedule(): void {
    if (!this.#scheduled) {
      this.#scheduled = true;
      setTimeout(this.#tick, STATSD_DELAY_MS).unref();
    }
  }

  #send(datagram: Buffer): void {
    if (this.#state === 'connected') {
      this.sent++;
      this.#socket!.send(datagram, this.#afterSend);
      return;
    }
    if (this.#state === 'closed') return;
    if (this.#queued.length < QUEUED_MAX) this.#queued.push(datagram);
    else this.errors++;
    if (this.#state === 'idle' && Date.now() >= this.#retryAt) this.#connect();
  }

  /** Resolves the host (once), then opens and connects the socket; the queued datagrams follow. */
  #connect(): void {
    this.#state = 'connecting';
    const { host, port } = this.address;
    const family = startupIsIP(host);
    if (family !== 0) return this.#open(host, family, port);
    // Its IPv4 address when it has one, as Gunicorn (an AF_INET socket): `localhost` is often ::1 first, where
    // a StatsD server listening on 127.0.0.1 would refuse every datagram.
    lazy.dns().lookup(host, { all: true }, (err, all) => {
      if (this.#state === 'closed') return;
      if (err) {
        this.#state = 'idle';
        this.#retryAt = Date.now() + RESOLVE_RETRY_MS;
        this.errors += this.#queued.length;
        this.#queued.length = 0;
        this.#failed(err);
        return;
      }
      const { address: ip, family: fam } = all.find((a) => a.family === 4) ?? all[0]!;
      this.#open(ip, fam, port);
    });
  }

  #open(ip: string, family: number, port: number): void {
    const socket = lazy.dgram().createSocket(family === 6 ? 'udp6' : 'udp4');
    this.#socket = socket;
    socket.on('error', this.#onError);
    socket.unref();
    socket.connect(port, ip, (err?: Error) => {
      if (err) {
        // No route to it (an IPv6 address where there is none, say): the socket is not connected, and a send
        // on it would throw. Tried again as after a failed lookup.
        if (this.#state === 'closed') {
          // close() closed it already, unless it waited for this connect.
          if (this.#closeOnConnect) socket.close();
          return;
        }
        socket.close();
        this.#socket = null;
        this.#state = 'idle';
        this.#retryAt = Date.now() + RESOLVE_RETRY_MS;
        this.errors += this.#queued.length;
        this.#queued.length = 0;
        this.#failed(err as NodeJS.ErrnoException);
        return;
      }
      if (this.#state === 'closed' && !this.#closeOnConnect) return;
      if (this.#state !== 'closed') this.#state = 'connected';
      for (const d of this.#queued.splice(0)) {
        this.sent++;
        socket.send(d, this.#afterSend);
      }
      if (this.#closeOnConnect) socket.close();
    });
  }

  #failed(err: NodeJS.ErrnoException): void {
    this.errors++;
    if (!firstWarning()) return;
    this.log.warning(
      `StatsD: sending metrics to ${formatStatsdAddress(this.address)} (--statsd-host) failed: ${describe(err)}. ` +
        'Metrics are lost while it fails; this process does not say so again',
    );
  }
}

/**
 * The StatsD client of this process (or thread), when `statsd_host` is set, counting its error-log lines too;
 * null otherwise, and nothing is counted.
 */
export function openStatsd(settings: StatsdSettings, log: StatsdLog): StatsdClient | null {
  if (!settings.statsdHost) return null;
  const client = new StatsdClient(settings, log);
  counting = client;
  countLogLines((level) => client.count(LOG_METRIC[level]));
  return client;
}
