/**
 * Core: the real CLI on port 0.
 * - serves a TypeScript (req, res) listener and a Fetch handler, loaded as they are
 * - the kernel spreads connections between workers sharing one socket; the master never accepts
 * - a worker killed with SIGKILL is replaced, and the log says so
 * - a worker whose event loop is blocked past --timeout is killed; the log names the request
 * - TTIN / TTOU change the worker count; HUP replaces every worker
 * - TERM lets a request in flight finish, then the master exits 0
 * - the workers exit when the master is SIGKILLed (no orphans)
 * - an app that cannot load stops the master with status 1 and the cause
 * - a log or pidfile that cannot be written is one line and status 1, before binding; --check-config checks
 *   them; a USR1 reopen that fails is logged and the files already open stay in use
 * - max_requests recycles a worker with no failed request
 * - pidfile, process titles, USR1 log reopening, hooks, access log
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { exchange } from '../helpers/raw.js';
import { alive, beatFilesOf, beatGaps, childrenOf, FIXTURES, lastBeatOf, request, requestUntilServed, Server, stopAll, until, within } from '../helpers/server.js';
import { MASTER_NODE_FLAGS } from '../../src/cli/node-flags.js';
import { selfSigned } from '../helpers/tls.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const tmp = scratchDir('tunicorn-core-');
const fx = (name: string) => path.join(FIXTURES, name);

/** A port the kernel picked whose next `count - 1` ports were free too when the function looked. */
async function freePortRun(count: number): Promise<number> {
  const listen = (port: number) =>
    new Promise<net.Server | null>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(null));
      srv.listen(port, '127.0.0.1', () => resolve(srv));
    });
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = await listen(0);
    const base = (first!.address() as net.AddressInfo).port;
    const held = [first!];
    for (let i = 1; i < count && base + i <= 65535; i++) {
      const next = await listen(base + i);
      if (!next) break;
      held.push(next);
    }
    await Promise.all(held.map((h) => new Promise((r) => h.close(r))));
    if (held.length === count) return base;
  }
  throw new Error(`no ${count} free ports in a row after 20 tries`);
}

async function start(args: string[], env?: NodeJS.ProcessEnv): Promise<{ s: Server; port: number }> {
  const s = new Server(['-b', '127.0.0.1:0', ...args], { env });
  const port = await s.port();
  return { s, port };
}

