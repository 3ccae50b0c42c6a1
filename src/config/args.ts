import { ConfigError, type Setting } from './setting.js';
import { longFlags, settingForFlag, suggestFlag } from './registry.js';
import { gunicornOnlyFlag } from './gunicorn-only.js';

export interface ParsedArgs {
  /** Raw strings per setting key, in order (repeatable flags keep every occurrence). */
  readonly values: Map<string, string[]>;
  readonly positionals: string[];
  /**
   * Positionals (by index) that came right after a flag given without its value (`--proxy-protocol v3 app.ts`):
   * with a second APP, such a one was meant as that flag's value, and its error is the value's.
   */
  readonly afterBareFlag: { readonly index: number; readonly setting: Setting<unknown> }[];
  readonly help: boolean;
  readonly version: boolean;
}

/**
 * Parses a command line the way Gunicorn's argparse does: `--flag VALUE`, `--flag=VALUE`, `-w 4`, `-w4`, `-w=4`,
 * boolean flags without a value, `--` to end options, and a long flag shortened to a prefix only it has
 * (`--error-log` for `--error-logfile`). Gunicorn spells one flag with an underscore,
 * `--limit-request-field_size`: any `_` in a long flag reads as `-`.
 */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const values = new Map<string, string[]>();
  const positionals: string[] = [];
  const afterBareFlag: { index: number; setting: Setting<unknown> }[] = [];
  let help = false;
  let version = false;
  const put = (s: Setting<unknown>, v: string) => {
    const list = values.get(s.key) ?? [];
    if (!s.repeatable) list.length = 0;
    list.push(v);
    values.set(s.key, list);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (arg === '-v' || arg === '--version') {
      version = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    let flag = arg;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      if (eq > 0) {
        flag = arg.slice(0, eq);
        inline = arg.slice(eq + 1);
      }
    } else if (arg.length > 2) {
      flag = arg.slice(0, 2);
      // -w4, and -w=4 as argparse reads it.
      inline = arg[2] === '=' ? arg.slice(3) : arg.slice(2);
    }
    let s = settingForFlag(flag);
    if (!s) {
      // A Gunicorn flag tunicorn does not have is named as such, before it could be read as a prefix.
      const gunicorns = gunicornOnlyFlag(flag);
      if (gunicorns) throw new ConfigError(gunicorns);
      const long = flag.startsWith('--') ? longFlag(flag) : undefined;
      if (long === '--help' || long === '--version' || flag === '--help' || flag === '--version') {
        const name = typeof long === 'string' ? long : flag;
        if (inline !== undefined) throw new ConfigError(`option ${name} takes no value (got "${inline}")`);
        if (name === '--help') help = true;
        else version = true;
        continue;
      }
      s = long;
    }
    if (!s) {
      const guess = flag.startsWith('--') ? suggestFlag(flag) : undefined;
      const hint = guess ? `; did you mean ${guess}?` : '; see tunicorn --help';
      throw new ConfigError(`unknown option ${flag}${hint}`);
    }
    if (!s.takesValue) {
      if (inline !== undefined) throw new ConfigError(`option ${flag} takes no value (got "${inline}")`);
      put(s, 'true');
      continue;
    }
    if (inline === undefined && s.bareValue !== undefined) {
      const next = argv[i + 1];
      if (next === undefined || !acceptsValue(s, next)) {
        if (next !== undefined && !next.startsWith('-')) afterBareFlag.push({ index: positionals.length, setting: s });
        put(s, s.bareValue);
        continue;
      }
    }
    if (inline === undefined) {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`option ${flag} needs a value (${s.metavar ?? 'VALUE'})`);
      inline = next;
      i++;
    }
    put(s, inline);
  }
  return { values, positionals, afterBareFlag, help, version };
}

/** Whether `value` is one the setting takes (for a flag whose value may be left out). */
function acceptsValue(s: Setting<unknown>, value: string): boolean {
  try {
    s.fromCli([value]);
    return true;
  } catch {
    return false;
  }
}

/** Splits TUNICORN_CMD_ARGS like a POSIX shell would for simple quoting. */
export function splitCommandLine(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: '"' | "'" | null = null;
  let started = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      started = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      started = true;
    } else if (/\s/.test(c)) {
      if (started) out.push(cur);
      cur = '';
      started = false;
    } else {
      cur += c;
      started = true;
    }
  }
  if (quote) throw new ConfigError(`TUNICORN_CMD_ARGS has an unclosed ${quote} quote`);
  if (started) out.push(cur);
  return out;
}

/**
 * A long flag given with `_` for `-`, or shortened to a prefix that only one flag has; undefined when none
 * matches. A prefix several flags share is an error that names them (argparse's `ambiguous option`).
 */
function longFlag(flag: string): Setting<unknown> | '--help' | '--version' | undefined {
  const dashed = flag.replace(/_/g, '-');
  const exact = settingForFlag(dashed);
  if (exact) return exact;
  // `--` with a value (`--=x`) is no prefix of anything.
  if (dashed === '--') return undefined;
  const matches = [...longFlags(), '--help', '--version'].filter((f) => f.startsWith(dashed));
  if (matches.length === 1) return matches[0] === '--help' || matches[0] === '--version' ? matches[0] : settingForFlag(matches[0]!);
  if (matches.length > 1) throw new ConfigError(`ambiguous option ${flag}: it could be ${matches.join(', ')}`);
  return undefined;
}
