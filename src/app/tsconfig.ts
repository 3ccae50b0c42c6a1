import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The compiler options that change how tunicorn's loader compiles a file (JSX and decorators). */
export interface LoaderCompilerOptions {
  jsx?: string;
  jsxImportSource?: string;
  jsxFactory?: string;
  jsxFragmentFactory?: string;
  experimentalDecorators?: boolean;
}

const KEYS = ['jsx', 'jsxImportSource', 'jsxFactory', 'jsxFragmentFactory', 'experimentalDecorators'] as const;

export interface NearestTsconfig {
  /** The tsconfig.json nearest the file (walking up from its directory), or null when there is none. */
  readonly file: string | null;
  /** Its compiler options that matter to the loader, with those of the configs it `extends` under them. */
  readonly options: LoaderCompilerOptions;
}

/** The options of babel's JSX transform (jiti's `jsx` option). */
export interface JsxOptions {
  runtime: 'classic' | 'automatic';
  importSource?: string;
  pragma?: string;
  pragmaFrag?: string;
}

/**
 * JSX compiled as tsc compiles it for these options: `react` is the classic runtime calling `jsxFactory`
 * (default `React.createElement`) and `jsxFragmentFactory` (default `React.Fragment`); `react-jsx` (and
 * `react-jsxdev`, given the production runtime) the automatic runtime imported from `jsxImportSource`
 * (default `react`). `preserve`, `react-native` or no `jsx` leave JSX to another tool under tsc, but it has to
 * run here: the automatic runtime then, as for `react-jsx`.
 */
export function jsxOptions(o: LoaderCompilerOptions): JsxOptions {
  if (o.jsx?.toLowerCase() === 'react') {
    return { runtime: 'classic', pragma: o.jsxFactory || 'React.createElement', pragmaFrag: o.jsxFragmentFactory || 'React.Fragment' };
  }
  return { runtime: 'automatic', importSource: o.jsxImportSource || 'react' };
}

/** Finds and reads tsconfig.json files, each once. */
export class TsconfigReader {
  readonly #nearest = new Map<string, string | null>();
  readonly #read = new Map<string, LoaderCompilerOptions>();

  /** The tsconfig.json nearest `file` (or a directory), as tsc and editors find a file's project. */
  forFile(file: string, isDirectory = false): NearestTsconfig {
    const tsconfig = this.nearest(isDirectory ? file : path.dirname(file));
    return { file: tsconfig, options: tsconfig ? this.read(tsconfig, new Set()) : {} };
  }

  private nearest(dir: string): string | null {
    const known = this.#nearest.get(dir);
    if (known !== undefined) return known;
    const candidate = path.join(dir, 'tsconfig.json');
    const parent = path.dirname(dir);
    const found = isFile(candidate) ? candidate : parent === dir ? null : this.nearest(parent);
    this.#nearest.set(dir, found);
    return found;
  }

  /** The options of `file`, over those of what it `extends` (a path, or a package's config; several in order). */
  private read(file: string, seen: Set<string>): LoaderCompilerOptions {
    const known = this.#read.get(file);
    if (known) return known;
    if (seen.has(file)) return {};
    seen.add(file);
    let json: { extends?: unknown; compilerOptions?: Record<string, unknown> };
    try {
      json = parseJsonc(readFileSync(file, 'utf8')) as typeof json;
    } catch {
      return {}; // tsc would stop on it; the loader compiles with the defaults instead
    }
    const options: LoaderCompilerOptions = {};
    const bases = typeof json?.extends === 'string' ? [json.extends] : Array.isArray(json?.extends) ? json.extends : [];
    for (const spec of bases) {
      const base = typeof spec === 'string' ? resolveExtends(spec, path.dirname(file)) : null;
      if (base) Object.assign(options, this.read(base, seen));
    }
    const own = json?.compilerOptions ?? {};
    for (const key of KEYS) {
      const value = own[key];
      if (key === 'experimentalDecorators' ? typeof value === 'boolean' : typeof value === 'string') Object.assign(options, { [key]: value });
    }
    this.#read.set(file, options);
    return options;
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function resolveExtends(spec: string, dir: string): string | null {
  if (spec.startsWith('.') || path.isAbsolute(spec)) {
    const p = path.resolve(dir, spec);
    if (isFile(p)) return p;
    return !p.endsWith('.json') && isFile(`${p}.json`) ? `${p}.json` : null;
  }
  const require = createRequire(path.join(dir, 'tsconfig.json'));
  for (const candidate of [spec, `${spec}.json`, `${spec}/tsconfig.json`]) {
    try {
      const p = require.resolve(candidate);
      if (existsSync(p)) return p;
    } catch {
      // the next form
    }
  }
  return null;
}

/** JSON with comments and trailing commas, as tsconfig.json files are written. */
export function parseJsonc(text: string): unknown {
  return JSON.parse(outsideStrings(outsideStrings(text, stripComment), dropTrailingComma));
}

/** Rewrites `text` outside its string literals: `at` returns what to put for the text at `i` and where to go on. */
function outsideStrings(text: string, at: (text: string, i: number) => [string, number]): string {
  let out = '';
  for (let i = 0; i < text.length; ) {
    if (text[i] === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else {
      const [put, next] = at(text, i);
      out += put;
      i = next;
    }
  }
  return out;
}

function stripComment(text: string, i: number): [string, number] {
  if (text.startsWith('//', i)) {
    const end = text.indexOf('\n', i);
    return ['', end === -1 ? text.length : end];
  }
  if (text.startsWith('/*', i)) {
    const end = text.indexOf('*/', i + 2);
    return [' ', end === -1 ? text.length : end + 2];
  }
  return [text[i]!, i + 1];
}

function dropTrailingComma(text: string, i: number): [string, number] {
  return text[i] === ',' && /^\s*[}\]]/.test(text.slice(i + 1)) ? ['', i + 1] : [text[i]!, i + 1];
}
