import type { IncomingMessage } from 'node:http';

/** Where the worker puts a request's queue time (milliseconds) once it reaches the app. */
export const kQueueMs = Symbol.for('tunicorn.queueMs');

/**
 * How long the request waited before reaching the app, in milliseconds: since the worker accepted its
 * connection, or since the proxy saw it when the proxy sent `X-Request-Start`. For metrics and logs.
 */
export function queueTime(req: IncomingMessage): number | undefined {
  return (req as unknown as Record<symbol, number | undefined>)[kQueueMs];
}

/**
 * `X-Request-Start` as proxies send it (`t=1700000000.123`, or a bare number): seconds, milliseconds or
 * microseconds since the epoch, told apart by size. Returns epoch milliseconds, or undefined.
 */
export function parseRequestStart(v: string | string[] | undefined): number | undefined {
  if (typeof v !== 'string') return undefined;
  const n = Number(v.trim().replace(/^t=/, ''));
  if (!Number.isFinite(n) || n <= 0) return undefined;
  if (n < 1e11) return n * 1000;
  if (n < 1e14) return n;
  return n / 1000;
}
