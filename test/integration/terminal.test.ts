/**
 * A server run in a terminal, as a developer runs it: the master leads its process group (as a shell's job
 * does; the test helper starts it `detached`), and the terminal signals the whole group, workers included.
 *
 * Checks:
 * - closing the terminal (SIGHUP to the group) reloads the server, as HUP to the master does; the workers
 *   are not killed by the HUP they get too: the requests they run are answered, and the master logs no
 *   "killed by SIGHUP";
 * - the server still serves afterwards, and TERM stops it with status 0 and no process left;
 * - Ctrl-C twice (SIGINT to the group, twice): the quick stop, status 0, no worker left behind.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { alive, childrenOf, FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';

after(stopAll);

describe('signals from a terminal to the process group', () => {
  it('SIGHUP to the group (the terminal closed) reloads gracefully: no worker dies of it, no request is lost', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', `${FIXTURES}listener.ts`]);
    const port = await s.port();
    await s.waitFor(/Ready: 2 worker\(s\) serving/);
    const old = childrenOf(s.pid);
    const slow = [1, 2, 3].map(() => request(port, '/sleep?ms=1500&note'));
    await s.waitFor(/(?:[\s\S]*?app: sleeping 1500 ms){3}/);
    process.kill(-s.pid, 'SIGHUP');
    const replies = await Promise.all(slow);
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200], s.log);
    const from = s.log.indexOf('Handling signal: hup');
    assert.ok(from >= 0, s.log);
    await s.waitFor(/Ready: 2 worker\(s\) serving/, 20000, from);
    assert.doesNotMatch(s.log, /killed by SIGHUP/);
    await until(() => old.every((p) => !alive(p)), 10000, 'the old workers to exit');
    assert.equal((await request(port, '/')).status, 200);
    assert.ok(alive(s.pid), 'the master runs on');
    const fresh = childrenOf(s.pid);
    s.signal('SIGTERM');
    assert.deepEqual(await s.exited, { code: 0, signal: null }, s.log);
    await until(() => fresh.every((p) => !alive(p)), 10000, 'the workers to exit');
  });

  it('Ctrl-C twice (SIGINT to the group) stops quickly with status 0 and leaves no worker', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', `${FIXTURES}listener.ts`]);
    await s.waitFor(/Ready: 2 worker\(s\) serving/);
    const workers = childrenOf(s.pid);
    assert.equal(workers.length, 2);
    process.kill(-s.pid, 'SIGINT');
    process.kill(-s.pid, 'SIGINT');
    assert.deepEqual(await s.exited, { code: 0, signal: null }, s.log);
    await until(() => workers.every((p) => !alive(p)), 10000, 'the workers to exit');
    assert.match(s.log, /Shutting down: Master/);
  });
});
