import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * What a hook sees of the logger: the error log of the process it runs in. With arguments after it, the
 * message is a format, as Python's logging takes one in Gunicorn's hooks (`log.info('pid %s', worker.pid)`),
 * with util.format's placeholders: `%s`, `%d`, `%i`, `%f`, `%j`, `%o`, `%O`, `%%`.
 */
export interface HookLog {
  debug(msg: string, ...args: unknown[]): void;
  info(msg: string, ...args: unknown[]): void;
  warning(msg: string, ...args: unknown[]): void;
  error(msg: string, ...args: unknown[]): void;
  critical(msg: string, ...args: unknown[]): void;
}

/** The master, as master-side hooks see it (Gunicorn's `server` / arbiter argument). */
export interface HookServer {
  readonly pid: number;
  /** The resolved settings (read-only). */
  readonly cfg: Readonly<Record<string, unknown>>;
  readonly log: HookLog;
  /** Wanted worker count; TTIN/TTOU and nworkersChanged change it. */
  readonly numWorkers: number;
}

/** A worker, as the master sees it (in master-side hooks) or as it sees itself (in worker-side hooks). */
export interface HookWorker {
  /** Process id, or 0 before it is spawned (preFork). */
  readonly pid: number;
  /** 1-based slot number: stable across replacements, unlike the pid. */
  readonly id: number;
  /** How many workers were spawned before this one (Gunicorn's `age`). */
  readonly age: number;
  readonly log: HookLog;
}

export type ServerHook = (server: HookServer) => unknown;
export type ServerWorkerHook = (server: HookServer, worker: HookWorker) => unknown;
export type WorkerHook = (worker: HookWorker) => unknown;
export type RequestHook = (worker: HookWorker, req: IncomingMessage, res: ServerResponse) => unknown;
export type NWorkersHook = (server: HookServer, newValue: number, oldValue: number | null) => unknown;
