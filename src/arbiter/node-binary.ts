import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

/**
 * The Node.js binary a USR2 master runs: the one named now by the command that started this master, so that a
 * Node.js upgraded on disk runs the new master, as the docs promise. argv[0] as it was given (`process.argv0`)
 * is `node` when the `tunicorn` bin or a shell started us, looked up in PATH again, or a path, followed through
 * its symlinks as they are now: nvm's and n's `node`, a `/usr/local/bin/node` moved to a new release, a package
 * that replaced `/usr/bin/node`. `process.execPath` would not do: it is the binary this process runs, its
 * symlinks resolved when it started, so a USR2 after such an upgrade started the old release again (measured:
 * `node` in PATH a symlink moved from Node 20 to Node 26; the new master ran Node 20).
 *
 * When argv[0] names no executable file now (a PATH without it, a renamed binary), `fallback`.
 */
export function upgradeNodeBinary(
  argv0: string = process.argv0,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
  fallback: string = process.execPath,
): string {
  if (argv0 === '') return fallback;
  if (argv0.includes('/')) {
    const file = path.resolve(cwd, argv0);
    return executable(file) ? file : fallback;
  }
  // As execvp(3): each PATH entry in order; an empty entry is the current directory.
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    const file = path.resolve(cwd, dir === '' ? '.' : dir, argv0);
    if (executable(file)) return file;
  }
  return fallback;
}

function executable(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
