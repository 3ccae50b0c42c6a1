/**
 * The deployment examples, as far as this machine allows (no cluster here):
 * - examples/kubernetes/deployment.yaml: its timings fit together (readiness removes the pod from the
 *   endpoints within the shutdown delay; delay + graceful timeout fit in terminationGracePeriodSeconds), and
 *   its container command, run as written (binds moved to port 0 on loopback, the app swapped for a fixture),
 *   answers the manifest's own probe paths: startup and readiness 200 once serving, liveness 200, the
 *   Prometheus scrape its annotations name, readiness 503 from TERM on while the app still serves, then exit 0
 *   within the grace period.
 * - examples/hello, as the README runs it: `tunicorn examples/hello/app.ts` answers GET / with
 *   {"message":"Hello World"} (and anything else with its JSON 404), and `-c examples/hello/tunicorn.config.ts`
 *   loads that typed config (its `import ... from 'tunicorn'` included) and applies it: gthread with 5 threads,
 *   the process title "hello", the debug log, its pidfile (moved to a temporary directory, the bind to port 0)
 *   written while it serves and removed at exit.
 * - examples/systemd: the unit's settings fit together (Type=notify with NotifyAccess=all, KillMode=mixed,
 *   TimeoutStopSec above the command's --graceful-timeout, HUP on reload, the bin run directly), and its
 *   ExecStart options, run as written (the app swapped for a fixture) on a socket passed as the .socket unit
 *   passes it (fd 3, LISTEN_FDS, LISTEN_PID), serve there with the workers asked for, reload on ExecReload's
 *   HUP, and stop on TERM with status 0 within TimeoutStopSec. (systemd.test.ts plays the rest of systemd's
 *   part: readiness messages, USR2.)
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { bindTcp, localAddress } from '../../src/listeners/handle.js';
import { primeListeners } from '../../src/listeners/prime.js';
import { FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Probe {
  httpGet: { path: string; port: string | number };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  command: string[];
  ports: { name: string; containerPort: number }[];
  readinessProbe: Probe;
  livenessProbe: Probe;
  startupProbe: Probe;
}
interface Deployment {
  spec: { template: { metadata: { annotations: Record<string, string> }; spec: { terminationGracePeriodSeconds: number; containers: Container[] } } };
}

/** The value of `--name=value` in a command, as a number. */
function flag(command: string[], name: string): number {
  const arg = command.find((a) => a.startsWith(`--${name}=`));
  assert.ok(arg, `the command sets --${name}`);
  return Number(arg.slice(name.length + 3));
}

describe('examples/kubernetes', () => {
  const doc = yaml.load(readFileSync(path.join(ROOT, 'examples/kubernetes/deployment.yaml'), 'utf8')) as Deployment;
  const pod = doc.spec.template.spec;
  const c = pod.containers[0]!;

  it('its timings fit together', () => {
    const delay = flag(c.command, 'shutdown-delay');
    const graceful = flag(c.command, 'graceful-timeout');
    const r = c.readinessProbe;
    // The kubelet notices 503 within period x threshold; the endpoint goes before the delay ends.
    assert.ok((r.periodSeconds ?? 10) * (r.failureThreshold ?? 3) < delay, 'readiness fails within the shutdown delay');
    assert.ok(delay + graceful < pod.terminationGracePeriodSeconds, 'delay + drain fit in the grace period');
    const health = c.ports.find((p) => p.name === 'health');
    for (const p of [c.readinessProbe, c.livenessProbe, c.startupProbe]) assert.equal(p.httpGet.port, 'health');
    assert.equal(`--health-bind=0.0.0.0:${health!.containerPort}`, c.command.find((a) => a.startsWith('--health-bind=')));
  });

  it('its command serves the probes it declares, and stops as the grace period expects', async () => {
    assert.equal(c.command[0], 'node_modules/.bin/tunicorn');
    const args = c.command.slice(1, -1).map((a) => {
      if (a.startsWith('--bind=')) return '--bind=127.0.0.1:0';
      if (a.startsWith('--health-bind=')) return '--health-bind=127.0.0.1:0';
      return a;
    });
    const s = new Server([...args, path.join(FIXTURES, 'zero-downtime-app.mjs')]);
    const port = await s.port();
    const hport = Number((await s.waitFor(/Health checks at: http:\/\/127\.0\.0\.1:(\d+)\//))[1]);
    await s.waitFor(/Ready: /, 20000);
    assert.equal((await request(hport, c.startupProbe.httpGet.path)).status, 200);
    assert.equal((await request(hport, c.readinessProbe.httpGet.path)).status, 200);
    assert.equal((await request(hport, c.livenessProbe.httpGet.path)).status, 200);
    // The scrape the pod's annotations ask for: on the health port, in Prometheus's format.
    const notes = doc.spec.template.metadata.annotations;
    assert.equal(notes['prometheus.io/port'], String(c.ports.find((p) => p.name === 'health')!.containerPort));
    const metrics = await request(hport, notes['prometheus.io/path']!);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^tunicorn_workers 2$/m);

    const termAt = Date.now();
    s.signal('SIGTERM');
    await s.waitFor(/Shutdown delay: serving \d+ s more/, 10000);
    assert.equal((await request(hport, c.readinessProbe.httpGet.path)).status, 503, 'not ready from TERM on');
    assert.equal((await request(port, '/pid')).status, 200, 'still serving during the delay');
    const exit = await s.exited;
    assert.equal(exit.code, 0);
    assert.ok(Date.now() - termAt < pod.terminationGracePeriodSeconds * 1000, 'stopped within the grace period');
    await until(() => /Graceful stop: draining 2 worker/.test(s.log), 1000, 'the drain after the delay');
  });
});

describe('examples/hello', () => {
  it('serves the seed app as the README says', async () => {
    const s = new Server(['-b', '127.0.0.1:0', 'examples/hello/app.ts']);
    const port = await s.port();
    const r = await request(port, '/');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r.body), { message: 'Hello World' });
    const missing = await request(port, '/nope');
    assert.equal(missing.status, 404);
    assert.deepEqual(JSON.parse(missing.body), { detail: 'Not Found' });
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });

  it('its typed config loads and applies, as the README runs it', async () => {
    const pidfile = path.join(scratchDir('tunicorn-hello-'), 'hello.pid');
    // The command line wins over the config file: its fixed port and pidfile path are moved out of the way.
    const s = new Server(['-c', 'examples/hello/tunicorn.config.ts', '-b', '127.0.0.1:0', '-p', pidfile, 'examples/hello/app.ts']);
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker\(s\) serving/);
    assert.match(s.log, /Using worker: gthread/);
    // loglevel 'debug': each of the 5 threads says how it serves the app.
    const serving = /\[DEBUG\] Serving examples\/hello\/app\.ts as \(req, res\) listener/g;
    await until(() => s.count(serving) === 5, 5000, 'a debug line from each of the 5 threads');
    assert.match(readFileSync(`/proc/${s.pid}/cmdline`, 'utf8'), /tunicorn: master \[hello\]/);
    assert.equal(readFileSync(pidfile, 'utf8').trim(), String(s.pid));
    assert.deepEqual(JSON.parse((await request(port, '/')).body), { message: 'Hello World' });
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.equal(existsSync(pidfile), false, 'the pidfile is removed at exit');
  });
});

