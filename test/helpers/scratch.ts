/**
 * Temporary directories for tests, removed when the test file's process exits (each file runs in a process of
 * its own under `node --test`), whatever its tests did: a run leaves nothing in the temporary folder. A test
 * that must look at a directory after a failure can print its path; the folder goes at exit regardless.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const made: string[] = [];

process.on('exit', () => {
  for (const dir of made) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // A file a test left read-only to the owner (root ignores modes), or a mount: nothing more to do at exit.
    }
  }
});

/** A new directory in the temporary folder, named `prefix` and six random characters; removed at exit. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
