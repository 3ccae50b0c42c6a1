import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Defined (true) by esbuild in the bundles, the workers' dist/workers/child.js and gthread-thread.js and the
 * master's dist/cli/main.js (scripts/bundle.mjs): there `import.meta.url` is the bundle's, one folder below this
 * module's own place in dist/.
 */
declare const TUNICORN_BUNDLED: boolean | undefined;
/** dist/, relative to `import.meta.url`. */
const DIST = typeof TUNICORN_BUNDLED === 'boolean' ? '../' : './';

/**
 * A path relative to dist/ as a URL, bundled or not. For the modules of dist/ itself (this one, version.ts):
 * in a bundle they share its `import.meta.url`.
 */
export const distUrl = (relative: string): URL => new URL(DIST + relative, import.meta.url);

/**
 * Who runs the build script: npm does as it installs; pnpm 10, Yarn 4 and Bun run no dependency's install
 * script until the project allows it (the README's Install section says how with each).
 */
const RUN_BY = '(npm install runs it; pnpm, Yarn and Bun once the project allows tunicorn to build: README, Install)';

/** The script that builds the modules, by its path: an installed package has no `npm run build` (no tsc there). */
const buildScript = (): string => fileURLToPath(distUrl('../scripts/build-native.mjs'));

/**
 * A module of native/ (NAME.c) as `npm run build` compiled it, dist/native/NAME.node, or why there is none.
 * Each is optional: where no C compiler was found, or with `TUNICORN_NATIVE=0`, tunicorn does the same work in
 * JavaScript (a worker thread watches for stalls; the connection gate reads first bytes itself).
 */
export function loadNative<T>(name: string): T | string {
  if (process.env.TUNICORN_NATIVE === '0') return 'TUNICORN_NATIVE=0';
  try {
    return createRequire(import.meta.url)(`${DIST}native/${name}.node`) as T;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' ? 'not built' : (err as Error).message;
    return `dist/native/${name}.node ${why}; \`node ${buildScript()}\` compiles it for this machine where a C compiler (cc) is installed ${RUN_BY}`;
  }
}

/** The modules every worker loads, and what it does instead without each. (reap: the master's, see src/arbiter/orphans.ts.) */
const WORKER_MODULES = {
  watchdog: 'watch for a stalled event loop with a worker thread (about 9 MB more each)',
  peek: "read a connection's first bytes through JavaScript",
};

/**
 * The master's line at start when a module the workers use does not load, saying what they do instead, or
 * null when both load. Said once by the master: each worker says it only in its debug log, and an install
 * without a C compiler (or with `--ignore-scripts`) is otherwise silent about it: npm shows no output of an
 * install script that succeeds.
 */
export function nativeFallbackLine(): string | null {
  const off = process.env.TUNICORN_NATIVE === '0';
  // Looked for, not loaded: the master does not use them, and loading both cost it about 0.3 MB of RSS (its
  // idle target is 50 MB). One that is there but fails to load in a worker (N-API modules load on every Node
  // release; another CPU architecture would not) is said in that worker's debug log.
  const missing = Object.entries(WORKER_MODULES).flatMap(([name, instead]) =>
    off || !existsSync(fileURLToPath(distUrl(`native/${name}.node`))) ? [{ name, instead, why: off ? null : 'not built' }] : [],
  );
  if (missing.length === 0) return null;
  const instead = `workers ${missing.map((m) => m.instead).join(' and ')}; they serve the same`;
  if (missing[0]!.why === null) return `Native modules off (TUNICORN_NATIVE=0): ${instead}`;
  const which = missing.map((m) => `dist/native/${m.name}.node ${m.why}`).join(', ');
  return `Native modules not loaded (${which}): ${instead}. \`node ${buildScript()}\` builds them where a C compiler (cc) is installed ${RUN_BY}`;
}
