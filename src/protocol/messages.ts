/**
 * The IPC contract between the master and its workers: a discriminated union per direction, handled by
 * exhaustive switches on `t`. JSON over the `node:child_process` IPC channel.
 */
import type { WorkerCounts } from '../workers/request-metrics.js';

export interface ListenerInfo {
  /** File descriptor number in the worker (the first copy: the main thread's, or gthread thread 0's). */
  readonly fd: number;
  /** One descriptor per copy of the socket: gthread threads each listen on their own (fds[t] for thread t). */
  readonly fds: readonly number[];
  readonly url: string;
}

/** stdio slot of the IPC channel in a worker. */
export const IPC_FD = 3;
/** stdio slot of the pipe on which the stall watcher (native or worker thread) writes its reports to the master. */
export const WATCHDOG_FD = 4;
/** The first listening socket's slot. */
export const FIRST_LISTENER_FD = 5;

/**
 * The descriptor layout of a worker, in one place: 0-2 stdio, 3 IPC, 4 the watchdog pipe, then `copies` runs
 * of the listening sockets (copy c of listener i at 5 + c * count + i). A gthread worker gets one copy per
 * thread, because closing a server closes its descriptor and each thread's event loop needs its own.
 */
export function listenerLayout(urls: readonly string[], copies: number): ListenerInfo[] {
  const n = urls.length;
  return urls.map((url, i) => {
    const fds = Array.from({ length: copies }, (_, c) => FIRST_LISTENER_FD + c * n + i);
    return { fd: fds[0]!, fds, url };
  });
}

export type MasterMessage =
  | {
      readonly t: 'init';
      /** 1-based slot number. */
      readonly id: number;
      readonly age: number;
      readonly app: string;
      readonly configPath: string | null;
      readonly config: Record<string, unknown>;
      readonly listeners: readonly ListenerInfo[];
      readonly masterPid: number;
      /**
       * TLS only: the session-ticket keys every worker's TLS server uses (48 bytes, base64), so that a
       * client resumes its session on whichever worker gets its next connection. Not in `config`: the hooks
       * see that, and keys belong in no log.
       */
      readonly ticketKeys: string | null;
      /** The descriptor of its beat file (src/protocol/beat-file.ts); null: it beats by message. */
      readonly beatFd: number | null;
    }
  /**
   * Stop: graceful finishes in-flight requests within graceful_timeout; otherwise exit now. `drain` (TERM):
   * the master has closed its copies of the sockets, so keep accepting until the backlog is empty first.
   * `handOver`: other workers serve on (HUP, max_requests, TTOU), so connections held back unread may go to
   * them through the master (`rescue`) instead of waiting here.
   */
  | { readonly t: 'stop'; readonly graceful: boolean; readonly drain?: boolean; readonly handOver?: boolean }
  | { readonly t: 'reopen' }
  /** New TLS session-ticket keys (base64): the master rotates them (see src/arbiter/ticket-keys.ts). */
  | { readonly t: 'ticketKeys'; readonly keys: string }

  /**
   * A fresh duplicate of listener `listener`'s socket, sent as the message's handle (SCM_RIGHTS). A worker
   * that stopped accepting by closing its copy (sync, worker_connections) listens on it to resume.
   */
  | { readonly t: 'lease'; readonly listener: number }
  /**
   * Serve this connection, accepted on listener `listener` by a worker that timed out while holding it back
   * unread (a gthread thread's queue): the message's handle is the connected socket.
   */
  | { readonly t: 'adopt'; readonly listener: number }
  /** The master is scraped (the `metrics` setting): send your counts now (answered by a `metrics` message). */
  | { readonly t: 'metrics' };

export interface InflightRequest {
  readonly method: string;
  readonly url: string;
  /** Milliseconds since the request reached the app. */
  readonly ms: number;
}

