/**
 * One declaration per setting. The CLI flag, the config-file key, `--help`, `--print-config` and
 * docs/settings.md are all derived from these objects; nothing else declares a setting.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type SettingKind = 'int' | 'number' | 'size' | 'bool' | 'string' | 'list' | 'choice' | 'hook' | 'map';

export interface Setting<T> {
  /** camelCase config-file key, e.g. `gracefulTimeout`. */
  readonly key: string;
  /** Gunicorn's snake_case name, for the docs (`graceful_timeout`). */
  readonly gunicorn?: string;
  readonly section: string;
  /** CLI spellings, e.g. `['-w', '--workers']`; empty for settings only a config file can set (hooks). */
  readonly flags: readonly string[];
  readonly metavar?: string;
  readonly kind: SettingKind;
  /** Repeating the flag appends (bind, env, ...). */
  readonly repeatable?: boolean;
  /** A boolean flag takes no value. */
  readonly takesValue: boolean;
  /**
   * The value of the flag given alone, without one (argparse's `nargs='?'` with a `const`): the next argument
   * is taken as its value only when it is one the setting accepts (`--proxy-protocol app.ts` serves app.ts).
   */
  readonly bareValue?: string;
  readonly default: T;
  /** How the default reads in the docs when it is computed (`$WEB_CONCURRENCY or 1`). */
  readonly defaultDoc?: string;
  /**
   * Compute the default at resolve time from the environment. What it returns is checked like a config-file
   * value (so it may return the variable's text as it is), and an error then names the variable (`env`).
   */
  readonly dynamicDefault?: (env: NodeJS.ProcessEnv) => T | string;
  /** The environment variable dynamicDefault reads. */
  readonly env?: string;
  /** From one CLI string (or, for repeatable settings, the list of them). */
  readonly fromCli: (raw: string[]) => T;
  /** From a config-file value; throws ConfigError naming what it accepts. */
  readonly fromConfig: (value: unknown) => T;
  readonly short: string;
  readonly doc: string;
  /** Only loaded in a process, never sent to workers as data (functions). */
  readonly isHook?: boolean;
}

type Base<T> = Omit<Setting<T>, 'kind' | 'takesValue' | 'fromCli' | 'fromConfig' | 'default'> & {
  default: T;
  /** Further check after the type is right; returns an error phrase like "must be >= 0". */
  check?: (value: T) => string | undefined;
};

/** A setting's long flag, as `--help` shows it (`--error-logfile`); its only flag if it has no long one. */
export const longFlag = (flags: readonly string[]): string => flags.find((f) => f.startsWith('--')) ?? flags[0] ?? '';

function fail(s: { key: string; flags: readonly string[] }, value: unknown, accepts: string): never {
  const flag = longFlag(s.flags);
  const name = flag ? `${s.key} (${flag})` : s.key;
  throw new ConfigError(`invalid value for ${name}: ${show(value)}; ${accepts}`);
}

export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  // JSON has no Infinity or NaN: it would print them as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  // A promise (an async value not awaited in the config file) or another class's object would print as {}.
  if (value instanceof Promise) return 'a Promise (await it in the config file)';
  const proto = value !== null && typeof value === 'object' ? Object.getPrototypeOf(value) : null;
  if (proto !== null && proto !== Object.prototype && proto !== Array.prototype) {
    return `an instance of ${(proto as { constructor?: { name?: string } }).constructor?.name || 'a class'}`;
  }
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function checked<T>(b: Base<T>, value: T, accepts: string): T {
  const problem = b.check?.(value);
  if (problem) fail(b, value, problem);
  void accepts;
  return value;
}

export function intSetting(b: Base<number> & { min?: number; allowAuto?: () => number }): Setting<number> {
  const min = b.min ?? 0;
  const accepts = `expected a whole number >= ${min}${b.allowAuto ? ' or "auto"' : ''}`;
  const conv = (v: unknown): number => {
    if (b.allowAuto && v === 'auto') return b.allowAuto();
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
    // Past 2^53 a number no longer holds every whole number: "99999999999999999999" would read as 1e20.
    if (!Number.isSafeInteger(n) || n < min) fail(b, v, accepts);
    return checked(b, n, accepts);
  };
  return { ...b, kind: 'int', takesValue: true, fromCli: (raw) => conv(raw[raw.length - 1]), fromConfig: conv };
}

