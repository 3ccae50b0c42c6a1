import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, splitCommandLine, type ParsedArgs } from './args.js';
import type { LoadGuard } from '../app/load-guard.js';
import { findDefaultConfig, loadConfigFile } from './file.js';
import { gunicornOnlyKey } from './gunicorn-only.js';
import { pm2Key } from './pm2-keys.js';
import { allSettings, KEY_ALIASES, SETTINGS, suggestKey, type Config, type SettingKey } from './registry.js';
import { ConfigError, show } from './setting.js';
import { jsonTemplateProblem } from '../logging/access-format.js';
import { DEFAULT_ACCESS_LOG_FORMAT } from './sections/logging.js';

export type Source = 'default' | 'environment' | 'config file' | 'TUNICORN_CMD_ARGS' | 'command line';

export interface Resolved {
  readonly config: Config;
  readonly sources: Readonly<Record<SettingKey, Source>>;
  /** The APP argument, as given. */
  readonly app: string | null;
  /** Absolute path of the config file loaded, if any. */
  readonly configPath: string | null;
  readonly help: boolean;
  readonly version: boolean;
  /** What a Gunicorn user left that tunicorn does not read (GUNICORN_CMD_ARGS, ./gunicorn.conf.py): one line each. */
  readonly warnings: readonly string[];
  /** Whether `workers` was given as "auto": the master says at start what it counted (the CPUs, a quota's). */
  readonly workersAuto: boolean;
}

export interface ResolveInput {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Skip loading the config file (tests of pure precedence). */
  fileValues?: Record<string, unknown>;
  /** Watches the config file's loading (a process.exit() or a top-level await that never settles in it). */
  guard?: LoadGuard;
}

/**
 * The precedence, in one place, as Gunicorn's: defaults < config file < TUNICORN_CMD_ARGS < command line.
 * Every value remembers where it came from, for --print-config.
 */
