/** Worker-side pieces: the descriptor layout, pausing accepting, queue time. */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type net from 'node:net';
import { describe, it, mock } from 'node:test';
import { listenerLayout } from '../../src/protocol/messages.js';
import { AcceptSwitch } from '../../src/workers/accept-switch.js';
import { DescriptorWatch } from '../../src/workers/descriptor-watch.js';
import { threadOnlyHint } from '../../src/workers/thread-hints.js';
import { Leases, type LeasedHandle } from '../../src/workers/leases.js';
import type { WorkerMessage } from '../../src/protocol/messages.js';
import { AcceptTimes, parseRequestStart, queueTable, queueTime } from '../../src/workers/queue-time.js';
import type { Serving } from '../../src/workers/serving.js';
import { compileAccessFormat } from '../../src/logging/access-log.js';
import { pm2NumberVars, workerNumberEnv } from '../../src/arbiter/arbiter.js';

describe('listenerLayout', () => {
  it('puts copy c of listener i at 5 + c * count + i', () => {
    assert.deepEqual(listenerLayout(['a', 'b'], 1), [
      { fd: 5, fds: [5], url: 'a' },
      { fd: 6, fds: [6], url: 'b' },
    ]);
    assert.deepEqual(listenerLayout(['a', 'b'], 3).map((l) => l.fds), [[5, 7, 9], [6, 8, 10]]);
  });
});

class FakeServing {
  acceptorsClosed = false;
  readonly events: string[] = [];
  closeAcceptor(i: number): void {
    this.events.push(`close ${i}`);
  }
  acceptorFd(i: number): number {
    return 10 + i;
  }
  async listenAcceptor(i: number, h: unknown): Promise<void> {
    this.events.push(`listen ${i} ${typeof h === 'number' ? `fd ${h}` : (h as { n: number }).n}`);
  }
}

class FakeLeases {
  n = 0;
  readonly pending: ((h: LeasedHandle) => void)[] = [];
  readonly closed: number[] = [];
  request(): Promise<LeasedHandle> {
    return new Promise((resolve) => this.pending.push(resolve));
  }
  deliver(): void {
    const n = ++this.n;
    this.pending.shift()!({ n, close: () => this.closed.push(n) } as LeasedHandle);
  }
}

const tick = () => new Promise((r) => setImmediate(r));

describe('AcceptSwitch', () => {
  it('closes every listener on pause and asks for duplicates; listens on them on resume', async () => {
    const serving = new FakeServing();
    const leases = new FakeLeases();
    const sw = new AcceptSwitch(serving as unknown as Serving, leases as unknown as Leases, 2);
    sw.pause();
    assert.deepEqual(serving.events, ['close 0', 'close 1']);
    assert.equal(leases.pending.length, 2);
    leases.deliver();
    leases.deliver();
    await tick();
    assert.deepEqual(serving.events, ['close 0', 'close 1'], 'no listening while paused');
    sw.resume();
    await tick();
    assert.deepEqual(serving.events.slice(2), ['listen 0 1', 'listen 1 2']);
    assert.equal(leases.pending.length, 2, 'the next duplicates are asked for as soon as these are used');
  });

  it('keeps a duplicate that arrives after a new pause for the next resume', async () => {
    const serving = new FakeServing();
    const leases = new FakeLeases();
    const sw = new AcceptSwitch(serving as unknown as Serving, leases as unknown as Leases, 1);
    sw.pause();
    sw.resume();
    sw.pause();
    leases.deliver();
    await tick();
    assert.deepEqual(serving.events, ['close 0']);
    sw.resume();
    await tick();
    assert.deepEqual(serving.events, ['close 0', 'listen 0 1']);
    // One duplicate served both pauses; the one pending now is the next resume's, asked for ahead.
    assert.equal(leases.pending.length, 1, 'one duplicate was enough, and the next is on its way');
  });

  it('closes a duplicate that arrives after the server closed its listeners', async () => {
    const serving = new FakeServing();
    const leases = new FakeLeases();
    const sw = new AcceptSwitch(serving as unknown as Serving, leases as unknown as Leases, 1);
    sw.pause();
    sw.resume();
    serving.acceptorsClosed = true;
    leases.deliver();
    await tick();
    assert.deepEqual(leases.closed, [1]);
    assert.deepEqual(serving.events, ['close 0']);
  });
});