/**
 * The longest duration a seconds setting takes: Node keeps a timer for at most 2^31 - 1 ms (24.8 days), and a
 * longer one fires at once (TimeoutOverflowWarning). Some settings' timers run a little longer than the
 * setting itself (keepalive: one second more), hence the round figure below the limit.
 */
export const MAX_SECONDS = 2_000_000;

/** A decimal number as people write one: `30`, `0.5`, `.5`, `1e3`; not hex, binary or `Infinity`. */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A number of seconds, from `min` (or above 0, with `positive`) to MAX_SECONDS. */
export function numberSetting(b: Base<number> & { min?: number; positive?: boolean }): Setting<number> {
  const min = b.min ?? 0;
  const accepts = `expected a number of seconds ${b.positive ? '> 0' : `>= ${min}`} and <= ${MAX_SECONDS} (23 days)`;
  const conv = (v: unknown): number => {
    const n = typeof v === 'number' ? v : typeof v === 'string' && DECIMAL.test(v.trim()) ? Number(v) : NaN;
    if (!Number.isFinite(n) || n < min || (b.positive && n <= 0) || n > MAX_SECONDS) fail(b, v, accepts);
    return checked(b, n, accepts);
  };
  return { ...b, kind: 'number', takesValue: true, fromCli: (raw) => conv(raw[raw.length - 1]), fromConfig: conv };
}

/** K, M, G, T: powers of 1024, as PM2's `max_memory_restart`, Docker's `--memory` and systemd's `MemoryMax=` read them. */
const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
/** `512M`, `1.5G`, `800MB`, `2GiB`, `64 k`, or bare bytes (`536870912`, `1048576B`). */
const SIZE = /^(\d+\.?\d*|\.\d+)\s*([kmgt]?)(?:i?b)?$/i;

/** A size in bytes from `512M`-style text or a number of bytes; NaN when it is not one. Rounded down to a byte. */
export function parseSize(v: unknown): number {
  if (typeof v === 'number') return Number.isFinite(v) ? Math.floor(v) : NaN;
  const m = typeof v === 'string' ? SIZE.exec(v.trim()) : null;
  if (!m) return NaN;
  return Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
}

/**
 * A size in bytes, 0 for off. A figure below `min` bytes (other than 0) is refused: without a unit it counts
 * bytes, and `512` meant as megabytes would be a limit no process fits under.
 */
export function sizeSetting(b: Base<number> & { min: number; minText: string }): Setting<number> {
  const accepts = `expected a size such as 512M, 1.5G or 800MB (K, M, G, T count 1024s), or a number of bytes, at least ${b.minText}; 0 for off`;
  const conv = (v: unknown): number => {
    const n = parseSize(v);
    if (!Number.isSafeInteger(n) || n < 0 || (n > 0 && n < b.min)) fail(b, v, accepts);
    return checked(b, n, accepts);
  };
  return { ...b, kind: 'size', takesValue: true, fromCli: (raw) => conv(raw[raw.length - 1]), fromConfig: conv };
}

export function boolSetting(b: Base<boolean>): Setting<boolean> {
  const conv = (v: unknown): boolean => {
    if (typeof v === 'boolean') return v;
    // In any case and with spaces around, as Gunicorn's validate_bool reads "True" (a variable from Python's world).
    const t = typeof v === 'string' ? v.trim().toLowerCase() : v;
    if (t === 'true' || t === '1' || t === 'yes') return true;
    if (t === 'false' || t === '0' || t === 'no') return false;
    return fail(b, v, 'expected true or false');
  };
  return { ...b, kind: 'bool', takesValue: false, fromCli: () => true, fromConfig: conv };
}

export function stringSetting<T extends string | null>(b: Base<T>): Setting<T> {
  const conv = (v: unknown): T => {
    if (v === null && b.default === null) return v as T;
    if (typeof v !== 'string') fail(b, v, 'expected a string');
    // An optional setting (a path, a host) given as "" is a variable left unset (`--pid "$PIDFILE"`), not "off".
    // A setting whose own check says more about it (an address: "the address is empty") says that.
    if (v === '' && b.default === null) fail(b, v, b.check?.(v as T) ?? 'an empty value; give one, or leave the setting out (null in a config file)');
    return checked(b, v as T, '');
  };
  return { ...b, kind: 'string', takesValue: true, fromCli: (raw) => conv(raw[raw.length - 1]), fromConfig: conv };
}

