/**
 * The package as npm packs it, for a project that installs it from the registry: `prepare` does not run there,
 * so the tarball must carry what the bin needs, and nothing built for the machine that packed it (the native
 * modules are compiled by the package's own `install` script, on the machine that installs it).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../../src/native.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('the package', () => {
  it('ships the bin and the native sources, no module built for this machine', () => {
    // --ignore-scripts: list only; `prepare` would build.
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
    const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const f of ['dist/cli/main.js', 'dist/cli/ctl.js', 'dist/index.js', 'dist/index.d.ts', 'scripts/build-native.mjs', 'native/watchdog.c', 'native/peek.c', 'native/reap.c', 'native/napi.h']) {
      assert.ok(files.includes(f), `${f} is in the package`);
    }
    assert.deepEqual(files.filter((f) => f.endsWith('.node') || f === 'dist/.prepared'), []);
  });

  it('every bin (tunicorn, tunicornc) is built executable, with a #! line', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.deepEqual(Object.keys(pkg.bin).sort(), ['tunicorn', 'tunicornc']);
    for (const file of Object.values(pkg.bin)) {
      const full = path.join(ROOT, file);
      assert.ok(statSync(full).mode & 0o100, `${file} is executable (npm run build)`);
      assert.match(readFileSync(full, 'utf8'), /^#!\/(usr\/)?bin\/(env node|sh)\n/, `${file} starts with #!`);
    }
  });

  it('compiles the native modules when it is installed', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.install, 'node scripts/build-native.mjs');
  });

  it('names the script that builds a missing native module by its path', () => {
    const why = loadNative('no-such-module');
    assert.equal(typeof why, 'string');
    const script = /`node (.+?)` compiles it/.exec(why as string)?.[1];
    assert.ok(script && existsSync(script), `${why}`);
  });
});
