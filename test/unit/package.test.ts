/**
 * The package as npm packs it, for a project that installs it from the registry: `prepare` does not run there,
 * so the tarball must carry what the bin needs, and nothing built for the machine that packed it (the native
 * modules are compiled by the package's own `install` script, on the machine that installs it); the examples
 * the README points to, and every source file its maps name; no tests, benchmark or caches.
 * (test/integration/package-install.test.ts installs the tarball in a new project and runs it.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../../src/native.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let packList: string[] | undefined;
/** The files `npm pack` puts in the package (--ignore-scripts: list only; `prepare` would build), asked once. */
function packed(): string[] {
  if (packList) return packList;
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
  return (packList = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
}

describe('the package', () => {
  it('ships the bin and the native sources, no module built for this machine', () => {
    const files = packed();
    for (const f of ['dist/cli/main.js', 'dist/cli/ctl.js', 'dist/index.js', 'dist/index.d.ts', 'scripts/build-native.mjs', 'native/watchdog.c', 'native/peek.c', 'native/master.c', 'native/napi.h']) {
      assert.ok(files.includes(f), `${f} is in the package`);
    }
    assert.deepEqual(files.filter((f) => f.endsWith('.node') || f === 'dist/.prepared'), []);
  });

  it('ships the examples the README points to and the license, and no tests, benchmark or caches', () => {
    const files = packed();
    for (const f of ['LICENSE', 'examples/hello/app.ts', 'examples/hello/tunicorn.config.ts', 'examples/systemd/tunicorn.service', 'examples/systemd/tunicorn.socket', 'examples/kubernetes/deployment.yaml']) {
      assert.ok(files.includes(f), `${f} is in the package`);
    }
    assert.deepEqual(files.filter((f) => /^(test|bench|node_modules)\/|\/\.cache\/|\.tsbuildinfo$/.test(f)), []);
  });

  it('carries every file its source maps name, so that --enable-source-maps points at files that exist', () => {
    const files = new Set(packed());
    const maps = [...files].filter((f) => f.endsWith('.js.map'));
    assert.ok(maps.includes('dist/workers/child.js.map') && maps.includes('dist/cli/main.js.map'), 'the maps are in the package');
    for (const map of maps) {
      const js = map.slice(0, -'.map'.length);
      assert.ok(readFileSync(path.join(ROOT, js), 'utf8').trimEnd().endsWith(`//# sourceMappingURL=${path.basename(map)}`), `${js} names its map`);
      const { sources } = JSON.parse(readFileSync(path.join(ROOT, map), 'utf8')) as { sources: string[] };
      for (const source of sources) {
        const file = path.posix.join(path.posix.dirname(map), source);
        assert.ok(files.has(file), `${map} names ${file}, which the package carries`);
      }
    }
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
