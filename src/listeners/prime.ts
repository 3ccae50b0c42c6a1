import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import util from 'node:util';
import { loadNative } from '../native.js';
import { BindError, explainBindError } from './handle.js';

/*
 * Puts bound sockets into LISTEN state without the master ever accepting. From then on the kernel queues
 * connections in the backlog even while no worker is running, so a connection made after "Listening at" is
 * never refused. The master's native module calls listen(2) on each itself: its libuv handles were only bound,
 * so none has an accept watcher. Without the module (no C compiler), a throwaway child inherits the sockets,
 * calls listen(backlog) on each through Node and exits: a Node start, about 45 ms more (measured: docs/design.md,
 * "Start-up").
 */

export interface MasterNative {
  /** Missing from a module built before it was added. */
  listen?(fd: number, backlog: number): number;
}

const PRIMER = `
const net = require('node:net');
const fds = JSON.parse(process.argv[1]);
const backlog = Number(process.argv[2]);
let left = fds.length;
for (const fd of fds) {
  const s = net.createServer();
  s.on('error', (e) => { process.stderr.write('FAIL ' + (fd - 3) + ' ' + (e.code || e.message) + '\\n'); process.exit(1); });
  // close() in the listening callback runs before the event loop polls, so this child never accepts.
  s.listen({ fd }, backlog, () => s.close(() => { if (--left === 0) process.exit(0); }));
}
`;

/**
 * The kernel's cap on a listen backlog (Linux: net.core.somaxconn, per network namespace), or null where it
 * cannot be read. listen() takes the smaller of the two without a word.
 */
export function backlogCap(): number | null {
  try {
    const n = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** How long the helper may take. */
const PRIME_LIMIT_MS = 30_000;

/**
 * libuv defers a TCP bind's EADDRINUSE to listen(), so a busy port shows up here: the error names the address.
 * `names[i]` is how the log names the socket of `fds[i]`. `native`: the master's module, or why it did not load
 * (then the helper process does it). Resolves to which of the two did it.
 */
export function primeListeners(
  fds: readonly number[],
  backlog: number,
  names: readonly string[] = [],
  native: MasterNative | string = loadNative<MasterNative>('master'),
): Promise<PrimedBy> {
  if (fds.length === 0) return Promise.resolve('listen(2)');
  if (typeof native === 'string' || typeof native.listen !== 'function') return primeInChild(fds, backlog, names).then(() => 'a helper process');
  for (let i = 0; i < fds.length; i++) {
    const r = native.listen(fds[i]!, backlog);
    if (r < 0) {
      const code = errnoName(-r);
      return Promise.reject(new BindError(`cannot bind ${names[i] ?? `fd ${fds[i]}`}: ${explainBindError(code)}`, code, i));
    }
  }
  return Promise.resolve('listen(2)');
}

/** How the sockets were put into listen state, for the master's debug log. */
export type PrimedBy = 'listen(2)' | 'a helper process';

/** `EADDRINUSE` for its number: libuv's name, which the helper reports too. */
export function errnoName(errno: number): string {
  const name = util.getSystemErrorName(-errno);
  return name.startsWith('Unknown system error') ? `errno ${errno}` : name;
}

/** The same through a helper process: for a master without its native module. */
function primeInChild(fds: readonly number[], backlog: number, names: readonly string[]): Promise<void> {
  const childFds = fds.map((_, i) => 3 + i);
  return new Promise((resolve, reject) => {
    // Without NODE_OPTIONS, which is the app's: `--inspect-brk` there would stop this helper until a debugger
    // came (and the start failed after PRIME_LIMIT_MS), a `--require` (an APM agent) would load in it.
    const { NODE_OPTIONS: _app, ...env } = process.env;
    const child = spawn(process.execPath, ['-e', PRIMER, JSON.stringify(childFds), String(backlog)], {
      env,
      stdio: ['ignore', 'ignore', 'pipe', ...fds],
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    // It takes a Node start, well under a second; one that cannot make its threads (a process limit reached)
    // hangs rather than fails, and the start would wait for it for ever.
    const stuck = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new BindError(`cannot put the listening sockets into listen state: the helper process did not finish in ${PRIME_LIMIT_MS / 1000} s (is the process or thread limit reached? ulimit -u, systemd's TasksMax=)`, 'ETIMEDOUT'));
    }, PRIME_LIMIT_MS);
    child.on('exit', (code) => {
      clearTimeout(stuck);
      if (code === 0) return resolve();
      const m = /FAIL (\d+) (\S+)/.exec(err);
      const what = m ? (names[Number(m[1])] ?? `fd ${fds[Number(m[1])]}`) : 'the listening sockets';
      reject(new BindError(`cannot bind ${what}: ${m ? explainBindError(m[2]!) : err.trim() || `exit ${code}`}`, m?.[2] ?? 'EUNKNOWN', m ? Number(m[1]) : undefined));
    });
  });
}
