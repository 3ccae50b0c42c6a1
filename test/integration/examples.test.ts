/**
 * The deployment examples, as far as this machine allows (no cluster here):
 * - examples/kubernetes/deployment.yaml: its timings fit together (readiness removes the pod from the
 *   endpoints within the shutdown delay; delay + graceful timeout fit in terminationGracePeriodSeconds), and
 *   its container command, run as written (binds moved to port 0 on loopback, the app swapped for a fixture),
 *   answers the manifest's own probe paths: startup and readiness 200 once serving, liveness 200, readiness
 *   503 from TERM on while the app still serves, then exit 0 within the grace period.
 * (examples/systemd is exercised by systemd.test.ts, which plays systemd's part.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';

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
  spec: { template: { spec: { terminationGracePeriodSeconds: number; containers: Container[] } } };
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
