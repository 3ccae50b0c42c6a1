import type { Config } from '../config/registry.js';
import { parseUmask } from '../workers/privileges.js';

/**
 * The settings a reload (HUP) reads but cannot apply: the master did what they ask once, at the start (bound
 * the sockets, changed directory, started the file watcher), and a reload keeps that. A
 * changed value is said in one warning line, with what to do, rather than ignored in silence; and the running
 * configuration keeps the start's value, so that what the master does later (the health endpoint taken over,
 * `show config`) follows what runs, and a HUP says it again while the file still differs.
 * Everything else applies: in the master at once, in the workers as the new ones start (docs/operations.md).
 */
interface StartOnly {
  keys: readonly (keyof Config)[];
  /** False when the new workers do follow the new value: only the master's part waits for a restart. */
  kept: boolean;
  line: string;
  /** Whether two values are one setting; by default, equal as JSON. */
  same?: (a: Config, b: Config) => boolean;
}

const START_ONLY: readonly StartOnly[] = [
  { keys: ['bind'], kept: true, line: 'bind changed in the config: a reload keeps the bound sockets; restart to rebind' },
  {
    // The socket files (and the health endpoint's) bound at the start are its only use.
    keys: ['umask'],
    kept: true,
    line: 'umask changed in the config: it applies to the socket files bound at the start, which a reload keeps; restart to apply it',
    same: (a, b) => parseUmask(a.umask) === parseUmask(b.umask),
  },
  { keys: ['healthBind'], kept: true, line: 'health_bind changed in the config: a reload keeps the health endpoint; restart to move it' },
  {
    keys: ['controlSocket', 'controlSocketDisable', 'controlSocketMode'],
    kept: true,
    line: 'control_socket changed in the config: a reload keeps the control socket as it is (its path and mode); restart to change it',
  },
  { keys: ['chdir'], kept: true, line: 'chdir changed in the config: a reload keeps the working directory of the start; restart to change it' },
  {
    // Node cannot fork: the workers load the app themselves either way, and --preload is a check at the start.
    keys: ['preload'],
    kept: true,
    line: 'preload changed in the config: the master loads the app (--preload) at the start only; restart to apply it',
  },
  {
    keys: ['reload', 'reloadExtraFile'],
    kept: true,
    line: 'reload changed in the config: a reload keeps the file watcher as it is (reload, reload_extra_file); restart to change it',
  },
  {
    keys: ['captureOutput'],
    kept: false,
    line: "capture_output changed in the config: the new workers follow it, the master's own stdout and stderr stay as they are; restart to change it",
  },
];

const asJson = (c: Config, keys: readonly (keyof Config)[]) => JSON.stringify(keys.map((k) => c[k] ?? null));
const unchanged = (s: StartOnly, a: Config, b: Config) => (s.same ? s.same(a, b) : asJson(a, s.keys) === asJson(b, s.keys));

/**
 * What a reload from the configuration of the start to `next` runs with (`next` with the start's values of the
 * settings it cannot apply), and the warning lines for those that differ.
 */
export function applyReload(start: Config, next: Config): { config: Config; warnings: string[] } {
  const changed = START_ONLY.filter((s) => !unchanged(s, start, next));
  const kept: Record<string, unknown> = {};
  for (const s of changed) if (s.kept) for (const k of s.keys) kept[k] = start[k];
  return { config: Object.freeze({ ...next, ...kept }) as Config, warnings: changed.map((s) => s.line) };
}