describe('serving', () => {
  // The first tests to import TypeScript: on a loaded machine the workers' first compile can outlast a request's
  // 10 s timeout, so the request waits for the workers, not in the backlog (a CI run: 11 s, against 0.7 s alone).
  it('serves a TypeScript (req, res) listener', async () => {
    const { s, port } = await start([fx('listener.ts')]);
    await s.waitFor(/Ready: /, 30000);
    const r = await request(port, '/');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { message: 'Hello World' });
    assert.match(s.log, /Starting tunicorn \d+\.\d+\.\d+/);
    assert.match(s.log, /Using worker: async/);
    assert.match(s.log, /Booting worker with pid: \d+/);
    await s.kill();
  });

  it('serves a TypeScript Fetch handler, with its body and headers', async () => {
    const { s, port } = await start([fx('fetch.ts')]);
    await s.waitFor(/Ready: /, 30000);
    const r = await request(port, '/');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).message, 'Hello World');
    const e = await request(port, '/echo', { method: 'POST', body: 'ping', headers: { 'content-type': 'text/plain' } });
    assert.equal(e.body, 'ping');
    assert.equal(e.headers['x-method'], 'POST');
    const h = await request(port, '/headers', { headers: { 'user-agent': 'tester/1' } });
    assert.equal(JSON.parse(h.body).ua, 'tester/1');
    await s.kill();
  });

  it('answers 500 when the app throws, logs the stack, and the worker lives on', async () => {
    const { s, port } = await start([fx('listener.ts')]);
    const first = JSON.parse((await request(port, '/pid')).body).pid;
    const r = await request(port, '/throw');
    assert.equal(r.status, 500);
    assert.doesNotMatch(r.body, /boom/);
    // The stack keeps the app's frames; those of tunicorn and Node that called it are counted on a last line.
    const logged = await s.waitFor(/Error handling request GET \/throw\nError: boom from the app\n((?: {4}.*\n)+)/);
    assert.match(logged[1]!, /listener\.ts:\d+/);
    assert.match(logged[1]!, /\(\d+ frames of Node and tunicorn left out; --log-level debug shows them\)\n$/);
    assert.doesNotMatch(logged[1]!, /dist\/workers|\(node:/);
    assert.equal(JSON.parse((await request(port, '/pid')).body).pid, first);
    await s.kill();
  });

  it('a reason phrase with CR LF is a 500 with its own reason phrase, and the worker lives on', async () => {
    // The app's bad reason phrase stayed on the response: the 500 threw again, out of the worker, and the
    // client waited for the worker's stop (24 s) to get nothing.
    const { s, port } = await start(['-w', '1', fx('listener.ts')]);
    const first = JSON.parse((await request(port, '/pid')).body).pid;
    const { responses } = await exchange(port, [{ send: 'GET /bad-reason HTTP/1.1\r\nHost: x\r\n\r\n' }], { want: 1, waitClose: true, ms: 10000 });
    assert.equal(responses.length, 1);
    assert.equal(responses[0]!.status, 500);
    assert.equal(responses[0]!.reason, 'Internal Server Error');
    assert.equal(responses[0]!.headers['x-injected'], undefined);
    await s.waitFor(/Error handling request GET \/bad-reason\n.*Invalid character in statusMessage/);
    assert.equal(JSON.parse((await request(port, '/pid')).body).pid, first);
    assert.doesNotMatch(s.log, /Uncaught exception/);
    await s.kill();
  });

  it('a thrown value with no toString (null prototype): 500, one line that shows it, and the worker lives on', async () => {
    const { s, port } = await start(['-w', '1', fx('listener.ts')]);
    const first = JSON.parse((await request(port, '/pid')).body).pid;
    // The report itself threw (`Cannot convert object to primitive value`): no 500, and the worker retired.
    const r = await request(port, '/throw-null-proto', { timeout: 10000 });
    assert.equal(r.status, 500);
    await s.waitFor(/\[ERROR\] Error handling request GET \/throw-null-proto\n\[Object: null prototype\] \{ code: 'E_APP' \}\n/);
    assert.equal(JSON.parse((await request(port, '/pid')).body).pid, first);
    assert.doesNotMatch(s.log, /Uncaught exception/);
    await s.kill();
  });

  it('--log-level debug: the stack of an app error is whole', async () => {
    const { s, port } = await start(['--log-level', 'debug', fx('listener.ts')]);
    assert.equal((await request(port, '/throw')).status, 500);
    const logged = await s.waitFor(/Error handling request GET \/throw\nError: boom from the app\n((?: {4}.*\n)+)/);
    assert.match(logged[1]!, /listener\.ts:\d+[\s\S]*dist\/workers\/child\.js[\s\S]*\(node:/);
    assert.doesNotMatch(logged[1]!, /left out/);
    await s.kill();
  });

  it('an uncaught exception retires the worker: its other requests finish, and a replacement starts at once', async () => {
    const { s, port } = await start(['-w', '1', fx('listener.ts')]);
    const [first] = await s.workersBooted(1);
    const slow = request(port, '/sleep?ms=1500&note=1');
    await s.waitFor(/app: sleeping 1500 ms/);
    assert.equal((await request(port, '/throw-later')).status, 200);
    // The line names what ran when the timer threw (/throw-later was answered before it fired).
    await s.waitFor(/Uncaught exception in worker while it ran GET \/sleep\?ms=1500&note=1 \(\d\.\d s\); it finishes the requests it has, takes no new one, and exits[\s\S]*boom in a timer/);
    const [, second] = await s.workersBooted(2);
    assert.notEqual(second, first);
    const r = await slow;
    assert.equal(r.status, 200, 'the request in flight on the worker finished');
    assert.equal(JSON.parse(r.body).pid, first);
    await s.waitFor(new RegExp(`Worker exited \\(pid: ${first}\\)`));
    assert.equal(JSON.parse((await request(port, '/pid')).body).pid, second);
    await s.kill();
  });

  it('a worker that exits after an uncaught exception before its replacement serves is no second error', async () => {
    const { s, port } = await start(['-w', '1', fx('listener.ts')]);
    const [first] = await s.workersBooted(1);
    // Nothing else in flight: the worker exits at once, while its replacement still loads the app.
    assert.equal((await request(port, '/throw-later')).status, 200);
    await s.waitFor(new RegExp(`Worker ${first} is exiting after an uncaught exception: replacing it`));
    await s.waitFor(new RegExp(`\\[INFO\\] Worker exited \\(pid: ${first}\\)`));
    assert.doesNotMatch(s.log, new RegExp(`Worker \\(pid:${first}\\) exited with code`), 'the status it said it would exit with is not logged as an error');
    await s.workersBooted(2);
    await s.kill();
  });

  it('a worker that does not exit within graceful_timeout of its uncaught exception is killed, even with -t 0 and no replacement serving', async () => {
    // Its worker_exit hook never returns, and its replacement never becomes ready (its post_fork never returns):
    // nothing else would stop it.
    const { s, port } = await start(['-w', '1', '-t', '0', '--graceful-timeout', '1', '-c', fx('crash-exit-hangs.config.ts'), fx('listener.ts')]);
    const [first] = await s.workersBooted(1);
    await s.waitFor(/Ready: /);
    assert.equal((await request(port, '/throw-later')).status, 200);
    await s.waitFor(new RegExp(`Worker ${first} is exiting after an uncaught exception: replacing it`));
    await s.workersBooted(2);
    await s.waitFor(
      new RegExp(`\\[WARNING\\] Worker \\(pid:${first}\\) did not exit within 1 s \\(graceful_timeout\\) of its uncaught exception \\(a request still running, or a worker_exit hook that has not returned\\): killing it\n`),
      10000,
    );
    await s.waitFor(new RegExp(`\\[INFO\\] Worker exited \\(pid: ${first}\\)`));
    assert.ok(!alive(first!), 'the worker is gone');
    assert.doesNotMatch(s.log, /Perhaps out of memory|was killed by/, 'a kill the master made is not reported as a foreign one');
    assert.equal(s.count(/killing it/), 1);
    await s.kill();
  });

  it('a TERM after the master idled says no stall of the master', async () => {
    // The stop sets the quick tick in the middle of its step; the gap since the resting tick's last look was
    // then taken for a master that could not run ("The master could not run for 9.8 s").
    const { s } = await start(['-w', '1', fx('listener.ts')]);
    await s.waitFor(/Ready: /);
    // Idle is the case itself: long enough for the resting tick to be in place.
    await delay(3000);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.doesNotMatch(s.log, /could not run for/);
  });

  it('an on_exit hook that never returns holds the exit for graceful_timeout, no longer', async () => {
    const { s } = await start(['--graceful-timeout', '1', '-c', fx('on-exit-hangs.config.ts'), fx('listener.ts')]);
    await s.waitFor(/Ready: /);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.match(s.log, /\[WARNING\] The onExit hook has not returned after 1 s \(graceful_timeout\): exiting without it\n/);
  });

  it("a TERM while a HUP's config file still loads is no process.exit() of that file's", async () => {
    const delay = path.join(tmp, 'config-delay');
    writeFileSync(delay, '0');
    const { s } = await start(['-c', fx('slow-reload.config.mjs'), fx('listener.ts')], { CONFIG_DELAY_FILE: delay });
    await s.waitFor(/Ready: /);
    writeFileSync(delay, '3000');
    s.signal('SIGHUP');
    await s.waitFor(/Handling signal: hup/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.doesNotMatch(s.log, /called process\.exit/);
  });

  it('an old worker that does not stop after a HUP is killed at graceful_timeout, not at the next resting tick', async () => {
    // The reload ends after the step that took the signal; the master's tick was then a resting one (up to 10 s),
    // and the kill came that late (8 to 9 s after a HUP with --graceful-timeout 1).
    const { s } = await start(['-w', '1', '--graceful-timeout', '1', '-c', fx('exit-hangs.config.ts'), fx('listener.ts')]);
    const [first] = await s.workersBooted(1);
    await s.waitFor(/Ready: /);
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(new RegExp(`Worker \\(pid:${first}\\) did not stop in time: killing it`), 6000, from);
    await s.kill();
  });

  for (const cls of ['async', 'sync']) {
    it(`-k ${cls}: a process.exit() of the app while it serves is named by the worker, with the requests it cuts`, async () => {
      // sync: a second worker takes the slow request while the first serves the exit.
      const { s, port } = await start(['-k', cls, '-w', cls === 'sync' ? '2' : '1', fx('listener.ts')]);
      await s.waitFor(/Ready: /, 30000);
      const slow = request(port, '/sleep?ms=3000&note=1').catch((e: Error) => e);
      await s.waitFor(/app: sleeping 3000 ms/);
      const exit = request(port, '/exit?code=3').catch((e: Error) => e);
      assert.ok((await exit) instanceof Error, 'the exiting request gets no answer');
      const line = await s.waitFor(/\[(\d+)\] \[ERROR\] Worker exiting \(pid: \1\): process\.exit\(3\) was called by the app or a server hook, not by tunicorn; the requests it was serving are cut: (.*)\n/);
      assert.match(line[2]!, /GET \/exit\?code=3/);
      if (cls === 'async') {
        assert.match(line[2]!, /GET \/sleep\?ms=3000&note=1 \(\d+\.\d s\)/);
        assert.ok((await slow) instanceof Error, 'the request in flight on that worker was cut');
      }
      await s.waitFor(new RegExp(`Worker \\(pid:${line[1]}\\) exited with code 3`));
      // A stop by tunicorn says nothing of the kind.
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
      assert.equal(s.count(/was called by the app or a server hook/), 1);
    });
  }

  it('leaves an uncaught exception to the app when it has an uncaughtException listener of its own', async () => {
    const { s, port } = await start(['-w', '1', fx('own-uncaught.mjs')]);
    const first = JSON.parse((await request(port, '/')).body).pid;
    await request(port, '/throw-later');
    await s.waitFor(/app: caught boom in a timer/);
    assert.match(s.log, /left to the app's uncaughtException listener: boom in a timer/);
    assert.deepEqual(JSON.parse((await request(port, '/')).body), { pid: first, caught: 1 });
    assert.equal(s.count(/Booting worker/), 1);
    await s.kill();
  });

  it('answers 500 to a Fetch handler that returns no Response, and logs one line, no stack', async () => {
    const { s, port } = await start([fx('fetch-returns-string.mjs')]);
    assert.equal((await request(port, '/x')).status, 500);
    await s.waitFor(/\[ERROR\] Error handling request GET \/x: the Fetch handler returned a string, not a Response\n/);
    assert.doesNotMatch(s.log, /\n\s+at /, 'no stack of tunicorn frames');
    await s.kill();
  });

  it('spreads connections over workers sharing one socket, and the master accepts none', async () => {
    const { s, port } = await start(['-w', '2', fx('listener.ts')]);
    const pids = await s.workersBooted(2);
    const seen = new Set<number>();
    // Busy requests keep one worker occupied so the kernel hands the next connection to the other.
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      const rs = await Promise.all([request(port, '/sleep?ms=30'), request(port, '/sleep?ms=30')]);
      for (const r of rs) seen.add(JSON.parse(r.body).pid);
    }
    assert.deepEqual([...seen].sort(), [...pids].sort());
    assert.ok(!seen.has(s.pid));
    await s.kill();
  });
});

describe('the master keeps its workers', () => {
  it('replaces a worker killed with SIGKILL, and says perhaps out of memory', async () => {
    const { s, port } = await start(['-w', '2', fx('listener.ts')]);
    const [a] = await s.workersBooted(2);
    process.kill(a!, 'SIGKILL');
    await s.waitFor(new RegExp(`Worker \\(pid:${a}\\) was sent SIGKILL! Perhaps out of memory\\?`));
    const [, , c] = await s.workersBooted(3);
    assert.ok(c && c !== a);
    await until(() => childrenOf(s.pid).length === 2, 10000, 'two workers again');
    assert.equal((await request(port, '/')).status, 200);
    await s.kill();
  });

  // The native watcher where `npm install` built it (CI installs a C compiler), and the worker-thread one that
  // takes its place where it could not be built.
  for (const [watcher, env] of [
    ['native', {}],
    ['worker-thread', { TUNICORN_NATIVE: '0' }],
  ] as const) {
    it(`kills a worker whose event loop is blocked past the timeout, naming the request (${watcher} watcher)`, async () => {
      const { s, port } = await start(['-w', '1', '-t', '1', '--log-level', 'debug', fx('listener.ts')], env);
      const [a] = await s.workersBooted(1);
      await s.waitFor(watcher === 'native' ? /with a native thread/ : /with a worker thread \(no native watcher: TUNICORN_NATIVE=0\)/);
      // The master says it once, at info level, where the workers use what runs instead of the native modules.
      assert.equal(s.count(/\[INFO\] Native modules off \(TUNICORN_NATIVE=0\): workers watch for a stalled event loop with a worker thread/), watcher === 'native' ? 0 : 1);
      // The master's own module puts the socket into listen state; without it, a helper process does.
      assert.equal(s.count(watcher === 'native' ? /\] Sockets in listen state \(backlog 2048\), by listen\(2\)$/m : /\] Sockets in listen state \(backlog 2048\), by a helper process$/m), 1);
      const stuck = request(port, '/spin?ms=8000&q="a\\b"').catch((e: Error) => e);
      const m = await s.waitFor(/WORKER TIMEOUT \(pid:(\d+)\)(.*)/);
      assert.equal(Number(m[1]), a);
      assert.ok(m[2]!.includes('GET /spin?ms=8000&q="a\\b"'), m[2]);
      assert.ok((await stuck) instanceof Error, 'the stuck request fails: its worker was killed');
      await s.workersBooted(2);
      assert.equal((await request(port, '/')).status, 200);
      await s.kill();
    });
  }

  const writableDir = (dir: string): boolean => {
    try {
      accessSync(dir, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  };

  /**
   * Sends `url`, a request that spins its loop (or thread) for good, to worker `pid`, and waits for the
   * `WORKER TIMEOUT` that names it and for the request to fail with the worker: when the line came
   * (process.hrtime.bigint()).
   */
  async function killedSpinning(s: Server, port: number, pid: number, url: string): Promise<bigint> {
    const stuck = request(port, url).catch((e: Error) => e);
    const m = await s.waitFor(/WORKER TIMEOUT \(pid:(\d+)\)(.*)/, 30000);
    const at = process.hrtime.bigint();
    assert.equal(Number(m[1]), pid);
    assert.ok(m[2]!.includes(`GET ${url}`), m[2]);
    assert.ok((await stuck) instanceof Error, 'the stuck request fails: its worker was killed');
    return at;
  }

  /** Idles past its timeout (-t 2) unharmed, then is killed by it once its loop is stuck. */
  async function beatsThenTimeout(s: Server, port: number, pid: number): Promise<void> {
    // Two timeouts of idling are the input here: the master must see its beats all along.
    await delay(4000);
    assert.doesNotMatch(s.log, /WORKER TIMEOUT/);
    assert.equal(JSON.parse((await request(port, '/pid')).body).pid, pid);
    const stuck = request(port, '/spin?ms=8000').catch((e: Error) => e);
    const m = await s.waitFor(/WORKER TIMEOUT \(pid:(\d+)\)/);
    assert.equal(Number(m[1]), pid);
    assert.ok((await stuck) instanceof Error, 'the stuck request fails: its worker was killed');
  }

  // A worker's beats go into a file the master reads at its tick (src/protocol/beat-file.ts), in /dev/shm by
  // default; where none can be made, they are messages.
  it('a worker beats into a file in /dev/shm: idle past its timeout it lives on, stuck it is killed', { skip: writableDir('/dev/shm') ? false : 'no writable /dev/shm here' }, async () => {
    const { s, port } = await start(['-w', '1', '-t', '2', fx('listener.ts')]);
    const [a] = await s.workersBooted(1);
    await s.waitFor(/Ready: 1 worker/);
    assert.deepEqual(beatFilesOf(a!).map((f) => path.dirname(f)), ['/dev/shm']);
    await beatsThenTimeout(s, port, a!);
    await s.workersBooted(2);
    await s.kill();
  });

  // While a worker idles it beats every sixth of the timeout, and its watcher reads as rarely (Watchdog.pace):
  // a loop stuck on a request that came in that time is still named, by the watcher's report, before the kill.
  // The worker-thread watcher's pace is checked in test/unit/watchdog.test.ts.
  it('an idle worker beats every sixth of its timeout, a busy one every second; stuck after idling, its request is named', { skip: writableDir('/dev/shm') ? false : 'no writable /dev/shm here' }, async () => {
    // -t 12: 1 s beats when busy, 2 s when idle (idleBeatEvery).
    const { s, port } = await start(['-w', '1', '-t', '12', fx('listener.ts')]);
    const [a] = await s.workersBooted(1);
    await s.waitFor(/Ready: 1 worker/);
    // Served, then nothing: after the first beat that saw no request, the beats are 2 s apart.
    assert.equal((await request(port, '/')).status, 200);
    const idle = await beatGaps(a!, 3, 15000);
    assert.ok(idle.slice(1).every((g) => g > 1700 && g < 3000), `idle beats ${idle.join(', ')} ms apart`);
    // A request every read (50 ms): the beats come every second again.
    let sent = 0;
    const busy = await beatGaps(a!, 3, 15000, () => {
      sent++;
      void request(port, '/').catch(() => {});
    });
    assert.ok(busy.slice(1).every((g) => g > 700 && g < 1400), `busy beats ${busy.join(', ')} ms apart (${sent} requests)`);
    // Idle again, then stuck on a request no beat ever saw: only the watcher's report can name it, and it
    // comes by half the timeout after the last beat; the kill comes at the whole timeout.
    const again = await beatGaps(a!, 3, 15000);
    assert.ok(again.at(-1)! > 1700, `idle beats ${again.join(', ')} ms apart`);
    const last = lastBeatOf(a!)!;
    // The master sleeps until the first timeout can come (restingTickMs), then reads the beats: the kill
    // comes at the timeout after the last beat, not up to its 10 s resting tick later.
    const silentMs = Number((await killedSpinning(s, port, a!, '/spin?ms=30000&q=idle')) - last) / 1e6;
    assert.ok(silentMs >= 12000 && silentMs < 13000, `killed ${silentMs} ms after its last beat`);
    await s.kill();
  });

  it('gthread: idle threads beat every sixth of the timeout; one stuck on a request is named, and killed at the timeout after the request began', { skip: writableDir('/dev/shm') ? false : 'no writable /dev/shm here' }, async () => {
    // -t 12: 1 s beats when busy, 2 s when idle (idleBeatEvery), the threads' and the process's.
    const { s, port } = await start(['-w', '1', '-k', 'gthread', '--threads', '2', '-t', '12', fx('listener.ts')]);
    const [a] = await s.workersBooted(1);
    await s.waitFor(/Ready: 1 worker/);
    assert.equal((await request(port, '/')).status, 200);
    // The beat file holds the threads' oldest beat (ThreadBeats.fileTime), written at the process's beats: 2 s
    // apart, or more, once every thread idles (after a beat of each that saw no request, then one of the process).
    const idle = await beatGaps(a!, 5, 25000);
    assert.ok(idle.slice(3).every((g) => g > 1700), `idle beats ${idle.join(', ')} ms apart`);
    // Stuck on a request that began on an idle thread: it beat then, and the master's timeout runs from that
    // beat, not from the process's last (it ran on, and beat, for up to 3 s more before it saw the thread stuck).
    const sent = process.hrtime.bigint();
    const ms = Number((await killedSpinning(s, port, a!, '/spin?ms=30000&q=thread')) - sent) / 1e6;
    assert.ok(ms >= 12000 && ms < 13000, `killed ${ms} ms after the request was sent`);
    await s.kill();
  });

  it('--worker-tmp-dir: the beat files go there; once none can be made there, a warning, and the beats are messages', async () => {
    const dir = path.join(tmp, 'beats');
    mkdirSync(dir);
    const { s, port } = await start(['-w', '1', '-t', '2', '--worker-tmp-dir', dir, fx('listener.ts')]);
    const [a] = await s.workersBooted(1);
    await s.waitFor(/Ready: 1 worker/);
    assert.deepEqual(beatFilesOf(a!).map((f) => path.dirname(f)), [dir]);
    // Gone under a running server (a cleaner of old temporary files): the next worker beats by message.
    rmSync(dir, { recursive: true });
    process.kill(a!, 'SIGKILL');
    const [, b] = await s.workersBooted(2);
    await s.waitFor(new RegExp(`\\[WARNING\\] No heartbeat file can be made in ${dir} \\(--worker-tmp-dir\\): the directory ${dir} does not exist; the workers' heartbeats are messages to the master from now on`));
    assert.equal(JSON.parse((await requestUntilServed(port, '/pid', 20000)).body).pid, b);
    assert.deepEqual(beatFilesOf(b!), []);
    await beatsThenTimeout(s, port, b!);
    await s.workersBooted(3);
    await s.kill();
  });

  it('worker_tmp_dir from a config file: a HUP to a directory that does not exist fails, to one that does moves the beat files', async () => {
    const dirs = [path.join(tmp, 'beats-a'), path.join(tmp, 'beats-b')];
    for (const d of dirs) mkdirSync(d, { recursive: true });
    const config = path.join(tmp, 'beats.config.mjs');
    const use = (dir: string) => writeFileSync(config, `export default ${JSON.stringify({ workerTmpDir: dir })};\n`);
    use(dirs[0]!);
    const { s } = await start(['-w', '1', '-c', config, fx('listener.ts')]);
    const [a] = await s.workersBooted(1);
    await s.waitFor(/Ready: 1 worker/);
    assert.deepEqual(beatFilesOf(a!).map((f) => path.dirname(f)), [dirs[0]]);
    const missing = path.join(tmp, 'beats-missing');
    use(missing);
    s.signal('SIGHUP');
    await s.waitFor(new RegExp(`\\[ERROR\\] Reload failed, keeping the running configuration: cannot make heartbeat files in "${missing}" \\(--worker-tmp-dir\\): the directory ${missing} does not exist; choose another directory, or leave the setting out \\(the default, /dev/shm\\)\n`));
    assert.equal(s.count(/Booting worker/), 1);
    use(dirs[1]!);
    const from = s.log.length;
    s.signal('SIGHUP');
    const [b] = await s.workersBooted(1, from);
    await until(() => beatFilesOf(b!).length === 1, 10000, 'the new worker\'s beat file');
    assert.deepEqual(beatFilesOf(b!).map((f) => path.dirname(f)), [dirs[1]]);
    // --check-config checks it as the start does.
    const check = new Server(['--check-config', '--worker-tmp-dir', missing, fx('listener.ts')]);
    assert.equal((await check.exited).code, 1);
    assert.match(check.log, /cannot make heartbeat files in ".*beats-missing" \(--worker-tmp-dir\): the directory .* does not exist/);
    await s.kill();
  });

  it('--worker-tmp-dir naming a directory that does not exist stops the start with one line', async () => {
    const dir = path.join(tmp, 'no-such-dir');
    const s = new Server(['-b', '127.0.0.1:0', '--worker-tmp-dir', dir, fx('listener.ts')]);
    assert.equal((await s.exited).code, 1);
    assert.match(s.log, new RegExp(`^tunicorn: error: cannot make heartbeat files in "${dir}" \\(--worker-tmp-dir\\): the directory ${dir} does not exist; choose another directory, or leave the setting out \\(the default, /dev/shm\\)\\n$`));
  });

  it('a master that could not run for a while (its log pipe stalled, a busy preloaded app) kills no healthy worker', async () => {
    const app = path.join(tmp, 'busy-master.mjs');
    // In the master only (it has no IPC channel), PWR (a signal tunicorn leaves alone) makes it spin 4 s, twice
    // the timeout, while the worker beats on.
    writeFileSync(app, "if (!process.send) process.on('SIGPWR', () => { const end = Date.now() + 4000; while (Date.now() < end); });\nexport default (req, res) => res.end('ok');\n");
    const { s, port } = await start(['-w', '1', '-t', '2', '--preload', app]);
    await s.waitFor(/Ready: 1 worker/);
    s.signal('SIGPWR');
    await s.waitFor(/\[WARNING\] The master could not run for [4-9]\.\d s \(a log reader that stopped reading, or a busy preloaded app\?\); worker timeouts count from now/, 15000);
    assert.equal((await request(port, '/')).status, 200);
    assert.doesNotMatch(s.log, /WORKER TIMEOUT/);
    assert.equal(s.count(/Booting worker/), 1);
    await s.kill();
  });

  it('a master stopped (Ctrl-Z, SIGSTOP) and continued says so, and kills no healthy worker', async () => {
    const { s, port } = await start(['-w', '1', '-t', '1', fx('listener.ts')]);
    await s.waitFor(/Ready: 1 worker/);
    s.signal('SIGSTOP');
    // The stop's length is the input here (longer than the timeout and the master's 1 s stall check), not a wait
    // for something to happen.
    await delay(2500);
    s.signal('SIGCONT');
    await s.waitFor(/\[WARNING\] The master was stopped for [2-9]\.\d s \(Ctrl-Z or SIGSTOP\) and continued; worker timeouts count from now/, 10000);
    assert.equal((await request(port, '/')).status, 200);
    assert.doesNotMatch(s.log, /WORKER TIMEOUT|could not run for/);
    assert.equal(s.count(/Booting worker/), 1);
    await s.kill();
  });

  it('TTIN adds a worker and TTOU removes one', async () => {
    const { s } = await start(['-w', '2', fx('listener.ts')]);
    await s.workersBooted(2);
    await until(() => childrenOf(s.pid).length === 2, 10000, '2 workers');
    s.signal('SIGTTIN');
    await s.workersBooted(3);
    await until(() => childrenOf(s.pid).length === 3, 10000, '3 workers');
    s.signal('SIGTTOU');
    await s.waitFor(/Number of workers: 3 -> 2/);
    await until(() => childrenOf(s.pid).length === 2, 10000, 'back to 2 workers');
    await s.kill();
  });

  it('HUP replaces every worker, new ones serving before old ones stop', async () => {
    const { s, port } = await start(['-w', '2', fx('listener.ts')]);
    const old = await s.workersBooted(2);
    await until(() => childrenOf(s.pid).length === 2, 10000, '2 workers');
    let failed = 0;
    let ok = 0;
    let stopLoad = false;
    const load = (async () => {
      while (!stopLoad) {
        try {
          const r = await request(port, '/');
          if (r.status === 200) ok++;
          else failed++;
        } catch {
          failed++;
        }
      }
    })();
    s.signal('SIGHUP');
    const all = await s.workersBooted(4);
    const fresh = all.slice(2);
    await until(() => old.every((p) => !alive(p)), 15000, 'old workers to exit');
    stopLoad = true;
    await load;
    assert.deepEqual(childrenOf(s.pid).sort(), fresh.sort());
    assert.equal(failed, 0);
    assert.ok(ok > 0);
    await s.kill();
  });

  it('TERM lets the request in flight finish, telling its keep-alive client to close, ignores a HUP, then the master exits 0', async () => {
    const { s, port } = await start(['-w', '1', fx('listener.ts')]);
    await s.workersBooted(1);
    await until(() => childrenOf(s.pid).length === 1, 10000, 'worker up');
    const agent = new http.Agent({ keepAlive: true });
    const inflight = request(port, '/sleep?ms=1500&note', { agent });
    await s.waitFor(/app: sleeping 1500 ms/); // the request is in the worker when TERM arrives
    s.signal('SIGTERM');
    await s.waitFor(/Graceful stop/);
    s.signal('SIGHUP');
    await s.waitFor(/HUP ignored: the master is stopping/);
    const r = await inflight;
    agent.destroy();
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).slept, 1500);
    // Begun before the stop, answered during it: the client must not send its next request on this connection.
    assert.equal(r.headers.connection, 'close');
    const exit = await s.exited;
    assert.equal(exit.code, 0);
    assert.match(s.log, /Shutting down: Master/);
  });

  it('leaves no orphan when the master is SIGKILLed', async () => {
    const { s } = await start(['-w', '2', fx('listener.ts')]);
    const pids = await s.workersBooted(2);
    await until(() => childrenOf(s.pid).length === 2, 10000, 'workers up');
    process.kill(s.pid, 'SIGKILL');
    await s.exited;
    await until(() => pids.every((p) => !alive(p)), 10000, 'workers to exit after the master died');
  });

  // Its 'disconnect' cannot run while its event loop is stuck: the watcher thread ends it, and frees the port
  // for a restart. With -t 0 too, and while the app still loads (a long synchronous top-level code).
  it('leaves no stuck worker holding the port when the master is SIGKILLed: -t 0, and during the load', async () => {
    const stuckApp = path.join(tmp, 'stuck-at-load.mjs');
    writeFileSync(stuckApp, 'process.stderr.write("app: spinning at load\\n");\nconst t = Date.now(); while (Date.now() - t < 60000);\nexport default (req, res) => res.end("x");\n');
    for (const [args, stick] of [
      [['-t', '0', fx('listener.ts')], true],
      [[stuckApp], false],
    ] as const) {
      const s = new Server(['-b', '127.0.0.1:0', ...args]);
      const port = await s.port();
      const [worker] = await s.workersBooted(1);
      // -t 0: a request that spins for a minute; the other app spins at its load.
      if (stick) void request(port, '/spin?ms=60000&note=1', { timeout: 70000 }).catch(() => undefined);
      await s.waitFor(/app: spinning/);
      process.kill(s.pid, 'SIGKILL');
      await s.exited;
      try {
        await until(() => !alive(worker!), 15000, `the stuck worker to exit (${args.join(' ')})`);
      } finally {
        if (alive(worker!)) process.kill(worker!, 'SIGKILL');
      }
      // The port is free: a new server binds it.
      const again = new Server(['-b', `127.0.0.1:${port}`, fx('listener.ts')]);
      await again.waitFor(/Listening at/);
      await again.kill();
    }
  });

  it('recycles a worker after max_requests without failing a request', async () => {
    const { s, port } = await start(['-w', '1', '--max-requests', '5', fx('listener.ts')]);
    await s.workersBooted(1);
    const pids = new Set<number>();
    // Until the replacement serves, the retiring worker keeps answering: loop (bounded) until both did.
    for (let i = 0; i < 2000 && pids.size < 3; i++) {
      const r = await request(port, '/pid');
      assert.equal(r.status, 200);
      pids.add(JSON.parse(r.body).pid);
    }
    assert.ok(pids.size >= 3, `expected at least three workers in turn, saw ${pids.size}`);
    assert.match(s.log, /max_requests/);
    await s.kill();
  });
});

