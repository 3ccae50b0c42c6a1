/**
 * --reload's watcher (src/arbiter/reloader.ts), the part no file event drives: a file a worker's failed load
 * looked for and did not find, that exists when the master reads the report, is a change at once (it was made
 * while the workers loaded, maybe before its folder was watched). Once per file, until a worker reports it found.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Reloader } from '../../src/arbiter/reloader.js';
import { scratchDir } from '../helpers/scratch.js';

const dir = scratchDir('tunicorn-reloader-');
after(() => rmSync(dir, { recursive: true, force: true }));

it('reloads for a missing file that exists by the time the report is read, once until a worker finds it', { timeout: 10_000 }, async (t) => {
  const changes: (readonly string[])[] = [];
  let seen: () => void = () => {};
  const reloader = new Reloader(
    (files) => {
      changes.push(files);
      seen();
    },
    (message) => assert.fail(message),
  );
  t.after(() => reloader.close());
  // Its timers and watches do not hold the process up (the master's do not either): this holds the test's.
  const alive = setInterval(() => {}, 1000);
  t.after(() => clearInterval(alive));
  const changed = () => new Promise<void>((resolve) => (seen = resolve));
  const lib = path.join(dir, 'lib');
  const module = path.join(lib, 'message.ts');
  const missing = [module, path.join(lib, 'message.js')];

  // Made after the worker looked and before its report was read (a branch switch raced the restarted workers'
  // load; no folder of it was watched yet, so no event comes): a change all the same.
  mkdirSync(lib);
  writeFileSync(module, 'export const message = 1;\n');
  const first = changed();
  reloader.add([path.join(dir, 'app.ts'), ...missing], missing);
  await first;
  assert.deepEqual(changes.at(-1), [module]);

  // The next worker misses it again (it cannot see it): no second reload for it. Nor for a missing file that
  // is still missing (its folder's watch will see it made). The debounce is 150 ms.
  const count = changes.length;
  reloader.add([path.join(dir, 'app.ts'), ...missing], missing);
  reloader.add([path.join(dir, 'other.ts')], [path.join(dir, 'other.ts')]);
  await sleep(500);
  assert.equal(changes.length, count, 'one reload a missing file, not one a report');

  // A worker found it; later missed again while it exists: a change again.
  reloader.add([path.join(dir, 'app.ts'), module]);
  const again = changed();
  reloader.add([path.join(dir, 'app.ts'), ...missing], missing);
  await again;
  assert.deepEqual(changes.at(-1), [module]);
});
