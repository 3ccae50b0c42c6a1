import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stackText, thrownText, withoutFreshQuery } from '../app/errors.js';
import { ModuleImporter, unwrapDefault } from '../app/import.js';
import { guardLoading, UnhandledAtLoad, type LoadGuard } from '../app/load-guard.js';
import { jsonError } from '../json-error.js';
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
export async function loadConfigFile(file: string, guard?: LoadGuard): Promise<Record<string, unknown>> {
  if (!existsSync(file)) throw new ConfigError(`config file not found: ${file}`);
  if (statSync(file).isDirectory()) throw new ConfigError(`config file ${file} is a directory; name the file (tunicorn.config.ts, say)`);
  const ext = path.extname(file);
  if (!CONFIG_EXTENSIONS.includes(ext)) {
    const gunicorn = ext === '.py' ? ': a Gunicorn config in Python does not load here; write its settings as an object in a tunicorn.config.ts (docs/settings.md names each one)' : '';
    throw new ConfigError(`config file ${file}: tunicorn reads TypeScript, JavaScript or JSON (${CONFIG_EXTENSIONS.join(' ')})${gunicorn}`);
  }
  // JSON is read here, once: a syntax error is then said with its line and column.
  if (ext === '.json') return settingsObject(file, readJson(file));
  let mod: Record<string, unknown>;
  try {
    // Fresh: HUP must see the file as it is now, not as this process first imported it.
    const importing = new ModuleImporter(path.dirname(file), { fresh: true }).import(file);
    mod = guard ? await guardLoading(`config file ${file}`, importing, guard) : await importing;
  } catch (err) {
    if (err instanceof UnhandledAtLoad) throw new ConfigError(err.message, { cause: err });
    const description = describeLoadError(err);
    const where = errorLocation(err, file);
    const hint = tunicornImportHint(err, 'or export a plain object without defineConfig') || esmOnlyHint(err) || esmSyntaxHint(err, file);
    throw new ConfigError(`config file ${file} failed to load: ${description}${where && !description.includes(where) ? ` (${where})` : ''}${hint}`, { cause: err });
  }
  return settingsObject(file, unwrapDefault(mod.default ?? mod));
}

/** The config file's value, which must be an object of settings. */
function settingsObject(file: string, value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(
      `config file ${file} must export (default) an object of settings, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}`,
    );
  }
  return value as Record<string, unknown>;
}

/** A JSON config file's value; a syntax error is a ConfigError with the file, line and column. */
function readJson(file: string): unknown {
  // A byte order mark (what some Windows editors save) is no JSON, but no mistake either: skipped.
  const text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  try {
    return JSON.parse(text);
  } catch (err) {
    const { reason, line, column } = jsonError(err, text);
    throw new ConfigError(`config file ${file} failed to load: ${reason} (${file}${line === null ? '' : `:${line}:${column}`})`);
  }
}

/**
 * An import of `tunicorn` (defineConfig, clientAddress...) that failed because the package is not installed where
 * the importing file is (tunicorn installed globally only): what to do, for the end of the error's line; else ''.
 */
export function tunicornImportHint(err: unknown, orElse?: string): string {
  const message = err instanceof Error ? err.message : thrownText(err);
  if (!/^Cannot find (?:module|package) 'tunicorn(?:\/[^']*)?'/.test(message)) return '';
  return `; tunicorn is not installed in this project: install it there too (npm install tunicorn)${orElse ? `, ${orElse}` : ''}`;
}

/**
 * A require() (a CommonJS app's, or config file's) of a package whose "exports" offer `import` and no
 * `require`, as ES-module-only packages do: Node says only `No "exports" main defined in .../package.json`,
 * which names neither the cause nor the way out. What to do, for the end of the error's line; else ''.
 */
