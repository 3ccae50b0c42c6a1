// Compiles each native/NAME.c into dist/native/NAME.node with the system's C compiler ($CC, else cc):
// watchdog.c, the stall watcher; peek.c, the connection gate's read of a connection's first bytes, dup()
// of a listening socket and a connection's peer address; master.c, the master's: waitpid(), the child subreaper and
// listen() on the sockets it binds.
// Optional: without a compiler, or where a build fails, workers watch for stalls with a worker thread and
// the gate reads first bytes through JavaScript (see docs/design.md), so this prints one line per module
// not built and exits 0 either way.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const cc = process.env.CC || 'cc';

/** What each module is for, and what runs instead when it is not built. */
const MODULES = {
  watchdog: 'workers use a watcher thread instead (about 9 MB more each)',
  peek: 'the connection gate reads first bytes through JavaScript instead, a worker that pauses accepting asks the master for a duplicate of the listening socket, and the access log reads the client address through Node',
  master: 'the master cannot adopt what a killed worker leaves running (it runs on, re-parented to init), as PID 1 cannot reap orphaned processes (it says so when it starts): run it under an init there (docker run --init, tini), and starts a short-lived Node process to put its sockets into listen state (about 45 ms more at each start)',
};

for (const [name, fallback] of Object.entries(MODULES)) {
  const source = path.join(root, 'native', `${name}.c`);
  const out = path.join(root, 'dist', 'native', `${name}.node`);
  if (process.platform === 'win32') {
    console.log(`native ${name}: not built on Windows; ${fallback}`);
    continue;
  }
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
    console.log(`native ${name}: not built (${why}); ${fallback}`);
  }
}
