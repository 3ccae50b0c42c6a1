/**
 * When the machine's resources run out or the environment turns hostile:
 * - the master killed (SIGKILL) while a worker's event loop is stuck: the worker does not stay behind as an
 *   orphan holding the listening socket (the native watcher and the worker-thread one)
 * - a log file that cannot be written (a full disk: /dev/full): one line says so, per process, and the
 *   server serves on; once the file can be written again, a line says how many lines were lost
 * - USR1 after logrotate, with workers that run as --user: the master makes the new log files for them, as
 *   those it makes at start, so that a USR1 with nothing rotated is no error
 * - a worker that dies of a full JavaScript heap (Node aborts): replaced, and the line names the likely cause
 * - a gthread thread that dies of a full heap takes only its own requests: the other threads finish theirs
 * - the pidfile is mode 0644, not writable by every local user, whatever the umask; the log files follow the umask
 * - an open-file limit too low for worker_connections, or for the sockets to bind, is one line that says so;
 *   a worker that reaches it while serving (its connections then closed unanswered) says so once per episode
 * - an idle server leaves the machine alone: its master wakes once in 10 s, its workers' heartbeats in files
 *   it reads then (once a second before its resting tick, once more for each beat before the beat files, and
 *   7 times a second before that);
 *   an idle worker beats, and its stall watcher reads, once in 5 s (each once a second before Watchdog.pace,
 *   the watcher 10 times before that), with --metrics too; each gthread thread too (once a second before, 3
 *   times before that), and its process; a gthread worker busy with short requests sends its master no
 *   message for them; with -t 0 a worker does not beat at all, nor its watcher wake, while the master lives
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { alive, childrenOf, FIXTURES, request, requestUntilServed, Server, sinceBeatMs, stopAll, until, within } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';
import { threadSwitches } from '../../bench/lib/proc.js';

const APP = path.join(FIXTURES, 'zero-downtime-app.mjs');
const tmp = scratchDir('tunicorn-resources-');
after(async () => {
  await stopAll();
});

/** Runs the server under `ulimit -n n` (the shell execs node: the server is the child). */
const ulimitN = (n: number) => ['/bin/sh', '-c', `ulimit -n ${n} && exec "$0" "$@"`];

