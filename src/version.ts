import { readFileSync } from 'node:fs';

/** The package version, read once from package.json beside dist/. */
export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
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