export async function resolveConfig(input: ResolveInput): Promise<Resolved> {
  const cli = parseArgs(input.argv);
  const envArgs: ParsedArgs | null = input.env.TUNICORN_CMD_ARGS
    ? fromEnv('TUNICORN_CMD_ARGS', input.env, () => parseArgs(splitCommandLine(input.env.TUNICORN_CMD_ARGS!)))
    : null;
  if (envArgs && envArgs.positionals.length) {
    const bare = envArgs.afterBareFlag.find((b) => b.index === 0);
    if (bare) fromEnv('TUNICORN_CMD_ARGS', input.env, () => bare.setting.fromCli([envArgs.positionals[0]!]));
    throw new ConfigError(`TUNICORN_CMD_ARGS may hold options only, not ${show(envArgs.positionals[0])}`);
  }
  if (cli.positionals.length > 1) {
    // `--proxy-protocol v3 app.ts`: v3 is no mode, so the flag stood alone and v3 became the APP. Its error is
    // the value's (what the setting accepts), not "two APP arguments".
    // A word that reads as a file or an APP spec (`app.ts`, `./app`, `app:create()`) was one more APP argument;
    // a version number (`v1.0`, `2.0`) is a mistyped value, dot or not.
    for (const { index, setting } of cli.afterBareFlag) {
      const word = cli.positionals[index]!;
      if (!/[./:]/.test(word) || /^v?\d+(\.\d+)*$/i.test(word)) setting.fromCli([word]);
    }
    throw new ConfigError(`expected one APP argument, got ${cli.positionals.length}: ${cli.positionals.join(' ')}`);
  }

  const values: Record<string, unknown> = {};
  const sources: Record<string, Source> = {};
  for (const s of allSettings()) {
    if (s.dynamicDefault) {
      const v = s.dynamicDefault(input.env);
      values[s.key] = v;
      sources[s.key] = JSON.stringify(v) === JSON.stringify(s.default) ? 'default' : 'environment';
    } else {
      values[s.key] = s.default;
      sources[s.key] = 'default';
    }
  }

  const configArg = cli.values.get('config')?.at(-1) ?? envArgs?.values.get('config')?.at(-1);
  let configPath: string | null = null;
  let fileValues = input.fileValues;
  if (!fileValues) {
    configPath = configArg ? path.resolve(input.cwd, configFileArg(configArg)) : findDefaultConfig(input.cwd);
    if (configPath) fileValues = await loadConfigFile(configPath, input.guard);
  }
  if (fileValues) applyFile(fileValues, values, sources, configPath);
  if (envArgs) fromEnv('TUNICORN_CMD_ARGS', input.env, () => applyCli(envArgs, values, sources, 'TUNICORN_CMD_ARGS'));
  applyCli(cli, values, sources, 'command line');
  // The defaults taken from the environment, checked where nothing above replaced them.
  for (const s of allSettings()) {
    if (sources[s.key] === 'environment' && s.env) values[s.key] = fromEnv(s.env, input.env, () => s.fromConfig(values[s.key]));
  }
  if (configPath) {
    values.config = configPath;
    sources.config = configArg ? (cli.values.has('config') ? 'command line' : 'TUNICORN_CMD_ARGS') : 'default';
  }

  // Gunicorn: --threads N with no worker class, or with sync, selects gthread.
  if ((values.threads as number) > 1 && (sources.workerClass === 'default' || values.workerClass === 'sync')) {
    values.workerClass = 'gthread';
    sources.workerClass = sources.threads as Source;
  }
  if ((values.workerClass as string) === 'gthread' && (values.threads as number) < 1)
    throw new ConfigError('gthread needs threads >= 1');
  if (values.metrics === true && !values.healthBind)
    throw new ConfigError(
      'metrics (--metrics) is served on the health endpoint, which is off: set healthBind (--health-bind ADDRESS, such as 127.0.0.1:9100) too',
    );
  // A text format under --log-format json would break every line of a JSON pipeline: refused, as a bad atom is
  // (with no access log it is not used).
  if (values.logFormat === 'json' && values.accesslog !== null && values.accessLogFormat !== DEFAULT_ACCESS_LOG_FORMAT) {
    const problem = jsonTemplateProblem(values.accessLogFormat as string);
    if (problem)
      throw new ConfigError(
        `with --log-format json, accessLogFormat (--access-logformat) is a JSON template, as {"status":"%(s)s","path":"%(U)s"} ` +
          `(leave it unset for tunicorn's JSON line): ${problem}`,
      );
  }

  return {
    config: Object.freeze(values) as Config,
    sources: Object.freeze(sources) as Record<SettingKey, Source>,
    app: cli.positionals[0] ?? null,
    configPath,
    help: cli.help,
    version: cli.version,
    warnings: gunicornLeftovers(input.env, input.cwd, configPath !== null || input.fileValues !== undefined),
    workersAuto: rawValue('workers', sources.workers as Source, { cli, envArgs, fileValues, env: input.env }) === 'auto',
  };
}

/** `-c PATH`, or Gunicorn's `file:PATH`; its `python:MODULE` is refused, in words. */
function configFileArg(arg: string): string {
  if (arg.startsWith('python:'))
    throw new ConfigError(
      `-c ${arg} is Gunicorn's config from a Python module, which does not load here; write its settings as an object in a tunicorn.config.ts (docs/settings.md names each one)`,
    );
  return arg.startsWith('file:') ? arg.slice(5) : arg;
}

/**
 * Gunicorn's own places for settings, which tunicorn does not read: its options would otherwise be dropped in
 * silence (a Dockerfile's `ENV GUNICORN_CMD_ARGS="--workers 4"` serving with one worker).
 */
function gunicornLeftovers(env: NodeJS.ProcessEnv, cwd: string, hasConfigFile: boolean): string[] {
  const out: string[] = [];
  if (env.GUNICORN_CMD_ARGS?.trim())
    out.push(
      `GUNICORN_CMD_ARGS is set (${show(env.GUNICORN_CMD_ARGS)}), and tunicorn does not read it: put those options in TUNICORN_CMD_ARGS, which takes the same syntax`,
    );
  if (!hasConfigFile && existsSync(path.join(cwd, 'gunicorn.conf.py')))
    out.push(
      `${path.join(cwd, 'gunicorn.conf.py')} is not read: tunicorn's default config file is ./tunicorn.config.ts (or .mts, .js, .mjs, .cjs); write its settings there (docs/settings.md names each one)`,
    );
  return out;
}

