/**
 * --reload (development), on a copy of test/fixtures/reload-app/:
 * - a change to a file the app imports restarts the workers; the new code serves
 * - code that no longer loads keeps the master up, logs the error with file and line, and answers 500 with
 *   a page that shows it; fixing the file brings the app back
 * - a --reload-extra-file glob triggers a restart too
 * - a JavaScript ES module app's native imports are watched too
 * - a TypeScript module the app imports on demand, in a handler, after its load, is watched from then on
 * - gthread: each thread loads its own copy of the app and reports its files, so the same holds there
 * - without --reload, an app that fails to load still stops the server (no error page in production)
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';

after(stopAll);

async function body(port: number): Promise<{ status: number; body: string }> {
  try {
    return await request(port, '/');
  } catch (err) {
    return { status: 0, body: String(err) };
  }
}

/** Asks for / every 100 ms until the answer passes `ok`, bounded by `ms`; returns that answer. */
async function answer(port: number, ok: (r: { status: number; body: string }) => boolean, ms: number, what: string): Promise<{ status: number; body: string }> {
  const end = Date.now() + ms;
  let last = await body(port);
  while (!ok(last)) {
    assert.ok(Date.now() < end, `timed out after ${ms} ms waiting for ${what}; last answer: ${last.status} ${last.body}`);
    await new Promise((r) => setTimeout(r, 100));
    last = await body(port);
  }
  return last;
}

