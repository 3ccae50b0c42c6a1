import { readFileSync } from 'node:fs';
import { distUrl } from './native.js';

/** The package version, read once from package.json beside dist/. */
export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(distUrl('../package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/**
 * The runtime this is when it is not Node.js, as its user names it (`Bun 1.4.5`), or null. Bun and Deno run
 * an npm package's bin too (`bun --bun tunicorn`), presenting themselves as a recent Node.js, but lack the
 * internal API with which the master binds a socket it shares with the workers without accepting on it
 * (listeners/handle.ts): the start failed at the bind with an internal error and a stack.
 */
export function otherRuntime(versions: NodeJS.ProcessVersions & { bun?: string; deno?: string } = process.versions): string | null {
  if (versions.bun) return `Bun ${versions.bun}`;
  if (versions.deno) return `Deno ${versions.deno}`;
  return null;
}

/**
 * Why tunicorn cannot run on this platform, as one line, or null. Windows has none of the signals the master is
 * driven by (HUP, TTIN, TTOU, USR1, USR2, WINCH) and no inheritance of a listening socket by a spawned process
 * (which is how the workers share the master's, listeners/handle.ts); Gunicorn does not run there either.
 */
export function unsupportedPlatform(platform: NodeJS.Platform = process.platform): string | null {
  if (platform !== 'win32') return null;
  return 'tunicorn runs on Linux (and other Unix systems), not on Windows: its workers inherit the listening socket and it is driven by POSIX signals; run it in WSL 2 or a Linux container';
}
