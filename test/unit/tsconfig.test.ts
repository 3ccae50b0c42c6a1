/** The tsconfig.json options the loader compiles a file with (JSX, decorators), found and read as tsc does. */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { jsxOptions, parseJsonc, TsconfigReader } from '../../src/app/tsconfig.js';
import { scratchDir } from '../helpers/scratch.js';

describe('tsconfig.json for the loader', () => {
  const root = scratchDir('tunicorn-tsconfig-');
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

  it('extends a package as tsc does: a file in it, its package.json "tsconfig", its tsconfig.json, never its main', () => {
    write('node_modules/withmain/package.json', '{ "main": "index.js" }');
    write('node_modules/withmain/index.js', 'module.exports = {};');
    write('node_modules/withmain/tsconfig.json', '{ "compilerOptions": { "experimentalDecorators": true } }');
    write('node_modules/named/package.json', '{ "tsconfig": "conf/base.json", "main": "index.js" }');
    write('node_modules/named/conf/base.json', '{ "compilerOptions": { "jsx": "react" } }');
    write('node_modules/@scope/cfg/package.json', '{}');
    write('node_modules/@scope/cfg/strict.json', '{ "compilerOptions": { "jsxImportSource": "hono/jsx" } }');
    write('pkgs/tsconfig.json', '{ "extends": ["withmain", "named", "@scope/cfg/strict"] }');
    assert.deepEqual(new TsconfigReader().forFile(path.join(root, 'pkgs/a.ts')).options, { experimentalDecorators: true, jsx: 'react', jsxImportSource: 'hono/jsx' });
  });

  it('reads past a byte-order mark, and refuses JSON it cannot read, naming the file and the line', () => {
    assert.deepEqual(parseJsonc('\uFEFF{ "a": 1 }'), { a: 1 });
    write('broken/tsconfig.json', '{\n  /* a comment\n  on two lines */\n  "compilerOptions": { "jsx": "react" }\n  "x": 1\n}\n');
    assert.throws(
      () => new TsconfigReader().forFile(path.join(root, 'broken/a.ts')),
      /^TsconfigError: .*broken\/tsconfig\.json is not valid JSON: Expected ',' or '}' after property value \(line 5\); fix it, as tsc would refuse it too$/,
    );
  });

  it('JSX as tsc compiles it', () => {
    assert.deepEqual(jsxOptions({ jsx: 'react-jsx', jsxImportSource: 'hono/jsx' }), { runtime: 'automatic', importSource: 'hono/jsx' });
    assert.deepEqual(jsxOptions({ jsx: 'react-jsxdev' }), { runtime: 'automatic', importSource: 'react' });
    assert.deepEqual(jsxOptions({}), { runtime: 'automatic', importSource: 'react' });
    assert.deepEqual(jsxOptions({ jsx: 'React' }), { runtime: 'classic', pragma: 'React.createElement', pragmaFrag: 'React.Fragment' });
    assert.deepEqual(jsxOptions({ jsx: 'react', jsxFactory: 'h', jsxFragmentFactory: 'Fragment' }), { runtime: 'classic', pragma: 'h', pragmaFrag: 'Fragment' });
  });
});
