// Compiles native/watchdog.c into dist/native/watchdog.node with the system's C compiler ($CC, else cc).
// Optional: without a compiler, or where the build fails, workers watch for stalls with a worker thread
// instead (see docs/design.md), so this prints one line and exits 0 either way.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const source = path.join(root, 'native', 'watchdog.c');
const out = path.join(root, 'dist', 'native', 'watchdog.node');
const cc = process.env.CC || 'cc';

if (process.platform === 'win32') {
  console.log('native watchdog: not built on Windows; workers use a watcher thread');
} else {
  mkdirSync(path.dirname(out), { recursive: true });
  // A failed build must not leave an older module behind.
  rmSync(out, { force: true });
  const args = ['-O2', '-Wall', '-Wextra', '-shared', '-fPIC', '-pthread', '-o', out, source];
  // macOS resolves the Node-API symbols from the node executable only when told to.
  if (process.platform === 'darwin') args.unshift('-undefined', 'dynamic_lookup');
  const r = spawnSync(cc, args, { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
  if (r.status === 0) {
    if (r.stderr) process.stderr.write(r.stderr);
  } else {
    const first = (r.stderr || '').trim().split('\n')[0];
    const why = r.error ? `${cc} not found` : `${cc} failed${first ? `: ${first}` : ` with exit code ${r.status}`}`;
    console.log(`native watchdog: not built (${why}); workers use a watcher thread instead (about 9 MB more each)`);
  }
}
