/**
 * `node --import tsx bench/memprobe.ts [tunicorn flags]`: idle RSS of a tunicorn master and its workers. The master
 * starts with the bin's Node options, or with MASTER_FLAGS when set (`MASTER_FLAGS= ` for none).
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { childrenOf, firstAnswer, freePort, rssMb, sleep } from './lib/proc.js';
import { ROOT } from './lib/servers.js';
import { MASTER_NODE_FLAGS } from '../src/cli/node-flags.js';

const port = await freePort();
const t0 = performance.now();
const child = spawn(process.execPath, [...(process.env.MASTER_FLAGS !== undefined ? process.env.MASTER_FLAGS.split(' ').filter(Boolean) : MASTER_NODE_FLAGS), path.join(ROOT, 'dist/cli/main.js'), '-b', `127.0.0.1:${port}`, '-w', '2', ...process.argv.slice(2), path.join(ROOT, 'bench/servers/apps/listener.mjs')], { stdio: 'inherit', detached: true });
try {
  const ms = await firstAnswer(port, t0, false, 30_000, () => null);
  await sleep(2000);
  const workers = childrenOf(child.pid!);
  console.log(JSON.stringify({ startupMs: Math.round(ms), master: rssMb(child.pid!), workers: workers.map(rssMb) }));
} finally {
  process.kill(-child.pid!, 'SIGTERM');
}