/** The `Key=Value` lines of a systemd unit file, by key (comments and section headers left out). */
function unit(file: string): Map<string, string> {
  const lines = readFileSync(path.join(ROOT, 'examples/systemd', file), 'utf8').split('\n');
  return new Map(lines.filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

describe('examples/systemd', () => {
  const service = unit('tunicorn.service');
  const socket = unit('tunicorn.socket');
  const exec = service.get('ExecStart')!.split(/\s+/);
  const option = (name: string): string | undefined => {
    const i = exec.indexOf(`--${name}`);
    return i < 0 ? undefined : exec[i + 1];
  };

  it('its settings fit together', () => {
    assert.equal(service.get('Type'), 'notify');
    assert.equal(service.get('NotifyAccess'), 'all', 'systemd-notify, a child of the master, sends the messages');
    assert.equal(service.get('KillMode'), 'mixed', 'TERM to the master alone, which drains');
    assert.equal(service.get('ExecReload'), '/bin/kill -s HUP $MAINPID');
    assert.match(exec[0]!, /\/node_modules\/\.bin\/tunicorn$/, 'the bin itself, so LISTEN_PID is the master');
    const stop = Number(option('graceful-timeout') ?? 30) + Number(option('shutdown-delay') ?? 0);
    assert.ok(Number(service.get('TimeoutStopSec')) > stop, 'TimeoutStopSec outlasts the shutdown delay and the drain');
    assert.equal(socket.get('ListenStream'), '127.0.0.1:8000');
  });

  it('its command serves on the socket the .socket unit passes, reloads on HUP and stops on TERM', async () => {
    // What systemd does for tunicorn.socket (port 0 for 8000): bind, listen, pass the socket as fd 3.
    const h = bindTcp('127.0.0.1', 0, 'the test socket');
    await primeListeners([h.fd], Number(socket.get('Backlog')));
    const args = [...exec.slice(1, -1), path.join(FIXTURES, 'zero-downtime-app.mjs')];
    const s = new Server(args, { wrapper: ['sh', '-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"'], fds: [h.fd] });
    const port = localAddress(h)!.port;
    h.close(); // systemd keeps its copy; the harness need not
    await s.waitFor(/Using 1 listening socket\(s\) from systemd \(socket activation\); bind is ignored/);
    await s.waitFor(new RegExp(`Ready: ${option('workers')} worker\\(s\\) serving`), 20000);
    assert.equal((await request(port, '/pid')).status, 200);
    const mark = s.log.length;
    s.signal('SIGHUP'); // ExecReload
    await s.waitFor(/Ready: \d+ worker\(s\) serving/, 20000, mark);
    assert.equal((await request(port, '/pid')).status, 200);
    const termAt = Date.now();
    s.signal('SIGTERM'); // KillMode=mixed: the master alone
    assert.equal((await s.exited).code, 0);
    assert.ok(Date.now() - termAt < Number(service.get('TimeoutStopSec')) * 1000, 'stopped within TimeoutStopSec');
  });
});