describe('failures are stated, not dumped', () => {
  for (const [file, cause] of [
    ['broken-syntax.ts', /broken-syntax\.ts:2/],
    ['throws-at-import.ts', /database URL is not set[\s\S]*throws-at-import\.ts:2/],
    ['missing-import.ts', /Cannot find module 'a-package-that-does-not-exist'/],
    ['not-an-app.ts', /is an object with keys port, name; tunicorn serves/],
  ] as const) {
    it(`stops cleanly with status 1 when the app cannot load: ${file}`, async () => {
      const s = new Server(['-b', '127.0.0.1:0', '-w', '2', fx(file)]);
      const exit = await s.exited;
      assert.equal(exit.code, 1);
      await within(s.drained, 10000, 'the log to end');
      assert.match(s.log, cause);
      assert.match(s.log, /Reason: App failed to load\./);
      // Why, before the exit it caused: the first error line is the load's, not `Worker (pid:N) exited with code 4`.
      assert.doesNotMatch(/\[ERROR\] .*/.exec(s.log)?.[0] ?? '', /exited with code/);
      assert.match(s.log, /\[ERROR\] Worker \(pid:\d+\) exited with code 4\n[^\n]*\[INFO\] Reason: App failed to load\./);
      assert.equal(s.count(/Booting worker/), 2, 'no respawn loop');
      // A syntax error has no stack of the app's to show: its one line is all, not the message again.
      if (file === 'broken-syntax.ts') assert.equal(s.count(/ParseError/), 1, s.log);
    });
  }

  it('rejects bad config with one line naming the setting, the value and what it accepts', async () => {
    const cases: [string[], RegExp][] = [
      [['-w', '-3', 'x.ts'], /^tunicorn: error: invalid value for workers \(--workers\): "-3"; expected a whole number >= 1 or "auto"\n$/],
      [['-k', 'threaded', 'x.ts'], /^tunicorn: error: invalid value for workerClass \(--worker-class\): "threaded"; expected one of async, sync, gthread\n$/],
      // Gunicorn's classes get tunicorn's analogue too.
      [['-k', 'eventlet', 'x.ts'], /^tunicorn: error: invalid value for workerClass \(--worker-class\): "eventlet" is a Gunicorn worker class for Python; tunicorn's async class \(the default\) is its analogue: .*; expected one of async, sync, gthread\n$/],
      [['--no-such-flag', 'x.ts'], /^tunicorn: error: unknown option --no-such-flag; see tunicorn --help\n$/],
      [['-c', fx('bad-key.config.ts'), 'x.ts'], /^tunicorn: error: unknown setting "worker_class" in .*bad-key\.config\.ts; did you mean workerClass\?\n$/],
      [['-c', fx('bad-type.config.ts'), 'x.ts'], /^tunicorn: error: invalid value for workers \(--workers\): -2; expected a whole number >= 1 or "auto" in .*\n$/],
      [['-b', 'localhost:99999', 'x.ts'], /^tunicorn: error: invalid value for bind \(--bind\): "localhost:99999"; the port "99999" is not 0\.\.65535/],
      [[], /^tunicorn: error: no APP given/],
    ];
    for (const [args, re] of cases) {
      const s = new Server(args);
      const exit = await s.exited;
      assert.equal(exit.code, 1, args.join(' '));
      assert.match(s.log, re);
    }
  });

  it('--check-config exits 0 for a good app and 1 with the reason for a bad one', async () => {
    const good = new Server(['--check-config', fx('fetch.ts')]);
    assert.equal((await good.exited).code, 0);
    assert.match(good.stdout, /OK: .*fetch\.ts is Fetch handler/);
    const bad = new Server(['--check-config', fx('not-an-app.ts')]);
    assert.equal((await bad.exited).code, 1);
    assert.match(bad.log, /^tunicorn: error: app .*not-an-app\.ts is an object/);
  });

  // A file the server must write and cannot: one line naming the setting, its flag, the path and the cause,
  // status 1, before anything is bound or forked, and nothing left behind.
  const lit = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const noDir = path.join(tmp, 'no-such-dir');

  it('states an error log that cannot be opened in one line, before binding', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '--error-logfile', path.join(noDir, 'e.log'), fx('listener.ts')]);
    assert.equal((await s.exited).code, 1);
    assert.match(
      s.log,
      new RegExp(`^tunicorn: error: cannot open error log "${lit(noDir)}/e\\.log" \\(--error-logfile\\): the directory ${lit(noDir)} does not exist; create it or choose another --error-logfile\n$`),
    );
  });

  it('states an access log that cannot be opened in one line from the master, before any worker starts', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', '--access-logfile', tmp, fx('listener.ts')]);
    assert.equal((await s.exited).code, 1);
    assert.match(s.log, new RegExp(`^tunicorn: error: cannot open access log "${lit(tmp)}" \\(--access-logfile\\): it is a directory; name a file, such as ${lit(tmp)}/access\\.log\n$`));
  });

  it('writes the logs to /dev/stdout and /dev/stderr when those are sockets (systemd\'s journal), as to "-"', async () => {
    // The helper's stdout and stderr are Unix socket pairs, as the journal's are: opened again by path, a socket
    // fails with ENXIO, and the start stopped there.
    const { s, port } = await start(['-w', '1', '--access-logfile', '/dev/stdout', '--error-logfile', '/dev/stderr', fx('listener.ts')]);
    await s.workersBooted(1);
    await request(port, '/via-dev-stdout');
    await until(() => /"GET \/via-dev-stdout HTTP\/1\.1"/.test(s.stdout), 5000, 'the access line on stdout');
    s.signal('SIGUSR1');
    await s.waitFor(/Handling signal: usr1/);
    await request(port, '/after-usr1');
    await until(() => /"GET \/after-usr1 HTTP\/1\.1"/.test(s.stdout), 5000, 'the access line after USR1');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.doesNotMatch(s.log, /ERROR|ENXIO/);
  });

  it('states a pidfile that cannot be written in one line, and leaves no socket file behind', async () => {
    const sock = path.join(tmp, 'pidfile-fail.sock');
    for (const [pidfile, cause] of [
      [tmp, `it is a directory; name a file, such as ${lit(tmp)}/tunicorn\\.pid`],
      [path.join(noDir, 'p.pid'), `the directory ${lit(noDir)} does not exist; create it or choose another --pid`],
    ] as const) {
      const s = new Server(['-b', `unix:${sock}`, '-p', pidfile, fx('listener.ts')]);
      assert.equal((await s.exited).code, 1);
      assert.match(s.log, new RegExp(`^tunicorn: error: cannot write pidfile "${lit(pidfile)}" \\(--pid\\): ${cause}\n$`));
      assert.ok(!existsSync(sock), 'the socket file is left behind');
    }
  });

  it('--check-config checks the logs and the pidfile, and creates none of them', async () => {
    for (const [args, re] of [
      [['--error-logfile', path.join(noDir, 'e.log')], /^tunicorn: error: cannot open error log ".*" \(--error-logfile\): the directory .* does not exist; create it or choose another --error-logfile\n$/],
      [['--access-logfile', path.join(noDir, 'a.log')], /^tunicorn: error: cannot open access log ".*" \(--access-logfile\): the directory .* does not exist; create it or choose another --access-logfile\n$/],
      [['--pid', tmp], /^tunicorn: error: cannot write pidfile ".*" \(--pid\): it is a directory; name a file, such as .*\n$/],
    ] as const) {
      const s = new Server(['--check-config', ...args, fx('fetch.ts')]);
      assert.equal((await s.exited).code, 1, args.join(' '));
      assert.match(s.log, re);
      assert.equal(s.stdout, '');
    }
    const files = ['check-e.log', 'check-a.log', 'check.pid'].map((f) => path.join(tmp, f));
    const good = new Server(['--check-config', '--error-logfile', files[0]!, '--access-logfile', files[1]!, '--pid', files[2]!, fx('fetch.ts')]);
    assert.equal((await good.exited).code, 0);
    assert.match(good.stdout, /^OK: /);
    for (const f of files) assert.ok(!existsSync(f), `--check-config created ${f}`);
    // The pidfile of the running server: a check before a HUP passes, where a second start is refused.
    const live = path.join(tmp, 'running.pid');
    const { s } = await start(['-p', live, fx('fetch.ts')]);
    await until(() => existsSync(live), 5000, 'the pidfile');
    const check = new Server(['--check-config', '-p', live, fx('fetch.ts')]);
    assert.equal((await check.exited).code, 0, check.log);
    assert.ok(existsSync(live), 'the check leaves the running server\'s pidfile alone');
    await s.kill();
  });

  it('a USR1 reopen that fails says so in one line per log and keeps writing to the files already open', async () => {
    const dir = path.join(tmp, 'rotated');
    mkdirSync(dir);
    const errlog = path.join(dir, 'error.log');
    const acclog = path.join(dir, 'access.log');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', '--error-logfile', errlog, '--access-logfile', acclog, fx('listener.ts')]);
    await until(() => existsSync(errlog) && /Ready: 2 worker/.test(readFileSync(errlog, 'utf8')), 20000, 'ready');
    const port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(errlog, 'utf8'))![1]);
    // The directory goes (as a careless rotation might take it): the reopen cannot create the files again.
    const moved = `${dir}.old`;
    renameSync(dir, moved);
    s.signal('SIGUSR1');
    await until(() => /access log .*\n/.test(readFileSync(path.join(moved, 'error.log'), 'utf8')), 5000, 'the errors');
    assert.equal((await request(port, '/?after=1')).status, 200, 'the server serves on');
    await until(() => /GET \/\?after=1/.test(readFileSync(path.join(moved, 'access.log'), 'utf8')), 5000, 'the access line, in the old file');
    const errors = readFileSync(path.join(moved, 'error.log'), 'utf8').split('\n').filter((l) => l.includes('[ERROR]'));
    assert.deepEqual(errors.map((l) => l.replace(/^\[.*?\] \[\d+\] /, '')), [
      `[ERROR] USR1: cannot open error log "${errlog}" (--error-logfile): the directory ${dir} does not exist; create it or choose another --error-logfile. Logging goes on to the file already open`,
      `[ERROR] USR1: cannot open access log "${acclog}" (--access-logfile): the directory ${dir} does not exist; create it or choose another --access-logfile. The workers go on writing to the file already open`,
    ]);
    assert.equal(childrenOf(s.pid).length, 2, 'no worker died');
    // The file already open may be one nobody reads any more (moved away, or deleted): stderr has the line too.
    assert.match(s.log, /\[ERROR\] USR1: cannot open error log .*Logging goes on to the file already open\n/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('a hook that throws is logged and the master serves on', async () => {
    const { s, port } = await start(['-c', fx('throwing-hook.config.ts'), fx('listener.ts')]);
    await s.waitFor(/Exception in whenReady hook[\s\S]*hook failure on purpose/);
    await s.workersBooted(1);
    assert.equal((await request(port, '/')).status, 200);
    await s.kill();
  });

  it('waits for an async pre_request before the app sees the request; a rejection is logged and the request goes on', async () => {
    const { s, port } = await start(['-c', fx('async-pre-request.config.ts'), fx('whoami.ts')]);
    assert.equal(JSON.parse((await request(port, '/')).body).xff, 'set-by-the-hook');
    const r = await request(port, '/fail');
    assert.equal(r.status, 200);
    await s.waitFor(/Exception in preRequest hook[\s\S]*pre_request failed on purpose/);
    await s.kill();
  });

  it('a master hook whose promise never settles is named, with status 1, not a silent exit 0', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-c', fx('hanging-hook.config.ts'), fx('listener.ts')]);
    assert.deepEqual(await s.exited, { code: 1, signal: null });
    assert.match(s.log, /The master cannot go on: the onStarting hook returned a promise that never settles/);
    assert.doesNotMatch(s.log, /process\.exit\(\) was called/);
  });

  it('a stop signal ends a start that a hook holds up forever: TERM after graceful_timeout, INT at once, files removed', async () => {
    const ready = path.join(tmp, 'hangs-when-ready.config.mjs');
    writeFileSync(ready, 'export default { whenReady: () => new Promise(() => setInterval(() => {}, 1000)) };\n');
    const starting = path.join(tmp, 'hangs-on-starting.config.mjs');
    const inHook = path.join(tmp, 'in-on-starting');
    writeFileSync(starting, `import { writeFileSync } from 'node:fs';\nexport default { onStarting: () => { writeFileSync(${JSON.stringify(inHook)}, ''); return new Promise(() => setInterval(() => {}, 1000)); } };\n`);
    const pidfile = path.join(tmp, 'hangs-when-ready.pid');
    const a = new Server(['-b', '127.0.0.1:0', '-c', ready, '-p', pidfile, '--graceful-timeout', '1', fx('listener.ts')]);
    const b = new Server(['-b', '127.0.0.1:0', '-c', starting, fx('listener.ts')]);
    await a.waitFor(/Listening at: /);
    await until(() => existsSync(pidfile), 5000, 'the pidfile');
    a.signal('SIGTERM');
    assert.deepEqual(await within(a.exited, 15000, 'the master to stop'), { code: 0, signal: null });
    assert.match(a.log, /\[INFO\] Handling signal: term\n.*\[WARNING\] TERM during the start: the whenReady hook has not returned after 1 s \(graceful_timeout\); stopping without it\n/);
    assert.ok(!existsSync(pidfile), 'the pidfile is removed');
    assert.doesNotMatch(a.log, /Booting worker/);
    // onStarting runs before the bind: nothing to wait for, nothing bound.
    await until(() => existsSync(inHook), 10000, 'the onStarting hook to run');
    b.signal('SIGINT');
    assert.deepEqual(await within(b.exited, 15000, 'the master to stop'), { code: 0, signal: null });
    assert.match(b.log, /\[INFO\] Handling signal: int\n.*\[WARNING\] INT during the start: the onStarting hook has not returned; stopping without it\n/);
    // The exit is tunicorn's own: not blamed on the app or a hook.
    for (const log of [a.log, b.log]) assert.doesNotMatch(log, /process\.exit\(\) was called/);
  });

  it('a TERM during a start held up by a hook says at once that it waits, not graceful_timeout later', async () => {
    const ready = path.join(tmp, 'hangs-when-ready-30.config.mjs');
    writeFileSync(ready, 'export default { whenReady: () => new Promise(() => setInterval(() => {}, 1000)) };\n');
    const s = new Server(['-b', '127.0.0.1:0', '-c', ready, '--graceful-timeout', '30', fx('listener.ts')]);
    await s.waitFor(/Listening at: /);
    const from = s.log.length;
    s.signal('SIGTERM');
    await s.waitFor(/\[INFO\] TERM during the start: waiting up to 30 s \(graceful_timeout\) for the whenReady hook to return\n/, 10000, from);
    // INT ends it without the 30 s.
    s.signal('SIGINT');
    assert.deepEqual(await within(s.exited, 15000, 'the master to stop'), { code: 0, signal: null });
    assert.match(s.log.slice(from), /\[INFO\] Handling signal: int\n.*\[WARNING\] INT during the start: the whenReady hook has not returned; stopping without it\n/);
  });
});