describe('an idle server', { skip: existsSync('/proc/self/task') ? false : 'needs /proc (Linux)' }, () => {
  /** A server that served one connection, closed: the workers' sweeps woke for it and sleep again once it is gone. */
  async function idleServer(args: string[]): Promise<Server> {
    const s = new Server(['-b', '127.0.0.1:0', ...args, APP]);
    await s.waitFor(/Ready: /, 30000);
    assert.equal((await request(await s.port(), '/pid', { headers: { connection: 'close' } })).status, 200);
    return s;
  }

  /**
   * Until no worker's beat file is `ms` old (default 1.5 s): none beats every second any more, so each idles
   * (idleBeatEvery).
   */
  const untilIdle = (workers: number[], ms = 1500, bound = 15000): Promise<void> =>
    until(() => workers.every((w) => sinceBeatMs(w) > ms), bound, 'the workers to idle');

  type Rates = Map<number, { name: string; perS: number }>;

  /**
   * Each process's threads over `seconds`: tid -> name and wakeups a second (voluntary context switches, one each
   * time a thread slept and woke).
   */
  async function wakeRates(pids: number[], seconds: number): Promise<Rates[]> {
    const before = pids.map((pid) => threadSwitches([pid]));
    // A rate needs a span of time: nothing is waited for here, the threads are counted over it.
    await delay(seconds * 1000);
    return pids.map((pid, i) => {
      const rates: Rates = new Map();
      for (const [tid, t] of threadSwitches([pid])) {
        const b = before[i]!.get(tid);
        if (b) rates.set(tid, { name: t.name, perS: (t.switches - b.switches) / seconds });
      }
      return rates;
    });
  }

  /**
   * The rates of the first span of 5 s, of up to six, in which `loud` finds no thread too wakeful (it returns what
   * it found, or null). V8's memory reducer wakes a process's main thread (and each gthread thread's loop) a few
   * times in the seconds after its start or a load, up to 13 times in a second here, then stops; a thread on a
   * timer of its own wakes as often in every span.
   */
  async function quietSpan(pids: number[], loud: (rates: Rates[]) => string | null): Promise<Rates[]> {
    let found: string | null = null;
    for (let i = 0; i < 6; i++) {
      const rates = await wakeRates(pids, 5);
      found = loud(rates);
      if (found === null) return rates;
    }
    assert.fail(`${found}, in each of six spans of 5 s`);
  }

  /** The native stall watcher of a worker (named by native/watchdog.c, built by npm run build; CI has a C compiler). */
  function watcherOf(threads: Rates, pid: number): { perS: number } {
    const watch = [...threads.values()].filter((t) => t.name === 'tunicorn watch');
    assert.equal(watch.length, 1, `worker ${pid}: one thread named "tunicorn watch" among ${[...threads.values()].map((t) => t.name).join(', ')}`);
    return watch[0]!;
  }

  /** What woke more than 0.6 times a second: the master's main thread, and each worker's stall watcher. */
  const loudOnes = (master: number, workers: number[]) => (rates: Rates[]) => {
    const [m, ...perWorker] = rates;
    const said: string[] = [];
    const woke = m!.get(master)!.perS;
    if (woke > 0.6) said.push(`the master's main thread woke ${woke} times a second`);
    perWorker.forEach((threads, i) => {
      const watch = watcherOf(threads, workers[i]!);
      if (watch.perS > 0.6) said.push(`worker ${workers[i]}'s stall watcher woke ${watch.perS} times a second`);
    });
    return said.length ? said.join('; ') : null;
  };

  it('wakes rarely: the master once in 10 s, each idle worker once for its beat and once for its watcher in 5 s', async () => {
    const s = await idleServer(['-w', '3']);
    const workers = childrenOf(s.pid);
    assert.equal(workers.length, 3);
    // A worker idles once a beat has seen no request: its beats (every second while it serves) then pause for
    // 5 s, a sixth of the default timeout (idleBeatEvery).
    await untilIdle(workers);
    // The master's tick, which reads the workers' beat files: once every worker serves, it sleeps until the first
    // timeout could come, at most 10 s (it was once a second, and 0.2 s before that). A beat by message woke it
    // too, 4 times a second for 3 workers. Each watcher: once a beat period of the idle worker (5 s); once a
    // second while it serves (and always, before Watchdog.pace). The main thread's beats are checked by
    // core.test.ts ("an idle worker beats every sixth of its timeout").
    await quietSpan([s.pid, ...workers], loudOnes(s.pid, workers));
  });

  it('with --metrics too: the counts go with a beat only when they changed, so the master and the worker idle alike', async () => {
    const s = await idleServer(['-w', '1', '--metrics', '--health-bind', '127.0.0.1:0']);
    const [worker] = childrenOf(s.pid);
    await untilIdle([worker!]);
    // A beat that carried the counts was a message, which woke the master once a second (and kept the worker
    // from idling).
    await quietSpan([s.pid, worker!], loudOnes(s.pid, [worker!]));
  });

  it('a gthread worker: each idle thread beats once in 5 s, and the process with it', async () => {
    const s = await idleServer(['-w', '1', '-k', 'gthread', '--threads', '2']);
    const [worker] = childrenOf(s.pid);
    // The beat file holds the threads' oldest beat, written at the process's beat: at most some 2 s old while they
    // beat every second, up to 10 s once they and the process idle.
    await untilIdle([worker!], 3000, 20000);
    await quietSpan([worker!], ([threads]) => {
      // The app's threads: Node 22 and later name a worker thread `WorkerThread`; before, it has the name the
      // process had when it started (its title). The main thread, the native stall watcher (`tunicorn watch`)
      // and V8's and libuv's threads are not among them.
      const app = [...threads!].filter(([tid, t]) => tid !== worker && (t.name === 'WorkerThread' || t.name.startsWith('tunicorn: worke')));
      assert.equal(app.length, 2, `two app threads among ${[...threads!.values()].map((t) => t.name).join(', ')}`);
      // Its beat, once in 5 s (it was once a second, twice before that, and Node's header-timeout timer once more).
      const loud = app.filter(([, t]) => t.perS > 0.6).map(([tid, t]) => `thread ${tid} woke ${t.perS} times a second`);
      // The process's own beat idles once every thread does: its watcher reads once a period.
      const watch = watcherOf(threads!, worker!);
      if (watch.perS > 0.6) loud.push(`the stall watcher woke ${watch.perS} times a second`);
      return loud.length ? loud.join('; ') : null;
    });
  });

  it('a gthread worker busy with requests shorter than a beat period sends its master no message for them', async () => {
    const s = await idleServer(['-w', '1', '-k', 'gthread', '--threads', '2']);
    const port = await s.port();
    // One request after another, each 300 ms of waiting in the app: a thread runs one at most of its beats.
    let load = true;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const loaded = (async () => {
      let served = 0;
      while (load) {
        assert.equal((await request(port, '/spin?ms=0&wait=300', { agent })).status, 200);
        served++;
      }
      return served;
    })();
    // A failed request ends the load, and its error is thrown below.
    loaded.catch(() => {});
    try {
      // The master's tick sleeps up to 10 s while its worker serves; each beat that listed those requests was a
      // message, which woke it once a second.
      await quietSpan([s.pid], loudOnes(s.pid, []));
    } finally {
      load = false;
    }
    // The request under way ends first (300 ms).
    const served = await loaded;
    agent.destroy();
    assert.ok(served >= 10, `the load ran: ${served} requests`);
  });

  it('-t 0: a worker does not beat, and its stall watcher sleeps until the master is gone; then the worker leaves', async () => {
    const s = await idleServer(['-w', '1', '-t', '0']);
    const [worker] = childrenOf(s.pid);
    await quietSpan([worker!], ([threads]) => {
      // Both woke every 2.5 s before (half the 5 s an orphan's stuck loop is given): 0.4 times a second.
      const main = threads!.get(worker!)!.perS;
      const watch = watcherOf(threads!, worker!).perS;
      const loud: string[] = [];
      if (main > 0.2) loud.push(`the worker's main thread woke ${main} times a second`);
      if (watch > 0) loud.push(`its stall watcher woke ${watch} times a second`);
      return loud.length ? loud.join('; ') : null;
    });
    // The master gone, the watcher wakes and the loop beats again from its 'disconnect', which ends the worker:
    // the watcher, which kills a worker whose loop is stuck then (core.test.ts, "leaves no stuck worker holding
    // the port...: -t 0"), lets this one leave.
    process.kill(s.pid, 'SIGKILL');
    await s.exited;
    await s.waitFor(new RegExp(`Worker exiting \\(pid: ${worker}\\): the master is gone`), 10000);
    await until(() => !alive(worker!) || readFileSync(`/proc/${worker}/stat`, 'utf8').includes(') Z '), 10000, `worker ${worker} to exit`);
    assert.doesNotMatch(s.log, /event loop is stuck/);
  });
});