export function esmOnlyHint(err: unknown): string {
  if (!(err instanceof Error) || (err as NodeJS.ErrnoException).code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') return '';
  const file = /^No "exports" main defined in (.+package\.json)$/.exec(err.message)?.[1];
  if (!file) return '';
  let pkg: { name?: unknown; exports?: unknown };
  try {
    pkg = JSON.parse(readFileSync(file, 'utf8')) as typeof pkg;
  } catch {
    return '';
  }
  // `exports` is the main entry's conditions, or subpaths ('.', './x') each with their own.
  const exp = pkg.exports;
  const main = exp && typeof exp === 'object' && Object.keys(exp).some((k) => k.startsWith('.')) ? (exp as Record<string, unknown>)['.'] : exp;
  const conditions = JSON.stringify(main ?? null);
  if (!/"import":/.test(conditions) || /"require":/.test(conditions)) return '';
  const name = typeof pkg.name === 'string' ? pkg.name : path.basename(path.dirname(file));
  return `; ${name} is an ES module only package (its "exports" have no entry for require()): load it with \`await import('${name}')\`, or make the file that requires it an ES module (.mjs, or "type": "module" in its project's package.json)`;
}

/**
 * ES module syntax (`import`, `export`) in a .js file that Node loads as CommonJS: the package.json nearest it
 * says "type": "commonjs", as npm 11's `npm init -y` writes it (or has no "type", on a Node release that does
 * not detect module syntax; 20.20 does). Node's SyntaxError names neither the cause nor the way out; its
 * warning that does is printed apart, outside the log, once per worker. The way out, for the end of the
 * error's line; else ''. `file`: the file that was imported, for an error whose stack does not name one.
 */
export function esmSyntaxHint(err: unknown, file?: string): string {
  if (!(err instanceof SyntaxError) || !/^(Cannot use import statement outside a module|Unexpected token 'export')/.test(err.message)) return '';
  // A CommonJS syntax error's stack starts with the file and line, above the message.
  const head = /^((?:\/|file:)\S+):\d+$/.exec(stackText(err).split('\n')[0] ?? '')?.[1] ?? file;
  const js = head?.startsWith('file:') ? fileURLToPath(head) : head;
  if (!js?.endsWith('.js')) return '';
  let type: unknown;
  let pkg: string | null = null;
  for (let dir = path.dirname(path.resolve(js)); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) {
      pkg = path.join(dir, 'package.json');
      try {
        type = (JSON.parse(readFileSync(pkg, 'utf8')) as { type?: unknown }).type;
      } catch {
        return '';
      }
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  const says = pkg === null ? 'no package.json above it says "type": "module"' : `${pkg} has ${type === undefined ? 'no "type"' : `"type": ${JSON.stringify(type)}`}`;
  return `; ${path.basename(js)} is an ES module in a .js file, which Node runs as CommonJS (${says}): rename it to .mjs, or set "type": "module" in ${pkg ?? 'a package.json'}`;
}

/** One line for a load failure: the message, and the first stack frame in user code (file:line). */
export function describeLoadError(err: unknown): string {
  if (!(err instanceof Error)) return thrownText(err);
  const [first, ...more] = withoutFreshQuery(err.message).split('\n');
  // `require is not defined in ES module scope`: Node says why on the next line (a .js file under a package.json
  // with "type": "module") and how to run the file as CommonJS; without it the first line reads as a puzzle.
  const why = more.find((l) => l.startsWith('This file is being treated as an ES module'));
  const msg = `${(first ?? '').trim()}${why ? `. ${why.trim()}` : ''}`;
  // jiti's parse errors name the file and line on the message's second line (" /app/x.ts:2:6").
  const inMessage = more.join('\n').match(/(\/[^\s()'"]+:\d+(?::\d+)?)/)?.[1];
  if (inMessage) return `${msg} (${inMessage})`;
  const frame = stackText(err)
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    // A frame with a file: `at JSON.parse (<anonymous>)` (a .json file that does not parse) names no place.
    .find((l) => l.startsWith('at ') && !l.includes('node_modules') && !l.includes('node:') && !l.includes('/dist/') && /\/[^\s()]+:\d+/.test(l));
  const where = frame ? ` (${withinSource(frame.replace(/^at /, ''))})` : '';
  return `${msg}${msg.includes(where.trim()) ? '' : where}`;
}

/**
 * A frame's `file:line:column` as the source has it. A TypeScript file runs as jiti compiled it, which keeps
 * its lines but not its columns (line 1 starts with jiti's own code: `app.ts:1:219` for a 40-character line):
 * a column past the end of its line in the file is left out.
 */
function withinSource(frame: string): string {
  const m = /^(.*?)((?:file:\/\/)?\/[^\s()]+):(\d+):(\d+)(\)?)$/.exec(frame);
  if (!m) return frame;
  const [, before, file, line, column, after] = m;
  try {
    const text = readFileSync(file!.startsWith('file:') ? fileURLToPath(file!) : file!, 'utf8').split('\n')[Number(line) - 1];
    if (text !== undefined && Number(column) <= text.length + 1) return frame;
    return `${before}${file}:${line}${after}`;
  } catch {
    return frame;
  }
}

/**
 * Where a load failure points when its message does not say: `file:line[:column]`, or ''. jiti's parse errors
 * give it on the message's second line; CommonJS puts it as the stack's first line, above the message. Node 20
 * keeps the line of a syntax error in a native ES module out of both (its uncaught-error printer reads it from
 * internal state), so for `file` that failed with a SyntaxError not located otherwise, `node --check` is
 * asked, which prints it. Only on this failure path; a syntax error in a module it imports is not located so.
 */
export function errorLocation(err: unknown, file?: string): string {
  const message = err instanceof Error ? err.message : '';
  const located = /^\s*((?:\/|file:)\S+:\d+(?::\d+)?)\s*$/m.exec(message.split('\n').slice(1).join('\n'));
  if (located) return located[1]!;
  if (!(err instanceof SyntaxError)) return '';
  const head = (err.stack ?? '').split('\n')[0] ?? '';
  if (/^(\/|file:).*:\d+$/.test(head)) return head;
  if (!file || (err.stack ?? '').includes(file)) return '';
  try {
    execFileSync(process.execPath, ['--check', file], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    return '';
  } catch (e) {
    const first = String((e as { stderr?: Buffer }).stderr ?? '').split('\n')[0] ?? '';
    return /:\d+$/.test(first) ? first : '';
  }
}
