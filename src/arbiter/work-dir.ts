import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * The directory tunicorn was started in, as the shell named it: `$PWD` when it is that directory, else the
 * kernel's answer. The kernel's (`process.cwd()`) has every symlink resolved: started from `cd /srv/current`,
 * it is `/srv/releases/1` for good, and a deploy that points `current` at the next release would never be
 * followed. Gunicorn's default `chdir` comes from `$PWD` for this reason (its util.getcwd).
 */
export function startDir(env: NodeJS.ProcessEnv = process.env, real: string = process.cwd()): string {
  const pwd = env.PWD;
  if (!pwd || !path.isAbsolute(pwd) || pwd === real) return real;
  try {
    const a = statSync(pwd);
    const b = statSync(real);
    return a.ino === b.ino && a.dev === b.dev ? pwd : real;
  } catch {
    return real;
  }
}

/**
 * The directory each worker starts in: `chdir` (from the start directory) or the start directory, by the path
 * as given, symlinks unresolved. A worker is spawned there, so it enters the directory that path names when it
 * starts: the new release after a symlink switch, and never a release deleted since the master started
 * (whose directory the master may still be in).
 */
export function workDir(start: string, chdir: string | null): string {
  return chdir ? path.resolve(start, chdir) : start;
}

/** Why a worker could not be spawned in `dir`, when that is the reason (ENOENT from spawn says only "spawn node"). */
export function workDirProblem(dir: string): string | null {
  if (existsSync(dir)) return null;
  return `its working directory ${dir} does not exist (deleted, or a symlink to a release that was deleted); put it back or restart from an existing one`;
}

/**
 * The program a USR2 successor runs. Node resolves a relative `process.argv[1]` (`./node_modules/.bin/tunicorn`,
 * or the path npx and `npm start` find from inside `current`) through the kernel's directory, the release's real
 * path: the successor would run the old release's tunicorn again, or nothing once that release is deleted. A
 * program under the real start directory is named from the start directory instead (`real`: the kernel's
 * name for it at the start), so it is the one the symlink names at the upgrade.
 */
export function upgradeProgram(main: string, start: string, real: string): string {
  if (real === start) return main;
  const rel = path.relative(real, main);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? path.join(start, rel) : main;
}
