/** The tsconfig.json options the loader compiles a file with (JSX, decorators), found and read as tsc does. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { jsxOptions, parseJsonc, TsconfigReader } from '../../src/app/tsconfig.js';

describe('tsconfig.json for the loader', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'tunicorn-tsconfig-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const write = (rel: string, text: string) => {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), text);
  };

  it('reads JSON with comments and trailing commas, leaving strings alone', () => {
    const text = '{\n  // a comment\n  "a": "http://x/*y*/", /* another */\n  "b": [1, 2,],\n  "c": "a,}",\n}\n';
    assert.deepEqual(parseJsonc(text), { a: 'http://x/*y*/', b: [1, 2], c: 'a,}' });
  });

  it('finds the nearest tsconfig.json, with what it extends (a path, a package, several) under its own options', () => {
    write('node_modules/@tsconfig/base/tsconfig.json', '{ "compilerOptions": { "experimentalDecorators": true, "jsx": "react" } }');
    write('shared/jsx.json', '{ "compilerOptions": { "jsxImportSource": "preact", "jsxFactory": "h" } }');
    write('app/tsconfig.json', '{ "extends": ["@tsconfig/base/tsconfig.json", "../shared/jsx"], "compilerOptions": { "jsx": "react-jsx", } }');
    write('app/src/deep/page.tsx', '');
    const reader = new TsconfigReader();
    const found = reader.forFile(path.join(root, 'app/src/deep/page.tsx'));
    assert.equal(found.file, path.join(root, 'app/tsconfig.json'));
    assert.deepEqual(found.options, { experimentalDecorators: true, jsx: 'react-jsx', jsxImportSource: 'preact', jsxFactory: 'h' });
    assert.deepEqual(reader.forFile(path.join(root, 'elsewhere.ts')), { file: null, options: {} });
  });

  it('JSX as tsc compiles it', () => {
    assert.deepEqual(jsxOptions({ jsx: 'react-jsx', jsxImportSource: 'hono/jsx' }), { runtime: 'automatic', importSource: 'hono/jsx' });
    assert.deepEqual(jsxOptions({ jsx: 'react-jsxdev' }), { runtime: 'automatic', importSource: 'react' });
    assert.deepEqual(jsxOptions({}), { runtime: 'automatic', importSource: 'react' });
    assert.deepEqual(jsxOptions({ jsx: 'React' }), { runtime: 'classic', pragma: 'React.createElement', pragmaFrag: 'React.Fragment' });
    assert.deepEqual(jsxOptions({ jsx: 'react', jsxFactory: 'h', jsxFragmentFactory: 'Fragment' }), { runtime: 'classic', pragma: 'h', pragmaFrag: 'Fragment' });
  });
});
