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

/** A size as max_worker_memory takes it in a config file: `'512M'`, `'1.5G'`, `'800MB'` (a number is bytes). */
type SizeText = `${number}${'' | 'K' | 'M' | 'G' | 'T' | 'k' | 'm' | 'g' | 't'}${'' | 'B' | 'iB' | 'b' | 'ib'}`;

/** What a config file may give for one setting: its value, or another form docs/settings.md names for it. */
type InputOf<K extends SettingKey> = K extends 'workers'
  ? number | 'auto'
  : K extends 'proxyProtocol'
    ? ValueOf<(typeof SETTINGS)[K]> | boolean
    : K extends 'maxWorkerMemory'
      ? number | SizeText
      : K extends 'certReqs'
        ? ValueOf<(typeof SETTINGS)[K]> | 0 | 1 | 2
        : K extends 'user' | 'group'
          ? string | number | null
          : K extends 'rawEnv'
            ? ValueOf<(typeof SETTINGS)[K]> | readonly string[]
            : ValueOf<(typeof SETTINGS)[K]> extends readonly string[]
              ? ValueOf<(typeof SETTINGS)[K]> | string
              : ValueOf<(typeof SETTINGS)[K]>;

/** What a config file may export: any subset of the settings, under their keys or the aliases of KEY_ALIASES. */
export type ConfigInput = { [K in SettingKey]?: InputOf<K> } & {
  logfile?: InputOf<'errorlog'>;
  proc_name?: InputOf<'procName'>;
  raw_env?: InputOf<'rawEnv'>;
  preload_app?: InputOf<'preload'>;
  max_memory_restart?: InputOf<'maxWorkerMemory'>;
};

/**
 * Other spellings accepted as config-file keys: the seed's `logfile`, Gunicorn names that differ, and PM2's
 * name for max_worker_memory (an ecosystem file's `max_memory_restart: '300M'` means the same).
 */
export const KEY_ALIASES: Readonly<Record<Exclude<keyof ConfigInput, SettingKey>, SettingKey>> & Readonly<Record<string, SettingKey>> = {
  logfile: 'errorlog',
  proc_name: 'procName',
  raw_env: 'rawEnv',
  preload_app: 'preload',
  max_memory_restart: 'maxWorkerMemory',
};

export const allSettings = (): Setting<unknown>[] => Object.values(SETTINGS) as Setting<unknown>[];

const byFlag = new Map<string, Setting<unknown>>();
for (const s of allSettings()) for (const f of s.flags) byFlag.set(f, s);

export function settingForFlag(flag: string): Setting<unknown> | undefined {
  return byFlag.get(flag);
}

/** Every `--flag` of every setting. */
export function longFlags(): string[] {
  return [...byFlag.keys()].filter((f) => f.startsWith('--'));
}

/** Lower case without `-` and `_`: `worker_class`, `worker-class` and `workerClass` are one word. */
const flatten = (word: string): string => word.toLowerCase().replace(/[-_]/g, '');

/**
 * What a user probably meant by `word`, among `spellings` (each mapped to its answer): the one spelled the same
 * but for case, `-` and `_`, else the one within a typo or two of it (`worker` -> workers, `bnd` -> bind; two
 * edits from 5 letters on, one below). None when two answers are as close: a guess then would mislead.
 */
export function closest(word: string, spellings: ReadonlyMap<string, string>): string | undefined {
  const flat = flatten(word);
  for (const [spelling, answer] of spellings) if (flatten(spelling) === flat) return answer;
  if (flat.length < 3) return undefined;
  const limit = flat.length >= 5 ? 2 : 1;
  let best: string | undefined;
  let bestDistance = limit + 1;
  let tie = false;
  for (const [spelling, answer] of spellings) {
    const d = editDistance(flat, flatten(spelling), limit);
    if (d < bestDistance) [best, bestDistance, tie] = [answer, d, false];
    else if (d === bestDistance && answer !== best) tie = true;
  }
  return tie ? undefined : best;
}

/** Every long option, without its dashes, mapped to `to(option, setting)`. */
function longOptions(to: (option: string, s: Setting<unknown>) => string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [flag, s] of byFlag) if (flag.startsWith('--')) out.set(flag.slice(2), to(flag, s));
  return out;
}

/**
 * The config-file key a user probably meant, whether they wrote a key, an option's name or Gunicorn's name for
 * the setting (`proxy_allow_ips`, `preloadApp`), see closest.
 */
export function suggestKey(key: string): string | undefined {
  const spellings = new Map(Object.keys(SETTINGS).map((k) => [k, k]));
  for (const [option, k] of longOptions((_, s) => s.key)) if (!spellings.has(option)) spellings.set(option, k);
  for (const s of allSettings()) if (s.gunicorn && !spellings.has(s.gunicorn)) spellings.set(s.gunicorn, s.key);
  return closest(key, spellings);
}

/** The long option a user probably meant by `--flag` (see closest), with its dashes. */
export function suggestFlag(flag: string): string | undefined {
  return closest(flag.replace(/^-+/, ''), longOptions((option) => option));
}

/**
 * Edits (insert, delete, replace, swap two neighbours) between `a` and `b`; any figure above `limit` means
 * "more than limit".
 */
export function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  // Three rows of the table: the one before the previous is for a swap.
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
    }
    [before, prev] = [prev, row];
  }
  return prev[b.length]!;
}
