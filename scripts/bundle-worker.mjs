// Bundles each worker entry, dist/workers/child.js (a worker process) and gthread-thread.js (a gthread
// thread), with the dist/ modules it imports, into one file in its place: `npm run build` runs it after tsc.
// A worker then reads one file of tunicorn's instead of about 60. What that saves is not the reading: the ES
// module loader opens each file as a FileHandle, an EventEmitter, and those boot-time emitters were enough to
// make the property stores in Node's EventEmitter.init megamorphic in every worker, where a bare node:http
// process keeps them polymorphic; every socket, request and response runs that code (docs/design.md, "The
// worker's bundle"). Packages (jiti) stay outside, imported as before.
// Optional: without esbuild (a devDependency, also tsx's) the entries stay as tsc wrote them and work the
// same, a little slower; this prints one line and exits 0. A bundle that fails to build fails the build.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const OUT = path.join(root, 'dist', 'workers');
const ENTRIES = ['child.js', 'gthread-thread.js'].map((f) => path.join(OUT, f));

let esbuild;
try {
  esbuild = await import('esbuild');
} catch (err) {
  console.log(`worker bundle: not built (esbuild: ${err.code ?? err.message}); workers import dist/ module by module`);
  process.exit(0);
}

try {
  await esbuild.build({
    entryPoints: ENTRIES,
    outdir: OUT,
    allowOverwrite: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    // Like tsc's files: a map beside each bundle, read through tsc's own maps, so that with
    // --enable-source-maps a worker's stack traces name the lines of src/.
    sourcemap: true,
    // The map names src/ (the package ships it, for tsc's maps too) rather than carrying a copy of it: twice,
    // one per bundle, that copy was 1.1 MB of the package.
    sourcesContent: false,
    // src/native.ts finds dist/native/ one folder up from a bundle.
    define: { TUNICORN_BUNDLED: 'true' },
    logLevel: 'warning',
  });
} catch (err) {
  console.error(`worker bundle: ${err.message}`);
  process.exit(1);
}