describe('the master killed while a worker is stuck', () => {
  for (const native of ['1', '0']) {
    it(`the stuck worker does not outlive it (${native === '1' ? 'native watcher' : 'worker-thread watcher'})`, async () => {
      const sock = path.join(tmp, `orphan-${native}.sock`);
      const s = new Server(['-b', `unix:${sock}`, '-w', '1', '-t', '2', APP], { env: { TUNICORN_NATIVE: native } });
      await s.waitFor(/Ready: /, 30000);
      const [worker] = childrenOf(s.pid);
      assert.ok(worker, 'a worker');
      const spinning = path.join(tmp, `spinning-${native}`);
      // Stuck for 60 s: far longer than the waits below.
      const req = http.request({ socketPath: sock, path: `/spin?ms=60000&spinning=${encodeURIComponent(spinning)}` });
      req.on('error', () => {});
      req.end();
      await until(() => {
        try {
          return readFileSync(spinning, 'utf8') === String(worker);
        } catch {
          return false;
        }
      }, 10000, 'the worker to be stuck');
      process.kill(s.pid, 'SIGKILL');
      await s.exited;
      // A stall is reported within 2 x heartbeat (1 s for -t 2), and the report finds the master gone.
      await until(() => !alive(worker!) || readFileSync(`/proc/${worker}/stat`, 'utf8').includes(') Z '), 10000, `worker ${worker} to exit`);
      req.destroy();
      assert.match(s.log, new RegExp(`\\[${worker}\\] \\[CRITICAL\\] Worker exiting: the master is gone and this worker's event loop is stuck`));
      // Its socket is free again: a new server binds it (no "another server is listening on it").
      const again = new Server(['-b', `unix:${sock}`, '-w', '1', APP]);
      await again.waitFor(/Listening at: unix:/, 20000);
      await again.kill();
    });
  }
});

