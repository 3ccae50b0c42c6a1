/**
 * The worker's bundles (scripts/bundle-worker.mjs, run by `npm run build`): dist/workers/child.js and
 * gthread-thread.js hold tunicorn's own modules, so a worker imports one file of ours, and reach only
 * built-in modules and packages. The workers the integration tests start run these files; the native
 * watcher's test there checks that a bundle still finds dist/native/ (src/native.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const file = (name: string) => fileURLToPath(new URL(`../../dist/workers/${name}`, import.meta.url));

/** Every module specifier of a file: static imports, re-exports and dynamic import() of a literal. */
function specifiers(code: string): string[] {
  const out: string[] = [];
  for (const m of code.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s*["']([^"']+)["']/g)) out.push(m[1]!);
  for (const m of code.matchAll(/(?:^|\n)\s*import\s*["']([^"']+)["']/g)) out.push(m[1]!);
  for (const m of code.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1]!);
  return out;
}

describe('worker bundle', () => {
  for (const [entry, parts] of [
    ['child.js', ['ConnectionGate', 'WorkerRuntime', 'Serving', 'AsyncWorker', 'GthreadWorker']],
    ['gthread-thread.js', ['ConnectionGate', 'WorkerRuntime', 'OneAtATime']],
  ] as const) {
    it(`${entry} holds tunicorn's modules and imports only built-ins and packages`, () => {
      const code = readFileSync(file(entry), 'utf8');
      // A class as tsc writes it, or as esbuild does in a module it initializes lazily (`X = class {`).
      for (const p of parts) assert.match(code, new RegExp(`\\bclass ${p}\\b|\\b${p} = class\\b`), `${entry} should define ${p}`);
      const specs = specifiers(code);
      assert.ok(specs.includes('node:http') || specs.includes('node:net'), `${entry} imports built-ins: ${specs.join(' ')}`);
      const relative = specs.filter((s) => s.startsWith('.') || s.startsWith('/'));
      assert.deepEqual(relative, [], `${entry} imports files of its own`);
    });
  }

  it('the specifier scan finds relative imports where there are some (the modules tsc wrote)', () => {
    const code = readFileSync(file('serving.js'), 'utf8');
    assert.ok(specifiers(code).some((s) => s.startsWith('./') || s.startsWith('../')));
  });
});
