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

// NODE_EXTRA_CA_CERTS (these machines set it) makes every Node process read the whole CA bundle as it starts:
// 90 ms a process on this machine, where `node -e 0` takes 40 ms without it, and the tests start thousands (each
// server's master and workers, each file's runner). They reach nothing beyond loopback but npm's registry, in
// package-install.test.ts, which sets it again from TUNICORN_TEST_EXTRA_CA_CERTS for npm.
if (process.env.NODE_EXTRA_CA_CERTS) {
  process.env.TUNICORN_TEST_EXTRA_CA_CERTS = process.env.NODE_EXTRA_CA_CERTS;
  delete process.env.NODE_EXTRA_CA_CERTS;
}

const stream = run({ files, concurrency });
stream.on('test:fail', () => (process.exitCode = 1));
stream.compose(spec).pipe(process.stdout);

// The files' own durations (the sum of their top-level tests), longest first, at the end: what SLOWEST above
// is kept from, and where to look when the run grows.
const perFile = new Map();
const count = (event) => {
  const { file, nesting, details } = event;
  if (file && nesting === 0 && details?.duration_ms) perFile.set(file, (perFile.get(file) ?? 0) + details.duration_ms);
};
stream.on('test:pass', count);
stream.on('test:fail', count);
process.on('exit', () => {
  const top = [...perFile].sort((a, b) => b[1] - a[1]).slice(0, 12);
  if (top.length < 2) return;
  const line = top.map(([f, ms]) => `${path.relative(path.join(root, 'test'), f).replace(/\.test\.ts$/, '')} ${Math.round(ms / 1000)} s`).join(', ');
  process.stdout.write(`\nlongest files (their tests' summed durations): ${line}\n`);
});
