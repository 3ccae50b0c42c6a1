/**
 * TypeScript compiled as tsc compiles it with the tsconfig.json nearest each file (real CLI, 1 worker each):
 * - JSX in .tsx (and .jsx): the automatic runtime of `jsx: react-jsx` from its `jsxImportSource` (a Hono JSX
 *   page, with a component in another file), the classic runtime of `jsx: react` with its `jsxFactory` and
 *   `jsxFragmentFactory`;
 * - decorators: legacy semantics when the tsconfig sets experimentalDecorators; without it tsc compiles
 *   standard (TC39) decorators, which the loader cannot: refused in one line that says so, as is an
 *   `accessor` field; a file with no decorator (only text looking like one) loads.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, request, Server, stopAll, within } from '../helpers/server.js';

after(stopAll);

const fx = (name: string) => path.join(FIXTURES, name);

/** Serves `fixture` and answers GET / from it; the server is killed afterwards. */
async function get(fixture: string): Promise<{ status: number; body: string; type: string | undefined; log: string }> {
  const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fixture]);
  try {
    const port = await s.port();
    const r = await request(port, '/', { timeout: 30000 });
    return { status: r.status, body: r.body, type: r.headers['content-type'], log: s.log };
  } finally {
    await s.kill();
  }
}

/** Serves `fixture`, which must fail to load: the master stops with status 1; its log. */
async function refused(fixture: string): Promise<string> {
  const s = new Server(['-b', '127.0.0.1:0', '-w', '1', fixture]);
  assert.equal((await within(s.exited, 30000, 'the master to stop')).code, 1, s.log);
  return s.log;
}

describe('JSX, as the nearest tsconfig.json says', { concurrency: true }, () => {
  it('a Hono JSX page in .tsx: react-jsx with jsxImportSource hono/jsx (a component imported from another .tsx)', async () => {
    const r = await get(fx('jsx/automatic/app.tsx'));
    assert.equal(r.status, 200, r.log);
    assert.match(r.type ?? '', /^text\/html/);
    assert.equal(r.body, '<title>hi</title><main><h1 class="greeting">hello jsx</h1></main>');
  });

  it('a .jsx app, with the same tsconfig.json', async () => {
    const r = await get(fx('jsx/automatic/page.jsx'));
    assert.equal(r.status, 200, r.log);
    assert.equal(r.body, '<p>from <b>.jsx</b></p>');
  });

  it('the classic runtime: jsx react with jsxFactory and jsxFragmentFactory (imported by the page)', async () => {
    const r = await get(fx('jsx/classic/app.tsx'));
    assert.equal(r.status, 200, r.log);
    assert.equal(r.body, '<h1 class="greeting">hello classic</h1>');
  });
});

describe('decorators, as the nearest tsconfig.json says', { concurrency: true }, () => {
  it('experimentalDecorators: legacy decorators (a method decorator given the descriptor)', async () => {
    const r = await get(fx('decorators/legacy/app.ts'));
    assert.equal(r.status, 200, r.log);
    assert.equal(r.body, '<hello> hi');
  });

  it('no experimentalDecorators: standard decorators are refused in one line, never run as legacy ones', async () => {
    const log = await refused(fx('decorators/standard/app.ts'));
    const line = log.split('\n').find((l) => l.includes('failed to load')) ?? '';
    assert.match(
      line,
      /\[ERROR\] app .*decorators\/standard\/app\.ts failed to load: standard \(TC39\) decorators are not supported by tunicorn's TypeScript loader, .*: set "experimentalDecorators": true in .*decorators\/standard\/tsconfig\.json .*, or compile the app first \(tsc\) and serve the JavaScript \(.*decorators\/standard\/app\.ts:9:3\)$/,
      log,
    );
    assert.match(log, /Reason: App failed to load\./);
    // One line: no stack of babel's after it.
    assert.doesNotMatch(log, /^\s+at /m);
  });

  it('a tsconfig.json that is not valid JSON stops the load, naming it; one with a byte-order mark is read', async () => {
    // Beside the fixtures, so that the app finds the packages it imports (reflect-metadata); removed after.
    const dir = mkdtempSync(fx('decorators/tmp-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    cpSync(fx('decorators/legacy/app.ts'), path.join(dir, 'app.ts'));
    writeFileSync(path.join(dir, 'tsconfig.json'), '{ "compilerOptions": { "experimentalDecorators": true\n "target": "ES2022" } }\n');
    const log = await refused(path.join(dir, 'app.ts'));
    assert.match(log, /failed to load: .*tsconfig\.json is not valid JSON: Expected ',' or '}' after property value \(line 2\); fix it, as tsc would refuse it too/, log);
    writeFileSync(path.join(dir, 'tsconfig.json'), '\uFEFF{ "compilerOptions": { "experimentalDecorators": true } }\n');
    const r = await get(path.join(dir, 'app.ts'));
    assert.equal(r.status, 200, r.log);
    assert.equal(r.body, '<hello> hi');
  });

  it('no experimentalDecorators: an accessor field is refused in one line', async () => {
    const log = await refused(fx('decorators/standard/accessor.ts'));
    assert.match(
      log,
      /\[ERROR\] app .*accessor\.ts failed to load: `accessor` fields \(from standard TC39 decorators\) are not supported by tunicorn's TypeScript loader: compile the app first \(tsc\) and serve the JavaScript \(.*accessor\.ts:3:3\)\n/,
    );
  });

  it('no experimentalDecorators: a file without decorators (text like one in a comment and a string) loads', async () => {
    const r = await get(fx('decorators/standard/plain.ts'));
    assert.equal(r.status, 200, r.log);
    assert.equal(r.body, 'hi plain @logged');
  });
});
