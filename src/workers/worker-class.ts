import type { WorkerClassName } from '../config/sections/server.js';
import type { ServedApp } from '../app/shapes.js';
import type { ListenerInfo } from '../protocol/messages.js';
import type { WorkerRuntime } from './runtime.js';

export interface WorkerClassContext {
  readonly runtime: WorkerRuntime;
  /** Loads (or, for gthread, has each thread load) the app. */
  readonly loadApp: () => Promise<ServedApp>;
  readonly listeners: readonly ListenerInfo[];
  /** Call between loading the app and accepting (runs postWorkerInit). */
  readonly appLoaded: () => Promise<void>;
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
}

export type WorkerClassFactory = (ctx: WorkerClassContext) => WorkerClass;

/** Loaded on demand so a worker only pays for the class it runs. */
export const WORKER_CLASSES: Record<WorkerClassName, () => Promise<WorkerClassFactory>> = {
  async: async () => (await import('./async.js')).createAsyncWorker,
  sync: async () => (await import('./async.js')).createAsyncWorker,
  gthread: async () => (await import('./async.js')).createAsyncWorker,
};
