import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAppSpec } from '../app/spec.js';
import { tsconfigsRead } from '../app/tsconfig.js';

/** tunicorn's own files (dist/) and the packages it brought along: never part of the app's import graph. */
const OWN_ROOT = fileURLToPath(new URL('../', import.meta.url));
const OWN_PACKAGES = fileURLToPath(new URL('../../node_modules/', import.meta.url));

/**
 * A file --reload watches: the app's own and those of the packages it imports (node_modules), as Gunicorn's
 * reloader watches every module in sys.modules, site-packages included; a developer who edits a dependency
 * to debug it, or upgrades it, gets the new code. Not tunicorn's own.
 */
export function isAppFile(f: string): boolean {
  return f.startsWith('/') && !f.startsWith(OWN_ROOT) && !f.startsWith(OWN_PACKAGES);
}

/**
 * --reload: the app's files loaded in this process. jiti (TypeScript, CommonJS) registers every module it
 * loads in the CommonJS cache; plain ESM imported natively is listed nowhere, and esm-watch.ts reports those
 * as they load.
 */
export function importedFiles(app: string, cwd: string, failed?: unknown): string[] {
  const out = new Set<string>();
  try {
    const spec = parseAppSpec(app, cwd);
    if (spec.isFile) out.add(spec.target);
  } catch {
    /* a package app: its files are in the cache below */
  }
  const cache = createRequire(import.meta.url).cache;
  for (const f of Object.keys(cache)) if (isAppFile(f)) out.add(f);
  // The tsconfig.json files the loader read: they decide how the files compile (JSX, decorators).
  for (const f of tsconfigsRead) if (isAppFile(f)) out.add(f);
  // The file that failed to load (a syntax error is not in any cache): the one the developer will fix.
  if (failed) {
    const text = errorText(failed);
    for (const m of text.matchAll(/(\/[^\s():'"`]+\.(?:[cm]?[jt]sx?|json)):\d+/g))
      if (isAppFile(m[1]!)) out.add(m[1]!);
    for (const f of missingModule(text)) out.add(f);
  }
  return [...out];
}

function errorText(failed: unknown): string {
  return failed instanceof Error ? `${failed.message}\n${(failed as { detail?: string }).detail ?? ''}\n${failed.stack ?? ''}` : String(failed);
}

/**
 * The files a load that failed on a missing module looked for and did not find (among importedFiles' own): the
 * master reloads at once if one exists by the time it watches for them, as when a branch switch deletes a
 * folder and makes it again while the workers that found it gone were starting.
 */
export function missingFiles(failed: unknown): string[] {
  return missingModule(errorText(failed));
}

/** What an import without an extension, or with a JavaScript one that names a TypeScript file, may load. */
const MODULE_EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs', '.json'];

/**
 * An import of a module that does not exist (`Cannot find module './routes/new.ts'`): the files that would
 * satisfy it, for the master to watch, so that writing the module is the fix that reloads, as editing a
 * file is. The importer is named by the CommonJS loader (jiti: `Require stack: - FILE`) or by Node's ES
 * module loader (`imported from FILE`, which names the module by its absolute path already). A package not
 * installed: its folder in the node_modules of the importer's project, which `npm install` makes.
 */
function missingModule(text: string): string[] {
  const m = /Cannot find (?:module|package) '([^']+)'(?: imported from (\S+))?/.exec(text);
  if (!m) return [];
  const spec = m[1]!;
  const from = m[2] ?? /Require stack:\n- (\S+)/.exec(text)?.[1];
  const importer = from?.startsWith('file:') ? fileURLToPath(from) : from;
  let target: string;
  if (spec.startsWith('/')) target = spec;
  else if (spec.startsWith('file:')) target = fileURLToPath(spec);
  else if (!importer || spec.startsWith('node:')) return [];
  else if (spec.startsWith('./') || spec.startsWith('../')) target = path.resolve(path.dirname(importer), spec);
  else {
    const name = spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
    let root = path.dirname(importer);
    while (!existsSync(path.join(root, 'package.json')) && path.dirname(root) !== root) root = path.dirname(root);
    return [path.join(root, 'node_modules', name)];
  }
  if (!isAppFile(target)) return [];
  const ext = path.extname(target);
  const stem = MODULE_EXTENSIONS.includes(ext) ? target.slice(0, -ext.length) : target;
  // The target itself (also a folder, for an import without an extension: its index file), and its other spellings.
  const index = stem === target ? MODULE_EXTENSIONS.map((e) => path.join(target, `index${e}`)) : [];
  return [target, ...MODULE_EXTENSIONS.map((e) => stem + e), ...index];
}

/** How often --reload looks for app files loaded since the app did (a dynamic import in a handler). */
const LATER_POLL_MS = 500;

/**
 * --reload: reports the app files that enter the CommonJS cache after the load, as Gunicorn's reloader reads
 * `sys.modules` again on every pass: a TypeScript or CommonJS module imported on demand (`await
 * import('./routes/admin.ts')` in a handler, a lazy `require()`) is watched from then on, as a native ES
 * module imported later already is (esm-watch.ts). `known`: the files reported so far.
 */
export function watchLaterImports(known: readonly string[], report: (files: string[]) => void): void {
  const seen = new Set(known);
  const cache = createRequire(import.meta.url).cache;
  const timer = setInterval(() => {
    const fresh: string[] = [];
    for (const f of Object.keys(cache)) {
      if (seen.has(f)) continue;
      seen.add(f);
      if (isAppFile(f)) fresh.push(f);
    }
    if (fresh.length > 0) report(fresh);
  }, LATER_POLL_MS);
  timer.unref();
}
