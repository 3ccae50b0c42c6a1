/**
 * The `beforeExit` listeners of the app and its agents, run at the end of a graceful stop. Node emits the
 * event when a process runs out of work; a worker ends with process.exit(), which skips it, and that is where
 * APM agents send what they still hold: Sentry 11 its batched spans (its client's 'flush'), dd-trace the
 * traces since its last 2-second flush, OpenTelemetry's `register` entry its shutdown. Without this, each
 * worker's stop lost them (README, "APM and tracing agents").
 */
import type { ClientRequest } from 'node:http';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { GUARD_LISTENERS } from '../app/load-guard.js';
import { settledWithin } from '../deadline.js';

/**
 * How long to look for a request the listeners start after the last one ended: an agent starts its export a
 * few promise turns after the event (Sentry's transport, a span processor's forceFlush), not at once.
 */
const QUIET_MS = 50;

/**
 * The undici channels (Node's fetch) that end a request: its response arrived, or it failed. Undici publishes
 * nothing to node:http's channel, so an exporter that sends with fetch (the OTLP exporters' fetch transport,
 * an agent's own) would be cut by the exit; and a response whose body nobody reads never ends it otherwise.
 */
const UNDICI_ENDS = ['undici:request:headers', 'undici:request:error'];

/**
 * Calls each `beforeExit` listener, then waits, at most `ms`, for what they started: the promise a listener
 * returns, and the HTTP requests started meanwhile through node:http (its `http.client.request.start`
 * channel: the exporters of Sentry, dd-trace and OpenTelemetry use it) until each has closed, and through
 * fetch (undici's `undici:request:create`) until its response came or it failed. False when `ms` ran out
 * first. Only while a stop runs: nothing is subscribed while the worker serves.
 */
export async function runBeforeExit(ms: number, failed: (err: unknown) => void): Promise<boolean> {
  // Not the load guard's own, there while a worker stopped during its app's load still loads it.
  const listeners = process.listeners('beforeExit').filter((l) => !GUARD_LISTENERS.has(l));
  if (listeners.length === 0) return true;
  const deadline = Date.now() + ms;
  const pending = new Set<object>();
  let drained: (() => void) | null = null;
  const ended = (request: object) => {
    if (pending.delete(request) && pending.size === 0) drained?.();
  };
  const onStart = (message: unknown) => {
    const request = (message as { request: ClientRequest }).request;
    pending.add(request);
    request.once('close', () => ended(request));
  };
  const onFetch = (message: unknown) => void pending.add((message as { request: object }).request);
  const onFetchEnd = (message: unknown) => ended((message as { request: object }).request);
  subscribe('http.client.request.start', onStart);
  subscribe('undici:request:create', onFetch);
  for (const name of UNDICI_ENDS) subscribe(name, onFetchEnd);
  try {
    const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
    const calls = listeners.map(async (l) => {
      try {
        // As Node's emit calls it: on the process, with the exit code.
        await Reflect.apply(l, process, [code]);
      } catch (err) {
        failed(err);
      }
    });
    if (!(await settledWithin(Promise.all(calls), ms))) return false;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
      if (pending.size === 0) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await settledWithin(new Promise<void>((resolve) => (drained = resolve)), left);
    }
  } finally {
    unsubscribe('http.client.request.start', onStart);
    unsubscribe('undici:request:create', onFetch);
    for (const name of UNDICI_ENDS) unsubscribe(name, onFetchEnd);
  }
}
