/**
 * The bundles (scripts/bundle.mjs, run by `npm run build`). The worker's, dist/workers/child.js and
 * gthread-thread.js, hold tunicorn's own modules, so a worker imports one file of ours, and reach only
 * built-in modules and packages. The master's, dist/cli/main.js, holds what the master imports at start and
 * leaves what it imports only when needed to parts of its own beside it. The workers and masters the
 * integration tests start run these files; the native watcher's test there checks that a bundle still finds
 * dist/native/ (src/native.ts), test/unit/cli.test.ts that the bin keeps its first two lines and its version.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const file = (name: string) => fileURLToPath(new URL(`../../dist/workers/${name}`, import.meta.url));
const cli = (name: string) => fileURLToPath(new URL(`../../dist/cli/${name}`, import.meta.url));

/** The module specifiers of a file: static imports and re-exports, and dynamic import() of a literal. */
function imports(code: string): { static: string[]; dynamic: string[] } {
  const out: string[] = [];
  for (const m of code.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s*["']([^"']+)["']/g)) out.push(m[1]!);
  for (const m of code.matchAll(/(?:^|\n)\s*import\s*["']([^"']+)["']/g)) out.push(m[1]!);
  return { static: out, dynamic: [...code.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!) };
}

/** Every module specifier of a file. */
function specifiers(code: string): string[] {
  const { static: s, dynamic } = imports(code);
  return [...s, ...dynamic];
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

describe("the master's bundle", () => {
  /** dist/cli/main.js and the parts it imports statically, what the master loads at start: name -> code. */
  function atStart(): Map<string, string> {
    const seen = new Map<string, string>();
    const visit = (name: string): void => {
      if (seen.has(name)) return;
      const code = readFileSync(cli(name), 'utf8');
      seen.set(name, code);
      for (const s of imports(code).static) if (s.startsWith('./')) visit(s.slice(2));
    };
    visit('main.js');
    return seen;
  }

  it("holds tunicorn's modules and imports only built-ins, packages and its own parts beside it", () => {
    const all = readdirSync(cli('.')).filter((f) => f.endsWith('.js'));
    const parts = all.filter((f) => f.startsWith('main-'));
    assert.ok(parts.length > 0, `no part beside main.js: ${all.join(' ')}`);
    for (const name of ['main.js', ...parts]) {
      for (const s of specifiers(readFileSync(cli(name), 'utf8'))) {
        if (s.startsWith('.') || s.startsWith('/')) assert.ok(/^\.\/main-[\w-]+\.js$/.test(s) && parts.includes(s.slice(2)), `${name} imports ${s}, not a part of the bundle`);
      }
    }
    const start = atStart();
    const code = [...start.values()].join('\n');
    // A class as tsc writes it, or as esbuild does in a module it initializes lazily (`X = class {`).
    for (const p of ['Arbiter', 'ConfigError', 'AppLoadError', 'BindError']) assert.match(code, new RegExp(`\\bclass ${p}\\b|\\b${p} = class\\b`), `main.js should define ${p}`);
  });

  // What the master imports only when it needs it (the app loader, node:http for the health endpoint...) must
  // stay out of what it loads at start: its idle RSS is a target (docs/design.md, "The master's bundle").
  it('leaves what the master imports only when needed to parts it imports then', () => {
    const start = atStart();
    const code = [...start.values()].join('\n');
    const all = readdirSync(cli('.')).filter((f) => f.startsWith('main-') && f.endsWith('.js')).map((f) => readFileSync(cli(f), 'utf8')).join('\n');
    for (const p of ['HealthServer', 'ControlServer', 'loadApp']) {
      const defined = new RegExp(`\\bclass ${p}\\b|\\b${p} = class\\b|\\bfunction ${p}\\b`);
      assert.match(all, defined, `a part beside main.js defines ${p}`);
      assert.ok(!defined.test(code), `${p} is loaded at start`);
    }
    const builtins = [...start.values()].flatMap((c) => imports(c).static).filter((s) => s.startsWith('node:'));
    for (const b of ['node:http', 'node:https', 'node:worker_threads']) assert.ok(!builtins.includes(b), `${b} is imported at start`);
    const lazy = [...start.values()].flatMap((c) => imports(c).dynamic);
    for (const p of ['load', 'health', 'server', 'commands', 'prometheus']) assert.ok(lazy.some((s) => s.startsWith(`./main-${p}-`)), `main.js imports its ${p} part when needed: ${lazy.join(' ')}`);
  });

  it('keeps no part of an earlier build beside it', () => {
    const reached = new Set<string>();
    const visit = (name: string): void => {
      if (reached.has(name)) return;
      reached.add(name);
      for (const s of specifiers(readFileSync(cli(name), 'utf8'))) if (s.startsWith('./main-')) visit(s.slice(2));
    };
    visit('main.js');
    const parts = readdirSync(cli('.')).filter((f) => f.startsWith('main-'));
    assert.deepEqual(parts.filter((f) => !reached.has(f.replace(/\.map$/, ''))), []);
  });
});
