/** The public API for config files and apps. */
import type { ConfigInput } from './config/registry.js';

export type { Config, ConfigInput } from './config/registry.js';
export type { HookLog, HookServer, HookWorker } from './config/hook-types.js';
export { clientAddress, incomingMessage } from './app/fetch-bridge.js';
export { queueTime } from './workers/queue-time.js';

/** Types a config file: `export default defineConfig({ workers: 4 })`. */
export function defineConfig(config: ConfigInput): ConfigInput {
  return config;
}
