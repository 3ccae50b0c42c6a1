/**
 * Privileges, for real (the tests run as root; skipped otherwise):
 * - -u/-g: the master stays root, the workers run as the user and group, without root's supplementary groups,
 *   from before the app loads
 * - --initgroups: the workers get the user's supplementary groups from /etc/group
 * - --umask: a Unix socket file gets 0777 & ~umask, owned by the workers' user
 * - a TypeScript app's transform cache: looked at as the workers' user by a root master (its line at start)
 * - an unknown user or group stops the server at start with one line
 * - --user in a master not started as root: refused at start, and by a HUP (the running workers serve on)
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { childrenOf, FIXTURES, request, Server, stopAll, until } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const isRoot = process.getuid?.() === 0;
const fx = (name: string) => path.join(FIXTURES, name);

function statusIds(pid: number): { uid: number; gid: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { uid: Number(/^Uid:\s+(\d+)/m.exec(s)![1]), gid: Number(/^Gid:\s+(\d+)/m.exec(s)![1]) };
}

/** A user in /etc/passwd that /etc/group lists as a member of some group other than its primary one. */
function userWithSupplementaryGroup(): { user: string; gid: number; extra: number } | null {
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':'));
  for (const g of readFileSync('/etc/group', 'utf8').split('\n').map((l) => l.split(':'))) {
    for (const member of (g[3] ?? '').split(',').filter(Boolean)) {
      const p = passwd.find((r) => r[0] === member);
      if (p && p[3] !== g[2]) return { user: member, gid: Number(p[3]), extra: Number(g[2]) };
    }
  }
  return null;
}

