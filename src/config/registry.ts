import { hooks } from './sections/hooks.js';
import { http } from './sections/http.js';
import { logging } from './sections/logging.js';
import { operations } from './sections/operations.js';
import { processSettings } from './sections/process.js';
import { security } from './sections/security.js';
import { server } from './sections/server.js';
import { tls } from './sections/tls.js';
import { workerSettings } from './sections/workers.js';
import type { Setting } from './setting.js';

/** Every setting, by config-file key. Add a section here and everything else follows. */
export const SETTINGS = {
  ...server,
  ...workerSettings,
  ...processSettings,
  ...http,
  ...tls,
  ...security,
  ...logging,
  ...operations,
  ...hooks,
};

export type SettingKey = keyof typeof SETTINGS;
type ValueOf<S> = S extends Setting<infer T> ? T : never;

/** The resolved, frozen configuration. */
export type Config = { readonly [K in SettingKey]: ValueOf<(typeof SETTINGS)[K]> };

/** What a config file may export: any subset of the settings. */
export type ConfigInput = { [K in SettingKey]?: K extends 'workers' ? number | 'auto' : ValueOf<(typeof SETTINGS)[K]> };

/** Other spellings accepted as config-file keys: the seed's `logfile`, and Gunicorn names that differ. */
export const KEY_ALIASES: Readonly<Record<string, SettingKey>> = {
  logfile: 'errorlog',
  proc_name: 'procName',
  raw_env: 'rawEnv',
  preload_app: 'preload',
};

export const allSettings = (): Setting<unknown>[] => Object.values(SETTINGS) as Setting<unknown>[];

const byFlag = new Map<string, Setting<unknown>>();
for (const s of allSettings()) for (const f of s.flags) byFlag.set(f, s);

export function settingForFlag(flag: string): Setting<unknown> | undefined {
  return byFlag.get(flag);
}

/** The key a user probably meant: snake_case or kebab-case spellings of a real key. */
export function suggestKey(key: string): string | undefined {
  const camel = key.toLowerCase().replace(/[-_]+([a-z])/g, (_, c: string) => c.toUpperCase());
  if (camel in SETTINGS) return camel;
  const flat = key.toLowerCase().replace(/[-_]/g, '');
  return Object.keys(SETTINGS).find((k) => k.toLowerCase() === flat);
}
