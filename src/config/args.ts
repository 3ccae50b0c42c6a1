import { ConfigError, type Setting } from './setting.js';
import { settingForFlag, suggestFlag } from './registry.js';
import { gunicornOnlyFlag } from './gunicorn-only.js';

export interface ParsedArgs {
  /** Raw strings per setting key, in order (repeatable flags keep every occurrence). */
  readonly values: Map<string, string[]>;
  readonly positionals: string[];
  readonly help: boolean;
  readonly version: boolean;
}

/**
 * Parses a command line the way Gunicorn's argparse does: `--flag VALUE`, `--flag=VALUE`, `-w 4`, `-w4`,
 * boolean flags without a value, `--` to end options.
 */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const values = new Map<string, string[]>();
  const positionals: string[] = [];
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
      inline = arg.slice(2);
    }
    const s = settingForFlag(flag);
    if (!s) {
      const gunicorns = gunicornOnlyFlag(flag);
      if (gunicorns) throw new ConfigError(gunicorns);
      const guess = flag.startsWith('--') ? suggestFlag(flag) : undefined;
      const hint = guess ? `; did you mean ${guess}?` : '; see tunicorn --help';
      throw new ConfigError(`unknown option ${flag}${hint}`);
    }
    if (!s.takesValue) {
      if (inline !== undefined) throw new ConfigError(`option ${flag} takes no value (got "${inline}")`);
      put(s, 'true');
      continue;
    }
    if (inline === undefined) {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`option ${flag} needs a value (${s.metavar ?? 'VALUE'})`);
      inline = next;
      i++;
    }
    put(s, inline);
  }
  return { values, positionals, help, version };
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
