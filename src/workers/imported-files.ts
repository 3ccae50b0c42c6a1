import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseAppSpec } from '../app/spec.js';
import { tsconfigsRead } from '../app/tsconfig.js';

/** tunicorn's own files (dist/): never part of the app's import graph. */
const OWN_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** A file of the app's own: not a dependency, not tunicorn itself. */
export function isAppFile(f: string): boolean {
  return f.startsWith('/') && !f.includes('/node_modules/') && !f.startsWith(OWN_ROOT);
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
    const text = failed instanceof Error ? `${failed.message}\n${(failed as { detail?: string }).detail ?? ''}\n${failed.stack ?? ''}` : String(failed);
    for (const m of text.matchAll(/(\/[^\s():'"`]+\.(?:[cm]?[jt]sx?|json)):\d+/g))
      if (isAppFile(m[1]!)) out.add(m[1]!);
  }
  return [...out];
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