describe('logs that cannot be written', () => {
  it('an error log on a full disk: one line on stderr per process; the server serves on', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', '--error-logfile', '/dev/full', APP]);
    // Nothing reaches the log, "Listening at" included: this line on stderr is all there is.
    const line = /\[(\d+)\] \[ERROR\] cannot write error log "\/dev\/full" \(--error-logfile\): no space is left on the device that holds \/dev; free some, or choose another --error-logfile\. Its lines are lost until it can be written again\n/g;
    const from = (pid: number) => [...s.log.matchAll(line)].filter((m) => Number(m[1]) === pid).length;
    await until(() => from(s.pid) === 1, 20000, 'the line from the master');
    await until(() => childrenOf(s.pid).length === 2, 20000, 'the workers');
    const old = childrenOf(s.pid);
    // Once per process, not once per line: HUP logs a dozen lines more in the master, and the old workers
    // log their exit (their first line).
    s.signal('SIGHUP');
    await until(() => old.every((p) => from(p) === 1), 20000, 'a line from each old worker');
    await until(() => old.every((p) => !childrenOf(s.pid).includes(p)), 20000, 'the old workers to stop');
    assert.equal(from(s.pid), 1, 'the master said it once');
    await s.kill();
  });

  it('an access log on a full disk: one line per worker, and the count of lost lines once it can be written', async () => {
    const link = path.join(tmp, 'access.log');
    const file = path.join(tmp, 'access-real.log');
    symlinkSync('/dev/full', link);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--access-logfile', link, APP]);
    const port = await s.port();
    await s.waitFor(/Ready: /, 30000);
    for (let i = 0; i < 5; i++) assert.equal((await request(port, '/pid')).status, 200);
    const failed = /\[ERROR\] cannot write access log ".*access\.log" \(--access-logfile\): no space is left on the device that holds .*; free some, or choose another --access-logfile\. Access log lines are lost until it can be written again\n/g;
    await s.waitFor(failed, 10000);
    for (let i = 0; i < 5; i++) assert.equal((await request(port, '/pid')).status, 200);
    assert.equal(s.count(failed), 1, 'said once');
    // Space again: logrotate's USR1 opens the (new) file.
    rmSync(link);
    symlinkSync(file, link);
    writeFileSync(file, '');
    const from = s.log.length;
    s.signal('SIGUSR1');
    await s.waitFor(/Handling signal: usr1/, 10000, from);
    // The worker reopens on the master's message, which may come after a request sent now.
    const recovered = /\[WARNING\] The access log ".*access\.log" could be written again: \d+ line\(s\) were lost while it could not \(ENOSPC\)/;
    for (let i = 0; i < 100 && !recovered.test(s.log); i++) {
      assert.equal((await request(port, '/pid')).status, 200);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(s.log, recovered);
    const lost = Number(/could be written again: (\d+) line/.exec(s.log)![1]);
    assert.ok(lost >= 10, `${lost} lines lost`);
    await until(() => readFileSync(file, 'utf8').includes('GET /pid'), 5000, 'lines in the new file');
    await s.kill();
  });
});

