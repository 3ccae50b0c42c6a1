// npm's `prepare`: builds dist/ (`npm run build`) unless the last build made here is newer than every source.
// npm runs `prepare` on `npm install`, and npx runs it once more when it installs this folder to run its bin:
// the README's first command, `npm install && npx tunicorn ...`, built everything twice (10 s more before the
// first answer). `npm run build` itself always builds in full; only this script skips.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, statSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const stamp = path.join(root, 'dist', '.prepared');
/** What a build reads: a change to any of them means building again. */
const INPUTS = ['src', 'native', 'scripts', 'package.json', 'package-lock.json', 'tsconfig.json'];

function newest(p) {
  let st;
  try {
    st = statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let t = st.mtimeMs; // a file deleted from a folder changes the folder's time
  for (const name of readdirSync(p)) t = Math.max(t, newest(path.join(p, name)));
  return t;
}

const built = existsSync(path.join(root, 'dist', 'cli', 'main.js')) && existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
if (built > 0 && built > Math.max(...INPUTS.map((i) => newest(path.join(root, i))))) {
  // On stderr: npm runs `prepare` for `npm pack --json` and `npm publish --json` too, whose stdout is the JSON.
  console.error('tunicorn: dist/ is up to date with src/ (npm run build rebuilds it anyway)');
  process.exit(0);
}

const start = new Date();
// The build's output goes to stderr too (its stdout onto fd 2), as the note above does.
const r = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: ['inherit', 2, 'inherit'], shell: process.platform === 'win32' });
if (r.status !== 0) process.exit(r.status ?? 1);
// The stamp carries the build's start: a source saved while it ran is newer, and the next prepare builds.
closeSync(openSync(stamp, 'w'));
utimesSync(stamp, start, start);