export function choiceSetting<T extends string>(
  b: Base<T> & { choices: readonly T[]; booleans?: { readonly true: T; readonly false: T } },
): Setting<T> {
  const accepts = `expected one of ${b.choices.join(', ')}${b.booleans ? ', or true or false' : ''}`;
  const conv = (v: unknown): T => {
    // A setting that was a switch in Gunicorn (proxy_protocol = True) takes its booleans too.
    if (b.booleans && typeof v === 'boolean') return v ? b.booleans.true : b.booleans.false;
    const s = typeof v === 'string' ? v.toLowerCase() : v;
    // The same as words (a flag's value, an environment variable, JSON written with quotes).
    if (b.booleans && (s === 'true' || s === 'false')) return s === 'true' ? b.booleans.true : b.booleans.false;
    if (typeof s !== 'string' || !b.choices.includes(s as T)) fail(b, v, accepts);
    return s as T;
  };
  return { ...b, kind: 'choice', takesValue: true, fromCli: (raw) => conv(raw[raw.length - 1]), fromConfig: conv };
}

/** A list: a repeatable flag, or a comma-separated one; in a config file an array (or one string). */
export function listSetting(b: Base<readonly string[]> & { commaSeparated?: boolean }): Setting<readonly string[]> {
  const split = (s: string) => (b.commaSeparated ? s.split(',').map((x) => x.trim()).filter(Boolean) : [s]);
  const fin = (v: readonly string[]) => Object.freeze(checked(b, v, ''));
  return {
    ...b,
    kind: 'list',
    takesValue: true,
    repeatable: true,
    fromCli: (raw) => fin(raw.flatMap(split)),
    fromConfig: (v) => {
      if (typeof v === 'string') return fin(split(v));
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail(b, v, 'expected a list of strings');
      return fin(v as string[]);
    },
  };
}

/** KEY=VALUE pairs (`-e`): a repeatable flag, or an object in a config file. */
export function mapSetting(b: Base<Readonly<Record<string, string>>>): Setting<Readonly<Record<string, string>>> {
  const pair = (s: string): [string, string] => {
    const i = s.indexOf('=');
    if (i <= 0) fail(b, s, 'expected KEY=VALUE');
    return [s.slice(0, i), s.slice(i + 1)];
  };
  return {
    ...b,
    kind: 'map',
    takesValue: true,
    repeatable: true,
    fromCli: (raw) => checked(b, Object.freeze(Object.fromEntries(raw.map(pair))), ''),
    fromConfig: (v) => {
      if (Array.isArray(v)) return checked(b, Object.freeze(Object.fromEntries(v.map((x) => pair(String(x))))), '');
      if (v === null || typeof v !== 'object') fail(b, v, 'expected an object of strings or a list of "KEY=VALUE"');
      const out: Record<string, string> = {};
      for (const [k, x] of Object.entries(v as object)) {
        if (typeof x !== 'string' && typeof x !== 'number') fail(b, v, `expected string values (${k} is not)`);
        out[k] = String(x);
      }
      return checked(b, Object.freeze(out), '');
    },
  };
}

/** A server hook: a function in the config file, called with the arguments its doc names. */
export function hookSetting<F extends (...args: never[]) => unknown>(
  b: Omit<Base<F | null>, 'flags' | 'default'> & { arity: number },
): Setting<F | null> {
  return {
    ...b,
    flags: [],
    default: null,
    kind: 'hook',
    takesValue: false,
    isHook: true,
    fromCli: () => fail({ key: b.key, flags: [] }, 'a command-line value', 'hooks can only be set in a config file'),
    fromConfig: (v) => {
      if (v === null || v === undefined) return null;
      if (typeof v !== 'function') fail({ key: b.key, flags: [] }, v, `expected a function (${b.doc.split('.')[0]})`);
      if (v.length > b.arity) {
        // The arguments it gets, from its short doc: `(worker, req, res)` (Gunicorn's post_request also had environ).
        const args = /`(\([^`]*\))`/.exec(b.short)?.[1];
        fail({ key: b.key, flags: [] }, v, `expected a function of at most ${b.arity} argument(s)${args ? `, ${args}` : ''}, got ${v.length}`);
      }
      return v as F;
    },
  };
}
