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
 * - an import of a module that does not exist yet: writing it (in a new folder too, without an extension)
 *   reloads and serves, and the load error's log shows the app's frames, not jiti's and tunicorn's
 * - a folder deleted and made again (a branch switch) is watched again
 * - the config file (-c): a change reads the configuration again, as HUP; a broken one keeps the running one
 * - packages (node_modules), as Gunicorn watches site-packages: an edit to a package's file reloads, and so
 *   does installing a package the app imports but that was missing
 * - --reload-extra-file: every save of a matching file reloads, an editor's too (written elsewhere and renamed
 *   over it), in a folder made later too, and for a glob whose folder does not exist yet at the start
 * - code that kills every worker right after it starts (a timer that throws): after a few, no new worker
 *   until a watched file changes, instead of a stack trace every 10 s; the fix starts them again
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

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
    const dir = scratchDir('tunicorn-reload-');
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
    const dir = scratchDir('tunicorn-reload-esm-');
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
      const dir = scratchDir('tunicorn-reload-lazy-');
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
    const dir = scratchDir('tunicorn-reload-tsconfig-');
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
    const dir = scratchDir('tunicorn-reload-gthread-');
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
    const dir = scratchDir('tunicorn-reload-gthread-esm-');
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
    const dir = scratchDir('tunicorn-noreload-');
    cpSync(path.join(FIXTURES, 'reload-app'), dir, { recursive: true });
    writeFileSync(path.join(dir, 'message.ts'), `const = ;\n`);
    const s = new Server(['-b', '127.0.0.1:0', 'app.ts'], { cwd: dir });
    assert.equal((await s.exited).code, 1);
    assert.doesNotMatch(s.log, /500 page/);
  });

  it('an import of a module not written yet: writing it reloads (a new file, a new folder), the log shows the app\'s frames', async () => {
    const dir = scratchDir('tunicorn-reload-missing-');
    cpSync(path.join(FIXTURES, 'reload-app'), dir, { recursive: true });
    const s = new Server(['-b', '127.0.0.1:0', '--reload', 'app.ts'], { cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: /);
    assert.match((await request(port, '/')).body, /^v1 /);

    let from = s.log.length;
    writeFileSync(path.join(dir, 'message.ts'), `import { extra } from './extra.ts';\nexport const message: string = 'v2' + extra;\n`);
    const broken = await answer(port, (r) => r.status === 500, 20000, 'the error page');
    assert.match(broken.body, /Cannot find module &#39;\.\/extra\.ts&#39;/);
    await s.waitFor(/app app\.ts failed to load: Cannot find module '\.\/extra\.ts' \(.*message\.ts:1\)/, 15000, from);
    // The stack in the log: the app's frames; jiti's and tunicorn's are counted, not listed.
    await s.waitFor(/frames of Node and tunicorn left out/, 15000, from);
    assert.doesNotMatch(s.log.slice(from), /node_modules\/jiti\/|dist\/workers\//);
    writeFileSync(path.join(dir, 'extra.ts'), `export const extra: string = '-a';\n`);
    await answer(port, (r) => /^v2-a /.test(r.body), 20000, 'the app with the module written');

    // Without an extension, in a folder that does not exist yet.
    from = s.log.length;
    writeFileSync(path.join(dir, 'message.ts'), `import { more } from './more/deep';\nexport const message: string = 'v3' + more;\n`);
    await answer(port, (r) => r.status === 500 && /more\/deep/.test(r.body), 20000, 'the error page for ./more/deep');
    mkdirSync(path.join(dir, 'more'));
    writeFileSync(path.join(dir, 'more', 'deep.ts'), `export const more: string = '-b';\n`);
    await answer(port, (r) => /^v3-b /.test(r.body), 20000, 'the app with the folder and module written');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('a folder deleted and made again (a branch switch) is watched again', async () => {
    const dir = scratchDir('tunicorn-reload-rmdir-');
    mkdirSync(path.join(dir, 'lib'));
    writeFileSync(path.join(dir, 'lib', 'message.ts'), `export const message: string = 'v1';\n`);
    writeFileSync(path.join(dir, 'app.ts'), `import { message } from './lib/message.ts';\nexport default (_req: unknown, res: { end(s: string): void }) => res.end(message);\n`);
    const s = new Server(['-b', '127.0.0.1:0', '--reload', 'app.ts'], { cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: /);
    assert.equal((await request(port, '/')).body, 'v1');
    rmSync(path.join(dir, 'lib'), { recursive: true });
    await answer(port, (r) => r.status === 500, 20000, 'the error page once lib/ is gone');
    mkdirSync(path.join(dir, 'lib'));
    writeFileSync(path.join(dir, 'lib', 'message.ts'), `export const message: string = 'v2';\n`);
    await answer(port, (r) => r.body === 'v2', 20000, 'the app once lib/ is back');
    // And a later edit in the new folder.
    writeFileSync(path.join(dir, 'lib', 'message.ts'), `export const message: string = 'v3';\n`);
    await answer(port, (r) => r.body === 'v3', 20000, 'the edit in the new lib/');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('the config file: a change reads the configuration again, as HUP; a broken one keeps the running one', async () => {
    const dir = scratchDir('tunicorn-reload-config-');
    cpSync(path.join(FIXTURES, 'reload-app'), dir, { recursive: true });
    const config = path.join(dir, 'tunicorn.config.ts');
    writeFileSync(config, `export default { workers: 1 };\n`);
    const s = new Server(['-b', '127.0.0.1:0', '--reload', '-c', 'tunicorn.config.ts', 'app.ts'], { cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    let from = s.log.length;
    writeFileSync(config, `export default { workers: 2 };\n`);
    await s.waitFor(/Reloading: .*tunicorn\.config\.ts changed; reading the configuration again, as on HUP/, 15000, from);
    await s.waitFor(/Number of workers: 1 -> 2/, 15000, from);
    await s.waitFor(/Ready: 2 worker/, 20000, from);

    from = s.log.length;
    writeFileSync(config, `export default { workers: 3, };;; const = ;\n`);
    await s.waitFor(/Reload failed, keeping the running configuration: config file .*tunicorn\.config\.ts failed to load: .*tunicorn\.config\.ts:1/, 15000, from);
    assert.match((await request(port, '/')).body, /^v1 /);
    writeFileSync(config, `export default { workers: 1 };\n`);
    await s.waitFor(/Number of workers: 2 -> 1/, 15000, from);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('packages: an edit to a package\'s file reloads, installing a missing one does too', async () => {
    const dir = scratchDir('tunicorn-reload-packages-');
    const pkg = (name: string, value: string) => {
      mkdirSync(path.join(dir, 'node_modules', name), { recursive: true });
      writeFileSync(path.join(dir, 'node_modules', name, 'package.json'), JSON.stringify({ name, main: 'index.js' }));
      writeFileSync(path.join(dir, 'node_modules', name, 'index.js'), `exports.value = ${JSON.stringify(value)};\n`);
    };
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    pkg('dep-a', 'a1');
    const app = (imports: string[]) =>
      writeFileSync(
        path.join(dir, 'app.ts'),
        imports.map((p, i) => `import { value as v${i} } from '${p}';\n`).join('') +
          `export default (_req: unknown, res: { end(s: string): void }) => res.end([${imports.map((_, i) => `v${i}`).join(', ')}].join(' '));\n`,
      );
    app(['dep-a']);
    const s = new Server(['-b', '127.0.0.1:0', '--reload', 'app.ts'], { cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: /);
    assert.equal((await request(port, '/')).body, 'a1');
    writeFileSync(path.join(dir, 'node_modules', 'dep-a', 'index.js'), `exports.value = 'a2';\n`);
    await s.waitFor(/Reloading: .*node_modules\/dep-a\/index\.js changed; restarting the workers/, 15000);
    await answer(port, (r) => r.body === 'a2', 20000, 'the edited package to serve');

    app(['dep-a', 'dep-b']);
    await answer(port, (r) => r.status === 500 && /Cannot find module &#39;dep-b&#39;/.test(r.body), 20000, 'the error page for dep-b');
    pkg('dep-b', 'b1');
    await answer(port, (r) => r.body === 'a2 b1', 20000, 'the app once dep-b is installed');
    // A tool's dot folder there is not an install (jiti keeps its cache in node_modules/.cache): the reload
    // names the package made after it.
    const from = s.log.length;
    mkdirSync(path.join(dir, 'node_modules', '.vite'));
    pkg('dep-c', 'c1');
    await s.waitFor(/Reloading: .*node_modules\/dep-c changed/, 15000, from);
    assert.doesNotMatch(s.log.slice(from), /\.vite/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('code that kills every worker it starts: no new worker until a watched file changes, then the fix serves', async () => {
    const dir = scratchDir('tunicorn-reload-crashes-');
    cpSync(path.join(FIXTURES, 'reload-app'), dir, { recursive: true });
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', '--reload', 'app.ts'], { cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: /);
    const from = s.log.length;
    writeFileSync(path.join(dir, 'message.ts'), `setTimeout(() => { throw new Error('boom later'); }, 50);\nexport const message: string = 'v2';\n`);
    await s.waitFor(/died .* after it started serving \(5 in a row\); --reload: no new worker until a watched file changes/, 30000, from);
    assert.equal(s.count(/no new worker until a watched file changes/g), 1, 'said once');
    writeFileSync(path.join(dir, 'message.ts'), `export const message: string = 'v3';\n`);
    await s.waitFor(/Reloading: .*message\.ts changed; restarting the workers/, 15000, s.log.length);
    await answer(port, (r) => /^v3 /.test(r.body), 20000, 'the fixed code to serve');
    await s.waitFor(/Ready: 2 worker/, 20000, from);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('--reload-extra-file: every editor\'s save reloads (renamed over the file), in folders made later too', async () => {
    const dir = scratchDir('tunicorn-reload-extra-');
    cpSync(path.join(FIXTURES, 'reload-app'), dir, { recursive: true });
    mkdirSync(path.join(dir, 'templates'));
    writeFileSync(path.join(dir, 'templates', 'a.html'), 'a0');
    const s = new Server(['-b', '127.0.0.1:0', '--reload', '--reload-extra-file', 'templates/**/*.html', '--reload-extra-file', 'later/*.txt', 'app.ts'], { cwd: dir });
    await s.port();
    await s.waitFor(/Ready: /);
    /** Changes the files, waits for the reload that names `re`, and for its workers to serve. */
    const reloads = async (change: () => void, re: RegExp) => {
      const from = s.log.length;
      change();
      await s.waitFor(re, 15000, from);
      await s.waitFor(/Ready: /, 20000, from);
    };
    // As vim and VS Code save: a new file renamed over the old one, twice (the second is the one a watch of
    // the first file's inode misses).
    for (const text of ['a1', 'a2']) {
      await reloads(() => {
        writeFileSync(path.join(dir, 'templates', '.a.html.swp'), text);
        renameSync(path.join(dir, 'templates', '.a.html.swp'), path.join(dir, 'templates', 'a.html'));
      }, /Reloading: .*templates\/a\.html changed; restarting the workers/);
    }
    await reloads(() => {
      mkdirSync(path.join(dir, 'templates', 'sub'));
      writeFileSync(path.join(dir, 'templates', 'sub', 'b.html'), 'b1');
    }, /Reloading: .*templates\/sub\/b\.html changed/);
    await reloads(() => writeFileSync(path.join(dir, 'templates', 'sub', 'b.html'), 'b2'), /Reloading: .*templates\/sub\/b\.html changed/);
    await reloads(() => {
      mkdirSync(path.join(dir, 'later'));
      writeFileSync(path.join(dir, 'later', 'x.txt'), 'x1');
    }, /Reloading: .*later\/x\.txt changed/);
    assert.doesNotMatch(s.log, /cannot watch/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
});