function unixGet(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: '/', timeout: 10000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('privileges', { skip: isRoot ? false : 'needs root' }, () => {
  it('workers drop to --user/--group before loading the app; the master stays root', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-u', 'nobody', '-g', 'nogroup', '-w', '2', fx('whoami.ts')]);
    const port = await s.port();
    const pids = await s.workersBooted(2);
    const me = JSON.parse((await request(port, '/')).body);
    const nobody = Number(readFileSync('/etc/passwd', 'utf8').match(/^nobody:[^:]*:(\d+):/m)![1]);
    assert.equal(me.uid, nobody);
    assert.deepEqual(me.groups, [me.gid]);
    // "Booting worker" is logged at the spawn: the worker that did not serve may not have dropped yet (seen
    // once in a full run, uid 0 just after the other one answered).
    for (const pid of pids) await until(() => statusIds(pid).uid === nobody, 10000, `worker ${pid} to run as nobody`);
    assert.equal(statusIds(s.pid).uid, 0);
    assert.deepEqual(childrenOf(s.pid).sort(), pids.sort());
    await s.kill();
  });

  it('--initgroups gives the workers the user\'s supplementary groups', async (t) => {
    const u = userWithSupplementaryGroup();
    if (!u) return t.skip('no user with a supplementary group in /etc/group');
    const s = new Server(['-b', '127.0.0.1:0', '-u', u.user, '--initgroups', fx('whoami.ts')]);
    const port = await s.port();
    const me = JSON.parse((await request(port, '/')).body);
    assert.equal(me.gid, u.gid);
    assert.ok(me.groups.includes(u.extra), `groups ${me.groups} lack ${u.extra}`);
    await s.kill();
  });

  it('--umask sets the Unix socket file mode alone, and the socket belongs to the workers\' user', async () => {
    const dir = scratchDir('tunicorn-priv-');
    const sock = path.join(dir, 's.sock');
    const errlog = path.join(dir, 'error.log');
    // Started under umask 027, as a service manager might start it.
    const wrapper = ['sh', '-c', 'umask 027; exec "$0" "$@"'];
    const s = new Server(['-b', `unix:${sock}`, '--umask', '077', '-u', 'nobody', '--error-logfile', errlog, fx('whoami.ts')], { wrapper });
    await until(() => existsSync(errlog) && /Booting worker/.test(readFileSync(errlog, 'utf8')), 20000, 'a worker');
    const st = statSync(sock);
    assert.equal(st.mode & 0o777, 0o700);
    const me = JSON.parse(await unixGet(sock));
    assert.equal(st.uid, me.uid);
    // As Gunicorn's: the processes keep the umask they were started with, and so the log gets 0666 & ~027.
    assert.equal(me.umask, 0o027);
    assert.equal(statSync(errlog).mode & 0o777, 0o640);
    await s.kill();
    const s2 = new Server(['-b', `unix:${sock}`, '--umask', '0o002', fx('whoami.ts')]);
    await s2.waitFor(/Listening at: unix:/);
    assert.equal(statSync(sock).mode & 0o777, 0o775);
    await s2.kill();
  });

  it('a TypeScript app loads as --user when the transform cache folder was made by root', async () => {
    // The cache goes in the temporary directory when no node_modules is near the app. In a shared jiti folder
    // that anybody may write (as one made under umask 0 is), in which root made tunicorn's own folder (here by
    // --check-config), a worker running as nobody could not add a transform, which failed the app's load with
    // EACCES; each user now has a folder of its own there (jiti-uidN).
    const dir = scratchDir('tunicorn-cache-');
    chmodSync(dir, 0o755);
    const tmp = path.join(dir, 'tmp');
    mkdirSync(path.join(tmp, 'jiti'), { recursive: true });
    chmodSync(tmp, 0o777);
    chmodSync(path.join(tmp, 'jiti'), 0o777);
    copyFileSync(fx('whoami.ts'), path.join(dir, 'first.ts'));
    copyFileSync(fx('whoami.ts'), path.join(dir, 'app.ts'));
    const env = { TMPDIR: tmp, JITI_FS_CACHE: '' };
    const check = new Server(['--check-config', path.join(dir, 'first.ts')], { env, cwd: dir });
    assert.equal((await check.exited).code, 0, check.log);
    const s = new Server(['-b', '127.0.0.1:0', '-u', 'nobody', path.join(dir, 'app.ts')], { env, cwd: dir });
    const port = await s.port();
    await s.waitFor(/Ready: 1 worker/, 30000); // rejects with the log (EACCES) when the app fails to load
    const me = JSON.parse((await request(port, '/')).body);
    assert.notEqual(me.uid, 0);
    assert.doesNotMatch(s.log, /EACCES|failed to load/);
    await s.kill();
  });

  it('caches transforms in the temporary directory only in a folder of this user\'s alone', async () => {
    // A transform found in the cache runs as the app's code: a folder another user owns, or may write in, would
    // let that user run code as this one (jiti's own default, a shared /tmp/jiti, is such a folder).
    const dir = scratchDir('tunicorn-cache-private-');
    copyFileSync(fx('whoami.ts'), path.join(dir, 'app.ts'));
    const uid = process.getuid!();
    const serve = async (tmp: string) => {
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', 'app.ts'], { env: { TMPDIR: tmp, JITI_FS_CACHE: '' }, cwd: dir });
      const port = await s.port();
      await s.waitFor(/Ready: 1 worker/, 30000);
      assert.equal((await request(port, '/')).status, 200);
      await s.kill();
      return s.log;
    };
    // None there: made, 0700, and used.
    const fresh = path.join(dir, 'fresh');
    mkdirSync(fresh);
    assert.doesNotMatch(await serve(fresh), /not cached/);
    const own = path.join(fresh, `jiti-uid${uid}`);
    assert.equal(statSync(own).mode & 0o777, 0o700);
    assert.ok(readdirSync(own, { recursive: true, encoding: 'utf8' }).some((f) => /^tunicorn-\w+\/.*\.mjs$/.test(f)), 'a transform cached');
    // Another user's folder, and one of ours that others may write in: neither is used, and the start says so.
    for (const [name, make] of [
      ['owned by nobody', (d: string) => chownSync(d, 65534, 65534)],
      ['writable by all', (d: string) => chmodSync(d, 0o777)],
    ] as const) {
      const tmp = path.join(dir, name.replaceAll(' ', '-'));
      const planted = path.join(tmp, `jiti-uid${uid}`);
      mkdirSync(planted, { recursive: true, mode: 0o700 });
      make(planted);
      const log = await serve(tmp);
      assert.match(log, new RegExp(`TypeScript transforms are not cached \\(not writable, or not this user's own: ${planted.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`), name);
      assert.deepEqual(readdirSync(planted), [], `${name}: nothing written there`);
    }
  });

  it('a root master says the transforms are not cached when --user cannot cache them (it looks as that user)', async () => {
    // No node_modules near the app, and a temporary directory root may write in but nobody may not: the
    // workers (nobody) cache nothing. The master, root, found it writable and said nothing; and where only
    // root's own folder is unusable, the workers' is what counts.
    const dir = scratchDir('tunicorn-cache-user-');
    const nobody = Number(readFileSync('/etc/passwd', 'utf8').match(/^nobody:[^:]*:(\d+):/m)![1]);
    chmodSync(dir, 0o755);
    copyFileSync(fx('whoami.ts'), path.join(dir, 'app.ts'));
    const serve = async (tmp: string) => {
      const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '-u', 'nobody', '-g', 'nogroup', 'app.ts'], { env: { TMPDIR: tmp, JITI_FS_CACHE: '' }, cwd: dir });
      const port = await s.port();
      await s.waitFor(/Ready: 1 worker/, 30000);
      assert.equal((await request(port, '/')).status, 200);
      await s.kill();
      return s.log;
    };
    const rootOnly = path.join(dir, 'root-only');
    mkdirSync(rootOnly, { mode: 0o755 });
    assert.match(await serve(rootOnly), new RegExp(`TypeScript transforms are not cached \\(not writable, or not this user's own: ${rootOnly}/jiti-uid${nobody}\\)`));
    assert.deepEqual(readdirSync(rootOnly), [], 'nothing could be written there');
    // Shared (1777), with root's own folder planted as a link: nobody's folder is made and used, nothing said.
    const shared = path.join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    mkdirSync(path.join(dir, 'elsewhere'));
    symlinkSync(path.join(dir, 'elsewhere'), path.join(shared, 'jiti-uid0'));
    assert.doesNotMatch(await serve(shared), /not cached/);
    assert.equal(statSync(path.join(shared, `jiti-uid${nobody}`)).uid, nobody);
  });

  it('an unknown user or group stops the server with one line', async () => {
    for (const [args, re] of [
      [['-u', 'no-such-user-x'], /invalid value for user \(--user\): no user named "no-such-user-x"/],
      [['-g', 'no-such-group-x'], /invalid value for group \(--group\): no group named "no-such-group-x"/],
    ] as const) {
      const s = new Server(['-b', '127.0.0.1:0', ...args, fx('whoami.ts')]);
      const { code } = await s.exited;
      assert.equal(code, 1);
      assert.match(s.log, re);
    }
  });

  it('--user when not started as root: the start and --check-config refuse it in the same line', async () => {
    // Started as nobody (setpriv drops root before exec'ing node).
    const wrapper = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    const re = /^tunicorn: error: user\/group \(--user, --group\) need tunicorn to start as root \(it runs as uid 65534\); start it as root or leave them out\n$/m;
    for (const check of [['--check-config'], ['-b', '127.0.0.1:0']]) {
      const s = new Server([...check, '-u', 'root', fx('whoami.ts')], { wrapper });
      assert.equal((await s.exited).code, 1, s.log);
      assert.match(s.log, re);
      assert.doesNotMatch(s.log, /^OK: /m);
    }
  });

  it('--user named by a HUP when not started as root: the reload is refused in one line, the workers serve on', async () => {
    const wrapper = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    // Readable by nobody, which reads it again on the HUP.
    const dir = scratchDir('tunicorn-priv-hup-');
    chmodSync(dir, 0o755);
    const cfg = path.join(dir, 'hup-user.config.mjs');
    writeFileSync(cfg, 'export default { workers: 1 };\n');
    chmodSync(cfg, 0o644);
    const s = new Server(['-b', '127.0.0.1:0', '-c', cfg, fx('whoami.ts')], { wrapper });
    const port = await s.port();
    const [pid] = await s.workersBooted(1);
    await s.waitFor(/Ready: 1 worker/);
    writeFileSync(cfg, "export default { workers: 1, user: 'root' };\n");
    const from = s.log.length;
    s.signal('SIGHUP');
    await s.waitFor(
      /\[ERROR\] Reload failed, keeping the running configuration: user\/group \(--user, --group\) need tunicorn to start as root \(it runs as uid 65534\); start it as root or leave them out\n/,
      20000,
      from,
    );
    assert.doesNotMatch(s.log.slice(from), /Booting worker|failed to boot/);
    assert.deepEqual(childrenOf(s.pid), [pid]);
    assert.equal((await request(port, '/')).status, 200);
    s.signal('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
});