export type WorkerMessage =
  /** The app loaded and the worker accepts on every listener. */
  | { readonly t: 'ready' }
  /**
   * The event loop is alive; requests running longer than a second ride along for the timeout log. Sent each
   * beat where the worker has no beat file (src/protocol/beat-file.ts); with one, only when it carries news:
   * slow requests, the first beat after them, the counts when the requests counted changed. `filed`: the beat
   * itself is in the file, whose time the master goes by (a gthread worker's holds its threads' oldest beat).
   */
  | { readonly t: 'hb'; readonly slow?: readonly InflightRequest[]; readonly counts?: WorkerCounts; readonly filed?: true }
  /**
   * The `metrics` setting: this worker's counts, asked for by a scrape (`metrics`), and sent once more as it
   * exits. They ride along with each heartbeat too, so a worker killed later loses few.
   */
  | { readonly t: 'metrics'; readonly counts: WorkerCounts }
  /**
   * Part of the worker is stuck (a gthread thread): no beat this time, so the master's timeout runs on, but
   * here is what it serves, for the `WORKER TIMEOUT` line. Does not count as a heartbeat.
   */
  | { readonly t: 'stuck'; readonly slow: readonly InflightRequest[]; readonly counts?: WorkerCounts }
  /** The worker reached max_requests: start its replacement, then stop it. */
  | { readonly t: 'retire'; readonly requests: number }
  /** An exception nothing caught: the worker finishes its requests and exits; start its replacement now. */
  | { readonly t: 'crashed' }
  /**
   * --reload: the files the app imported (and the one that failed to load), for the master to watch.
   * `missing`: those a load that failed looked for and did not find (Reloader.add reloads if one exists by the
   * time the master reads this).
   */
  | { readonly t: 'files'; readonly files: readonly string[]; readonly missing?: readonly string[] }
  /**
   * TERM: the worker accepted everything queued in the backlog and closed its listeners. The master keeps its
   * own copies of the sockets until every worker has said so (or exited): a worker that paused accepting
   * (sync, async at its cap) resumes on a duplicate of the master's copy, and a socket that nobody holds
   * resets the connections queued in it.
   */
  | { readonly t: 'drained' }
  /** Asks for a fresh duplicate of listener `listener`'s socket (answered by a `lease` message). */
  | { readonly t: 'lease'; readonly listener: number }
  /**
   * SIGABRT: a connection accepted on listener `listener` and held back unread (the message's handle); the
   * master hands it to a live worker as `adopt`.
   */
  | { readonly t: 'rescue'; readonly listener: number }
  /**
   * The boot went on to a server hook (`postFork`, `postWorkerInit`), or back to the app's load (null): what a
   * boot timeout names. Sent only when the hook is set. Not a heartbeat: the boot's bound counts from its start.
   */
  | { readonly t: 'step'; readonly step: 'postFork' | 'postWorkerInit' | null }
  /**
   * USR1: logs this worker could not open again (its --user may not write a file logrotate made, say), in
   * words. It goes on writing to the files already open; the master says so once for all its workers.
   */
  | { readonly t: 'reopenFailed'; readonly problems: readonly string[] }
  /** Why the worker is about to exit before ever serving. */
  | { readonly t: 'fatal'; readonly code: number; readonly message: string; readonly detail: string };

/**
 * Exit codes are a contract between worker and master (as Gunicorn's): the master halts instead of respawning
 * a worker that can never boot.
 */
export const ExitCode = {
  OK: 0,
  /** Bad configuration or usage, or an app that cannot be loaded: the master's one-line failure. */
  CONFIG: 1,
  /** A worker failed during boot for a reason other than the app (hook threw, sockets unusable). */
  WORKER_BOOT_ERROR: 3,
  /**
   * A worker's code: the app could not be loaded (syntax error, throw at import, missing module, not an app).
   * The master halts (exit 1) when no worker ever served, instead of respawning one that can never boot.
   */
  APP_LOAD_ERROR: 4,
} as const;

export function isMasterMessage(m: unknown): m is MasterMessage {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string';
}

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string';
}