function applyFile(
  file: Record<string, unknown>,
  values: Record<string, unknown>,
  sources: Record<string, Source>,
  configPath: string | null,
): void {
  const where = configPath ? ` in ${configPath}` : '';
  // Settings at the top: this is the default export (or the settings exported one by one), not a name's.
  const topSettings = Object.keys(file).some((k) => k !== 'config' && (k in SETTINGS || k in KEY_ALIASES));
  // The spelling each setting was given under in this file: two spellings of one (`preload` and `preload_app`,
  // `maxWorkerMemory` and PM2's `max_memory_restart`) would leave it to the keys' order which one counts.
  const spelled = new Map<SettingKey, string>();
  for (const [rawKey, raw] of Object.entries(file)) {
    if (raw === undefined) continue;
    const key = (rawKey in SETTINGS ? rawKey : KEY_ALIASES[rawKey]) as SettingKey | undefined;
    // `export const config = defineConfig({...})`: a named export where the default one was meant.
    if ((!key || key === 'config') && !topSettings && holdsSettings(raw))
      throw new ConfigError(`the config file exports its settings as ${show(rawKey)}${where}; make them the default export: export default defineConfig({ ... })`);
    if (!key) {
      const gunicorns = gunicornOnlyKey(rawKey, where);
      // Off (`daemon: false`, `reuse_port: false`, a config carried over from Gunicorn's) is what tunicorn does.
      if (gunicorns && (raw === false || raw === null)) continue;
      if (gunicorns) throw new ConfigError(gunicorns);
      const pm2 = pm2Key(rawKey, where);
      if (pm2) throw new ConfigError(pm2);
      const guess = suggestKey(rawKey);
      throw new ConfigError(
        `unknown setting ${show(rawKey)}${where}${guess ? `; did you mean ${guess}?` : '; see docs/settings.md for the keys'}`,
      );
    }
    if (key === 'config') throw new ConfigError(`the config file cannot set "config"${where}`);
    const other = spelled.get(key);
    if (other !== undefined)
      throw new ConfigError(`${show(other)} and ${show(rawKey)}${where} are one setting (${key}) given twice; keep one of them`);
    spelled.set(key, rawKey);
    const s = SETTINGS[key];
    try {
      values[key] = s.fromConfig(raw);
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`${err.message}${where}`);
      throw err;
    }
    sources[key] = 'config file';
  }
}

/** The value a setting was given as, before conversion, from the source that set it (null for the default). */
function rawValue(
  key: SettingKey,
  source: Source,
  from: { cli: ParsedArgs; envArgs: ParsedArgs | null; fileValues: Record<string, unknown> | undefined; env: NodeJS.ProcessEnv },
): unknown {
  switch (source) {
    case 'command line':
      return from.cli.values.get(key)?.at(-1);
    case 'TUNICORN_CMD_ARGS':
      return from.envArgs?.values.get(key)?.at(-1);
    case 'config file':
      return Object.entries(from.fileValues ?? {}).find(([k]) => (k in SETTINGS ? k : KEY_ALIASES[k]) === key)?.[1];
    case 'environment': {
      const name = SETTINGS[key].env;
      return name ? from.env[name]?.trim() : undefined;
    }
    default:
      return null;
  }
}

/** A plain object with at least one setting's key: settings exported under a name of their own. */
function holdsSettings(v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  return Object.keys(v).some((k) => k in SETTINGS || k in KEY_ALIASES);
}

/** Runs `f`; a ConfigError from it says which environment variable held the bad text. */
function fromEnv<T>(name: string, env: NodeJS.ProcessEnv, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${err.message} (from the environment: ${name}=${show(env[name])})`);
    throw err;
  }
}

function applyCli(args: ParsedArgs, values: Record<string, unknown>, sources: Record<string, Source>, src: Source): void {
  for (const [key, raw] of args.values) {
    if (key === 'config') continue;
    const s = SETTINGS[key as SettingKey];
    const v = s.fromCli(raw);
    // A repeatable flag replaces what lower layers said (Gunicorn's append actions start from empty too).
    values[key] = v;
    sources[key] = src;
  }
}

/** The config without hooks: what is sent to workers as data. */
export function serializableConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of allSettings()) if (!s.isHook) out[s.key] = config[s.key as SettingKey];
  return out;
}
