/**
 * Each worker's number for the app, over the real CLI: TUNICORN_WORKER_ID (its slot, 1..N) and NODE_APP_INSTANCE
 * (PM2's, 0..N-1) in its environment.
 * - at start, the workers have 1..N, one each; a request sees its worker's number
 * - a crashed worker's replacement takes its number; HUP's new workers take 1..N again
 * - TTIN adds N+1 and TTOU stops the highest number (Gunicorn's oldest-first would leave 2..N+1); a TTOU that
 *   stops the booting replacement of a worker past max_requests stops that worker too
 * - a NODE_APP_INSTANCE of the environment or raw_env is kept; gthread's threads share their process's number
 * - under PM2 (pm_id in the master's environment) PM2's NODE_APP_INSTANCE, the master's, is not every worker's;
 *   nor is the variable its instance_var names instead
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { childrenOf, FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';

after(stopAll);

const APP = path.join(FIXTURES, 'worker-number.mjs');

interface Seen {
  pid: number;
  thread: number;
  id?: string;
  instance?: string;
  renamed?: string;
}

/** What each worker (process and thread) said when it loaded the app, from the log's offset `from`. */
function said(s: Server, from = 0): Seen[] {
  return [...s.log.slice(from).matchAll(/^worker-number (\{.*\})$/gm)].map((m) => JSON.parse(m[1]!) as Seen);
}

/** The number of each live worker of `s`, sorted, once every live worker has said it and `n` are live. */
async function numbersOfLive(s: Server, n: number): Promise<string[]> {
  let ids: string[] = [];
  await until(
    () => {
      const live = childrenOf(s.pid);
      const byPid = new Map(said(s).map((x) => [x.pid, x.id]));
      if (live.length !== n || !live.every((p) => byPid.has(p))) return false;
      ids = live.map((p) => byPid.get(p)!).sort();
      return true;
    },
    20000,
    `${n} live workers that said their number; log:\n${s.log}`,
  );
  return ids;
}

