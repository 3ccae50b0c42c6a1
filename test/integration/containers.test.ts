/**
 * In a container, as Docker, Kubernetes and OpenShift run one (the real CLI):
 * - `--workers auto` counts a CPU quota (cgroup v1 and v2 files under TUNICORN_TEST_CGROUP_ROOT: a test
 *   cannot give itself a quota), and says so at start: 3 workers under a 0.5 CPU quota, whatever the host has
 * - `--max-worker-memory` x workers above the cgroup's memory limit: one warning at start that says what to
 *   set; none when it fits
 * - OpenShift's arbitrary uid (no /etc/passwd entry, gid 0, HOME=/), root only: a TypeScript app serves, its
 *   pidfile, control socket and error log go in a folder of group 0 with group write (the image layout
 *   OpenShift relies on), tunicornc answers, the transform cache is kept, TERM stops it with status 0
 * - a read-only root file system (a read-only tmpfs in a mount namespace of its own; root only): a Unix socket
 *   there stops the start with one line that says what to do; a control socket there is a warning with the
 *   same advice, and the server serves on
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { FIXTURES, request, Server, stopAll, within } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const CTL = fileURLToPath(new URL('../../dist/cli/ctl.js', import.meta.url));
const APP = path.join(FIXTURES, 'orphans.mjs');

/**
 * A cgroup tree with the limits at its root, in both layouts (v1: one hierarchy per controller, as `cpu` and as
 * `cpu,cpuacct`; v2: one): whatever this machine's /proc/self/cgroup says, the walk up from its path ends at
 * the root's files.
 */
function cgroupRoot(cpuMax: string, memoryMax: number): string {
  const root = scratchDir('tunicorn-cgroup-');
  const [quota, period] = cpuMax.split(' ');
  for (const dir of ['cpu', 'cpu,cpuacct']) {
    mkdirSync(path.join(root, dir));
    writeFileSync(path.join(root, dir, 'cpu.cfs_quota_us'), `${quota}\n`);
    writeFileSync(path.join(root, dir, 'cpu.cfs_period_us'), `${period}\n`);
  }
  writeFileSync(path.join(root, 'cpu.max'), `${cpuMax}\n`);
  mkdirSync(path.join(root, 'memory'));
  writeFileSync(path.join(root, 'memory', 'memory.limit_in_bytes'), `${memoryMax}\n`);
  writeFileSync(path.join(root, 'memory.max'), `${memoryMax}\n`);
  return root;
}

describe('container limits (cgroups)', { skip: process.platform !== 'linux' && 'cgroups are Linux only' }, () => {
  it('--workers auto counts a CPU quota of 0.5 CPU as 1 CPU: 3 workers, and the start line says why', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', 'auto', APP], { env: { TUNICORN_TEST_CGROUP_ROOT: cgroupRoot('50000 100000', 2 ** 40) } });
    const port = await s.port();
    const m = await s.waitFor(/\[INFO\] Workers: auto = (\d+) \(\(2 x 1 CPU\) \+ 1; the CPU quota, 0\.5 of the machine's (\d+) CPUs?: (\S+)\)\n/);
    assert.equal(m[1], '3');
    assert.match(m[3]!, /tunicorn-cgroup-\w+\/(cpu\/cpu\.cfs_quota_us|cpu\.max)$/);
    await s.waitFor(/Ready: 3 worker\(s\) serving/);
    assert.equal(s.count(/Booting worker with pid/), 3);
    assert.equal((await request(port, '/')).status, 200);
  });

  it('a number of workers is left as given, with no line about the CPUs', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '2', APP], { env: { TUNICORN_TEST_CGROUP_ROOT: cgroupRoot('50000 100000', 2 ** 40) } });
    await s.waitFor(/Ready: 2 worker\(s\) serving/);
    assert.doesNotMatch(s.log, /Workers: auto|CPU quota/);
  });

  it('warns at start when max_worker_memory x workers is above the memory limit, and says what to set', async () => {
    const root = cgroupRoot('max 100000', 2 ** 30);
    const over = new Server(['-b', '127.0.0.1:0', '-w', '3', '--max-worker-memory', '512M', APP], { env: { TUNICORN_TEST_CGROUP_ROOT: root } });
    const fits = new Server(['-b', '127.0.0.1:0', '-w', '3', '--max-worker-memory', '300M', APP], { env: { TUNICORN_TEST_CGROUP_ROOT: root } });
    await over.waitFor(/Ready: 3 worker/);
    assert.match(
      over.log,
      /\[WARNING\] max_worker_memory \(512 MiB\) x 3 workers is 1\.5 GiB, above the memory limit of its cgroup \(a container's\), 1 GiB in \S+tunicorn-cgroup-\w+\/(memory\/memory\.limit_in_bytes|memory\.max): workers growing toward it are killed by the kernel \(SIGKILL, out of memory\) before max_worker_memory recycles them; set --max-worker-memory below 341 MiB \(the limit \/ workers, less what the master uses\), or run fewer workers\n/,
    );
    assert.equal(over.count(/above the memory limit/), 1);
    await fits.waitFor(/Ready: 3 worker/);
    assert.doesNotMatch(fits.log, /memory limit/);
  });
});

const isRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
/** OpenShift's range of arbitrary uids starts at 1000000000; this one has no /etc/passwd entry. */
const UID = 1000870000;

describe("OpenShift's arbitrary uid", { skip: !isRoot ? 'needs root' : !hasSetpriv ? 'needs setpriv' : false }, () => {
  it('serves as a uid with no passwd entry and gid 0, with its files in a group-writable folder of group 0', async () => {
    assert.ok(!readFileSync('/etc/passwd', 'utf8').split('\n').some((l) => l.split(':')[2] === String(UID)), `uid ${UID} has a passwd entry here`);
    const dir = scratchDir('tunicorn-openshift-');
    // The image's layout: owned by root, group 0 (the arbitrary uid's group) may write.
    chmodSync(dir, 0o775);
    copyFileSync(path.join(FIXTURES, 'echo.ts'), path.join(dir, 'app.ts'));
    const pidfile = path.join(dir, 'app.pid');
    const sock = path.join(dir, 'ctl.sock');
    const s = new Server(
      ['-b', '127.0.0.1:0', '-w', '2', '--pid', pidfile, '--control-socket', sock, '--error-logfile', '-', 'app.ts'],
      {
        cwd: dir,
        // HOME as OpenShift leaves it; TMPDIR here, so that the transform cache goes with the scratch folder.
        wrapper: ['setpriv', `--reuid=${UID}`, '--regid=0', '--clear-groups', 'env', 'HOME=/', `TMPDIR=${dir}`],
      },
    );
    const port = await s.port();
    await s.waitFor(/Ready: 2 worker\(s\) serving/);
    const r = await request(port, '/x');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).u, '/x');
    assert.equal(readFileSync(pidfile, 'utf8').trim(), String(s.pid));
    const ctl = spawn(process.execPath, [CTL, '-s', sock, 'show', 'workers'], { uid: UID, gid: 0, env: { ...process.env, HOME: '/' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    ctl.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    ctl.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await within(once(ctl, 'exit'), 10000, 'tunicornc')) as [number | null];
    assert.equal(code, 0, err);
    assert.match(out, /^PID\s+AGE/);
    assert.equal(out.trim().split('\n').length, 3, out);
    // The transform cache: a folder of this uid's own, kept for the next start.
    assert.doesNotMatch(s.log, /not cached|Traceback|\n\s+at /);
    assert.ok(existsSync(path.join(dir, `jiti-uid${UID}`)) && readdirSync(path.join(dir, `jiti-uid${UID}`)).length > 0, 'transform cache made');
    s.signal('SIGTERM');
    assert.deepEqual(await within(s.exited, 20000, 'stop'), { code: 0, signal: null });
    assert.ok(!existsSync(pidfile), 'pidfile removed');
  });
});

/** A mount namespace can be made here (root), in which a folder is made read-only for the server alone. */
const canUnshareMount = isRoot && spawnSync('unshare', ['-m', 'true'], { stdio: 'ignore' }).status === 0;

describe('a read-only root file system', { skip: canUnshareMount ? false : 'needs root and unshare -m' }, () => {
  /** Runs the server in a mount namespace where `dir` is an empty read-only tmpfs, as a read-only image layer. */
  const readOnly = (dir: string): string[] => [
    'unshare', '-m', 'sh', '-c', `mount --make-rprivate / && mount -t tmpfs -o ro tmpfs '${dir}' && exec "$0" "$@"`,
  ];
  const esc = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const advice = 'give a path in a writable directory \\(a volume, such as an emptyDir, or /tmp\\)';

  it('a Unix socket there stops the start with one line that says what to do', async () => {
    const ro = scratchDir('tunicorn-ro-');
    const s = new Server(['-b', `unix:${ro}/app.sock`, APP], { wrapper: readOnly(ro) });
    const { code } = await within(s.exited, 20000, 'exit');
    await s.drained;
    assert.equal(code, 1);
    assert.match(s.log, new RegExp(`(?:^|\\n)tunicorn: error: cannot bind unix:${esc(ro)}/app\\.sock: the directory ${esc(ro)} is on a read-only file system: ${advice}\\n$`));
  });

  it('a control socket there is a warning with the same advice; the server serves on', async () => {
    const ro = scratchDir('tunicorn-ro-');
    const s = new Server(['-b', '127.0.0.1:0', '--control-socket', `${ro}/ctl.sock`, APP], { wrapper: readOnly(ro) });
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/);
    assert.match(s.log, new RegExp(`\\[WARNING\\] control_socket \\(--control-socket\\): cannot listen on ${esc(ro)}/ctl\\.sock: the directory ${esc(ro)} is on a read-only file system: ${advice}; going on without a control socket\\n`));
    assert.equal((await request(port, '/')).status, 200);
  });
});
