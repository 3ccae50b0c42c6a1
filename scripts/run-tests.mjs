// Runs the test files with node:test's run(), the slowest first: `node --import tsx scripts/run-tests.mjs
// [--concurrency N] [files]` (npm test and scripts/test-node.mjs; no files: every one of test/unit and
// test/integration). `node --test` sorts the files it is given by name: zero-downtime.test.ts, among the
// longest, started last of test/integration, and once the short unit files were done it ran alone. run() keeps
// the order given, so the longest files start first and the short ones fill the lanes at the end. The children
// get this process's options (--import tsx).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

/**
 * The longest files, longest first (their summed test durations in one `npm test`, 2026-12-06, less what the
 * same day's changes to hardening, app-load and operations saved). A file not named here runs after them, by
 * name; a wrong order costs only time.
 */
const SLOWEST = [
  'integration/core',
  'integration/zero-downtime',
  'integration/hardening',
  'integration/tls',
  'integration/app-load',
  'integration/worker-classes',
  'integration/apps',
  'integration/cut-responses',
  'integration/control',
  'integration/child-processes',
  'integration/framework-lifecycle',
  'integration/listeners',
  'integration/deploy',
  'integration/reload',
  'integration/memory-limit',
  'integration/metrics',
  'integration/access-log',
  'integration/operations',
  'integration/signal-storm',
].map((f) => `test/${f}.test.ts`);

const args = process.argv.slice(2);
// Two files at a time on CI's two cores. Three was tried once (2026-12-06, a machine loaded by other runs as
// well): two tests that bound a time failed (tls.test.ts: an HTTP/2 close at header_timeout in 3.6 s, not under
// 3; worker-classes.test.ts: a gthread request past its 10 s).
let concurrency = 2;
const at = args.indexOf('--concurrency');
if (at >= 0) {
  concurrency = Number(args[at + 1]);
  args.splice(at, 2);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    console.error('run-tests: --concurrency takes a whole number of test files at a time, as 2');
    process.exit(2);
  }
}

const all = args.length > 0 ? args : ['unit', 'integration'].flatMap((d) => readdirSync(path.join(root, 'test', d)).filter((f) => f.endsWith('.test.ts')).sort().map((f) => `test/${d}/${f}`));
const rank = (f) => {
  const i = SLOWEST.indexOf(path.relative(root, path.resolve(f)));
  return i < 0 ? SLOWEST.length : i;
};
const files = all.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map((x) => path.resolve(x.f));

const stream = run({ files, concurrency });
stream.on('test:fail', () => (process.exitCode = 1));
stream.compose(spec).pipe(process.stdout);
