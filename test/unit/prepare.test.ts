/**
 * scripts/prepare.mjs, npm's `prepare`: builds unless the last build it made is newer than every source, so
 * that npx, which runs `prepare` again when it installs this folder for its bin, does not build twice. Run on
 * a copy of the script in a throwaway package whose `build` only counts its runs. It prints nothing on stdout,
 * where npm's JSON goes when it runs `prepare` for `npm pack --json`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { scratchDir } from '../helpers/scratch.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('prepare', () => {
  const dir = scratchDir('tunicorn-prepare-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'scripts'));
  mkdirSync(path.join(dir, 'src'));
  copyFileSync(path.join(ROOT, 'scripts', 'prepare.mjs'), path.join(dir, 'scripts', 'prepare.mjs'));
  writeFileSync(path.join(dir, 'src', 'a.ts'), 'export const a = 1;\n');
  // The build writes dist/cli/main.js and counts its runs in builds.txt.
  const build =
    "const fs = require('node:fs'); fs.mkdirSync('dist/cli', { recursive: true }); fs.writeFileSync('dist/cli/main.js', ''); " +
    "fs.appendFileSync('builds.txt', 'x');";
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'p', private: true, scripts: { build: `node -e "${build}"` } }));
  /** What the script says: on stderr, since `npm pack --json` and `npm publish --json` print their JSON on stdout. */
  const prepare = () => {
    const r = spawnSync(process.execPath, ['scripts/prepare.mjs'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '', 'nothing on stdout');
    return r.stderr;
  };
  const builds = () => readFileSync(path.join(dir, 'builds.txt'), 'utf8').length;

  it('builds when nothing was built, then not again while the sources are unchanged', () => {
    prepare();
    assert.equal(builds(), 1);
    assert.match(prepare(), /dist\/ is up to date/);
    assert.equal(builds(), 1);
  });

  it('builds again when a source is newer than the last build, or the build output is gone', () => {
    const later = new Date(Date.now() + 5000);
    utimesSync(path.join(dir, 'src', 'a.ts'), later, later);
    prepare();
    assert.equal(builds(), 2);
    utimesSync(path.join(dir, 'src', 'a.ts'), new Date(0), new Date(0));
    assert.match(prepare(), /up to date/);
    rmSync(path.join(dir, 'dist', 'cli', 'main.js'));
    prepare();
    assert.equal(builds(), 3);
  });
});
