import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Defined (true) by esbuild in the worker's bundles, dist/workers/child.js and gthread-thread.js
 * (scripts/bundle-worker.mjs): there `import.meta.url` is the bundle's, one folder below this module's own
 * place in dist/.
 */
declare const TUNICORN_BUNDLED: boolean | undefined;
/** dist/, relative to `import.meta.url`. */
const DIST = typeof TUNICORN_BUNDLED === 'boolean' ? '../' : './';

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
    // The script itself, by its path: in an installed package there is no `npm run build` (no src/, no tsc).
    const script = fileURLToPath(new URL(`${DIST}../scripts/build-native.mjs`, import.meta.url));
    return `dist/native/${name}.node ${why}; \`node ${script}\` compiles it for this machine where a C compiler (cc) is installed (npm install runs it)`;
  }
}
