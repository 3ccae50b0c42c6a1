/**
 * APM and tracing agents preloaded into the app's processes (README, "APM and tracing agents"), with small
 * stand-ins that patch and listen as the real ones do (test/fixtures/agents/, each naming the package it
 * stands for):
 * - `-e NODE_OPTIONS=--import agent.mjs` preloads the agent in the workers only, under every worker class (a
 *   gthread worker's threads too): it sees each request; the master never loads it;
 * - an agent preloaded in the master too (NODE_OPTIONS in tunicorn's environment) whose SIGTERM listener
 *   ends the process once its exporter is flushed (OpenTelemetry's documented setup) does not cut the
 *   master's graceful stop short: the master says it removed the listener, and a request in flight is answered
 *   before the master exits;
 * - an error reporter's uncaughtException listener (Sentry's) does not keep a worker that threw serving:
 *   the reporter captures the error, and the worker is replaced as without it;
 * - what an agent sends at `beforeExit` (dd-trace's last traces, Sentry's batched spans) arrives from a worker's
 *   graceful stop, under every class: the worker runs those listeners and waits for the requests they start,
 *   with node:http or with fetch (undici), which publishes nothing to node:http's channel; one that never
 *   ends is left at 90 % of graceful_timeout, said with the time into the stop; one that calls process.exit()
 *   is said, as it skips the rest of the stop (the workerExit hook).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { scratchDir } from '../helpers/scratch.js';
import { FIXTURES, request, Server, stopAll } from '../helpers/server.js';

after(stopAll);

const tmp = scratchDir('tunicorn-apm-agents-');

const agent = (name: string) => `--import=${pathToFileURL(path.join(FIXTURES, 'agents', name)).href}`;
const APP = path.join(FIXTURES, 'agents', 'app.mjs');
const notes = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : []);

describe('APM and tracing agents', () => {
  for (const cls of ['async', 'sync', 'gthread']) {
    it(`${cls}: what an agent sends at beforeExit arrives when a worker stops`, async () => {
      const received: string[] = [];
      const collector = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c));
        req.on('end', () => {
          received.push(...body.split('\n'));
          res.end();
        });
      });
      collector.listen(0, '127.0.0.1');
      await once(collector, 'listening');
      after(() => void collector.close());
      const url = `http://127.0.0.1:${(collector.address() as { port: number }).port}/`;
      const threads = cls === 'gthread' ? ['--threads', '2'] : [];
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-k', cls, ...threads, '-e', `NODE_OPTIONS=${agent('batch-exporter.mjs')}`, APP], {
        env: { AGENT_URL: url },
      });
      const port = await s.port();
      await s.waitFor(/Ready: 1 worker/);
      const pids: string[] = [];
      for (let i = 0; i < 3; i++) pids.push((await request(port, `/?n=${i}`)).body);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0, s.log);
      const urls = received.map((line) => line.split(' ')[1]).sort();
      assert.deepEqual(urls, ['/?n=0', '/?n=1', '/?n=2'], `the agent's last batch did not arrive:\n${s.log}`);
      assert.ok(received.every((line) => line.startsWith(`${pids[0]}/`)), received.join('\n'));
    });
  }

  it('what an agent sends with fetch at beforeExit arrives when a worker stops (its listener called on the process)', async () => {
    const received: string[] = [];
    const collector = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      // The collector answers a moment later, as one across a network does.
      req.on('end', () => void setTimeout(() => (received.push(...body.split('\n')), res.end()), 200));
    });
    collector.listen(0, '127.0.0.1');
    await once(collector, 'listening');
    after(() => void collector.close());
    const url = `http://127.0.0.1:${(collector.address() as { port: number }).port}/`;
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-e', `NODE_OPTIONS=${agent('fetch-exporter.mjs')}`, APP], { env: { AGENT_URL: url } });
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    const pid = (await request(port, '/?n=0')).body;
    await request(port, '/?n=1');
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0, s.log);
    assert.deepEqual(received, [`${pid} /?n=0`, `${pid} /?n=1`, 'exitCode 0'], `the agent's last batch did not arrive:\n${s.log}`);
    assert.doesNotMatch(s.log, /Exception in the app's beforeExit listener/);
  });

  it('a beforeExit listener that never ends is left at 90 % of graceful_timeout, said with the time into the stop', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--graceful-timeout', '2', '-e', `NODE_OPTIONS=${agent('hanging-exporter.mjs')}`, APP]);
    await s.port();
    await s.waitFor(/Ready: 1 worker/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0, s.log);
    const m = /The app's beforeExit listener\(s\) \(an agent's last export\?\) had not finished (\d+\.\d) s into the stop \(it gets until 90 % of graceful_timeout, 2 s\); exiting/.exec(s.log);
    assert.ok(m, s.log);
    // Said by the worker, not cut by the master's kill at 2 s.
    assert.ok(Number(m[1]) >= 1.7 && Number(m[1]) < 2, s.log);
    assert.doesNotMatch(s.log, /did not stop in time/);
  });

  it('a beforeExit listener that calls process.exit() is said: the rest of the stop (the workerExit hook) is skipped', async () => {
    const cfg = path.join(tmp, 'worker-exit.config.mjs');
    writeFileSync(cfg, "export default { workerExit: () => process.stderr.write('hook: workerExit\\n') };\n");
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-c', cfg, '-e', `NODE_OPTIONS=${agent('exiting-exporter.mjs')}`, APP]);
    await s.port();
    const [pid] = await s.workersBooted(1);
    await s.waitFor(/Ready: 1 worker/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0, s.log);
    assert.match(
      s.log,
      new RegExp(`\\[${pid}\\] \\[WARNING\\] Worker exiting \\(pid: ${pid}\\): process\\.exit\\(0\\) was called during the stop by the app \\(a SIGTERM or beforeExit listener\\?\\) or a hook, not by tunicorn: what was left of the stop is skipped \\(the workerExit hook, if it had not run\\)\n`),
    );
    assert.doesNotMatch(s.log, /hook: workerExit/);
  });

  for (const cls of ['async', 'sync', 'gthread']) {
    it(`${cls}: -e NODE_OPTIONS=--import preloads the agent in the workers only, and it sees the requests`, async () => {
      const file = path.join(tmp, `workers-only-${cls}.log`);
      const threads = cls === 'gthread' ? ['--threads', '2'] : [];
      const s = new Server(['-b', '127.0.0.1:0', '-w', '2', '-k', cls, ...threads, '-e', `NODE_OPTIONS=${agent('trace-requests.mjs')}`, APP], {
        env: { AGENT_FILE: file },
      });
      const port = await s.port();
      const workers = await s.workersBooted(2);
      await s.waitFor(/Ready: 2 worker/);
      for (let i = 0; i < 4; i++) {
        const r = await request(port, '/');
        assert.equal(r.status, 200, s.log);
        // Traced in the process that answered (under gthread, by one of its threads).
        const [pid] = String(r.headers['x-traced-by']).split('/');
        assert.equal(pid, r.body, `response not traced by its worker: ${JSON.stringify(r.headers)}\n${s.log}`);
      }
      assert.ok(!notes(file).includes(`loaded ${s.pid}`), `the master loaded the agent:\n${notes(file).join('\n')}`);
      for (const w of workers) assert.ok(notes(file).includes(`loaded ${w}`), `worker ${w} did not load the agent:\n${notes(file).join('\n')}`);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0, s.log);
    });
  }

  it('an agent in NODE_OPTIONS whose SIGTERM listener exits (OpenTelemetry\'s setup) does not cut the master\'s graceful stop', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', APP], { env: { NODE_OPTIONS: agent('trace-requests.mjs') } });
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    assert.match(s.log, /The master handles TERM itself: 1 SIGTERM listener\(s\) added by a module preloaded with --import or --require .* -e NODE_OPTIONS=/);
    const slow = request(port, '/slow');
    // The request is under way in the worker before the stop.
    await s.waitFor(/app: slow request started/);
    let masterGone = false;
    void s.exited.then(() => (masterGone = true));
    s.signal('SIGTERM');
    const r = await slow;
    assert.equal(r.status, 200, s.log);
    assert.equal(masterGone, false, `the master exited before the request in flight was answered:\n${s.log}`);
    assert.equal((await s.exited).code, 0, s.log);
    assert.doesNotMatch(s.log, /process\.exit\(\) was called/);
  });

  it('a worker stopped while its app loads runs no beforeExit listener of tunicorn\'s own: its load is not failed as run dry', async () => {
    // The load guard watches for a load that runs dry with a beforeExit listener of its own, which the stop's
    // run of the app's beforeExit listeners must not call. (This passes with and without the filter in
    // before-exit.ts: the stop was not seen to reach that run during a load. It keeps the stop during a load clean.)
    for (const cls of [['-k', 'async'], ['-k', 'sync']]) {
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', ...cls, path.join(FIXTURES, 'slow-load.ts')], { env: { LOAD_MS: '3000' } });
      await s.waitFor(/Booting worker with pid: \d+/);
      s.signal('SIGTERM');
      assert.equal((await s.exited).code, 0, s.log);
      assert.doesNotMatch(s.log, /never finished loading|\[ERROR\]/, cls[1]);
    }
  });

  it("an error reporter's uncaughtException listener (Sentry's) does not keep a worker that threw serving", async () => {
    const file = path.join(tmp, 'reporter.log');
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-e', `NODE_OPTIONS=${agent('report-errors.mjs')}`, APP], { env: { AGENT_FILE: file } });
    const port = await s.port();
    const [first] = await s.workersBooted(1);
    await s.waitFor(/Ready: 1 worker/);
    assert.equal((await request(port, '/crash')).status, 200, s.log);
    await s.waitFor(/Uncaught exception in worker.*takes no new one, and exits/);
    const [, second] = await s.workersBooted(2);
    assert.notEqual(second, first);
    assert.deepEqual(notes(file), [`captured ${first} boom in a timer`], s.log);
    assert.doesNotMatch(s.log, /left to the app's uncaughtException listener/);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0, s.log);
  });
});
