// Bundles tunicorn's entries with the dist/ modules they import, in their place: `npm run build` runs it after
// tsc. Packages (jiti) stay outside, imported as before.
//
// The workers: dist/workers/child.js (a worker process) and gthread-thread.js (a gthread thread), one file
// each. A worker then reads one file of tunicorn's instead of about 60. What that saves is not the reading:
// the ES module loader opens each file as a FileHandle, an EventEmitter, and those boot-time emitters were
// enough to make the property stores in Node's EventEmitter.init megamorphic in every worker, where a bare
// node:http process keeps them polymorphic; every socket, request and response runs that code
// (docs/design.md, "The worker's bundle").
//
// The master: dist/cli/main.js, the `tunicorn` bin, with what it imports at start; what it imports only when
// needed (the app loader for --preload and --check-config, the control socket, the health endpoint, metrics)
// stays out of it, in files of its own beside it (dist/cli/main-NAME-HASH.js, esbuild's code splitting, which
// also puts the code that two of them need in one such file: one copy of each module). Its idle RSS went from
// 50.0 to 48.7 MB (docs/design.md, "The master's bundle"). One file with those parts in it saved nothing
// (50.2 MB): esbuild then wraps every module a dynamic import reaches in a function run on first use, and the
// master keeps the source of all of them. A part is read when first needed; the parts of an earlier build are
// removed, so a master still running from this folder after a build finds none it had not loaded yet.
// tunicornc (dist/cli/ctl.js) imports three modules and exits: left as tsc wrote it.
//
// Both sit one folder below dist/, as tsc's modules of dist/*/ do, so that paths relative to `import.meta.url`
// resolve the same ('../workers/child.js', '../..' for the package's root); those of dist/*.js find dist/
// through src/native.ts's distUrl(), which reads TUNICORN_BUNDLED, defined here.
//
// Optional: without esbuild (a devDependency, also tsx's) the entries stay as tsc wrote them and work the
// same, a little slower and larger; this prints one line and exits 0. A bundle that fails to build fails the
// build.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const WORKERS = path.join(root, 'dist', 'workers');
const CLI = path.join(root, 'dist', 'cli');
const MASTER = path.join(CLI, 'main.js');
/** The master's split-off parts, by the name chunkNames gives them. */
const PART = /^main-[\w-]+-[A-Z0-9]{8}\.js(\.map)?$/;

/** Removes the master's parts that `keep` (file names) does not hold: those of an earlier build. */
function removeParts(keep = new Set()) {
  for (const f of readdirSync(CLI)) if (PART.test(f) && !keep.has(f)) rmSync(path.join(CLI, f));
}

let esbuild;
try {
  esbuild = await import('esbuild');
} catch (err) {
  // tsc wrote main.js anew, which imports none of them.
  removeParts();
  console.log(`bundle: not built (esbuild: ${err.code ?? err.message}); the master and the workers import dist/ module by module`);
  process.exit(0);
}

const common = {
  bundle: true,
  allowOverwrite: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  // Like tsc's files: a map beside each file, read through tsc's own maps, so that with --enable-source-maps
  // stack traces name the lines of src/.
  sourcemap: true,
  // The map names src/ (the package ships it, for tsc's maps too) rather than carrying a copy of it: twice,
  // one per worker bundle, that copy was 1.1 MB of the package.
  sourcesContent: false,
  // src/native.ts and src/version.ts find dist/ one folder up from a bundle.
  define: { TUNICORN_BUNDLED: 'true' },
  logLevel: 'warning',
};

try {
  await esbuild.build({ ...common, entryPoints: ['child.js', 'gthread-thread.js'].map((f) => path.join(WORKERS, f)), outdir: WORKERS });

  // esbuild keeps the first line (#!/bin/sh) and drops the second, a comment to node but the line sh runs to
  // start node with the master's options (src/cli/main.ts): put back, and the map moved down a line.
  const [hashbang, exec] = readFileSync(MASTER, 'utf8').split('\n', 2);
  if (hashbang !== '#!/bin/sh' || !exec.startsWith('//usr/bin/env true; exec node ')) throw new Error(`${MASTER} does not start with the bin's two lines`);
  const r = await esbuild.build({
    ...common,
    entryPoints: [MASTER],
    outdir: CLI,
    splitting: true,
    chunkNames: 'main-[name]-[hash]',
    metafile: true,
  });
  const code = readFileSync(MASTER, 'utf8');
  if (!code.startsWith(`${hashbang}\n`)) throw new Error(`esbuild did not keep ${hashbang} as the first line of ${MASTER}`);
  writeFileSync(MASTER, `${hashbang}\n${exec}\n${code.slice(hashbang.length + 1)}`);
  const map = JSON.parse(readFileSync(`${MASTER}.map`, 'utf8'));
  const lines = map.mappings.split(';');
  lines.splice(1, 0, '');
  map.mappings = lines.join(';');
  writeFileSync(`${MASTER}.map`, JSON.stringify(map));
  removeParts(new Set(Object.keys(r.metafile.outputs).map((f) => path.basename(f))));
} catch (err) {
  console.error(`bundle: ${err.message}`);
  process.exit(1);
}