describe('the worker number (TUNICORN_WORKER_ID, NODE_APP_INSTANCE)', () => {
  it('gives 1..N at start, to a crashed worker\'s replacement, after HUP, TTIN and TTOU', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '3', APP]);
    const port = await s.port();
    await s.waitFor(/Ready: 3 worker\(s\)/);
    assert.deepEqual(await numbersOfLive(s, 3), ['1', '2', '3']);
    for (const x of said(s)) assert.equal(Number(x.instance), Number(x.id) - 1, JSON.stringify(x));
    const r = JSON.parse((await request(port, '/')).body) as Seen;
    assert.equal(said(s).find((x) => x.pid === r.pid)?.id, r.id);

    // A crash: the replacement takes the dead worker's number.
    const two = said(s).find((x) => x.id === '2')!.pid;
    let from = s.log.length;
    process.kill(two, 'SIGKILL');
    await until(() => said(s, from).length === 1, 20000, `the replacement; log:\n${s.log}`);
    assert.equal(said(s, from)[0]!.id, '2');
    assert.deepEqual(await numbersOfLive(s, 3), ['1', '2', '3']);

    // HUP: the new workers take 1..3 while the old ones still serve with theirs; then only they are left.
    const old = childrenOf(s.pid);
    from = s.log.length;
    s.signal('SIGHUP');
    await until(() => said(s, from).length === 3, 20000, `3 new workers; log:\n${s.log}`);
    assert.deepEqual(said(s, from).map((x) => x.id).sort(), ['1', '2', '3']);
    await until(() => !childrenOf(s.pid).some((p) => old.includes(p)), 20000, 'the old workers gone');
    assert.deepEqual(await numbersOfLive(s, 3), ['1', '2', '3']);

    // TTIN: number 4; TTOU: the worker with number 4 stops, 1..3 stay.
    from = s.log.length;
    s.signal('SIGTTIN');
    await until(() => said(s, from).length === 1, 20000, `the added worker; log:\n${s.log}`);
    assert.equal(said(s, from)[0]!.id, '4');
    await numbersOfLive(s, 4);
    s.signal('SIGTTOU');
    await s.waitFor(/Number of workers: 4 -> 3/, 10000, from);
    assert.deepEqual(await numbersOfLive(s, 3), ['1', '2', '3']);
    await s.kill();
  });

  it('TTOU that stops the booting replacement of a worker past max_requests stops that worker too', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', '--max-requests', '3', APP], { env: { BOOT_MS: '2000' } });
    const port = await s.port();
    await s.waitFor(/Ready: 2 worker\(s\)/, 20000);
    // Three requests on one connection to the worker numbered 2: it reaches max_requests, and its
    // replacement (number 2 too) boots for 2 s while it serves on.
    let two = 0;
    for (let i = 0; i < 50 && two === 0; i++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const first = JSON.parse((await request(port, '/', { agent })).body) as Seen;
      if (first.id === '2') {
        two = first.pid;
        for (let j = 0; j < 2; j++) assert.equal((JSON.parse((await request(port, '/', { agent })).body) as Seen).pid, two);
      }
      agent.destroy();
    }
    assert.ok(two, 'no connection reached the worker numbered 2');
    await s.waitFor(new RegExp(`Worker ${two} reached max_requests`));
    await until(() => childrenOf(s.pid).length === 3, 10000, `the replacement started; log:\n${s.log}`);
    // TTOU stops the highest number: the replacement, still booting. The worker it was to replace, past its
    // max_requests, must not serve on with no replacement ever to be ready.
    s.signal('SIGTTOU');
    await s.waitFor(new RegExp(`Worker exited \\(pid: ${two}\\)`), 10000);
    assert.deepEqual(await numbersOfLive(s, 1), ['1']);
    await s.kill();
  });

  it('keeps a NODE_APP_INSTANCE of the environment or raw_env, and gives gthread\'s threads their process\'s number', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', '-k', 'gthread', '--threads', '2', '-e', 'NODE_APP_INSTANCE=7', APP]);
    await s.port();
    await s.waitFor(/Ready: 2 worker\(s\)/);
    await until(() => said(s).length === 4, 20000, `4 threads said their number; log:\n${s.log}`);
    const seen = said(s);
    for (const x of seen) assert.equal(x.instance, '7');
    const byPid = new Map<number, Set<string | undefined>>();
    for (const x of seen) byPid.set(x.pid, (byPid.get(x.pid) ?? new Set()).add(x.id));
    assert.equal(byPid.size, 2);
    assert.deepEqual([...byPid.values()].map((ids) => [...ids].join()).sort(), ['1', '2']);
    await s.kill();

    const e = new Server(['-b', '127.0.0.1:0', '-w', '1', APP], { env: { NODE_APP_INSTANCE: 'mine' } });
    await e.port();
    await e.waitFor(/Ready: 1 worker\(s\)/);
    await until(() => said(e).length === 1, 20000, `the worker said its number; log:\n${e.log}`);
    assert.deepEqual([said(e)[0]!.id, said(e)[0]!.instance], ['1', 'mine']);
    await e.kill();
  });

  it("gives each worker its own NODE_APP_INSTANCE when PM2 runs the master (PM2's 0 is the master's number)", async () => {
    // The environment `pm2 start tunicorn -- app.mjs` gives the master (PM2 6, fork mode).
    const env = { pm_id: '0', instance_var: 'NODE_APP_INSTANCE', NODE_APP_INSTANCE: '0' };
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', APP], { env });
    await s.port();
    await s.waitFor(/Ready: 2 worker\(s\)/);
    await until(() => said(s).length === 2, 20000, `2 workers said their number; log:\n${s.log}`);
    assert.deepEqual(said(s).map((x) => `${x.id}:${x.instance}`).sort(), ['1:0', '2:1']);
    await s.kill();

    // raw_env still sets it, under PM2 too.
    const r = new Server(['-b', '127.0.0.1:0', '-w', '1', '-e', 'NODE_APP_INSTANCE=7', APP], { env });
    await r.port();
    await r.waitFor(/Ready: 1 worker\(s\)/);
    await until(() => said(r).length === 1, 20000, `the worker said its number; log:\n${r.log}`);
    assert.equal(said(r)[0]!.instance, '7');
    await r.kill();

    // PM2's instance_var renamed its number (INSTANCE_ID, kept out of node-config's way): that one is each
    // worker's too, unless raw_env sets it.
    const renamed = { pm_id: '0', instance_var: 'INSTANCE_ID', INSTANCE_ID: '0' };
    const n = new Server(['-b', '127.0.0.1:0', '-w', '2', APP], { env: { ...renamed, WORKER_NUMBER_VAR: 'INSTANCE_ID' } });
    await n.port();
    await n.waitFor(/Ready: 2 worker\(s\)/);
    await until(() => said(n).length === 2, 20000, `2 workers said their number; log:\n${n.log}`);
    assert.deepEqual(said(n).map((x) => `${x.id}:${x.renamed}`).sort(), ['1:0', '2:1']);
    await n.kill();
    const k = new Server(['-b', '127.0.0.1:0', '-w', '1', '-e', 'INSTANCE_ID=7', APP], { env: { ...renamed, WORKER_NUMBER_VAR: 'INSTANCE_ID' } });
    await k.port();
    await k.waitFor(/Ready: 1 worker\(s\)/);
    await until(() => said(k).length === 1, 20000, `the worker said its number; log:\n${k.log}`);
    assert.equal(said(k)[0]!.renamed, '7');
    await k.kill();

    // --preload: the master's copy of the app has no number, as outside PM2 (a job gated on PM2's '0' ran in the
    // master beside worker 1).
    const p = new Server(['-b', '127.0.0.1:0', '-w', '1', '--preload', APP], { env });
    await p.port();
    await p.waitFor(/Ready: 1 worker\(s\)/);
    await until(() => said(p).length === 2, 20000, `the master and the worker said their number; log:\n${p.log}`);
    const master = said(p).find((x) => x.pid === p.pid);
    assert.ok(master, `the master's copy said its number; log:\n${p.log}`);
    assert.deepEqual([master.id, master.instance], [undefined, undefined]);
    assert.deepEqual(said(p).filter((x) => x.pid !== p.pid).map((x) => `${x.id}:${x.instance}`), ['1:0']);
    await p.kill();
  });
});