describe('USR1 after logrotate, with workers that run as --user', { skip: process.getuid?.() === 0 ? false : 'needs root' }, () => {
  it('the workers write to the new files, which the master made for them', async () => {
    const dir = mkdtempSync(path.join(tmp, 'rotate-'));
    // As /var/log/APP: others may look up files in it (mkdtemp makes 0700 directories).
    for (const d of [tmp, dir]) chmodSync(d, 0o755);
    const [errorLog, accessLog] = [path.join(dir, 'error.log'), path.join(dir, 'access.log')];
    // A directory only root may create files in, and files only their owner may write (umask 022).
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-u', 'nobody', '-g', 'nogroup', '--umask', '022', '--error-logfile', errorLog, '--access-logfile', accessLog, APP]);
    await until(() => existsSync(errorLog) && /Ready: /.test(readFileSync(errorLog, 'utf8')), 30000, 'the workers');
    const port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(errorLog, 'utf8'))![1]);
    const [worker] = childrenOf(s.pid);
    assert.equal((await request(port, '/pid')).status, 200);
    renameSync(errorLog, `${errorLog}.1`);
    renameSync(accessLog, `${accessLog}.1`);
    s.signal('SIGUSR1');
    await until(() => existsSync(errorLog), 10000, 'the new error log');
    const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
    // The worker reopens on the master's message, which may come after a request sent now.
    for (let i = 0; i < 100 && !read(accessLog).includes('GET /pid'); i++) {
      assert.equal((await request(port, '/pid')).status, 200);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(read(accessLog), /"GET \/pid HTTP\/1\.1" 200/);
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 30000, 'the exit')).code, 0);
    // The worker's own lines too, not only the master's.
    assert.match(readFileSync(errorLog, 'utf8'), new RegExp(`\\[${worker}\\] \\[INFO\\] Worker exiting`));
  });

  it('a USR1 with nothing rotated (logrotate\'s notifempty, a size not reached) is no error: the files made at start are the workers\' user\'s', async () => {
    const dir = mkdtempSync(path.join(tmp, 'unrotated-'));
    for (const d of [tmp, dir]) chmodSync(d, 0o755);
    const [errorLog, accessLog] = [path.join(dir, 'error.log'), path.join(dir, 'access.log')];
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-u', 'nobody', '-g', 'nogroup', '--umask', '022', '--error-logfile', errorLog, '--access-logfile', accessLog, APP]);
    await until(() => existsSync(errorLog) && /Ready: /.test(readFileSync(errorLog, 'utf8')), 30000, 'the workers');
    const port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(errorLog, 'utf8'))![1]);
    const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
    for (const f of [errorLog, accessLog]) assert.equal(statSync(f).uid, nobody, `${f} belongs to the workers' user`);
    s.signal('SIGUSR1');
    // The reopen is done once a request sent after it is in the access log, written by the reopened file.
    await until(() => /Handling signal: usr1/.test(readFileSync(errorLog, 'utf8')), 10000, 'the USR1');
    for (let i = 0; i < 100 && !readFileSync(accessLog, 'utf8').includes('GET /pid?after'); i++) {
      assert.equal((await request(port, '/pid?after')).status, 200);
      await new Promise((r) => setTimeout(r, 50));
    }
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 30000, 'the exit')).code, 0);
    assert.doesNotMatch(readFileSync(errorLog, 'utf8'), /USR1: .*cannot open/);
    assert.doesNotMatch(s.log, /USR1: .*cannot open/);
  });
});

describe('USR1 after logrotate made new files the workers\' --user may not write', { skip: process.getuid?.() === 0 ? false : 'needs root' }, () => {
  it('says so once, in the new error log, where the workers wrote on to the rotated files without a word', async () => {
    const dir = mkdtempSync(path.join(tmp, 'rotate-create-'));
    for (const d of [tmp, dir]) chmodSync(d, 0o755);
    const [errorLog, accessLog] = [path.join(dir, 'error.log'), path.join(dir, 'access.log')];
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', '-u', 'nobody', '-g', 'nogroup', '--error-logfile', errorLog, '--access-logfile', accessLog, APP]);
    await until(() => existsSync(errorLog) && /Ready: 2/.test(readFileSync(errorLog, 'utf8')), 30000, 'the workers');
    // logrotate's `create 0640 root root`: the new files exist, and only root may write them.
    for (const f of [errorLog, accessLog]) {
      renameSync(f, `${f}.1`);
      writeFileSync(f, '', { mode: 0o640 });
      chmodSync(f, 0o640);
    }
    s.signal('SIGUSR1');
    const said = (what: string, flag: string) =>
      new RegExp(`\\[ERROR\\] USR1: worker \\d+: cannot open ${what} ".*" \\(${flag}\\): permission denied: user nobody may not write to the file; change its owner or mode, or choose another ${flag}\\. The workers go on writing to the file already open\n`, 'g');
    const read = () => readFileSync(errorLog, 'utf8');
    await until(() => said('error log', '--error-logfile').test(read()) && said('access log', '--access-logfile').test(read()), 10000, 'the lines');
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 30000, 'the exit')).code, 0);
    // Once for both workers, not once each.
    assert.equal(read().match(said('error log', '--error-logfile'))!.length, 1);
    assert.equal(read().match(said('access log', '--access-logfile'))!.length, 1);
  });
});

