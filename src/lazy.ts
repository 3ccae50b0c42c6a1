import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * Built-in modules loaded on first use, by the configurations that need them. Each one costs every process
 * that imports it: node:https brings tls and crypto (2.7 MB of RSS in a bare process, and about 100 ms of a
 * worker's boot on a loaded machine), node:worker_threads 1.3 MB.
 */
export const lazy = {
  https: () => require('node:https') as typeof import('node:https'),
  http2: () => require('node:http2') as typeof import('node:http2'),
  tls: () => require('node:tls') as typeof import('node:tls'),
  crypto: () => require('node:crypto') as typeof import('node:crypto'),
  workerThreads: () => require('node:worker_threads') as typeof import('node:worker_threads'),
  /** StatsD (--statsd-host) only. */
  dgram: () => require('node:dgram') as typeof import('node:dgram'),
  dns: () => require('node:dns') as typeof import('node:dns'),
  /** The master, when its output is a character device (src/cli/main.ts). */
  tty: () => require('node:tty') as typeof import('node:tty'),
};
