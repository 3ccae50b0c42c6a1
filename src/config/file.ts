import { existsSync } from 'node:fs';
import path from 'node:path';
import { ModuleImporter, unwrapDefault } from '../app/import.js';
import { ConfigError } from './setting.js';

export const DEFAULT_CONFIG_NAMES = [
  'tunicorn.config.ts',
  'tunicorn.config.mts',
  'tunicorn.config.js',
  'tunicorn.config.mjs',
  'tunicorn.config.cjs',
];

/** What a config file may be written in. */
const CONFIG_EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '.json'];

export function findDefaultConfig(dir: string): string | null {
  for (const name of DEFAULT_CONFIG_NAMES) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}

/** Loads a config file and returns its plain object of settings (not yet validated). */
export async function loadConfigFile(file: string): Promise<Record<string, unknown>> {
  if (!existsSync(file)) throw new ConfigError(`config file not found: ${file}`);
  const ext = path.extname(file);
  if (!CONFIG_EXTENSIONS.includes(ext)) {
    const gunicorn = ext === '.py' ? ': a Gunicorn config in Python does not load here; write its settings as an object in a tunicorn.config.ts (docs/settings.md names each one)' : '';
    throw new ConfigError(`config file ${file}: tunicorn reads TypeScript, JavaScript or JSON (${CONFIG_EXTENSIONS.join(' ')})${gunicorn}`);
  }
  let mod: Record<string, unknown>;
  try {
    // Fresh: HUP must see the file as it is now, not as this process first imported it.
    mod = await new ModuleImporter(path.dirname(file), { fresh: true }).import(file);
  } catch (err) {
    throw new ConfigError(`config file ${file} failed to load: ${describeLoadError(err)}`, { cause: err });
  }
  const value = unwrapDefault(mod.default ?? mod);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(
      `config file ${file} must export (default) an object of settings, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}`,
    );
  }
  return value as Record<string, unknown>;
}

/** One line for a load failure: the message, and the first stack frame in user code (file:line). */
export function describeLoadError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const [first, ...more] = err.message.split('\n');
  const msg = (first ?? '').trim();
  // jiti's parse errors name the file and line on the message's second line (" /app/x.ts:2:6").
  const inMessage = more.join('\n').match(/(\/[^\s()'"]+:\d+(?::\d+)?)/)?.[1];
  if (inMessage) return `${msg} (${inMessage})`;
  const frame = (err.stack ?? '')
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .find((l) => l.startsWith('at ') && !l.includes('node_modules') && !l.includes('node:') && !l.includes('/dist/'));
  const where = frame ? ` (${frame.replace(/^at /, '')})` : '';
  return `${msg}${msg.includes(where.trim()) ? '' : where}`;
}