describe('a worker whose JavaScript heap fills up', () => {
  it('is replaced, and the line says what Node\'s abort most likely means', async () => {
    const app = path.join(tmp, 'heap-hog.mjs');
    writeFileSync(app, `const keep = [];
export default function app(req, res) {
  if (req.url === '/grow') for (;;) keep.push(new Array(100000).fill(Math.random()));
  res.end(String(process.pid));
}
`);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', app], { env: { NODE_OPTIONS: '--max-old-space-size=32' } });
    const port = await s.port();
    const [first] = await s.workersBooted(1);
    await request(port, '/grow', { timeout: 30000 }).catch(() => null);
    await s.waitFor(
      new RegExp(`\\[ERROR\\] Worker \\(pid:${first}\\) was killed by SIGABRT: perhaps its JavaScript heap ran out \\(V8 aborts then; --max-old-space-size in NODE_OPTIONS raises the limit\\)\n`),
      20000,
    );
    const [, second] = await s.workersBooted(2);
    await until(() => second !== undefined, 1000, 'a replacement');
    const r = await request(port, '/', { timeout: 20000 });
    assert.equal(r.body, String(second));
    await s.kill();
  });
});

describe('a gthread thread whose JavaScript heap fills up', () => {
  it('dies alone: the requests of the other threads finish, and the worker retires as after an uncaught exception', async () => {
    // A request to /slow on one thread tells the other threads (a BroadcastChannel does not deliver to its
    // sender) to fill their heaps while it runs.
    const app = path.join(tmp, 'thread-heap-hog.mjs');
    writeFileSync(app, `const keep = [];
const channel = new BroadcastChannel('grow');
channel.unref();
channel.onmessage = () => { for (;;) keep.push(new Array(100000).fill(Math.random())); };
export default function app(req, res) {
  if (req.url === '/slow') {
    channel.postMessage('grow');
    setTimeout(() => res.end('slow ' + process.pid), 2000);
    return;
  }
  res.end(String(process.pid));
}
`);
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', 'gthread', '--threads', '2', app], { env: { NODE_OPTIONS: '--max-old-space-size=32' } });
    const port = await s.port();
    const [first] = await s.workersBooted(1);
    const slow = request(port, '/slow', { timeout: 20000 });
    await s.waitFor(/\[ERROR\] Uncaught exception in worker; it finishes the requests it has, takes no new one, and exits\nError \[ERR_WORKER_OUT_OF_MEMORY\]/, 20000);
    // Before, the thread's death ended the process at once, and this request with it.
    const r = await slow;
    assert.equal(r.body, `slow ${first}`);
    const [, second] = await s.workersBooted(2);
    assert.equal((await request(port, '/', { timeout: 20000 })).body, String(second));
    assert.doesNotMatch(s.log, /failed; exiting/);
    await s.kill();
  });
});

describe('the pidfile', () => {
  it('is mode 0644 under the default umask (0), as Gunicorn makes it', async () => {
    const pidfile = path.join(tmp, 'mode.pid');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-p', pidfile, APP]);
    await s.waitFor(/Ready: /, 30000);
    assert.equal(readFileSync(pidfile, 'utf8'), `${s.pid}\n`);
    assert.equal(statSync(pidfile).mode & 0o777, 0o644);
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 30000, 'the exit')).code, 0);
  });
});

describe('the log files', () => {
  it('are created with 0666 & ~ the umask tunicorn was started with (not --umask, which is for sockets), the error log included', async () => {
    const errorLog = path.join(tmp, 'umask-error.log');
    const accessLog = path.join(tmp, 'umask-access.log');
    // Started under umask 077 (systemd's UMask=0077, say); --umask 0 leaves the logs alone.
    const wrapper = ['/bin/sh', '-c', 'umask 077 && exec "$0" "$@"'];
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--umask', '0', '--error-logfile', errorLog, '--access-logfile', accessLog, APP], { wrapper });
    await until(() => existsSync(errorLog) && /Ready: /.test(readFileSync(errorLog, 'utf8')), 30000, 'the workers to serve');
    const port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(errorLog, 'utf8'))![1]);
    assert.equal((await request(port, '/pid')).status, 200);
    await until(() => existsSync(accessLog), 10000, 'the access log');
    assert.equal(statSync(errorLog).mode & 0o777, 0o600);
    assert.equal(statSync(accessLog).mode & 0o777, 0o600);
    s.signal('SIGTERM');
    assert.equal((await within(s.exited, 30000, 'the exit')).code, 0);
  });
});

