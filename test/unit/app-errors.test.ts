/** How a failed load is told: the app spec's mistakes, the error's place, and a stack of the app's frames. */
import assert from 'node:assert/strict';
import { close, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { AppLoadError, appFrames } from '../../src/app/errors.js';
import { loadApp } from '../../src/app/load.js';
import { parseAppSpec } from '../../src/app/spec.js';
import { loadConfigFile } from '../../src/config/file.js';
import { ErrorLog } from '../../src/logging/error-log.js';
import { scratchDir } from '../helpers/scratch.js';

const tmp = scratchDir('tunicorn-app-errors-');
const file = (name: string, text: string) => (writeFileSync(path.join(tmp, name), text), path.join(tmp, name));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('what a failed load says', () => {
  it('an app spec ending in a colon names the export it lacks', () => {
    assert.throws(() => parseAppSpec('app.ts:', tmp), (e: unknown) => e instanceof AppLoadError && e.message === 'app app.ts:: nothing follows the colon; name the export to serve (app.ts:app) or drop the colon');
  });

  it('a directory without an index file is named as one', async () => {
    mkdirSync(path.join(tmp, 'empty'));
    await assert.rejects(loadApp('empty', tmp, { onError: () => {} }), /^AppLoadError: app not found: empty is a directory with no index file \(index\.ts, .*index\.cjs\) and no package\.json of its own to import$/);
  });

  it('a default export that is not an app points to a named export that is', async () => {
    file('named.mjs', "export default 5;\nexport const app = (req, res) => res.end('x');\n");
    await assert.rejects(loadApp('named.mjs', tmp, { onError: () => {} }), /is a number \(5\); tunicorn serves .*\. Its export app is a \(req, res\) listener: serve it with named\.mjs:app$/);
  });

  it('a bigint export is named as one, not with a TypeError of the line that names it', async () => {
    file('bigint.mjs', 'export default 42n;\n');
    // describeValue's JSON.stringify threw `Do not know how to serialize a BigInt` (an internal error at --check-config).
    await assert.rejects(loadApp('bigint.mjs', tmp, { onError: () => {} }), /^AppLoadError: app bigint\.mjs is a bigint \(42n\); tunicorn serves /);
  });

  it('a class is not called as a factory: the line says it is a class, and a NestJS module class what to serve', async () => {
    file('class.mjs', 'export default class Server { constructor() { this.ready = true; } }\n');
    await assert.rejects(loadApp('class.mjs', tmp, { onError: () => {} }), /^AppLoadError: app class\.mjs is a class \(Server\), not an instance of it; tunicorn serves /);
    await assert.rejects(
      loadApp(path.join(ROOT, 'test/fixtures/apps/nest/module-only.ts'), ROOT, { onError: () => {} }),
      /is a NestJS module class \(AppModule\), not an app: serve a file that makes the app, as `export default await NestFactory\.create\(AppModule\)` does; tunicorn serves /,
    );
  });

  it('a module with no default export and no app points to a named export that is one', async () => {
    file('handler.mjs', "export const handler = (req, res) => res.end('x');\nexport const port = 3000;\n");
    await assert.rejects(
      loadApp('handler.mjs', tmp, { onError: () => {} }),
      /: no default export, no export named "app", and no listen\(\) call \(it has: handler, port\)\. Its export handler is a \(req, res\) listener: serve it with handler\.mjs:handler$/,
    );
  });

  it('names an Express export with "an"', async () => {
    file('express-named.mjs', `import express from ${JSON.stringify(path.join(ROOT, 'node_modules/express/index.js'))};\nexport const api = express();\n`);
    await assert.rejects(loadApp('express-named.mjs', tmp, { onError: () => {} }), /\. Its export api is an Express application: serve it with express-named\.mjs:api$/);
  });

  it('an import of tunicorn where it is not installed says to install it in the project', async () => {
    const hint = '; tunicorn is not installed in this project: install it there too (npm install tunicorn)';
    const config = file('imports.config.ts', "import { defineConfig } from 'tunicorn';\nexport default defineConfig({ workers: 2 });\n");
    await assert.rejects(loadConfigFile(config), (e: unknown) => e instanceof Error && e.message.endsWith(`${hint}, or export a plain object without defineConfig`));
    const esm = file('imports.config.mjs', "import { defineConfig } from 'tunicorn';\nexport default defineConfig({ workers: 2 });\n");
    await assert.rejects(loadConfigFile(esm), (e: unknown) => e instanceof Error && e.message.endsWith(`${hint}, or export a plain object without defineConfig`));
    file('imports.ts', "import { clientAddress } from 'tunicorn';\nexport default (request: Request) => new Response(String(clientAddress(request)));\n");
    await assert.rejects(loadApp('imports.ts', tmp, { onError: () => {} }), (e: unknown) => e instanceof AppLoadError && e.message.endsWith(hint));
    file('imports-other.ts', "import x from 'tunicorn-plugin-nobody-made';\nexport default x;\n");
    await assert.rejects(loadApp('imports-other.ts', tmp, { onError: () => {} }), (e: unknown) => e instanceof AppLoadError && !e.message.includes('npm install tunicorn'));
  });

  it('a failure in a TypeScript file gives its line, and no column the compiled code made up', async () => {
    const where = file('missing-dep.ts', "import x from 'a-package-nobody-made';\nexport default x;\n");
    const err = await loadApp('missing-dep.ts', tmp, { onError: () => {} }).catch((e: unknown) => e as Error);
    assert.ok(err instanceof AppLoadError);
    assert.match(err.message, new RegExp(`Cannot find module 'a-package-nobody-made' \\(${where}:1\\)$`));
    const thrown = file('throws-at-import.ts', "const a = 1;\nthrow new Error('boom ' + a);\n");
    const boom = await loadApp('throws-at-import.ts', tmp, { onError: () => {} }).catch((e: unknown) => e as Error);
    assert.ok(boom instanceof AppLoadError);
    assert.match(boom.message, new RegExp(`boom 1 \\(${thrown}:2:7\\)$`));
  });

  it('a .json file that does not parse: the place is the import of it, not JSON.parse\'s frame without a file', async () => {
    file('broken.json', '{"v": 1,}');
    const where = file('imports-json.ts', "import data from './broken.json';\nexport default () => new Response(String(data.v));\n");
    const err = await loadApp('imports-json.ts', tmp, { onError: () => {} }).catch((e: unknown) => e as Error);
    assert.ok(err instanceof AppLoadError);
    assert.match(err.message, /broken\.json: .*JSON/);
    assert.doesNotMatch(err.message, /<anonymous>/);
    assert.match(err.message, new RegExp(`\\(${where}:1(:\\d+)?\\)$`));
  });

  it('a syntax error in a JavaScript config file gives its line', async () => {
    const bad = file('syntax.config.mjs', "const a = 1;\nexport default { bind 'x' };\n");
    await assert.rejects(loadConfigFile(bad), (e: unknown) => e instanceof Error && e.message.endsWith(`(${bad}:2)`) && !e.message.includes(`${bad}:2) (`));
  });

  it('a TypeScript parse error gives its place once', async () => {
    const bad = file('syntax.ts', 'const a: number = 1;\nexport default (req, res) => { res.end( };\n');
    const err = await loadApp('syntax.ts', tmp, { onError: () => {} }).catch((e: unknown) => e as Error);
    assert.ok(err instanceof AppLoadError);
    assert.equal(err.message.split(`${bad}:2:`).length, 2, err.message);
  });

  it('a stack keeps the app\'s frames and a library\'s, and counts the rest', () => {
    const stack = [
      'Error: database URL is not set',
      '    at file:///srv/app/db.ts:2:7',
      '    at connect (/srv/app/node_modules/pg/lib/client.js:10:3)',
      '    at ModuleJob.run (node:internal/modules/esm/module_job:325:25)',
      `    at async loadApp (file://${ROOT}dist/workers/child.js:3485:17)`,
      '    at Object.<anonymous> (/srv/app/node_modules/jiti/dist/jiti.cjs:1:2)',
    ].join('\n');
    assert.equal(
      appFrames(stack),
      [
        'Error: database URL is not set',
        '    at file:///srv/app/db.ts:2:7',
        '    at connect (/srv/app/node_modules/pg/lib/client.js:10:3)',
        '    (3 frames of Node and tunicorn left out; --log-level debug shows them)',
      ].join('\n'),
    );
    assert.equal(appFrames('Error: x\n    at /srv/app/a.ts:1:1'), 'Error: x\n    at /srv/app/a.ts:1:1');
  });
  it('the error log says an error whose stack is not text (something assigned to it) by its name and message', () => {
    const logFile = path.join(tmp, 'odd-stack.log');
    const log = new ErrorLog(logFile, 'info');
    const odd = Object.assign(new Error('odd stack'), { stack: { frames: [] } as unknown as string });
    // It threw `stack.split is not a function`: a request's 500 was never sent, and the worker crashed.
    log.exception('Error handling request GET /', odd);
    log.close();
    assert.match(readFileSync(logFile, 'utf8'), /\[ERROR\] Error handling request GET \/\nError: odd stack\n$/);
  });

  it('the error log shows a thrown value that String() cannot convert (null prototype) instead of throwing', () => {
    const logFile = path.join(tmp, 'null-proto.log');
    const log = new ErrorLog(logFile, 'info');
    // It threw `Cannot convert object to primitive value` from inside the report of the request's error.
    log.exception('Error handling request GET /', Object.assign(Object.create(null), { code: 'E_APP' }));
    log.close();
    assert.match(readFileSync(logFile, 'utf8'), /\[ERROR\] Error handling request GET \/\n\[Object: null prototype\] \{ code: 'E_APP' \}\n$/);
  });

  it('the error log shows an Error without a text stack whose message String() cannot convert, instead of throwing', () => {
    const logFile = path.join(tmp, 'odd-message.log');
    const log = new ErrorLog(logFile, 'info');
    const odd = new Error('x');
    Object.defineProperty(odd, 'stack', { value: 1 });
    odd.message = Object.create(null) as string;
    log.exception('Error handling request GET /', odd);
    log.close();
    assert.match(readFileSync(logFile, 'utf8'), /\[ERROR\] Error handling request GET \/\nError: \[Object: null prototype\] \{\}\n$/);
  });

  it('an app that throws a value String() cannot convert as it loads fails to load in one line that shows it', async () => {
    file('null-proto.mjs', 'throw Object.create(null);\nexport default () => {};\n');
    // The loader's own String(err) threw `Cannot convert object to primitive value`: an internal error.
    await assert.rejects(loadApp('null-proto.mjs', tmp, { onError: () => {} }), (e: unknown) => e instanceof AppLoadError && /^app null-proto\.mjs failed to load: \[Object: null prototype\] \{\}$/.test(e.message));
  });

  it('an app that throws such an error as it loads fails to load in one line, not with a TypeError of the loader', async () => {
    file('odd-stack.mjs', "throw Object.assign(new Error('odd stack at import'), { stack: 42 });\nexport default () => {};\n");
    // The loader split the stack for the error's place: `stack.split is not a function`, from tunicorn's code.
    await assert.rejects(loadApp('odd-stack.mjs', tmp, { onError: () => {} }), (e: unknown) => e instanceof AppLoadError && /odd stack at import/.test(e.message) && e.detail === '');
  });
});

describe('a module that calls listen() later', () => {
  it('is waited for while a timer of its own runs, though something of the caller\'s ended meanwhile', async () => {
    // A file closing as the load starts: its request is among the resources counted before the import.
    const fd = openSync(file('closing.txt', 'x'), 'r');
    close(fd, () => {});
    file('later.mjs', "import http from 'node:http';\nsetTimeout(() => http.createServer((q, s) => s.end('x')).listen(0).unref(), 200);\n");
    const { served } = await loadApp('later.mjs', tmp, { onError: () => {} });
    assert.match(served.kind, /http\.Server/);
    await new Promise<void>((r) => (served.server ? served.server.close(() => r()) : r()));
  });
});
