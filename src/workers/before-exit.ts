/**
 * The `beforeExit` listeners of the app and its agents, run at the end of a graceful stop. Node emits the
 * event when a process runs out of work; a worker ends with process.exit(), which skips it, and that is where
 * APM agents send what they still hold: Sentry 11 its batched spans (its client's 'flush'), dd-trace the
 * traces since its last 2-second flush, OpenTelemetry's `register` entry its shutdown. Without this, each
 * worker's stop lost them (README, "APM and tracing agents").
 */
import type { ClientRequest } from 'node:http';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { settledWithin } from '../deadline.js';

/**
 * How long to look for a request the listeners start after the last one ended: an agent starts its export a
 * few promise turns after the event (Sentry's transport, a span processor's forceFlush), not at once.
 */
const QUIET_MS = 50;

/**
 * Calls each `beforeExit` listener, then waits, at most `ms`, for what they started: the promise a listener
 * returns, and the HTTP requests started meanwhile through node:http (its `http.client.request.start`
 * channel: the exporters of Sentry, dd-trace and OpenTelemetry use it) until each has closed. False when
 * `ms` ran out first. Only while a stop runs: nothing is subscribed while the worker serves.
 */
export async function runBeforeExit(ms: number, failed: (err: unknown) => void): Promise<boolean> {
  const listeners = process.listeners('beforeExit');
  if (listeners.length === 0) return true;
  const deadline = Date.now() + ms;
  const pending = new Set<ClientRequest>();
  let drained: (() => void) | null = null;
  const onStart = (message: unknown) => {
    const request = (message as { request: ClientRequest }).request;
    pending.add(request);
    request.once('close', () => {
      pending.delete(request);
      if (pending.size === 0) drained?.();
    });
  };
  subscribe('http.client.request.start', onStart);
  try {
    const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
    const calls = listeners.map(async (l) => {
      try {
        await (l as (code: number) => unknown)(code);
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
  }
}
