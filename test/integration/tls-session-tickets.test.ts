/**
 * TLS session resumption across workers, on the real CLI (Node's TLS client, a `session` reused):
 * - every worker and gthread thread uses the master's session-ticket keys: with 3 workers (async on the
 *   HTTP/2 server, sync with --http-protocols h1) or 3 gthread threads, 12 or more reconnects with one session
 *   (until two of them have served) are all resumed, whichever serves them, over TLS 1.2 and TLS 1.3
 * - HUP keeps the keys: a session made before it resumes on the new workers
 * - the master rotates the keys (every hour; shortened here by the test-only TUNICORN_TEST_TICKET_KEY_PERIOD_MS):
 *   once every worker took the new ones, a session made before is not resumed, one made after is
 * - the keys are in no log line, the environment, argv or --print-config
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { after, describe, it } from 'node:test';
import { CLI, FIXTURES, Server, stopAll, until } from '../helpers/server.js';
import { selfSigned } from '../helpers/tls.js';

after(stopAll);

const certs = selfSigned();
const APP = path.join(FIXTURES, 'classes.ts');
const TLS_ARGS = ['--certfile', certs.cert, '--keyfile', certs.key];
const VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;

interface Visit {
  readonly reused: boolean;
  /** The session to resume next time (TLS 1.3 sends its ticket after the handshake: read to the end). */
  readonly session: Buffer | undefined;
  /** Which worker process and thread served the request. */
  readonly who: string;
}

