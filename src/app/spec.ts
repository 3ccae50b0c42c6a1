import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { AppLoadError } from './errors.js';

export interface AppSpec {
  /** As given on the command line. */
  readonly raw: string;
  /** A file path (absolute) or a package specifier. */
  readonly target: string;
  readonly isFile: boolean;
  /** The export to serve; null means default, else `app`. */
  readonly exportName: string | null;
  /** `PATH:NAME()`, Gunicorn's application factory call: the export is called, with no arguments, whatever its parameters. */
  readonly call: boolean;
  /** The absolute path when `target` names a directory with no index file in it, else null. */
  readonly directory: string | null;
}

// Sources before what they compile to: app.tsx or app.jsx before an app.js built from it.
export const APP_EXTENSIONS = ['.ts', '.mts', '.cts', '.tsx', '.jsx', '.js', '.mjs', '.cjs'];

/**
 * `PATH[:EXPORT]` or `PACKAGE[:EXPORT]`. A path may leave out its extension (`main:app` finds main.ts), as
 * Gunicorn's `module:variable` does; `PATH:EXPORT()` calls the export, as Gunicorn's `module:create_app()`.
 */
export function parseAppSpec(raw: string, cwd: string): AppSpec {
  if (raw.length > 1 && raw.endsWith(':')) {
    throw new AppLoadError(`app ${raw}: nothing follows the colon; name the export to serve (${raw}app) or drop the colon`);
  }
  let target = raw;
  let exportName: string | null = null;
  let call = false;
  const m = /^(.+):([A-Za-z_$][\w$]*)(\(\s*\))?$/.exec(raw);
  if (m && !/^[A-Za-z]$/.test(m[1]!)) {
    target = m[1]!;
    exportName = m[2]!;
    call = m[3] !== undefined;
  } else {
    // Gunicorn evaluates arguments written in the call (`module:create_app('prod')`); a module path has no "(".
    const withArgs = /^(.+):([A-Za-z_$][\w$]*)\(.*\)$/s.exec(raw);
    if (withArgs && !/^[A-Za-z]$/.test(withArgs[1]!))
      throw new AppLoadError(
        `app ${raw}: tunicorn calls a factory with no arguments (${withArgs[1]}:${withArgs[2]}()); read its settings from the environment (-e KEY=VALUE) instead`,
      );
  }
  const file = findFile(target, cwd);
  if (file) return { raw, target: file, isFile: true, exportName, call, directory: null };
  // A directory that is not a package (no package.json) can only be served by its index file.
  const dir = path.resolve(cwd, target);
  const isDir = existsSync(dir) && statSync(dir).isDirectory() && !existsSync(path.join(dir, 'package.json'));
  return { raw, target, isFile: false, exportName, call, directory: isDir ? dir : null };
}

function findFile(target: string, cwd: string): string | null {
  const base = path.resolve(cwd, target);
  const isFile = (p: string) => existsSync(p) && statSync(p).isFile();
  if (isFile(base)) return base;
  for (const ext of APP_EXTENSIONS) if (isFile(base + ext)) return base + ext;
  if (existsSync(base) && statSync(base).isDirectory())
    for (const ext of APP_EXTENSIONS) if (isFile(path.join(base, 'index' + ext))) return path.join(base, 'index' + ext);
  return null;
}