describe('AcceptSwitch with duplicates made in the worker', () => {
  it('duplicates each descriptor before closing it, listens on the copy, and never asks the master', async () => {
    const serving = new FakeServing();
    const sent: WorkerMessage[] = [];
    let next = 100;
    const dup = (fd: number) => {
      serving.events.push(`dup ${fd}`);
      return next++;
    };
    const sw = new AcceptSwitch(serving as unknown as Serving, new Leases((m) => sent.push(m), dup), 2);
    sw.pause();
    assert.deepEqual(serving.events, ['dup 10', 'close 0', 'dup 11', 'close 1']);
    sw.resume();
    await tick();
    assert.deepEqual(serving.events.slice(4), ['listen 0 fd 100', 'listen 1 fd 101']);
    sw.pause();
    sw.resume();
    await tick();
    assert.deepEqual(serving.events.slice(6), ['dup 10', 'close 0', 'dup 11', 'close 1', 'listen 0 fd 102', 'listen 1 fd 103']);
    assert.deepEqual(sent, [], 'no lease message');
  });

  it('asks the master when the copy fails, or the descriptor is unknown', async () => {
    const sent: WorkerMessage[] = [];
    const leases = new Leases((m) => sent.push(m), () => -24 /* -EMFILE */);
    void leases.request(0, 7);
    void leases.request(1);
    assert.deepEqual(sent, [{ t: 'lease', listener: 0 }, { t: 'lease', listener: 1 }]);
    assert.equal(new Leases(() => {}).local, false);
  });
});

describe('queue time', () => {
  it('reads X-Request-Start in seconds, milliseconds or microseconds', () => {
    assert.equal(parseRequestStart('t=1700000000.5'), 1700000000500);
    assert.equal(parseRequestStart('1700000000500'), 1700000000500);
    assert.equal(parseRequestStart('t=1700000000500000'), 1700000000500);
    assert.equal(parseRequestStart('soon'), undefined);
    assert.equal(parseRequestStart(undefined), undefined);
  });

  it('queueTime(req): undefined outside a worker, then what the worker recorded, else 0', () => {
    const req = {} as IncomingMessage;
    const key = Symbol.for('tunicorn.queueTimes');
    const g = globalThis as Record<symbol, unknown>;
    const before = g[key];
    delete g[key];
    try {
      assert.equal(queueTime(req), undefined);
      const running = new Map<IncomingMessage, number>([[req, 12.5]]);
      const table = queueTable((r) => running.get(r));
      assert.equal(table.asked, false, 'nothing is recorded before anything asks');
      // The first call finds a running request in the worker's own table, and turns recording on.
      assert.equal(queueTime(req), 12.5);
      assert.equal(table.asked, true);
      const later = {} as IncomingMessage;
      table.times.set(later, 3);
      assert.equal(queueTime(later), 3);
      assert.equal(queueTime({} as IncomingMessage), 0);
      assert.equal(Object.getOwnPropertySymbols(req).length, 0, 'nothing is written on the request');
    } finally {
      if (before === undefined) delete g[key];
      else g[key] = before;
    }
  });

  it('AcceptTimes: a connection\'s accept time goes to its first request only, by descriptor and socket', () => {
    const times = new AcceptTimes();
    const sock = (fd: number) => ({ _handle: { fd } }) as unknown as net.Socket;
    const a = sock(7);
    const b = sock(9);
    const tls = { _parent: b, _handle: { fd: 9 } } as unknown as net.Socket;
    assert.equal(times.take(a), undefined);
    assert.equal(times.accepted(a, 5), 7);
    assert.equal(times.accepted(b, 6), 9);
    assert.equal(times.take(a), 5);
    assert.equal(times.take(a), undefined, 'the second request on the connection did not wait');
    assert.equal(times.take(tls), 6, 'a TLS socket finds the accepted socket it wraps');
    // Descriptor 7 is reused before the old socket's 'close' has run: the late forget leaves the new one.
    times.accepted(a, 8);
    const reused = sock(7);
    times.accepted(reused, 10);
    times.forget(a, 7);
    assert.equal(times.take(a), undefined);
    assert.equal(times.take(reused), 10);
    // A connection that closed before its first request is forgotten once; the count of waiting ones stays
    // right (a count too low would hide the next connection's time).
    const c = sock(11);
    times.accepted(c, 12);
    times.forget(c, 11);
    times.forget(c, 11);
    const d = sock(11);
    times.accepted(d, 13);
    assert.equal(times.take(d), 13);
    assert.equal(times.accepted({ _handle: null } as unknown as net.Socket, 1), -1, 'no descriptor, no entry');
    assert.deepEqual(Object.keys(a), ['_handle'], 'nothing is written on the socket');
  });

  it('is the %(Q)s access-log atom, in milliseconds', () => {
    const f = compileAccessFormat('%(Q)s');
    const e = { req: {}, res: {}, start: 0, end: 1 } as never;
    assert.equal(f({ ...(e as object), queue: 12.6 } as never), '13');
    assert.equal(f(e), '-');
  });
});

describe('ThreadSlots', () => {
  it('shows the request each thread runs, longest first, and forgets it when done', async () => {
    const { ThreadSlots } = await import('../../src/workers/thread-slots.js');
    const slots = new ThreadSlots(2);
    const reader = new ThreadSlots(2, slots.sab);
    const a = slots.writer(0);
    const b = slots.writer(1);
    a.begin('GET', '/slow?x=1', Date.now());
    await new Promise((r) => setTimeout(r, 20));
    b.begin('POST', '/fast', Date.now());
    const running = reader.running();
    assert.deepEqual(running.map((r) => `${r.method} ${r.url}`), ['GET /slow?x=1', 'POST /fast']);
    assert.ok(running[0]!.ms >= running[1]!.ms);
    a.end(0);
    assert.deepEqual(reader.running().map((r) => r.url), ['/fast']);
  });
});

