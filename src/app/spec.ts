import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

export interface AppSpec {
  /** As given on the command line. */
  readonly raw: string;
  /** A file path (absolute) or a package specifier. */
  readonly target: string;
  readonly isFile: boolean;
  /** The export to serve; null means default, else `app`. */
  readonly exportName: string | null;
}

export const APP_EXTENSIONS = ['.ts', '.mts', '.cts', '.tsx', '.js', '.mjs', '.cjs'];

/**
 * `PATH[:EXPORT]` or `PACKAGE[:EXPORT]`. A path may leave out its extension (`main:app` finds main.ts), as
 * Gunicorn's `module:variable` does.
 */
export function parseAppSpec(raw: string, cwd: string): AppSpec {
  let target = raw;
  let exportName: string | null = null;
  const m = /^(.+):([A-Za-z_$][\w$]*)$/.exec(raw);
  if (m && !/^[A-Za-z]$/.test(m[1]!)) {
    target = m[1]!;
    exportName = m[2]!;
  }
  const file = findFile(target, cwd);
  if (file) return { raw, target: file, isFile: true, exportName };
  return { raw, target, isFile: false, exportName };
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