describe('configuration', () => {
  it('takes defaults < config file < TUNICORN_CMD_ARGS < command line, and says where each came from', async () => {
    const s = new Server(['-c', fx('precedence.config.ts'), '--print-config', '-t', '33', 'app.ts'], {
      env: { TUNICORN_CMD_ARGS: '--timeout 22 --keep-alive 9', WEB_CONCURRENCY: '' },
    });
    assert.equal((await s.exited).code, 0);
    const line = (k: string) => s.stdout.split('\n').find((l) => l.startsWith(k + ' '))!;
    assert.match(line('workers'), /= 3 .*\(config file\)/);
    assert.match(line('keepalive'), /= 9 .*\(TUNICORN_CMD_ARGS\)/);
    assert.match(line('timeout'), /= 33 .*\(command line\)/);
    assert.match(line('backlog'), /= 99 .*\(config file\)/);
    assert.match(line('gracefulTimeout'), /= 30 .*\(default\)/);
  });

  it('shows a size with what it reads as', async () => {
    const s = new Server(['--print-config', '--max-worker-memory', '1.5G', 'app.ts']);
    await s.exited;
    assert.match(s.stdout, /maxWorkerMemory += 1610612736 \(1\.5 GiB\) +\(command line\)/);
  });

  it('reads PORT and WEB_CONCURRENCY from the environment', async () => {
    const s = new Server(['--print-config', 'app.ts'], { env: { PORT: '9123', WEB_CONCURRENCY: '4' } });
    await s.exited;
    assert.match(s.stdout, /bind +\= \["0\.0\.0\.0:9123"\] +\(environment\)/);
    assert.match(s.stdout, /workers +\= 4 +\(environment\)/);
  });

  it('--threads without -k, or with -k sync, selects gthread, as in Gunicorn', async () => {
    const s = new Server(['--print-config', '--threads', '4', 'app.ts']);
    await s.exited;
    assert.match(s.stdout, /workerClass += "gthread" +\(command line\)/);
    const sync = new Server(['--print-config', '-k', 'sync', '--threads', '4', 'app.ts']);
    await sync.exited;
    assert.match(sync.stdout, /workerClass += "gthread" +\(command line\)/);
  });

  it('warns that --threads does nothing for a class other than gthread', async () => {
    const { s } = await start(['-k', 'async', '--threads', '4', fx('listener.ts')]);
    await s.waitFor(/\[WARNING\] threads \(--threads 4\) applies to gthread workers only; async workers ignore it\n/);
    await s.kill();
  });

  it('sets worker environment with -e', async () => {
    const { s, port } = await start(['-e', 'GREETING=hi there', fx('listener.ts')]);
    const r = await request(port, '/env?name=GREETING');
    assert.equal(JSON.parse(r.body).value, 'hi there');
    await s.kill();
  });

  it('--chdir to a file or to nowhere: one line that says which', async () => {
    for (const [dir, why] of [[fx('listener.ts'), 'it is not a directory'], [path.join(tmp, 'nowhere'), 'the directory does not exist']] as const) {
      const s = new Server(['--chdir', dir, '-b', '127.0.0.1:0', 'app.ts']);
      assert.equal((await s.exited).code, 1);
      assert.equal(s.log, `tunicorn: error: invalid value for chdir (--chdir): ${JSON.stringify(dir)}; ${why}\n`);
    }
  });

  it('-e reaches an app loaded in the master: --check-config and --preload', async () => {
    const app = path.join(tmp, 'needs-env.mjs');
    writeFileSync(app, "if (process.env.NEEDED !== 'yes') throw new Error('NEEDED is not set');\nexport default (req, res) => res.end('ok');\n");
    const checked = new Server(['-e', 'NEEDED=yes', '--check-config', app]);
    assert.equal((await checked.exited).code, 0, checked.log);
    assert.match(checked.stdout, /^OK: /);
    const { s, port } = await start(['-e', 'NEEDED=yes', '--preload', app]);
    assert.equal((await request(port)).body, 'ok');
    await s.kill();
    const without = new Server(['--check-config', app]);
    assert.equal((await without.exited).code, 1);
    assert.match(without.log, /NEEDED is not set/);
  });

  it('a config file that ends the process or never finishes loading says so, with a status that is not 0', async () => {
    const never = path.join(tmp, 'never.config.mjs');
    writeFileSync(never, 'await new Promise(() => {});\nexport default { workers: 2 };\n');
    for (const extra of [['-b', '127.0.0.1:0'], ['--check-config']]) {
      const s = new Server(['-c', never, ...extra, fx('listener.ts')]);
      assert.equal((await within(s.exited, 15000, 'the start to fail')).code, 1);
      assert.match(s.log, /^tunicorn: error: config file .*never\.config\.mjs never finished loading: its top-level code awaits something that can never settle/);
    }
    const exits = path.join(tmp, 'exits.config.mjs');
    writeFileSync(exits, 'process.exit(3);\nexport default {};\n');
    const s = new Server(['-c', exits, '-b', '127.0.0.1:0', fx('listener.ts')]);
    assert.equal((await s.exited).code, 3);
    assert.match(s.log, /^tunicorn: error: config file .*exits\.config\.mjs called process\.exit\(3\) while loading\n$/);
    // process.exit(0) refuses the start all the same: not a status a service manager takes for success.
    const exits0 = path.join(tmp, 'exits0.config.mjs');
    writeFileSync(exits0, 'process.exit(0);\nexport default {};\n');
    for (const extra of [['-b', '127.0.0.1:0'], ['--check-config']]) {
      const z = new Server(['-c', exits0, ...extra, fx('listener.ts')]);
      assert.equal((await z.exited).code, 1, z.log);
      assert.match(z.log, /^tunicorn: error: config file .*exits0\.config\.mjs called process\.exit\(0\) while loading\n$/);
    }
  });

  it('--help and --version answer whatever the config file and the environment hold, and --print-config ends', async () => {
    const broken = path.join(tmp, 'broken-default');
    mkdirSync(broken, { recursive: true });
    writeFileSync(path.join(broken, 'tunicorn.config.ts'), 'export default { workers: \n');
    for (const flag of ['--help', '--version']) {
      const s = new Server([flag], { cwd: broken, env: { PORT: 'not-a-port' } });
      assert.equal((await s.exited).code, 0, s.log);
      assert.match(s.stdout, flag === '--help' ? /^usage: tunicorn/ : /^tunicorn \d/);
    }
    // A config file that keeps a timer: the printing commands exit all the same.
    const busy = path.join(tmp, 'busy-default');
    mkdirSync(busy, { recursive: true });
    writeFileSync(path.join(busy, 'tunicorn.config.mjs'), 'setInterval(() => {}, 60000);\nexport default { workers: 2 };\n');
    for (const args of [['--print-config', 'app.ts'], ['--version'], ['--help']]) {
      const s = new Server(args, { cwd: busy });
      assert.equal((await within(s.exited, 15000, `${args[0]} to exit`)).code, 0);
    }
  });
});

