/**
 * The files the server writes (src/logging/output-file.ts): why one cannot be written, in one line that names
 * the setting, its flag, the path, the cause and the fix; and the check that creates nothing. The tests run
 * as root, whom permissions do not stop: EACCES and EROFS are checked on the wording alone.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/setting.js';
import { ErrorLog } from '../../src/logging/error-log.js';
import { AccessLog } from '../../src/logging/access-log.js';
import { PIDFILE, Pidfile } from '../../src/arbiter/pidfile.js';
import { ACCESS_LOG, cannotWrite, checkWritable, ERROR_LOG } from '../../src/logging/output-file.js';
import { scratchDir } from '../helpers/scratch.js';

const tmp = scratchDir('tunicorn-output-file-');
const failed = (code: string) => ({ code, message: `${code}: some text, open '/x'` });
/** For assert.throws: a ConfigError whose message matches. */
const configError = (re: RegExp) => (err: unknown) => err instanceof ConfigError && re.test(err.message);

describe('cannotWrite: the cause in words', () => {
  for (const [file, p, code, exists, line] of [
    [ERROR_LOG, '/var/log/app/e.log', 'ENOENT', false,
      'cannot open error log "/var/log/app/e.log" (--error-logfile): the directory /var/log/app does not exist; create it or choose another --error-logfile'],
    [ACCESS_LOG, '/var/log', 'EISDIR', true,
      'cannot open access log "/var/log" (--access-logfile): it is a directory; name a file, such as /var/log/access.log'],
    [PIDFILE, '/run/app.pid', 'EACCES', false,
      'cannot write pidfile "/run/app.pid" (--pid): permission denied: user www may not create files in /run; change its owner or mode, or choose another --pid'],
    [ERROR_LOG, '/var/log/e.log', 'EACCES', true,
      'cannot open error log "/var/log/e.log" (--error-logfile): permission denied: user www may not write to the file; change its owner or mode, or choose another --error-logfile'],
    [ERROR_LOG, '/mnt/ro/e.log', 'EROFS', false,
      'cannot open error log "/mnt/ro/e.log" (--error-logfile): /mnt/ro is on a read-only file system; choose another --error-logfile'],
    [PIDFILE, '/etc/hostname/p.pid', 'ENOTDIR', false,
      'cannot write pidfile "/etc/hostname/p.pid" (--pid): /etc/hostname is not a directory; choose another --pid'],
    [ERROR_LOG, '/x', 'EMFILE', false, 'cannot open error log "/x" (--error-logfile): EMFILE: some text'],
  ] as const) {
    it(`${code} (${file.what})`, () => assert.equal(cannotWrite(file, p, failed(code), exists, 'www'), line));
  }
});

describe('checkWritable: as open(2) would fail, creating nothing', () => {
  const check = (p: string) => () => checkWritable(ERROR_LOG, p);

  it('a missing directory', () => assert.throws(check(path.join(tmp, 'none', 'e.log')), configError(/: the directory .*none does not exist; /)));
  it('a directory', () => assert.throws(check(tmp), configError(/: it is a directory; name a file, such as .*error\.log$/)));
  it('a file where a directory should be', () => {
    const file = path.join(tmp, 'plain');
    writeFileSync(file, '');
    assert.throws(check(path.join(file, 'e.log')), configError(/plain is not a directory; /));
    // Deeper: the file on the way is named, not the directory under it that cannot exist.
    assert.throws(check(path.join(file, 'logs', 'e.log')), configError(/\(--error-logfile\): [^ ]*plain is not a directory; /));
  });
  it('a file that may be created, which is not', () => {
    const p = path.join(tmp, 'new.log');
    checkWritable(ERROR_LOG, p);
    assert.ok(!existsSync(p));
  });
  it('a symbolic link to a file whose directory is missing (a volume not mounted): what open(2) and the worker see', () => {
    const link = path.join(tmp, 'dangling.log');
    symlinkSync(path.join(tmp, 'unmounted', 'app.log'), link);
    const line = /^cannot open access log ".*dangling\.log" \(--access-logfile\): it is a symbolic link to .*unmounted\/app\.log, and the directory .*unmounted does not exist; create it or choose another --access-logfile$/;
    assert.throws(() => checkWritable(ACCESS_LOG, link), configError(line));
    assert.throws(() => new AccessLog(link, '%(h)s'), configError(line));
    // One whose target's directory exists is fine: open(2) creates the target.
    const good = path.join(tmp, 'good-link.log');
    symlinkSync(path.join(tmp, 'target.log'), good);
    checkWritable(ACCESS_LOG, good);
  });
  it('a directory of a kernel file system, where access(2) says yes to root but no file can be created', () => {
    assert.throws(check('/proc/tunicorn-test.log'), configError(/\(--error-logfile\): no file can be created in \/proc \(a kernel file system\); choose another --error-logfile$/));
  });
  it('a file that exists, or a device', () => {
    const p = path.join(tmp, 'old.log');
    writeFileSync(p, 'x');
    checkWritable(ERROR_LOG, p);
    checkWritable(ERROR_LOG, '/dev/null');
  });
});

describe('the logs throw that line when they cannot open their file', () => {
  const missing = path.join(tmp, 'none', 'x.log');
  it('ErrorLog', () => assert.throws(() => new ErrorLog(missing, 'info'), configError(/^cannot open error log ".*" \(--error-logfile\): the directory/)));
  it('AccessLog', () => assert.throws(() => new AccessLog(missing, '%(h)s'), configError(/^cannot open access log ".*" \(--access-logfile\): the directory/)));
  it('"-" is stderr or stdout, and needs no file', () => {
    new ErrorLog('-', 'info').close();
    new AccessLog('-', '%(h)s').close();
  });
});

describe('Pidfile.check: a pidfile naming a live process', () => {
  // A process's name (/proc/PID/comm) is its program's file name until it sets a title: `node` up to Node 22,
  // the main thread's name from Node 24 (`MainThread`) and 26 (`node-MainThread`). Each is run here as
  // `sleep` under that name, through a symlink.
  const named = (name: string) => {
    const link = path.join(tmp, name);
    if (!existsSync(link)) symlinkSync(execFileSync('sh', ['-c', 'command -v sleep'], { encoding: 'utf8' }).trim(), link);
    return spawn(link, ['30'], { stdio: 'ignore' });
  };
  for (const [name, refused] of [['node', true], ['MainThread', true], ['node-MainThread', true], ['tunicorn: maste', true], ['sleep', false]] as const) {
    it(`${refused ? 'refuses' : 'replaces'} one whose process is named "${name}"`, async (t) => {
      const p = named(name);
      t.after(() => p.kill());
      await once(p, 'spawn');
      const file = path.join(tmp, `${name.replace(/\W/g, '_')}.pid`);
      writeFileSync(file, `${p.pid}\n`);
      if (refused) assert.throws(() => Pidfile.check(file), configError(new RegExp(`names process ${p.pid}, which is still running`)));
      else assert.doesNotThrow(() => Pidfile.check(file));
    });
  }
});