describe('an open-file limit too low', () => {
  it('for worker_connections: one warning at start that names the limit and what to change', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', APP], { wrapper: ulimitN(64) });
    await s.waitFor(/Ready: /, 30000);
    assert.match(
      s.log,
      /\[WARNING\] worker_connections \(1000\) does not fit under the open-file limit \(64, ulimit -n\), of which a worker needs about \d+ itself: past about \d+ connections a worker resets new ones, and the log does not show it\. Raise the limit \(ulimit -n, systemd's LimitNOFILE=\) or lower --worker-connections to \d+\n/,
    );
    await s.kill();
    const fine = new Server(['-b', '127.0.0.1:0', '-w', '1', '--worker-connections', '16', APP], { wrapper: ulimitN(64) });
    await fine.waitFor(/Ready: /, 30000);
    assert.doesNotMatch(fine.log, /worker_connections/);
    await fine.kill();
  });

  it('reached while serving: the worker says so once, naming the limit and what to change', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', APP], { wrapper: ulimitN(64) });
    const port = await s.port();
    await s.waitFor(/Ready: /, 30000);
    /** Opens `n` connections at once, each sending a request; how many got an answer (the rest are closed unanswered). */
    const burst = async (n: number): Promise<{ answered: number; sockets: net.Socket[] }> => {
      const sockets: net.Socket[] = [];
      const outcomes = await within(
        Promise.all(
          Array.from({ length: n }, () =>
            new Promise<boolean>((resolve) => {
              const c = net.connect(port, '127.0.0.1', () => c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
              sockets.push(c);
              c.once('data', () => resolve(true));
              // on, not once: a connection the worker resets may report more than one error, and one left
              // without a listener ended the test (CI's Node 26 run: an uncaught `read ECONNRESET`).
              c.on('error', () => resolve(false));
              c.once('close', () => resolve(false));
            }),
          ),
        ),
        20000,
        'every connection answered or closed',
      );
      return { answered: outcomes.filter(Boolean).length, sockets };
    };
    const first = await burst(100);
    assert.ok(first.answered < 100, `some connections were closed unanswered (${first.answered} answered)`);
    const line = /\[ERROR\] Worker \(pid:(\d+)\) is at its open-file limit: (\d+) of 64 descriptors open \(ulimit -n\)\. Until some close, new connections are accepted and closed at once, unanswered \(libuv's answer to EMFILE\), and nothing else logs them\. Raise the limit \(ulimit -n, systemd's LimitNOFILE=\) or lower --worker-connections \(1000\)\n/;
    const m = await s.waitFor(line);
    assert.ok(Number(m[2]) >= 62, `the count is near the limit (${m[2]})`);
    // The same episode (the first connections still open): no second line.
    const second = await burst(20);
    assert.ok(second.answered < 20);
    for (const c of [...first.sockets, ...second.sockets]) c.destroy();
    // Once they have closed (the worker sees the clients' FIN), it serves again.
    assert.equal((await within(requestUntilServed(port, '/pid', 15000), 20000, 'a request served again')).status, 200);
    assert.equal(s.count(/is at its open-file limit/), 1);
    await s.kill();
  });

  it('for the sockets to bind: one line that says so', async () => {
    const binds = Array.from({ length: 60 }, () => ['-b', '127.0.0.1:0']).flat();
    const s = new Server([...binds, APP], { wrapper: ulimitN(64) });
    assert.equal((await within(s.exited, 30000, 'the exit')).code, 1);
    assert.match(s.log, /tunicorn: error: cannot bind http:\/\/127\.0\.0\.1:0: too many open files: the open-file limit \(ulimit -n, systemd's LimitNOFILE=\) is too low; raise it\n$/);
  });
});