/** One connection with one HTTP/1.1 request, read to its end; `session` is offered for resumption. */
function visit(port: number, version: tls.SecureVersion, session?: Buffer): Promise<Visit> {
  return new Promise((resolve, reject) => {
    let next: Buffer | undefined;
    let reused = false;
    let text = '';
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, session, minVersion: version, maxVersion: version, ALPNProtocols: ['http/1.1'] });
    s.setTimeout(10000, () => s.destroy(new Error('timed out')));
    s.on('session', (t: Buffer) => (next = t));
    s.on('secureConnect', () => {
      reused = s.isSessionReused();
      s.end('GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('error', reject);
    s.on('close', () => {
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      try {
        const { pid, thread } = JSON.parse(body) as { pid: number; thread: number };
        resolve({ reused, session: next, who: `${pid}/${thread}` });
      } catch {
        reject(new Error(`no JSON answer: ${JSON.stringify(text)}`));
      }
    });
  });
}

/**
 * Reconnects with one session, 12 times, and on until two workers (or threads) have served them, 60 times at
 * most: which one accepts a connection is the kernel's choice, and it gave all 12 to one of three workers in
 * one CI run. How many connections there were, how many resumed, and how many workers served them.
 */
async function reconnects(port: number, version: tls.SecureVersion, session: Buffer): Promise<{ visits: number; resumed: number; servers: number }> {
  let resumed = 0;
  let visits = 0;
  const who = new Set<string>();
  while (visits < 12 || (who.size < 2 && visits < 60)) {
    const v = await visit(port, version, session);
    visits++;
    if (v.reused) resumed++;
    who.add(v.who);
  }
  return { visits, resumed, servers: who.size };
}

async function start(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ s: Server; port: number }> {
  const s = new Server(['-b', '127.0.0.1:0', ...TLS_ARGS, ...args, APP], { env });
  const port = await s.port();
  await s.waitFor(/Ready: \d+ worker/);
  return { s, port };
}

describe('TLS session tickets shared by workers and threads', () => {
  const cases: [string, string[]][] = [
    ['3 async workers (HTTP/2 server)', ['-w', '3', '-k', 'async']],
    ['3 sync workers (--http-protocols h1)', ['-w', '3', '-k', 'sync', '--http-protocols', 'h1']],
    ['3 gthread threads', ['-w', '1', '-k', 'gthread', '--threads', '3']],
  ];
  for (const [name, args] of cases) {
    it(`${name}: 12 reconnects all resume, TLS 1.2 and 1.3`, async () => {
      const { s, port } = await start(args);
      try {
        for (const version of VERSIONS) {
          const first = await visit(port, version);
          assert.ok(first.session, `${version}: the server sent a session ticket`);
          const r = await reconnects(port, version, first.session);
          // Served by one worker only, the test would say nothing about sharing.
          assert.ok(r.servers >= 2, `${version}: the ${r.visits} connections reached ${r.servers} worker/thread only`);
          assert.equal(r.resumed, r.visits, `${version}: ${r.resumed} of ${r.visits} reconnects resumed (${r.servers} workers/threads served them)`);
        }
      } finally {
        await s.kill();
      }
    });
  }

  it('HUP keeps the keys: a session made before it resumes on the new workers', async () => {
    const { s, port } = await start(['-w', '3']);
    try {
      const before = await Promise.all(VERSIONS.map((v) => visit(port, v)));
      const old = await s.workersBooted(3);
      const from = s.log.length;
      s.signal('SIGHUP');
      const fresh = await s.workersBooted(3, from);
      // Every old worker has exited: only the new ones serve.
      await until(() => old.every((pid) => s.log.includes(`Worker exited (pid: ${pid})`)), 20000, 'the old workers to exit');
      for (const [i, version] of VERSIONS.entries()) {
        let resumed = 0;
        for (let n = 0; n < 12; n++) {
          const v = await visit(port, version, before[i]!.session);
          assert.ok(fresh.includes(Number(v.who.split('/')[0])), `${v.who} is a new worker`);
          if (v.reused) resumed++;
        }
        assert.equal(resumed, 12, `${version}: ${resumed} of 12 reconnects after HUP resumed a session made before it`);
      }
    } finally {
      await s.kill();
    }
  });

  it('rotation: once every worker has the new keys, an older session is not resumed and a newer one is', async () => {
    const { s, port } = await start(['-w', '3', '--log-level', 'debug'], { TUNICORN_TEST_TICKET_KEY_PERIOD_MS: '4000' });
    try {
      // The master's line when it makes new keys, and each worker's when it took them.
      const MADE = /\[DEBUG\] TLS session-ticket keys rotated: tickets issued before now/;
      const TOOK = /TLS session-ticket keys rotated: this server issues/;
      const settled = () => s.count(TOOK) === 3 * s.count(MADE);
      const from = s.log.length;
      const before = await visit(port, 'TLSv1.2');
      // A rotation begun after that session was issued, taken by every worker.
      await s.waitFor(MADE, 15000, from);
      const made = s.count(MADE);
      await until(() => s.count(TOOK) >= 3 * made, 15000, 'the 3 workers to take the new keys');
      for (let n = 0; n < 6; n++) assert.equal((await visit(port, 'TLSv1.2', before.session)).reused, false, 'a session from before the rotation is not resumed');
      // A later rotation during the check would end the new session too: then check again, after it.
      for (let attempt = 0; ; attempt++) {
        await until(settled, 15000, 'every worker to take the new keys');
        const took = s.count(TOOK);
        const after = await visit(port, 'TLSv1.2');
        const r = await reconnects(port, 'TLSv1.2', after.session!);
        if (s.count(TOOK) !== took || !settled()) {
          assert.ok(attempt < 3, 'a rotation came during every check');
          continue;
        }
        assert.equal(r.resumed, r.visits, `${r.resumed} of ${r.visits} reconnects resumed a session made after the rotation`);
        break;
      }
      // The keys themselves are in no log line.
      assert.doesNotMatch(s.log, /[A-Za-z0-9+/]{64}/);
    } finally {
      await s.kill();
    }
  });

  it('the keys are not in the environment, argv or --print-config of the master or a worker', async () => {
    const { s } = await start(['-w', '1']);
    try {
      const [worker] = await s.workersBooted(1);
      for (const pid of [s.child.pid!, worker!]) {
        const env = readFileSync(`/proc/${pid}/environ`, 'latin1');
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
        assert.doesNotMatch(env + argv, /ticket/i);
      }
    } finally {
      await s.kill();
    }
    const printed = execFileSync(process.execPath, [CLI, '--print-config', ...TLS_ARGS, APP], { encoding: 'utf8' });
    assert.doesNotMatch(printed, /ticket/i);
  });
});