describe('operations', () => {
  it('writes the pidfile, replaces a stale one, removes it at exit; titles name master and workers', async () => {
    const pidfile = path.join(tmp, 'stale.pid');
    writeFileSync(pidfile, '999999\n'); // a process that does not exist
    const { s } = await start(['-p', pidfile, '-n', 'myapp', fx('listener.ts')]);
    const [w] = await s.workersBooted(1);
    await until(() => existsSync(pidfile) && readFileSync(pidfile, 'utf8').trim() === String(s.pid), 5000, 'pidfile');
    await until(() => readFileSync(`/proc/${w}/cmdline`, 'utf8').includes('tunicorn: worker [myapp]'), 10000, 'worker title');
    assert.match(readFileSync(`/proc/${s.pid}/cmdline`, 'utf8'), /tunicorn: master \[myapp\]/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.ok(!existsSync(pidfile));
  });

  it('HUP with a new procName retitles the master too, as Gunicorn; an unknown access-log atom fails the reload in one line', async () => {
    const cfg = path.join(tmp, 'retitle.config.mjs');
    writeFileSync(cfg, 'export default { procName: "before" };\n');
    const { s } = await start(['-c', cfg, fx('listener.ts')]);
    await s.workersBooted(1);
    assert.match(readFileSync(`/proc/${s.pid}/cmdline`, 'utf8'), /tunicorn: master \[before\]/);
    // A format the workers could not compile: the reload fails in the master, the running workers serve on.
    writeFileSync(cfg, 'export default { procName: "after", accesslog: "-", accessLogFormat: "%(h)s %(status)s" };\n');
    s.signal('SIGHUP');
    await s.waitFor(/Reload failed, keeping the running configuration: invalid value for accessLogFormat \(--access-logformat\): "%\(h\)s %\(status\)s"; unknown atom %\(status\)s/);
    assert.match(readFileSync(`/proc/${s.pid}/cmdline`, 'utf8'), /tunicorn: master \[before\]/);
    writeFileSync(cfg, 'export default { procName: "after" };\n');
    s.signal('SIGHUP');
    const [w] = await s.workersBooted(1, s.log.length);
    await until(() => readFileSync(`/proc/${w}/cmdline`, 'utf8').includes('tunicorn: worker [after]'), 10000, 'new worker title');
    assert.match(readFileSync(`/proc/${s.pid}/cmdline`, 'utf8'), /tunicorn: master \[after\]/);
    assert.doesNotMatch(s.log, /Worker failed to boot|ConfigError/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('the bin runs the master on the interpreter only, and its workers with all of V8', async () => {
    // The config's hook runs in the master: it writes the master's Node options where the test can read them.
    const seen = path.join(tmp, 'master-execargv.json');
    const cfg = path.join(tmp, 'execargv.config.mjs');
    writeFileSync(cfg, `import { writeFileSync } from 'node:fs';\nexport default { onStarting: () => writeFileSync(${JSON.stringify(seen)}, JSON.stringify(process.execArgv)) };\n`);
    const s = new Server(['-b', '127.0.0.1:0', '-c', cfg, fx('listener.ts')], { bin: true });
    const port = await s.port();
    await s.workersBooted(1);
    assert.deepEqual(JSON.parse(readFileSync(seen, 'utf8')), MASTER_NODE_FLAGS);
    const worker = JSON.parse((await request(port, '/execargv')).body) as { execArgv: string[] };
    for (const flag of MASTER_NODE_FLAGS) assert.ok(!worker.execArgv.includes(flag), `worker runs with ${flag}`);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('gives each worker an inspector port of its own when the master runs with --inspect', async () => {
    // A base port from the kernel whose next two are free as well: the workers take base + 1 and base + 2.
    const base = await freePortRun(3);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', fx('listener.ts')], { env: { NODE_OPTIONS: `--inspect=127.0.0.1:${base}` } });
    await s.port();
    await s.workersBooted(2);
    for (const port of [base + 1, base + 2]) {
      assert.match(s.log, new RegExp(`Booting worker with pid: \\d+, inspector on port ${port}\\n`));
      await s.waitFor(new RegExp(`Debugger listening on ws://127\\.0\\.0\\.1:${port}/`));
      const targets = JSON.parse((await request(port, '/json/list')).body) as { url: string }[];
      assert.match(targets[0]!.url, /workers\/child\.js$/, `port ${port} is a worker's`);
    }
    const master = JSON.parse((await request(base, '/json/list')).body) as { url: string }[];
    assert.match(master[0]!.url, /cli\/main\.js$/);
    assert.doesNotMatch(s.log, /Starting inspector .* failed/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('refuses to start over the pidfile of a live process', async () => {
    const pidfile = path.join(tmp, 'live.pid');
    writeFileSync(pidfile, `${process.pid}\n`);
    // Before anything is bound, in one line. (--check-config passes: see "--check-config checks the logs".)
    const s = new Server(['-b', '127.0.0.1:0', '-p', pidfile, fx('listener.ts')]);
    assert.equal((await s.exited).code, 1);
    assert.match(s.log, /^tunicorn: error: pidfile .*live\.pid names process \d+, which is still running; stop it or choose another --pid\n$/);
  });

  it('replaces a pidfile whose pid another program runs now (reused after the server was gone)', async () => {
    const pidfile = path.join(tmp, 'reused.pid');
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(pidfile, `${other.pid}\n`);
      const s = new Server(['-b', '127.0.0.1:0', '-p', pidfile, fx('listener.ts')]);
      await s.waitFor(/Booting worker with pid/);
      assert.equal(readFileSync(pidfile, 'utf8'), `${s.pid}\n`);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0);
    } finally {
      other.kill();
    }
  });

  it('writes the access log in Gunicorn format and reopens both logs on USR1', async () => {
    const errlog = path.join(tmp, 'error.log');
    const acclog = path.join(tmp, 'access.log');
    const s = new Server(['-b', '127.0.0.1:0', '--error-logfile', errlog, '--access-logfile', acclog, fx('listener.ts')]);
    await until(() => existsSync(errlog) && /Listening at: http:\/\/127\.0\.0\.1:\d+/.test(readFileSync(errlog, 'utf8')), 10000, 'error log');
    const port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(errlog, 'utf8'))![1]);
    await until(() => /Booting worker/.test(readFileSync(errlog, 'utf8')), 10000, 'boot');
    // A User-Agent in UTF-8 (a header value Node sends byte for byte): the log holds those bytes.
    await request(port, '/?q=1', { headers: { 'user-agent': Buffer.from('agent/7 caf\u00e9').toString('latin1'), referer: 'http://ref/' } });
    await until(() => existsSync(acclog) && readFileSync(acclog, 'utf8').length > 0, 5000, 'access line');
    assert.match(
      readFileSync(acclog, 'utf8'),
      /^127\.0\.0\.1 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET \/\?q=1 HTTP\/1\.1" 200 25 "http:\/\/ref\/" "agent\/7 caf\u00e9"\n$/,
    );
    renameSync(errlog, errlog + '.1');
    renameSync(acclog, acclog + '.1');
    s.signal('SIGUSR1');
    await until(() => existsSync(errlog), 5000, 'reopened error log');
    await request(port, '/after');
    await until(() => existsSync(acclog) && /GET \/after/.test(readFileSync(acclog, 'utf8')), 5000, 'reopened access log');
    await s.kill();
  });

  it('escapes quotes and control bytes a client sends, so that one request makes one access-log line that cannot be forged', async () => {
    const acclog = path.join(tmp, 'access-escaped.log');
    const { s, port } = await start(['-w', '1', '--access-logfile', acclog, fx('listener.ts')]);
    // A Basic user is any bytes the client base64-encoded: a line break, a forged line, a terminal escape.
    const user = 'mallory"\n10.9.9.9 - admin [01/Jan/2026 +0000] "GET /admin HTTP/1.1" 200 1 "-" "-"\x1b[2J';
    await request(port, '/a"b?c="d', {
      headers: { authorization: 'Basic ' + Buffer.from(`${user}:pw`).toString('base64'), 'user-agent': 'agent\\" "forged', referer: 'r"1' },
    });
    await until(() => existsSync(acclog) && readFileSync(acclog, 'utf8').endsWith('\n'), 5000, 'the access line');
    s.signal('SIGTERM');
    await s.exited;
    const text = readFileSync(acclog, 'utf8');
    assert.equal(text.split('\n').length, 2, `one line: ${JSON.stringify(text)}`);
    assert.match(
      text,
      /^127\.0\.0\.1 - mallory\\"\\x0a10\.9\.9\.9 - admin \[01\/Jan\/2026 \+0000\] \\"GET \/admin HTTP\/1\.1\\" 200 1 \\"-\\" \\"-\\"\\x1b\[2J \[[^\]]+\] "GET \/a\\"b\?c=\\"d HTTP\/1\.1" \d{3} \d+ "r\\"1" "agent\\\\\\" \\"forged"\n$/,
    );
  });

  it('loses no access-log line, and cuts none, when stdout is a pipe its reader stops draining', async () => {
    // A long User-Agent fills the pipe's 64 KiB in a few hundred lines.
    const agentName = `agent-${'x'.repeat(300)}`;
    const { s, port } = await start(['-w', '2', '--access-logfile', '-', fx('listener.ts')]);
    await s.workersBooted(2);
    s.child.stdout!.pause();
    const total = 2000;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let sent = 0;
    let done = 0;
    let lastDone = Date.now();
    const failures: string[] = [];
    const loop = async () => {
      while (sent < total && failures.length === 0) {
        const n = sent++;
        const r = await request(port, `/?n=${n}`, { agent, headers: { 'user-agent': agentName }, timeout: 20000 }).catch((e: Error) => ({ status: e.message }));
        if (r.status !== 200) failures.push(`/?n=${n}: ${r.status}`);
        done++;
        lastDone = Date.now();
      }
    };
    const loops = Promise.all(Array.from({ length: 8 }, loop));
    // The reader drains again once the worker stopped answering (it waits for the pipe), or all were answered.
    await until(() => done === total || Date.now() - lastDone > 300, 20000, 'the worker to wait for the pipe');
    const stalled = done < total;
    s.child.stdout!.resume();
    await loops;
    agent.destroy();
    assert.deepEqual(failures, []);
    s.signal('SIGTERM');
    assert.deepEqual(await s.exited, { code: 0, signal: null });
    const lines = s.stdout.split('\n').filter(Boolean);
    const wellFormed = lines.filter((l) => /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/\?n=\d+ HTTP\/1\.1" 200 \d+ "-" "agent-x{300}"$/.test(l));
    assert.equal(wellFormed.length, lines.length, `malformed lines: ${lines.filter((l) => !wellFormed.includes(l)).slice(0, 2).join(' | ')}`);
    assert.equal(new Set(lines.map((l) => /GET \/\?n=(\d+)/.exec(l)![1])).size, total);
    assert.ok(stalled, 'the pipe never filled: the test proves nothing');
  });

  it('says once, in the error log, that the access log on stdout is lost when its reader closed the pipe', async () => {
    const { s, port } = await start(['-w', '1', '--access-logfile', '-', fx('listener.ts')]);
    await s.workersBooted(1);
    s.child.stdout!.destroy();
    for (let i = 0; i < 3; i++) assert.equal((await request(port, `/?n=${i}`)).status, 200);
    await s.waitFor(/\[ERROR\] Cannot write the access log to stdout: its reader closed the pipe \(EPIPE\)\. Access log lines are lost/);
    assert.equal((await request(port, '/')).status, 200, 'the worker serves on');
    assert.equal(s.log.split('Cannot write the access log').length - 1, 1, 'said once');
    await s.kill();
  });

  for (const cls of [['-k', 'async'], ['-k', 'sync'], ['-k', 'gthread', '--threads', '2']]) {
    it(`${cls.join(' ')}: the app's console.log to a stdout whose reader closed the pipe is dropped, said once; no worker dies of it`, async () => {
      const app = path.join(tmp, 'logs-each-request.mjs');
      writeFileSync(app, "export default (req, res) => { console.log(`request ${req.url}`); res.end(String(process.pid)); };\n");
      const { s, port } = await start([...cls, '-w', '1', app]);
      await s.waitFor(/Ready: /, 30000);
      const first = (await request(port, '/?n=0')).body;
      // The reader of the server's stdout goes away (`| head`, a log shipper that exited).
      s.child.stdout!.destroy();
      for (let i = 1; i < 4; i++) assert.equal((await request(port, `/?n=${i}`)).body, first, 'the same worker serves on');
      await s.waitFor(/\[WARNING\] The app's standard output is a pipe that nothing reads any more \(EPIPE: its reader exited\); what the app writes there is dropped from now on\n/);
      assert.equal((await request(port, '/')).body, first);
      assert.equal(s.count(/The app's standard output is a pipe/), 1, 'said once');
      assert.doesNotMatch(s.log, /Uncaught exception|EPIPE\n/);
      await s.kill();
    });
  }

  it('--capture-output sends the app\'s console output to the error log file, from every class', async () => {
    const app = path.join(tmp, 'prints.mjs');
    // The bytes as written (as Gunicorn's redirected descriptors keep them): a UTF-8 character split across two
    // Buffers, a string in another encoding, a byte that is no UTF-8.
    const bytes = "process.stdout.write(Buffer.from([0x63, 0x61, 0x66, 0xc3])); process.stdout.write(Buffer.from([0xa9, 0x0a])); process.stdout.write('6869210a', 'hex'); process.stderr.write(Buffer.from([0xff, 0x0a]));";
    writeFileSync(app, `console.log('printed at import');\nexport default (req, res) => { console.log(\`out \${req.url}\`); ${bytes} console.error(\`err \${req.url}\`); res.end('ok'); };\n`);
    for (const cls of ['async', 'gthread']) {
      const errlog = path.join(tmp, `captured-${cls}.log`);
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', cls, '--capture-output', '--error-logfile', errlog, app]);
      await until(() => existsSync(errlog) && /Ready: 1 worker/.test(readFileSync(errlog, 'utf8')), 15000, 'ready');
      const port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(errlog, 'utf8'))![1]);
      await request(port, '/x');
      await until(() => /^err \/x$/m.test(readFileSync(errlog, 'utf8')), 5000, 'the captured output');
      assert.match(readFileSync(errlog, 'utf8'), /^printed at import\n[\s\S]*^out \/x\n/m);
      assert.ok(readFileSync(errlog).includes(Buffer.concat([Buffer.from('out /x\ncaf\u00e9\nhi!\n'), Buffer.from([0xff]), Buffer.from('\nerr /x\n')])), `the bytes as written, ${cls}`);
      await s.kill();
      assert.equal(s.stdout, '', 'nothing on stdout');
      assert.doesNotMatch(s.log, /printed|out \/x|err \/x/, 'nothing on stderr');
    }
    const s = new Server(['-b', '127.0.0.1:0', '--capture-output', app]);
    await s.waitFor(/\[WARNING\] capture_output \(--capture-output\) does nothing while the error log is stderr: set --error-logfile FILE/);
    await s.kill();
  });

  it("logs a streamed body's bytes as %(b)s, as Gunicorn does, from every class and over HTTP/2", async () => {
    const listener = path.join(tmp, 'streams.mjs');
    writeFileSync(
      listener,
      `export default (req, res) => {
  if (req.url === '/chunked') { res.write('hello '); res.write(Buffer.from('w\u00f6rld')); res.end('!'); return; }
  if (req.url === '/head-then-end') { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('abc'); return; }
  if (req.url === '/empty') { res.writeHead(200); res.end(); return; }
  res.end('twelve bytes');
};\n`,
    );
    const fetchApp = path.join(tmp, 'stream-fetch.mjs');
    writeFileSync(
      fetchApp,
      `const enc = new TextEncoder();
export default (_request) => new Response(new ReadableStream({ start(c) { c.enqueue(enc.encode('abc')); c.enqueue(enc.encode('defg')); c.close(); } }));\n`,
    );
    const format = ['--access-logformat', '%(m)s %(U)s %(H)s %(s)s b=%(b)s B=%(B)s'];
    /** Serves `app`, sends `requests`, and gives the access log's lines once all are there. */
    const logged = async (args: string[], app: string, requests: (port: number) => Promise<unknown>, n: number, tls = false) => {
      const acclog = path.join(tmp, `access-bytes-${Math.random().toString(36).slice(2)}.log`);
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--access-logfile', acclog, ...format, ...args, app]);
      const port = Number((await s.waitFor(tls ? /Listening at: https:\/\/127\.0\.0\.1:(\d+)/ : /Listening at: http:\/\/127\.0\.0\.1:(\d+)/))[1]);
      await s.waitFor(/Ready: 1 worker/, 20000);
      await requests(port);
      await until(() => existsSync(acclog) && readFileSync(acclog, 'utf8').split('\n').filter(Boolean).length >= n, 5000, `${n} access lines`);
      await s.kill();
      return readFileSync(acclog, 'utf8').trim().split('\n');
    };
    const http10 = async (port: number, target: string) => {
      const c = net.connect(port, '127.0.0.1');
      c.end(`GET ${target} HTTP/1.0\r\n\r\n`);
      c.resume();
      await once(c, 'close');
    };
    for (const args of [[], ['-k', 'gthread', '--threads', '2'], ['-k', 'sync']]) {
      const lines = await logged(args, listener, async (port) => {
        for (const p of ['/chunked', '/head-then-end', '/']) assert.equal((await request(port, p)).status, 200);
        await request(port, '/chunked', { method: 'HEAD' });
        await http10(port, '/head-then-end');
      }, 5);
      // Sorted: each gthread thread writes its own lines.
      assert.deepEqual(
        lines.sort(),
        [
          'GET /chunked HTTP/1.1 200 b=13 B=13',
          'GET /head-then-end HTTP/1.1 200 b=3 B=3',
          'GET / HTTP/1.1 200 b=12 B=12',
          'HEAD /chunked HTTP/1.1 200 b=0 B=0',
          // No chunks in HTTP/1.0: the body runs to the connection's close.
          'GET /head-then-end HTTP/1.0 200 b=3 B=3',
        ].sort(),
        `-k ${args[1] ?? 'async'}`,
      );
    }
    const fetched = await logged([], fetchApp, async (port) => assert.equal((await request(port, '/')).body, 'abcdefg'), 1);
    assert.deepEqual(fetched, ['GET / HTTP/1.1 200 b=7 B=7']);
    const c = selfSigned();
    const h2get = async (port: number, p: string): Promise<string> => {
      const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
      try {
        return await new Promise<string>((resolve, reject) => {
          const r = session.request({ ':path': p });
          let text = '';
          r.setEncoding('utf8');
          r.on('data', (d: string) => (text += d));
          r.on('end', () => resolve(text));
          r.on('error', reject);
          r.end();
        });
      } finally {
        session.close();
      }
    };
    const tls = ['--certfile', c.cert, '--keyfile', c.key];
    const h2fetch = await logged(tls, fetchApp, async (port) => assert.equal(await h2get(port, '/h2'), 'abcdefg'), 1, true);
    assert.deepEqual(h2fetch, ['GET /h2 HTTP/2.0 200 b=7 B=7']);
    const h2listener = await logged(tls, listener, async (port) => {
      assert.equal(await h2get(port, '/chunked'), 'hello w\u00f6rld!');
      assert.equal(await h2get(port, '/empty'), '');
    }, 2, true);
    assert.deepEqual(h2listener.sort(), ['GET /chunked HTTP/2.0 200 b=13 B=13', 'GET /empty HTTP/2.0 200 b=0 B=0']);
  });

  it('logs the status tunicorn wrote past the response object: body_timeout\'s 408, a 400 for a bad chunk', async () => {
    const acclog = path.join(tmp, 'access-raw.log');
    const { s, port } = await start(['--body-timeout', '1', '--access-logfile', acclog, fx('listener.ts')]);
    await s.workersBooted(1);
    const raw = async (bytes: string) => {
      const c = net.connect(port, '127.0.0.1');
      c.write(bytes);
      let got = '';
      c.on('data', (d: Buffer) => (got += d.toString('latin1')));
      await within(once(c, 'close'), 5000, 'the close after the answer');
      return got;
    };
    // A body that stalls (5 of its 10 bytes), then one with a malformed chunk size: answered on the socket.
    assert.match(await raw('POST /sleep?ms=3000&w=stall HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabcde'), /^HTTP\/1\.1 408 /);
    assert.match(await raw('POST /sleep?ms=3000&w=chunk HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nZZ\r\n'), /^HTTP\/1\.1 400 /);
    await until(() => existsSync(acclog) && readFileSync(acclog, 'utf8').split('\n').filter(Boolean).length >= 2, 5000, 'two access lines');
    const log = readFileSync(acclog, 'utf8');
    assert.match(log, /"POST \/sleep\?ms=3000&w=stall HTTP\/1\.1" 408 /);
    assert.match(log, /"POST \/sleep\?ms=3000&w=chunk HTTP\/1\.1" 400 /);
    await s.kill();
  });

  it('names the client, and no status, in the access log of a request whose connection the client reset', async () => {
    const acclog = path.join(tmp, 'access-reset.log');
    const { s, port } = await start(['--access-logfile', acclog, fx('listener.ts')]);
    await s.workersBooted(1);
    const client = net.connect(port, '127.0.0.1');
    await once(client, 'connect');
    client.write('GET /sleep?ms=300&note=1 HTTP/1.1\r\nHost: x\r\n\r\n');
    await s.waitFor(/app: sleeping 300 ms/);
    // RST: the worker's socket is destroyed before the response, so the log line is written after the
    // connection is gone.
    client.resetAndDestroy();
    await until(() => existsSync(acclog) && readFileSync(acclog, 'utf8').includes('/sleep'), 5000, 'access line');
    // No status and no body: the client got neither (Node's default 200 was never sent).
    assert.match(readFileSync(acclog, 'utf8'), /^127\.0\.0\.1 - - \[.*\] "GET \/sleep\?ms=300&note=1 HTTP\/1\.1" - - "-" "-"\n$/);
    await s.kill();
  });

  it('measures queue time: the access log\'s %(Q)s and queueTime(req) agree', async () => {
    const acclog = path.join(tmp, 'access-queue.log');
    // One thread: a connection accepted while it serves another waits, accepted and unread, for its turn.
    const { s, port } = await start(['-k', 'gthread', '--threads', '1', '--access-logfile', acclog, '--access-logformat', '%(U)s %(Q)s', fx('queue-time.mjs')]);
    await s.workersBooted(1);
    const first = request(port, '/sleep?ms=600');
    await s.waitFor(/app: sleeping/);
    // performance.now(): Date.now() counts whole milliseconds, and the queue time can come within one of the wait.
    const t0 = performance.now();
    const waited = await request(port, '/waited');
    const turn = performance.now() - t0;
    await first;
    const q = JSON.parse(waited.body).q as number;
    assert.ok(q > 0 && q <= turn, `queue time ${q} ms: more than 0, and no more than the ${turn} ms the client waited`);
    // So did a request on a kept-alive connection that came while the thread ran another.
    const kept = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal(JSON.parse((await request(port, '/kept1', { agent: kept })).body).q > 0, true, 'first request on it');
    const second = request(port, '/sleep?ms=600');
    await s.waitFor(/(?:[\s\S]*?app: sleeping){2}/);
    const t1 = performance.now();
    const keptWaited = await request(port, '/kept2', { agent: kept });
    const keptTurn = performance.now() - t1;
    await second;
    kept.destroy();
    const kq = JSON.parse(keptWaited.body).q as number;
    assert.ok(kq > 0 && kq <= keptTurn, `kept-alive queue time ${kq} ms: more than 0, and no more than the ${keptTurn} ms the client waited`);
    // A proxy's X-Request-Start (seconds since the epoch) counts from when the proxy saw the request.
    const proxied = await request(port, '/proxied', { headers: { 'x-request-start': `t=${(Date.now() - 2500) / 1000}` } });
    const pq = JSON.parse(proxied.body).q as number;
    assert.ok(pq >= 2500 && pq < 2500 + 10000, `X-Request-Start 2.5 s ago gave ${pq} ms`);
    await until(() => existsSync(acclog) && readFileSync(acclog, 'utf8').includes('/proxied'), 5000, 'access lines');
    const logged = new Map(readFileSync(acclog, 'utf8').trim().split('\n').map((l) => l.split(' ') as [string, string]));
    assert.equal(logged.get('/waited'), String(Math.round(q)));
    assert.equal(logged.get('/proxied'), String(Math.round(pq)));
    await s.kill();
    // A later request on a keep-alive connection did not wait (the default class: nothing else runs first).
    const ka = await start([fx('queue-time.mjs')]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const reply = async (p: string) => JSON.parse((await request(ka.port, p, { agent })).body).q as number;
    assert.ok((await reply('/ka1')) > 0, 'the first request on a connection waited from its accept');
    assert.equal(await reply('/ka2'), 0);
    agent.destroy();
    await ka.s.kill();
  });

  it('runs the server hooks with Gunicorn meanings', async () => {
    const hookLog = path.join(tmp, 'hooks.log');
    writeFileSync(hookLog, '');
    const { s, port } = await start(['-c', fx('hooks.config.ts'), fx('listener.ts')], { HOOK_LOG: hookLog });
    const [w] = await s.workersBooted(1);
    await until(() => readFileSync(hookLog, 'utf8').includes('postWorkerInit'), 10000, 'postWorkerInit');
    await request(port, '/hello');
    // The request waited from its connection's accept: post_request's queueTime(req) says so.
    await until(() => readFileSync(hookLog, 'utf8').includes('postRequest:/hello:404:waited'), 5000, 'postRequest');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    const lines = readFileSync(hookLog, 'utf8').trim().split('\n');
    const where = (name: string) => {
      const l = lines.find((x) => x.startsWith(name + ' ') || x.startsWith(name + ':'));
      assert.ok(l, `${name} ran; log:\n${lines.join('\n')}`);
      return Number(l.split(' ').at(-1));
    };
    for (const master of ['onStarting', 'whenReady', 'preFork:1', 'nworkersChanged:null->1', 'childExit', 'onExit']) assert.equal(where(master), s.pid, master);
    for (const worker of ['postFork', 'postWorkerInit', 'preRequest:/hello', 'postRequest:/hello:404', 'workerExit']) assert.equal(where(worker), w, worker);
    const order = lines.map((l) => l.split(/[ :]/)[0]);
    assert.ok(order.indexOf('onStarting') < order.indexOf('postFork'));
    assert.ok(order.indexOf('postFork') < order.indexOf('postWorkerInit'));
    assert.ok(order.indexOf('workerExit') < order.indexOf('onExit'));
    assert.ok(!order.includes('workerInt'), 'TERM is a graceful stop: no worker_int');
  });

  it('a worker\'s hooks see the worker count wanted when it started, after TTIN too', async () => {
    const hookLog = path.join(tmp, 'hooks-ttin.log');
    writeFileSync(hookLog, '');
    const { s } = await start(['-c', fx('hooks.config.ts'), fx('listener.ts')], { HOOK_LOG: hookLog });
    const [first] = await s.workersBooted(1);
    s.signal('SIGTTIN');
    const [, second] = await s.workersBooted(2);
    // Each worker writes its own line when it gets there: the first may still be loading the config file
    // when the second, forked later, has written its own.
    const log = () => readFileSync(hookLog, 'utf8');
    await until(() => log().includes(`postFork:2 ${second}`) && /postFork:\d+ /.test(log().replace(`postFork:2 ${second}`, '')), 10000, 'both postFork lines');
    assert.match(log(), new RegExp(`postFork:1 ${first}`));
    await s.kill();
  });

  it('runs worker_exit after worker_abort, and in a worker whose app failed to load, as Gunicorn does', async () => {
    const hookLog = path.join(tmp, 'hooks-abort.log');
    writeFileSync(hookLog, '');
    const { s } = await start(['-c', fx('hooks.config.ts'), fx('listener.ts')], { HOOK_LOG: hookLog });
    const [w] = await s.workersBooted(1);
    await until(() => readFileSync(hookLog, 'utf8').includes('postWorkerInit'), 10000, 'postWorkerInit');
    // What the master's timeout sends a worker whose loop is stuck; this one's is free to run the hooks.
    process.kill(w!, 'SIGABRT');
    await s.waitFor(new RegExp(`Worker aborted \\(pid: ${w}\\)`));
    await until(() => readFileSync(hookLog, 'utf8').includes(`workerExit ${w}`), 5000, 'workerExit');
    const lines = readFileSync(hookLog, 'utf8').trim().split('\n');
    assert.ok(lines.indexOf(`workerAbort ${w}`) >= 0 && lines.indexOf(`workerAbort ${w}`) < lines.indexOf(`workerExit ${w}`), lines.join('; '));
    await s.kill();

    const failLog = path.join(tmp, 'hooks-load-fails.log');
    writeFileSync(failLog, '');
    const f = new Server(['-b', '127.0.0.1:0', '-c', fx('hooks.config.ts'), fx('throws-at-import.ts')], { env: { ...process.env, HOOK_LOG: failLog } });
    await f.exited;
    const ran = readFileSync(failLog, 'utf8');
    const forked = /postFork:\d+ (\d+)/.exec(ran);
    assert.ok(forked, ran);
    assert.match(ran, new RegExp(`workerExit ${forked[1]}`));
  });

  it('runs worker_int in each worker when the master gets INT or QUIT, as Gunicorn does', async () => {
    for (const sig of ['SIGINT', 'SIGQUIT'] as const) {
      const hookLog = path.join(tmp, `hooks-${sig}.log`);
      writeFileSync(hookLog, '');
      const { s } = await start(['-w', '2', '-c', fx('hooks.config.ts'), fx('listener.ts')], { HOOK_LOG: hookLog });
      const workers = await s.workersBooted(2);
      await until(() => readFileSync(hookLog, 'utf8').split('postWorkerInit').length === 3, 10000, 'postWorkerInit x2');
      s.signal(sig);
      await s.exited;
      const ran = readFileSync(hookLog, 'utf8').trim().split('\n').filter((l) => l.startsWith('workerInt'));
      assert.deepEqual(ran.map((l) => Number(l.split(' ').at(-1))).sort(), [...workers].sort(), `${sig}: ${ran.join('; ')}`);
    }
  });
});
