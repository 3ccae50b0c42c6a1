import type { WorkerClassName } from '../config/sections/server.js';
import type { ServedApp } from '../app/shapes.js';
import type { InflightRequest, ListenerInfo } from '../protocol/messages.js';
import type { Leases } from './leases.js';
import type { WorkerRuntime } from './runtime.js';

export interface WorkerClassContext {
  readonly runtime: WorkerRuntime;
  /** Loads (or, for gthread, has each thread load) the app. */
  readonly loadApp: () => Promise<ServedApp>;
  readonly listeners: readonly ListenerInfo[];
  /** Call between loading the app and accepting (runs postWorkerInit). */
  readonly appLoaded: () => Promise<void>;
  /** Fresh duplicates of the listening sockets from the master, to resume accepting after a pause. */
  readonly leases: Leases;
  /**
   * Sends a connection this process holds back, unread, to the master (which hands it to a live worker):
   * `fd` is its descriptor, left open here. Resolves once the descriptor is on its way.
   */
  readonly handOver: (listener: number, fd: number) => Promise<void>;
  /**
   * An exception nothing caught where the class runs the app outside the main thread (in a gthread thread, which
   * runs on, or the death of one whose heap filled up): the worker retires as after one of its own
   * (WorkerProcess.crashed), its other threads finishing their requests.
   */
  readonly crashed: (err: Error, running?: string) => void;
  /** The worker process's own settings and app argument, for classes that start threads. */
  readonly init: { readonly app: string; readonly configPath: string | null; readonly id: number; readonly age: number; readonly masterPid: number };
}

/**
 * The contract every worker class fulfils. Classes differ only in how they run requests; the process around
 * them (IPC, heartbeat, signals, hooks, logs) is the same.
 */
export interface WorkerClass {
  /** Load the app and accept on every listener; resolves when serving. */
  start(): Promise<void>;
  /** Stop accepting and finish (graceful) or cut (not graceful) what is running; resolves when done. */
  stop(graceful: boolean): Promise<void>;
  /**
   * False while part of the class cannot run (a gthread thread is stuck): the worker's beat then tells the master
   * so ('stuck'), and its beat file keeps that part's last beat (beatTime), from which the master's timeout runs.
   */
  healthy?(): boolean;
  /**
   * Whether the class idles: nothing running, nothing served since the last call. Asked at each of the worker's
   * beats by a class whose requests run outside the process's main event loop (gthread threads); the worker then
   * beats at its idle period, as one of another class does when its own loop served nothing.
   */
  quiet?(): boolean;
  /**
   * The time (process.hrtime.bigint()) the worker's beat file holds at a beat: the oldest beat of the class's
   * threads (gthread), so that the master times a thread stuck on a request out from its own last beat. Null:
   * now.
   */
  beatTime?(): bigint | null;
  /** Requests the class runs outside the process's main event loop (gthread threads), for timeout reports. */
  slowRequests?(): InflightRequest[];
  /** USR1: the process reopened its logs; reopen those the class opened itself (threads). */
  reopenLogs?(): void;
  /**
   * SIGABRT: the master timed the worker out and kills it after a short grace. A class whose stuck part can
   * be left alone (a gthread thread) lets the rest finish the connections it holds, within the grace, and
   * resolves when done: with true when a stuck part is still there, and the process must then end without
   * waking it (see GthreadWorker.abort).
   */
  abort?(): Promise<boolean>;
  /**
   * Serves a connection handed over from a worker that timed out (a raw handle received over IPC, accepted on
   * listener `listener`). False if the class cannot take it now. Only gthread hands connections over, and all
   * workers run one class, so only gthread takes them; a worker without `adopt` closes the connection.
   */
  adopt?(listener: number, handle: object): boolean;
  /** The `metrics` setting: the counter records of a class whose requests run outside the main thread (gthread's, one a thread). */
  metricRecords?(): Float64Array[];
}

export type WorkerClassFactory = (ctx: WorkerClassContext) => WorkerClass;

/** Loaded on demand so a worker only pays for the class it runs. */
export const WORKER_CLASSES: Record<WorkerClassName, () => Promise<WorkerClassFactory>> = {
  async: async () => (await import('./async.js')).createAsyncWorker,
  sync: async () => (await import('./sync.js')).createSyncWorker,
  gthread: async () => (await import('./gthread.js')).createGthreadWorker,
};