describe('--reload', () => {
  it('restarts workers on a change, shows a load error as a 500 page, recovers when fixed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tunicorn-reload-'));
    cpSync(path.join(FIXTURES, 'reload-app'), dir, { recursive: true });
    mkdirSync(path.join(dir, 'data'));
    const s = new Server(['-b', '127.0.0.1:0', '--reload', '--reload-extra-file', 'data/*.txt', 'app.ts'], { cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: /);
    assert.match((await request(port, '/')).body, /^v1 /);

    let last = { status: 0, body: '' };
    let polling = true;
    const poller = (async () => {
      while (polling) {
        last = await body(port);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      writeFileSync(path.join(dir, 'message.ts'), `export const message: string = 'v2';\n`);
      await s.waitFor(/Reloading: .*message\.ts changed; restarting the workers/, 15000);
      await until(() => /^v2 /.test(last.body), 20000, 'the new code to serve');

      writeFileSync(path.join(dir, 'message.ts'), `export const message: string = 'v3'\nconst = ;\n`);
      await until(() => last.status === 500, 20000, 'the error page');
      assert.match(last.body, /App failed to load/);
      assert.match(last.body, /message\.ts/);
      assert.match(s.log, /app app\.ts failed to load: .*message\.ts:2/);
      assert.equal(s.child.exitCode, null, 'the master is still up');

      writeFileSync(path.join(dir, 'message.ts'), `export const message: string = 'v4';\n`);
      await until(() => /^v4 /.test(last.body), 20000, 'the fixed code to serve');

      const from = s.log.length;
      writeFileSync(path.join(dir, 'data', 'x.txt'), 'extra');
      await s.waitFor(/Reloading: .*data\/x\.txt changed/, 15000, from);
    } finally {
      polling = false;
      await poller;
    }
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('watches what a JavaScript ES module app imports natively', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tunicorn-reload-esm-'));
    cpSync(path.join(FIXTURES, 'reload-esm'), dir, { recursive: true });
    const s = new Server(['-b', '127.0.0.1:0', '--reload', 'app.mjs'], { cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: /);
    assert.match((await request(port, '/')).body, /^v1 /);
    writeFileSync(path.join(dir, 'message.mjs'), `export const message = 'v2';\n`);
    await s.waitFor(/Reloading: .*message\.mjs changed; restarting the workers/, 15000);
    const end = Date.now() + 20000;
    let last = '';
    while (!/^v2 /.test(last)) {
      assert.ok(Date.now() < end, `the new code to serve; last answer: ${last}`);
      last = (await body(port)).body;
      if (!/^v2 /.test(last)) await new Promise((r) => setTimeout(r, 100));
    }
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  for (const cls of [[], ['-k', 'gthread', '--threads', '2']]) {
    it(`${cls.join(' ') || 'async'}: watches a TypeScript module the app imports only once it serves (a lazy route)`, async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'tunicorn-reload-lazy-'));
      writeFileSync(path.join(dir, 'lazy.ts'), `export const message: string = 'v1';\n`);
      writeFileSync(path.join(dir, 'app.ts'), `export default async (_request: Request) => new Response((await import('./lazy.ts')).message);\n`);
      const s = new Server(['-b', '127.0.0.1:0', '--reload', ...cls, 'app.ts'], { cwd: dir });
      const port = await s.port();
      await s.waitFor(/Ready: /);
      assert.equal((await request(port, '/')).body, 'v1');
      // The file is reported once the worker sees it in its module cache: change it until the master reloads.
      for (let i = 0; ; i++) {
        writeFileSync(path.join(dir, 'lazy.ts'), `export const message: string = 'v2'; // ${i}\n`);
        const reloaded = await s.waitFor(/Reloading: .*lazy\.ts changed; restarting the workers/, 500).then(() => true, () => false);
        if (reloaded) break;
        assert.ok(i < 20, `no reload after ${i + 1} changes of lazy.ts; log:\n${s.log}`);
      }
      const end = Date.now() + 20000;
      let last = '';
      while (last !== 'v2') {
        assert.ok(Date.now() < end, `the new code to serve; last answer: ${last}`);
        last = (await body(port)).body;
        if (last !== 'v2') await new Promise((r) => setTimeout(r, 100));
      }
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    });
  }

  it('watches the tsconfig.json that decides how the app compiles', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tunicorn-reload-tsconfig-'));
    // The classic JSX runtime calls the tsconfig's jsxFactory: which function runs says which tsconfig compiled it.
    writeFileSync(
      path.join(dir, 'app.tsx'),
      'function h(tag: string, _p: unknown, ...c: unknown[]) { return `h ${tag} ${c.join("")}`; }\n' +
        'function h2(tag: string, _p: unknown, ...c: unknown[]) { return `h2 ${tag} ${c.join("")}`; }\n' +
        'export default (req: unknown, res: { end(s: string): void }) => res.end(String(<b>x</b>));\n',
    );
    const tsconfig = (factory: string) => writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { jsx: 'react', jsxFactory: factory } }));
    tsconfig('h');
    const s = new Server(['-b', '127.0.0.1:0', '--reload', 'app.tsx'], { cwd: dir });
    const port = await s.port();
    // The worker reports the files it read (the tsconfig.json too) before it says it is ready, and the master
    // watches them as it reads that report: a change made before it would go unseen.
    await s.waitFor(/Ready: /);
    await answer(port, (r) => r.body === 'h b x', 15000, 'the app compiled with jsxFactory h');
    tsconfig('h2');
    await s.waitFor(/Reloading: .*tsconfig\.json changed; restarting the workers/, 15000);
    await answer(port, (r) => r.body === 'h2 b x', 15000, 'the app compiled with jsxFactory h2');
    await s.kill();
  });

  it('gthread: a change to an imported module reloads, a load error shows the 500 page in the threads', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tunicorn-reload-gthread-'));
    cpSync(path.join(FIXTURES, 'reload-app'), dir, { recursive: true });
    const s = new Server(['-b', '127.0.0.1:0', '-k', 'gthread', '--threads', '2', '--reload', 'app.ts'], { cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: /);
    assert.match((await request(port, '/')).body, /^v1 /);
    writeFileSync(path.join(dir, 'message.ts'), `export const message: string = 'v2';\n`);
    await s.waitFor(/Reloading: .*message\.ts changed; restarting the workers/, 15000);
    await answer(port, (r) => /^v2 /.test(r.body), 15000, 'the new code to serve');

    writeFileSync(path.join(dir, 'message.ts'), `export const message: string = 'v3'\nconst = ;\n`);
    const last = await answer(port, (r) => r.status === 500, 15000, 'the error page');
    assert.match(last.body, /App failed to load/);
    assert.match(last.body, /message\.ts/);
    assert.equal(s.child.exitCode, null, 'the master is still up');
    writeFileSync(path.join(dir, 'message.ts'), `export const message: string = 'v4';\n`);
    await answer(port, (r) => /^v4 /.test(r.body), 15000, 'the fixed code to serve');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('gthread: a JavaScript ES module app\'s native imports are watched from the threads', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tunicorn-reload-gthread-esm-'));
    cpSync(path.join(FIXTURES, 'reload-esm'), dir, { recursive: true });
    const s = new Server(['-b', '127.0.0.1:0', '-k', 'gthread', '--threads', '2', '--reload', 'app.mjs'], { cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: /);
    assert.match((await request(port, '/')).body, /^v1 /);
    writeFileSync(path.join(dir, 'message.mjs'), `export const message = 'v2';\n`);
    await s.waitFor(/Reloading: .*message\.mjs changed; restarting the workers/, 15000);
    await answer(port, (r) => /^v2 /.test(r.body), 15000, 'the new code to serve');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('without --reload, an app that fails to load stops the server', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tunicorn-noreload-'));
    cpSync(path.join(FIXTURES, 'reload-app'), dir, { recursive: true });
    writeFileSync(path.join(dir, 'message.ts'), `const = ;\n`);
    const s = new Server(['-b', '127.0.0.1:0', 'app.ts'], { cwd: dir });
    assert.equal((await s.exited).code, 1);
    assert.doesNotMatch(s.log, /500 page/);
  });
});