describe('threadOnlyHint', () => {
  it('names the fix for a native addon that cannot load in a thread, and nothing else', () => {
    assert.match(threadOnlyHint("app a.cjs failed to load: Module did not self-register: '/x/legacy.node'."), /not context-aware .*-k async or -k sync$/);
    assert.equal(threadOnlyHint('app a.ts failed to load: Cannot find module ./x'), '');
  });
  it('names the setting that replaces a process-wide call a thread may not make, or the other classes alone', () => {
    assert.match(threadOnlyHint('app a.mjs failed to load: process.chdir() is not supported in workers'), /where process\.chdir\(\) cannot be called: set --chdir \(chdir\) instead, or serve this app with -k async or -k sync$/);
    assert.match(threadOnlyHint('Setting process.umask() is not supported in workers'), /process\.umask\(\) with a mask cannot be called: set --umask/);
    assert.match(threadOnlyHint('process.setgroups() is not supported in workers'), /set --user and --initgroups instead/);
    assert.match(threadOnlyHint('process.abort() is not supported in workers'), /process\.abort\(\) cannot be called: serve this app with -k async or -k sync$/);
  });
});

describe('DescriptorWatch', () => {
  it('says once per episode that an accepted descriptor reached the open-file limit, and again after the count fell', () => {
    mock.timers.enable({ apis: ['setInterval'] });
    try {
      const said: [number, number][] = [];
      // A limit far above what this process holds: the count taken every 5 s is well under it.
      const watch = new DescriptorWatch((open, limit) => said.push([open, limit]), 10_000);
      watch.accepted(-1);
      watch.accepted(9_000);
      watch.accepted(9_997);
      assert.deepEqual(said, [], 'under the limit less 2: nothing');
      watch.accepted(9_998);
      assert.deepEqual(said, [[9_999, 10_000]], 'N others are open: at least N + 1 with this one');
      watch.accepted(9_999);
      assert.equal(said.length, 1, 'the same episode');
      mock.timers.tick(5000);
      watch.accepted(9_999);
      assert.equal(said.length, 2, 'the count fell under 90 % of the limit: a new episode is said again');
    } finally {
      mock.timers.reset();
    }
  });

  it('does nothing where the limit is not known', () => {
    const said: number[] = [];
    const watch = new DescriptorWatch((open) => said.push(open), null);
    watch.accepted(1_000_000);
    assert.deepEqual(said, []);
  });
});

describe('workerNumberEnv and pm2NumberVars', () => {
  const pm2 = { pm_id: '3', instance_var: 'NODE_APP_INSTANCE', NODE_APP_INSTANCE: '0' };
  it("gives each worker its number, keeping the environment's NODE_APP_INSTANCE outside PM2", () => {
    assert.deepEqual(workerNumberEnv({}, 2), { TUNICORN_WORKER_ID: '2', NODE_APP_INSTANCE: '1' });
    assert.deepEqual(workerNumberEnv({ NODE_APP_INSTANCE: '9' }, 2), { TUNICORN_WORKER_ID: '2', NODE_APP_INSTANCE: '9' });
  });
  it("replaces PM2's number (the master's) unless raw_env sets it", () => {
    assert.deepEqual(pm2NumberVars(pm2), ['NODE_APP_INSTANCE']);
    assert.equal(workerNumberEnv({ ...pm2 }, 2).NODE_APP_INSTANCE, '1');
    assert.deepEqual(pm2NumberVars(pm2, { NODE_APP_INSTANCE: '7' }), []);
    assert.equal(workerNumberEnv({ ...pm2, NODE_APP_INSTANCE: '7' }, 2, { NODE_APP_INSTANCE: '7' }).NODE_APP_INSTANCE, '7');
  });
  it("follows PM2's instance_var, never to a name that is not a variable's or is tunicorn's", () => {
    const renamed = { pm_id: '0', instance_var: 'INSTANCE_ID', INSTANCE_ID: '0' };
    assert.deepEqual(pm2NumberVars(renamed), ['INSTANCE_ID']);
    assert.deepEqual(workerNumberEnv({ ...renamed }, 3), { ...renamed, INSTANCE_ID: '2', TUNICORN_WORKER_ID: '3', NODE_APP_INSTANCE: '2' });
    assert.deepEqual(pm2NumberVars({ pm_id: '0', instance_var: 'TUNICORN_WORKER_ID' }), []);
    assert.deepEqual(pm2NumberVars({ pm_id: '0', instance_var: 'A-B' }), []);
    assert.deepEqual(pm2NumberVars({ pm_id: '0', instance_var: '' }), []);
    assert.deepEqual(pm2NumberVars({ NODE_APP_INSTANCE: '0' }), []);
  });
});
