import { readFileSync, statSync } from 'node:fs';
import { jsonError } from '../json-error.js';
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
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new TsconfigError(`cannot read ${file}: ${(err as Error).message}`);
    }
    tsconfigsRead.add(file);
    // Comments go, line breaks stay: a JSON error's position is on the file's own line.
    const plain = plainJson(text);
    try {
      json = JSON.parse(plain) as typeof json;
    } catch (err) {
      // As tsc stops on it: compiled with the defaults instead, a file would run with other semantics than
      // the project's (its JSX and decorators), and the failure would point elsewhere.
      const { reason, line } = jsonError(err, plain);
      throw new TsconfigError(`${file} is not valid JSON: ${reason}${line === null ? '' : ` (line ${line})`}; fix it, as tsc would refuse it too`);
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

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** A tsconfig.json that cannot be used: the load fails with this line. */
export class TsconfigError extends Error {
  override name = 'TsconfigError';
}

/** Every tsconfig.json this process has read (--reload watches them: they decide how files compile). */
export const tsconfigsRead = new Set<string>();

/**
 * What `extends` names, as tsc finds it: a path (with or without `.json`), or a package's config: a file in
 * it (`pkg/base.json`), the file its package.json names in `tsconfig`, or its `tsconfig.json`. Never the
 * package's `main`, which is code.
 */
function resolveExtends(spec: string, dir: string): string | null {
  const file = (p: string) => (isFile(p) ? p : !p.endsWith('.json') && isFile(`${p}.json`) ? `${p}.json` : null);
  if (spec.startsWith('.') || path.isAbsolute(spec)) return file(path.resolve(dir, spec));
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
  const sub = parts.slice(spec.startsWith('@') ? 2 : 1).join('/');
  for (let d = dir; ; d = path.dirname(d)) {
    const pkg = path.join(d, 'node_modules', name);
    if (isDirectory(pkg)) {
      if (sub) return file(path.join(pkg, sub));
      let named: unknown;
      try {
        named = (JSON.parse(readFileSync(path.join(pkg, 'package.json'), 'utf8')) as { tsconfig?: unknown }).tsconfig;
      } catch {
        named = undefined;
      }
      return (typeof named === 'string' ? file(path.join(pkg, named)) : null) ?? file(path.join(pkg, 'tsconfig.json'));
    }
    if (path.dirname(d) === d) return null;
  }
}

/** JSON with comments and trailing commas, as tsconfig.json files are written. */
export function parseJsonc(text: string): unknown {
  return JSON.parse(plainJson(text));
}

/** JSON with comments and trailing commas as plain JSON, on the same lines. */
function plainJson(text: string): string {
  // A byte-order mark, as some editors on Windows write one: tsc reads past it.
  return outsideStrings(outsideStrings(text.replace(/^\uFEFF/, ''), stripComment), dropTrailingComma);
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
    const to = end === -1 ? text.length : end + 2;
    // Its line breaks stay, so a syntax error after it is reported on the right line.
    return [' ' + '\n'.repeat(text.slice(i, to).split('\n').length - 1), to];
  }
  return [text[i]!, i + 1];
}

function dropTrailingComma(text: string, i: number): [string, number] {
  return text[i] === ',' && /^\s*[}\]]/.test(text.slice(i + 1)) ? ['', i + 1] : [text[i]!, i + 1];
}
