/**
 * Module hooks registered by a worker in --reload mode only (see esm-watch.ts): they run on Node's hooks
 * thread and post the URL of every module loaded, so native ES modules join the watched import graph.
 */
import type { MessagePort } from 'node:worker_threads';

let port: MessagePort | null = null;

export function initialize(data: { port: MessagePort }): void {
  port = data.port;
}

export async function load(url: string, context: unknown, next: (url: string, context: unknown) => Promise<unknown>): Promise<unknown> {
  if (url.startsWith('file:')) port?.postMessage(url);
  return next(url, context);
}
