import { createRequire } from 'node:module';

/**
 * A module of native/ (NAME.c) as `npm run build` compiled it, dist/native/NAME.node, or why there is none.
 * Each is optional: where no C compiler was found, or with `TUNICORN_NATIVE=0`, tunicorn does the same work in
 * JavaScript (a worker thread watches for stalls; the connection gate reads first bytes itself).
 */
export function loadNative<T>(name: string): T | string {
  if (process.env.TUNICORN_NATIVE === '0') return 'TUNICORN_NATIVE=0';
  try {
    return createRequire(import.meta.url)(`./native/${name}.node`) as T;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' ? 'not built' : (err as Error).message;
    return `dist/native/${name}.node ${why}; \`npm run build\` compiles it where a C compiler (cc) is installed`;
  }
}
