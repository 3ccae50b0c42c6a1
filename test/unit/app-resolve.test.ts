/** An app named by package (`tunicorn PACKAGE`), resolved from the working directory as an installed app is. */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadApp } from '../../src/app/load.js';
import { scratchDir } from '../helpers/scratch.js';

describe('an app named by package', () => {
  // A project folder whose path has a space and a non-ASCII letter, as "~/My Projects/café-api" does.
  const project = path.join(scratchDir('tunicorn-app-resolve-'), 'My Projects', 'café api');
  after(() => rmSync(path.dirname(path.dirname(project)), { recursive: true, force: true }));
  const pkg = (name: string, json: object, index: string) => {
    const dir = path.join(project, 'node_modules', name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, ...json }));
    writeFileSync(path.join(dir, 'index.js'), index);
  };
  pkg('esm-only-app', { type: 'module', exports: { import: './index.js' } }, "export default (req, res) => res.end('esm');\n");
  pkg('cjs-app', { main: 'index.js' }, "module.exports = (req, res) => res.end('cjs');\n");

  for (const name of ['esm-only-app', 'cjs-app']) {
    it(`${name} loads from a folder whose path has a space and a non-ASCII letter`, async () => {
      const { served } = await loadApp(name, project, { onError: () => {} });
      assert.equal(served.kind, '(req, res) listener');
    });
  }
});
