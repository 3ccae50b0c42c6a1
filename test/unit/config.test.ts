/** Pure logic: argument parsing, precedence, validation, addresses, the generated settings docs. */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseArgs, splitCommandLine } from '../../src/config/args.js';
import { settingsMarkdown } from '../../src/config/docs.js';
import { loadConfigFile } from '../../src/config/file.js';
import { GUNICORN_ONLY } from '../../src/config/gunicorn-only.js';
import { allSettings, closest, editDistance, settingForFlag, suggestKey } from '../../src/config/registry.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { ConfigError } from '../../src/config/setting.js';
import { defineConfig } from '../../src/index.js';
import { formatAddress, parseAddress } from '../../src/listeners/address.js';
import { scratchDir } from '../helpers/scratch.js';

const resolve = (argv: string[], env: NodeJS.ProcessEnv = {}, fileValues?: Record<string, unknown>) =>
  resolveConfig({ argv, env, cwd: '/nonexistent', fileValues: fileValues ?? {} });

describe('parseArgs', () => {
  it('reads Gunicorn spellings: -w 4, -w4, --workers=4, booleans, repeatable binds', () => {
    for (const argv of [['-w', '4'], ['-w4'], ['-w=4'], ['--workers=4'], ['--workers', '4']]) {
      assert.deepEqual(parseArgs(argv).values.get('workers'), ['4']);
    }
    // Gunicorn's own spelling of one flag, and argparse's unique prefixes.
    assert.deepEqual(parseArgs(['--limit-request-field_size', '100']).values.get('limitRequestFieldSize'), ['100']);
    assert.deepEqual(parseArgs(['--worker_class', 'sync']).values.get('workerClass'), ['sync']);
    assert.deepEqual(parseArgs(['--error-log', 'e.log']).values.get('errorlog'), ['e.log']);
    assert.deepEqual(parseArgs(['--worker-conn=5']).values.get('workerConnections'), ['5']);
    assert.throws(() => parseArgs(['--worker', '3']), /^.*ambiguous option --worker: it could be --workers, --worker-class, --worker-connections/);
    const p = parseArgs(['-b', 'a:1', '--bind', 'b:2', '--preload', 'app.ts']);
    assert.deepEqual(p.values.get('bind'), ['a:1', 'b:2']);
    assert.deepEqual(p.values.get('preload'), ['true']);
    assert.deepEqual(p.positionals, ['app.ts']);
  });

  it("takes Gunicorn's bare --proxy-protocol switch, and true or false in a config file", async () => {
    // Gunicorn's --proxy-protocol is a switch (a value optional since 25): it must not swallow the app.
    assert.equal((await resolve(['--proxy-protocol', 'app.ts'])).config.proxyProtocol, 'auto');
    assert.equal((await resolve(['--proxy-protocol', 'app.ts'])).app, 'app.ts');
    assert.equal((await resolve(['--proxy-protocol', '-w', '2', 'app.ts'])).config.proxyProtocol, 'auto');
    assert.equal((await resolve(['app.ts', '--proxy-protocol'])).config.proxyProtocol, 'auto');
    assert.equal((await resolve(['--proxy-protocol', 'v2', 'app.ts'])).config.proxyProtocol, 'v2');
    assert.equal((await resolve(['--proxy-protocol=v1', 'app.ts'])).config.proxyProtocol, 'v1');
    assert.equal((await resolve(['app.ts'], { TUNICORN_CMD_ARGS: '--proxy-protocol' })).config.proxyProtocol, 'auto');
    assert.equal((await resolve(['app.ts'], {}, { proxyProtocol: true })).config.proxyProtocol, 'auto');
    assert.equal((await resolve(['app.ts'], {}, { proxyProtocol: false })).config.proxyProtocol, 'off');
    await assert.rejects(resolve(['app.ts'], {}, { proxyProtocol: 1 }), /invalid value for proxyProtocol/);
  });

  it('names a mistyped value of a flag whose value may be left out, not a second APP argument', async () => {
    // `v3` is no mode, so the flag stood alone and v3 became the APP: the error is the value's, as argparse's.
    await assert.rejects(
      resolve(['--proxy-protocol', 'v3', 'app.ts']),
      /invalid value for proxyProtocol \(--proxy-protocol\): "v3"; expected one of off, v1, v2, auto/,
    );
    await assert.rejects(
      resolve(['app.ts'], { TUNICORN_CMD_ARGS: '--proxy-protocol v3' }),
      /invalid value for proxyProtocol \(--proxy-protocol\): "v3"; .* \(from the environment: TUNICORN_CMD_ARGS="--proxy-protocol v3"\)/,
    );
    // A second APP anywhere else is still said as such.
    await assert.rejects(resolve(['--proxy-protocol', '-w', '2', 'a.ts', 'b.ts']), /expected one APP argument, got 2: a\.ts b\.ts/);
    // So is a word after the flag that reads as a file: two apps typed, not a mode mistyped.
    await assert.rejects(resolve(['--proxy-protocol', 'a.ts', 'b.ts']), /expected one APP argument, got 2: a\.ts b\.ts/);
    // A version number with a dot is still a mode mistyped.
    await assert.rejects(resolve(['--proxy-protocol', 'v1.0', 'app.ts']), /invalid value for proxyProtocol \(--proxy-protocol\): "v1\.0"/);
  });

  it('names an unknown option and suggests the right one', () => {
    // A typo or two: the option's real spelling, dashes included, even where it differs from the key.
    assert.throws(() => parseArgs(['--wokers', '3']), /unknown option --wokers; did you mean --workers\?$/);
    assert.throws(() => parseArgs(['--bnd', 'x']), /did you mean --bind\?$/);
    assert.throws(() => parseArgs(['--keepalive', '3']), /did you mean --keep-alive\?$/);
    assert.throws(() => parseArgs(['--log-levl', 'debug']), /did you mean --log-level\?$/);
    assert.throws(() => parseArgs(['--acess-logfile', '-']), /did you mean --access-logfile\?$/);
    // Nothing near: no guess.
    assert.throws(() => parseArgs(['--bogus']), /unknown option --bogus; see tunicorn --help$/);
    assert.throws(() => parseArgs(['--wx']), /unknown option --wx; see tunicorn --help$/);
    assert.throws(() => parseArgs(['--workers']), /option --workers needs a value \(INT\)/);
    assert.throws(() => parseArgs(['--preload=yes']), /takes no value/);
  });

  it('guesses only when one answer is nearest: editDistance and closest', () => {
    assert.equal(editDistance('workr', 'workers', 2), 2);
    assert.equal(editDistance('tiemout', 'timeout', 2), 1); // two neighbours swapped: one edit
    assert.equal(editDistance('bind', 'bind', 1), 0);
    assert.ok(editDistance('threads', 'bind', 2) > 2);
    const answers = new Map([['workers', 'workers'], ['threads', 'threads'], ['worker-class', 'workerClass']]);
    assert.equal(closest('WORKER_CLASS', answers), 'workerClass');
    assert.equal(closest('worker', answers), 'workers');
    assert.equal(closest('xyz', answers), undefined);
    // As near to two different answers: no guess. Two spellings of one answer are not a tie.
    assert.equal(closest('aac', new Map([['aab', 'one'], ['aad', 'two']])), undefined);
    assert.equal(closest('aac', new Map([['aab', 'one'], ['aad', 'one']])), 'one');
    // A config-file key may be misspelled as an option's name, or the other way round.
    assert.equal(suggestKey('access_logfile'), 'accesslog');
    assert.equal(suggestKey('workr'), 'workers');
    assert.equal(suggestKey('bogus'), undefined);
    // Gunicorn's own names of the settings tunicorn calls otherwise, as written or in camelCase.
    assert.equal(suggestKey('proxy_allow_ips'), 'proxyAllowFrom');
    assert.equal(suggestKey('proxyAllowIps'), 'proxyAllowFrom');
    assert.equal(suggestKey('preloadApp'), 'preload');
    assert.equal(suggestKey('reloadExtraFiles'), 'reloadExtraFile');
  });

  it("says why a Gunicorn option tunicorn does not have is missing, and what to do instead", async () => {
    assert.throws(() => parseArgs(['--daemon', 'app.ts']), /^ConfigError: --daemon is Gunicorn's daemon, which tunicorn does not have: Node cannot fork a running process: run tunicorn under systemd/);
    assert.throws(() => parseArgs(['-D', 'app.ts']), /-D is Gunicorn's daemon/);
    // Off is what tunicorn does: a config carried over from Gunicorn's may say so.
    assert.equal((await resolve(['a'], {}, { daemon: false, reusePort: false })).app, 'a');
    await assert.rejects(resolve(['a'], {}, { daemon: true }), /setting "daemon" is Gunicorn's daemon, which tunicorn does not have/);
    await assert.rejects(resolve(['a'], {}, { tmp_upload_dir: '/tmp' }), /setting "tmp_upload_dir" is Gunicorn's tmp_upload_dir, which tunicorn does not have: /);
    // Gunicorn's worker_tmp_dir is tunicorn's too (the workers' heartbeat files).
    assert.equal((await resolve(['a'], {}, { workerTmpDir: '/dev/shm' })).config.workerTmpDir, '/dev/shm');
    await assert.rejects(resolve(['a'], {}, { worker_tmp_dir: '/dev/shm' }), /unknown setting "worker_tmp_dir"; did you mean workerTmpDir\?/);
    assert.deepEqual(parseArgs(['--worker-tmp-dir', '/run/beats', 'a']).values.get('workerTmpDir'), ['/run/beats']);
    await assert.rejects(resolve(['a'], {}, { syslogAddr: 'udp://x:514' }), /setting "syslogAddr" is Gunicorn's syslog_addr, which tunicorn does not have: there is no syslog client/);
    // Gunicorn 24 and 25's own (uWSGI, ASGI, HTTP/2 tuning, dirty arbiters): named, not "unknown option".
    // Asking for what tunicorn always does: the line says so, and to drop it.
    assert.throws(() => parseArgs(['--no-sendfile', 'app.ts']), /^ConfigError: --no-sendfile is Gunicorn's sendfile, which tunicorn does not have: tunicorn never uses sendfile\(2\) .*which is what --no-sendfile asks for: drop it$/);
    assert.throws(() => parseArgs(['--protocol', 'uwsgi', 'app.ts']), /--protocol is Gunicorn's protocol, which tunicorn does not have: the uWSGI binary protocol/);
    assert.throws(() => parseArgs(['--http2-max-concurrent-streams', '50']), /Gunicorn's http2_max_concurrent_streams/);
    assert.throws(() => parseArgs(['--dirty-workers', '2']), /Gunicorn's dirty_workers, which tunicorn does not have/);
    assert.throws(() => parseArgs(['--tolerate-dangerous-framing', 'app.ts']), /Gunicorn's tolerate_dangerous_framing, which tunicorn does not have: Gunicorn 22's, removed in 23: requests are parsed by Node's llhttp/);
    await assert.rejects(resolve(['a'], {}, { tmp_upload_dir: '/tmp' }), /setting "tmp_upload_dir" is Gunicorn's tmp_upload_dir/);
    await assert.rejects(resolve(['a'], {}, { dirtyWorkerInit: () => {} }), /Gunicorn's dirty_worker_init/);
    // Gunicorn's worker classes: refused with tunicorn's analogue, not only the list of its own.
    await assert.rejects(resolve(['-k', 'uvicorn.workers.UvicornWorker', 'a']), /^ConfigError: invalid value for workerClass \(--worker-class\): "uvicorn\.workers\.UvicornWorker" is a Gunicorn worker class for Python; tunicorn's async class \(the default\) is its analogue: .*; expected one of async, sync, gthread$/);
    await assert.rejects(resolve(['a'], {}, { workerClass: 'gevent' }), /"gevent" is a Gunicorn worker class for Python; tunicorn's async class/);
    await assert.rejects(resolve(['-k', 'gunicorn.workers.sync.SyncWorker', 'a']), /tunicorn's sync class is its analogue/);
    await assert.rejects(resolve(['-k', 'bogus', 'a']), /invalid value for workerClass \(--worker-class\): "bogus"; expected one of async, sync, gthread$/);
    assert.equal((await resolve(['-k', 'SYNC', 'a'])).config.workerClass, 'sync');
    // Gunicorn's -c file:PATH is PATH; its python:MODULE is refused in words, not as a file not found.
    await assert.rejects(
      resolveConfig({ argv: ['-c', 'python:settings', 'a'], env: {}, cwd: tmpdir() }),
      /^ConfigError: -c python:settings is Gunicorn's config from a Python module, which does not load here; write its settings as an object in a tunicorn\.config\.ts/,
    );
    const cdir = scratchDir('tunicorn-file-prefix-');
    writeFileSync(path.join(cdir, 'prod.config.mjs'), 'export default { workers: 3 };\n');
    const viaFile = await resolveConfig({ argv: ['-c', 'file:prod.config.mjs', 'a'], env: {}, cwd: cdir });
    assert.equal(viaFile.config.workers, 3);
    assert.equal(viaFile.configPath, path.join(cdir, 'prod.config.mjs'));
    // None of them is one of tunicorn's settings after all.
    const ours = new Set(allSettings().map((s) => s.gunicorn));
    for (const [name, g] of Object.entries(GUNICORN_ONLY)) {
      assert.ok(!ours.has(name), name);
      for (const f of g.flags) assert.equal(settingForFlag(f), undefined, f);
    }
  });

  it("says that Gunicorn's GUNICORN_CMD_ARGS and ./gunicorn.conf.py are not read, rather than drop them in silence", async () => {
    const r = await resolve(['a'], { GUNICORN_CMD_ARGS: '--workers 4 --timeout 120' });
    assert.equal(r.config.workers, 1);
    assert.deepEqual(r.warnings, [
      'GUNICORN_CMD_ARGS is set ("--workers 4 --timeout 120"), and tunicorn does not read it: put those options in TUNICORN_CMD_ARGS, which takes the same syntax',
    ]);
    assert.deepEqual((await resolve(['a'], { GUNICORN_CMD_ARGS: ' ' })).warnings, []);
    const dir = scratchDir('tunicorn-gunicorn-conf-');
    writeFileSync(path.join(dir, 'gunicorn.conf.py'), 'workers = 4\n');
    const fromDir = (argv: string[]) => resolveConfig({ argv, env: {}, cwd: dir });
    assert.match((await fromDir(['a'])).warnings.join('\n'), /^\/.*\/gunicorn\.conf\.py is not read: tunicorn's default config file is \.\/tunicorn\.config\.ts/);
    // A config file of tunicorn's own is the one read: the Python file beside it is then no surprise.
    writeFileSync(path.join(dir, 'tunicorn.config.mjs'), 'export default { workers: 2 };\n');
    const r2 = await fromDir(['a']);
    assert.equal(r2.config.workers, 2);
    assert.deepEqual(r2.warnings, []);
  });

  it('splits TUNICORN_CMD_ARGS like a shell', () => {
    assert.deepEqual(splitCommandLine(`-w 3 --access-logformat '%(h)s "x"' -e A="b c"`), ['-w', '3', '--access-logformat', '%(h)s "x"', '-e', 'A=b c']);
    assert.throws(() => splitCommandLine('-n "open'), ConfigError);
  });
});

describe('resolveConfig', () => {
  it('applies defaults < file < TUNICORN_CMD_ARGS < command line', async () => {
    const r = await resolve(['-t', '5', 'app.ts'], { TUNICORN_CMD_ARGS: '-t 4 --keep-alive 3 -w 6' }, { timeout: 2, keepalive: 1, backlog: 10 });
    assert.equal(r.config.timeout, 5);
    assert.equal(r.sources.timeout, 'command line');
    assert.equal(r.config.keepalive, 3);
    assert.equal(r.sources.keepalive, 'TUNICORN_CMD_ARGS');
    assert.equal(r.config.backlog, 10);
    assert.equal(r.sources.backlog, 'config file');
    assert.equal(r.config.workers, 6);
    assert.equal(r.config.gracefulTimeout, 30);
    assert.equal(r.sources.gracefulTimeout, 'default');
    assert.ok(Object.isFrozen(r.config));
  });

  it('workers: auto is (2 x CPU) + 1; WEB_CONCURRENCY sets the default', async () => {
    const { availableParallelism } = await import('node:os');
    assert.equal((await resolve(['-w', 'auto', 'a'])).config.workers, 2 * availableParallelism() + 1);
    assert.equal((await resolve(['a'], { WEB_CONCURRENCY: '7' })).config.workers, 7);
    assert.equal((await resolve(['a'], { PORT: '5000' })).config.bind[0], '0.0.0.0:5000');
  });

  it('rejects bad values with the setting, the value and what it accepts', async () => {
    await assert.rejects(resolve(['a'], {}, { workers: 'many' }), /invalid value for workers \(--workers\): "many"; expected a whole number >= 1 or "auto"/);
    // An access-log atom the workers could not compile is refused here, in one line, not by each worker.
    await assert.rejects(resolve(['--access-logformat', '%(h)s %(x)s', 'a']), /invalid value for accessLogFormat \(--access-logformat\): "%\(h\)s %\(x\)s"; unknown atom %\(x\)s; known: h l u/);
    await assert.rejects(resolve(['a'], {}, { accessLogFormat: '%(status)s' }), /unknown atom %\(status\)s/);
    assert.equal((await resolve(['--access-logformat', '%%(x)s %({X-Id}i)s %(Q)s', 'a'])).config.accessLogFormat, '%%(x)s %({X-Id}i)s %(Q)s');
    await assert.rejects(resolve(['--keep-alive', '0.5', 'a']), /invalid value for keepalive \(--keep-alive\): 0\.5; a keep-alive under 1 s cannot be advertised \(Keep-Alive: timeout=N counts whole seconds\); use 0 \(no keep-alive\) or 1 or more/);
    assert.equal((await resolve(['--keep-alive', '2.5', 'a'])).config.keepalive, 2.5);
    assert.equal((await resolve(['--keep-alive', '0', 'a'])).config.keepalive, 0);
    await assert.rejects(resolve(['--http-protocols', 'h2,h1,h2', 'a']), /invalid value for httpProtocols \(--http-protocols\): \["h2","h1","h2"\]; names a protocol twice/);
    assert.deepEqual((await resolve(['--http-protocols', 'h1, h2', 'a'])).config.httpProtocols, ['h1', 'h2']);
    // An atom not written %(NAME)s was written as it is on every line, with nothing said.
    for (const [format, shown] of [['%(h) -  %(t)s', '%(h) -'], ['%(D)d us', '%(D)d'], ['%(h)15s', '%(h)15s'], ['%(s)s %({x-id)s', '%({x-id)s'], ['%(h', '%(h']]) {
      await assert.rejects(resolve(['--access-logformat', format!, 'a']), new RegExp(`; ${JSON.stringify(shown).replace(/[()+{}]/g, '\\$&')} is not an atom: write it %\\\(NAME\\\)s`), format);
    }
    assert.equal((await resolve(['--access-logformat', '100% %%(h)s (%(s)s)', 'a'])).config.accessLogFormat, '100% %%(h)s (%(s)s)');
    await assert.rejects(resolve(['a'], {}, { timeout: -1 }), /invalid value for timeout \(--timeout\): -1; expected a number of seconds >= 0 and <= 2000000 \(23 days\)/);
    await assert.rejects(resolve(['a'], {}, { loglevel: 'loud' }), /expected one of debug, info, warning, error, critical/);
    await assert.rejects(resolve(['a'], {}, { preload: 'maybe' }), /expected true or false/);
    // Gunicorn's validate_bool: "True", " false " (from an environment variable) read as what they say.
    assert.equal((await resolve(['a'], {}, { preload: 'True' })).config.preload, true);
    assert.equal((await resolve(['a'], {}, { reload: ' FALSE ' })).config.reload, false);
    await assert.rejects(resolve(['a'], {}, { onStarting: 'not a function' }), /invalid value for onStarting: "not a function"; expected a function/);
    // Gunicorn's post_request(worker, req, environ, resp): the error says which arguments tunicorn's gets.
    await assert.rejects(resolve(['a'], {}, { postRequest: (a: 1, b: 2, c: 3, d: 4) => [a, b, c, d] }), /at most 3 argument\(s\), \(worker, req, res\), got 4$/);
    await assert.rejects(resolve(['a'], {}, { graceful_timeout: 3 }), /unknown setting "graceful_timeout"; did you mean gracefulTimeout\?/);
    await assert.rejects(resolve(['a', 'b']), /expected one APP argument, got 2/);
  });

  it('takes durations Node can time, and whole numbers it can hold', async () => {
    // Past 2^31 - 1 ms Node fires a timer at once: a deadline of 3000000 s answered 503 at once.
    for (const key of ['timeout', 'gracefulTimeout', 'keepalive', 'requestDeadline', 'headerTimeout', 'bodyTimeout', 'shutdownDelay']) {
      await assert.rejects(resolve(['a'], {}, { [key]: 3_000_000 }), /and <= 2000000 \(23 days\)$/, key);
      assert.equal((await resolve(['a'], {}, { [key]: 2_000_000 })).config[key as 'timeout'], 2_000_000);
    }
    await assert.rejects(resolve(['--request-deadline', '3000000', 'a']), /invalid value for requestDeadline \(--request-deadline\): "3000000"/);
    // Decimal numbers only: no hex, no Infinity.
    assert.equal((await resolve(['--timeout', '.5', 'a'])).config.timeout, 0.5);
    assert.equal((await resolve(['--graceful-timeout', '1e2', 'a'])).config.gracefulTimeout, 100);
    await assert.rejects(resolve(['--timeout', '0x10', 'a']), /"0x10"; expected a number of seconds/);
    await assert.rejects(resolve(['--timeout', 'Infinity', 'a']), /"Infinity"; expected a number of seconds/);
    // One message for every value the header timeout refuses, -1 and 0 alike.
    for (const v of ['-1', '0']) await assert.rejects(resolve(['--header-timeout', v, 'a']), /expected a number of seconds > 0 and <= 2000000/);
    await assert.rejects(resolve(['-w', '99999999999999999999', 'a']), /"99999999999999999999"; expected a whole number >= 1 or "auto"/);
  });

  it('says why a health-bind address is refused, as for bind', async () => {
    await assert.rejects(resolve(['--health-bind', 'http://127.0.0.1:9000', 'a']), /invalid value for healthBind \(--health-bind\): "http:\/\/127\.0\.0\.1:9000"; drop the "http:\/\/".*\(expected HOST:PORT, \[IPv6\]:PORT or unix:PATH\)$/);
    await assert.rejects(resolve(['--health-bind', '', 'a']), /invalid value for healthBind \(--health-bind\): ""; the address is empty/);
  });

  it('shows a promise, a class instance, Infinity and NaN for what they are, not as {} or null', async () => {
    await assert.rejects(resolve(['a'], {}, { workers: Promise.resolve(2) }), /invalid value for workers \(--workers\): a Promise \(await it in the config file\); expected/);
    await assert.rejects(resolve(['a'], {}, { bind: new Map() }), /invalid value for bind \(--bind\): an instance of Map; /);
    await assert.rejects(resolve(['a'], {}, { timeout: Infinity }), /invalid value for timeout \(--timeout\): Infinity; /);
    await assert.rejects(resolve(['a'], {}, { workers: NaN }), /invalid value for workers \(--workers\): NaN; /);
  });

  it('names the environment variable a bad value came from, and ignores one that something above replaced', async () => {
    await assert.rejects(resolve(['a'], { PORT: 'abc' }), /invalid value for bind \(--bind\): "0\.0\.0\.0:abc".* \(from the environment: PORT="abc"\)$/);
    await assert.rejects(resolve(['a'], { WEB_CONCURRENCY: 'abc' }), /invalid value for workers .*\(from the environment: WEB_CONCURRENCY="abc"\)$/);
    await assert.rejects(resolve(['a'], { WEB_CONCURRENCY: '0' }), /expected a whole number >= 1 or "auto" \(from the environment: WEB_CONCURRENCY="0"\)$/);
    await assert.rejects(resolve(['a'], { FORWARDED_ALLOW_IPS: '10.0.0.0/99' }), /\(from the environment: FORWARDED_ALLOW_IPS="10\.0\.0\.0\/99"\)$/);
    // A bad allow-list entry names its setting: with both lists given, which one is wrong.
    await assert.rejects(
      resolve(['--forwarded-allow-ips', '10.0.0.1', '--proxy-allow-from', '10.0.0.1,bogus', 'a']),
      /^ConfigError: invalid value for proxyAllowFrom \(--proxy-allow-from\): \["10\.0\.0\.1","bogus"\]; "bogus" is not an IP address, a CIDR range \(10\.0\.0\.0\/8\) or \*$/,
    );
    await assert.rejects(resolve(['a'], { TUNICORN_CMD_ARGS: '-w abc' }), /invalid value for workers .*\(from the environment: TUNICORN_CMD_ARGS="-w abc"\)$/);
    await assert.rejects(resolve(['a'], { TUNICORN_CMD_ARGS: '--bogus' }), /unknown option --bogus; .*\(from the environment: TUNICORN_CMD_ARGS="--bogus"\)$/);
    // A flag or a config-file key replaces the variable, which then does not matter.
    assert.deepEqual((await resolve(['-b', '127.0.0.1:0', 'a'], { PORT: 'abc' })).config.bind, ['127.0.0.1:0']);
    assert.equal((await resolve(['a'], { WEB_CONCURRENCY: 'abc' }, { workers: 2 })).config.workers, 2);
    // Blank is unset.
    assert.equal((await resolve(['a'], { WEB_CONCURRENCY: ' ' })).config.workers, 1);
  });

  it('says what a config file must be: its language, and an object of settings', async () => {
    const dir = scratchDir('tunicorn-config-');
    const file = (name: string, text: string) => (writeFileSync(path.join(dir, name), text), path.join(dir, name));
    await assert.rejects(loadConfigFile(file('gunicorn.conf.py', 'workers = 3\n')), /tunicorn reads TypeScript, JavaScript or JSON \(.*\): a Gunicorn config in Python does not load here/);
    await assert.rejects(loadConfigFile(file('list.mjs', 'export default [1, 2];\n')), /must export \(default\) an object of settings, got an array$/);
    await assert.rejects(loadConfigFile(file('number.mjs', 'export default 3;\n')), /got a number$/);
    assert.deepEqual(await loadConfigFile(file('plain.json', '{"workers": 3}')), { workers: 3 });
    // JSON's own error, with the file, line and column, and no frame of the parser.
    await assert.rejects(
      loadConfigFile(file('comma.json', '{\n  "workers": 3\n  "timeout": 5\n}\n')),
      /^ConfigError: config file .*comma\.json failed to load: Expected ',' or '}' after property value \(.*comma\.json:3:3\)$/,
    );
    mkdirSync(path.join(dir, 'folder.config.ts'));
    await assert.rejects(loadConfigFile(path.join(dir, 'folder.config.ts')), /config file .*folder\.config\.ts is a directory; name the file/);
  });

  it('refuses an address bound twice, which would fail as if another server held it', async () => {
    await assert.rejects(resolve(['-b', '127.0.0.1:9000', '-b', '127.0.0.1:9000', 'a']), /invalid value for bind \(--bind\): .*"127\.0\.0\.1:9000" is listed twice; bind each address once/);
    await assert.rejects(resolve(['-b', 'unix:a.sock', '-b', 'unix:./a.sock', 'a']), /"unix:\.\/a\.sock" is the same address as "unix:a\.sock"/);
    // One address, two spellings: an IPv6 literal written two ways, an IPv4-mapped one and its IPv4 address.
    await assert.rejects(resolve(['-b', '[::1]:9000', '-b', '[0::1]:9000', 'a']), /"\[0::1\]:9000" is the same address as "\[::1\]:9000"/);
    await assert.rejects(resolve(['-b', '127.0.0.1:9000', '-b', '[::ffff:127.0.0.1]:9000', 'a']), /"\[::ffff:127\.0\.0\.1\]:9000" is the same address as "127\.0\.0\.1:9000"/);
    assert.deepEqual((await resolve(['-b', '[::1]:9000', '-b', '127.0.0.1:9000', 'a'])).config.bind, ['[::1]:9000', '127.0.0.1:9000']);
    // Port 0 twice is two free ports.
    assert.deepEqual((await resolve(['-b', '127.0.0.1:0', '-b', '127.0.0.1:0', 'a'])).config.bind, ['127.0.0.1:0', '127.0.0.1:0']);
  });

  it('names settings exported under a name of their own, where the default export was meant', async () => {
    const dir = scratchDir('tunicorn-config-');
    const file = (name: string, text: string) => (writeFileSync(path.join(dir, name), text), path.join(dir, name));
    for (const name of ['config', 'settings']) {
      const cfg = file(`${name}.config.mjs`, `export const ${name} = { workers: 2, timeout: 10 };\n`);
      await assert.rejects(
        resolveConfig({ argv: ['-c', cfg, 'a'], env: {}, cwd: dir }),
        new RegExp(`: the config file exports its settings as "${name}" in .*${name}\\.config\\.mjs; make them the default export: export default defineConfig\\(\\{ \\.\\.\\. \\}\\)$`),
      );
    }
    await assert.rejects(resolveConfig({ argv: ['-c', file('other.config.mjs', 'export const settings = { x: 1 };\n'), 'a'], env: {}, cwd: dir }), /unknown setting "settings"/);
    // Settings beside it: the default export (or the settings as exports of their own), a nested key unknown.
    const nested = file('nested.config.mjs', "export default { workers: 2, logging: { loglevel: 'debug' } };\n");
    await assert.rejects(resolveConfig({ argv: ['-c', nested, 'a'], env: {}, cwd: dir }), /unknown setting "logging" in .*nested\.config\.mjs; see docs\/settings\.md/);
  });

  it('keeps a umask from a config file octal, as --print-config shows it', async () => {
    assert.equal((await resolve(['a'], {}, { umask: 0o22 })).config.umask, '0o22');
    assert.equal((await resolve(['a'], {}, { umask: '022' })).config.umask, '022');
  });

  it('accepts the seed spelling logfile and env as an object or a list', async () => {
    assert.equal((await resolve(['a'], {}, { logfile: '/tmp/x.log' })).config.errorlog, '/tmp/x.log');
    assert.deepEqual((await resolve(['a'], {}, { rawEnv: { A: '1' } })).config.rawEnv, { A: '1' });
    assert.deepEqual((await resolve(['-e', 'A=1', '-e', 'B=x=y', 'a'])).config.rawEnv, { A: '1', B: 'x=y' });
  });

  it('refuses one setting given twice under two spellings in one config file', async () => {
    await assert.rejects(resolve(['a'], {}, { preload: true, preload_app: false }), /^ConfigError: "preload" and "preload_app" are one setting \(preload\) given twice; keep one of them$/);
    await assert.rejects(resolve(['a'], {}, { maxWorkerMemory: '200M', max_memory_restart: '300M' }), /"maxWorkerMemory" and "max_memory_restart" are one setting \(maxWorkerMemory\)/);
  });

  it("accepts PM2's max_memory_restart as max_worker_memory, with its values", async () => {
    assert.equal((await resolve(['a'], {}, { max_memory_restart: '300M' })).config.maxWorkerMemory, 300 * 2 ** 20);
    await assert.rejects(resolve(['a'], {}, { max_memory_restart: '300' }), /invalid value for maxWorkerMemory/);
  });

  it("names a PM2 ecosystem key in a config file, with what to use instead, not as an unknown setting", async () => {
    await assert.rejects(resolve(['a'], {}, { instances: 'max' }), /^ConfigError: setting "instances" is PM2's, not tunicorn's: use workers \(-w N\); PM2's 'max' \(one per CPU\) is workers: os\.availableParallelism\(\)/);
    await assert.rejects(resolve(['a'], {}, { kill_timeout: 5000 }), /setting "kill_timeout" is PM2's, not tunicorn's: use gracefulTimeout \(--graceful-timeout SECONDS\), in seconds where PM2 counts milliseconds$/);
    await assert.rejects(resolve(['a'], {}, { cron_restart: '0 3 * * *' }), /"cron_restart" is PM2's, not tunicorn's: no scheduled restarts: .*kill -HUP PID, tunicornc reload/);
    await assert.rejects(resolve(['a'], {}, { env_production: { NODE_ENV: 'production' } }), /"env_production" is PM2's, not tunicorn's: pick the set in the config file itself/);
    await assert.rejects(resolve(['a'], {}, { env_staging: {} }), /"env_staging" is PM2's/);
    await assert.rejects(resolve(['a'], {}, { apps: [{ script: 'app.js' }] }), /"apps" is PM2's, not tunicorn's: this is a PM2 ecosystem file; a tunicorn config file exports one server's settings/);
    // Not a PM2 key: as before.
    await assert.rejects(resolve(['a'], {}, { environment: 'x' }), /unknown setting "environment"/);
  });

  it('takes a numeric user and group from a config file, as Gunicorn\'s user = 1000', async () => {
    const r = await resolve(['a'], {}, { user: 0, group: 0 });
    assert.equal(r.config.user, '0');
    assert.equal(r.config.group, '0');
    await assert.rejects(resolve(['a'], {}, { user: -1 }), /invalid value for user \(--user\): -1; expected a string/);
  });

  it('refuses an empty error log path, in words', async () => {
    await assert.rejects(resolve(['--error-logfile', '', 'a']), /invalid value for errorlog \(--error-logfile\): ""; an empty path; give a file, or - for stderr/);
  });
});

describe('addresses', () => {
  it('parses every bind form', () => {
    assert.deepEqual(parseAddress('127.0.0.1:8000'), { kind: 'tcp', host: '127.0.0.1', port: 8000 });
    assert.deepEqual(parseAddress('[::1]:0'), { kind: 'tcp', host: '::1', port: 0 });
    assert.deepEqual(parseAddress(':9000'), { kind: 'tcp', host: '0.0.0.0', port: 9000 });
    assert.deepEqual(parseAddress('localhost'), { kind: 'tcp', host: 'localhost', port: 8000 });
    assert.deepEqual(parseAddress('unix:/tmp/t.sock'), { kind: 'unix', path: '/tmp/t.sock' });
    assert.deepEqual(parseAddress('fd://3'), { kind: 'fd', fd: 3 });
    assert.equal(formatAddress(parseAddress('[::1]:80')), 'http://[::1]:80');
  });

  it('rejects malformed ones with the accepted forms', () => {
    for (const bad of ['::1:80', '[::1:80', 'host:port', 'host:70000', 'unix:', 'fd://x'])
      assert.throws(() => parseAddress(bad), /invalid value for bind \(--bind\): .*expected HOST:PORT, \[IPv6\]:PORT, unix:PATH or fd:\/\/N/);
  });
});

describe('settings registry', () => {
  it('declares every setting once, with docs, and no flag twice', () => {
    const flags = allSettings().flatMap((s) => s.flags);
    assert.equal(new Set(flags).size, flags.length);
    for (const s of allSettings()) {
      assert.ok(s.short.length > 10 && s.doc.length > 10, `${s.key} is documented`);
      assert.ok(s.isHook || s.flags.some((f) => f.startsWith('--')), `${s.key} has a long flag`);
    }
  });

  it('docs/settings.md is generated from it and up to date (npm run docs)', () => {
    const onDisk = readFileSync(new URL('../../docs/settings.md', import.meta.url), 'utf8');
    assert.equal(onDisk, settingsMarkdown(), 'docs/settings.md is stale: run `npm run docs`');
  });
});

describe('mistakes a user makes, each said in one line', () => {
  it('refuses a backlog listen(2) cannot take, and a timeout that would kill healthy workers', async () => {
    await assert.rejects(resolve(['--backlog', '2147483648', 'a']), /invalid value for backlog \(--backlog\): "?2147483648"?; must be <= 2147483647/);
    assert.equal((await resolve(['--backlog', '2147483647', 'a'])).config.backlog, 2147483647);
    await assert.rejects(resolve(['-t', '0.01', 'a']), /invalid value for timeout \(--timeout\): 0\.01; must be 0 \(never\) or at least 0\.5/);
    assert.equal((await resolve(['-t', '0.5', 'a'])).config.timeout, 0.5);
    assert.equal((await resolve(['-t', '0', 'a'])).config.timeout, 0);
  });

  it('refuses an empty value for an optional setting: a variable left unset, not "off"', async () => {
    for (const flag of ['--access-logfile', '--pid', '--certfile', '--chdir', '--worker-tmp-dir', '--ciphers']) {
      await assert.rejects(resolve([flag, '', 'a']), new RegExp(`\\(${flag}\\): ""; an empty value; give one, or leave the setting out`), flag);
    }
    await assert.rejects(resolve(['a'], {}, { pidfile: '' }), /invalid value for pidfile \(--pid\): ""; an empty value/);
    // null in a config file is unset, as the default.
    assert.equal((await resolve(['a'], {}, { pidfile: null, accesslog: null })).config.pidfile, null);
  });

  it('takes true and false as words for --proxy-protocol, as its message says', async () => {
    assert.equal((await resolve(['--proxy-protocol', 'true', 'app.ts'])).config.proxyProtocol, 'auto');
    assert.equal((await resolve(['--proxy-protocol=FALSE', 'app.ts'])).config.proxyProtocol, 'off');
    assert.equal((await resolve(['app.ts'], {}, { proxyProtocol: 'true' })).config.proxyProtocol, 'auto');
  });

  it('reads --help and --version from their prefixes, and says when they are given a value', () => {
    assert.equal(parseArgs(['--hel']).help, true);
    assert.equal(parseArgs(['--vers']).version, true);
    // --he is also --health-bind's prefix.
    assert.throws(() => parseArgs(['--he']), /ambiguous option --he: it could be --header-timeout, --health-bind, --help$/);
    assert.throws(() => parseArgs(['--version=1']), /^ConfigError: option --version takes no value \(got "1"\)$/);
    assert.throws(() => parseArgs(['--=x']), /^ConfigError: unknown option --; see tunicorn --help$/);
  });

  it('refuses a secure scheme header given twice in two cases, or one that is no header name', async () => {
    await assert.rejects(
      resolve(['--secure-scheme-header', 'x-a=1', '--secure-scheme-header', 'X-A=2', 'a']),
      /invalid value for secureSchemeHeaders \(--secure-scheme-header\): .*; "x-a" and "X-A" are one header; give it once$/,
    );
    await assert.rejects(resolve(['--secure-scheme-header', 'Bad Header=x', 'a']), /"Bad Header" is not a header name$/);
    assert.deepEqual((await resolve(['--secure-scheme-header', 'X-A=1', 'a'])).config.secureSchemeHeaders, { 'X-A': '1' });
  });

  it('says a file descriptor no process has is one, not ERR_OUT_OF_RANGE', () => {
    assert.throws(() => parseAddress('fd://99999999999'), /"fd:\/\/99999999999"; no process has a file descriptor that large/);
    assert.deepEqual(parseAddress('fd://3'), { kind: 'fd', fd: 3 });
  });

  it('reads a JSON config saved with a byte order mark, and names a directory given as the config file', async () => {
    const dir = scratchDir('tunicorn-config-');
    writeFileSync(path.join(dir, 'bom.json'), '\uFEFF{"workers": 3}');
    assert.deepEqual(await loadConfigFile(path.join(dir, 'bom.json')), { workers: 3 });
    mkdirSync(path.join(dir, 'conf'));
    await assert.rejects(loadConfigFile(path.join(dir, 'conf')), /^ConfigError: config file .*conf is a directory; name the file/);
  });

  it("types every form docs/settings.md documents for a config file (checked by npm run typecheck), and resolves them", async () => {
    const input = defineConfig({
      rawEnv: ['A=1', 'B=2'],
      max_memory_restart: '300M',
      preload_app: true,
      proc_name: 'api',
      logfile: '-',
      certReqs: 0,
      user: 0,
      bind: '127.0.0.1:0',
      forwardedAllowIps: '127.0.0.1,10.0.0.0/8',
      workers: 'auto',
      proxyProtocol: true,
    });
    const { config } = await resolve(['a'], {}, input as Record<string, unknown>);
    assert.deepEqual(config.rawEnv, { A: '1', B: '2' });
    assert.equal(config.maxWorkerMemory, 300 * 2 ** 20);
    assert.equal(config.preload, true);
    assert.equal(config.procName, 'api');
    assert.equal(config.certReqs, 'none');
    assert.deepEqual(config.bind, ['127.0.0.1:0']);
    // What the docs do not name stays a type error.
    // @ts-expect-error a setting that does not exist
    defineConfig({ wokers: 3 });
    // @ts-expect-error a count given as words
    defineConfig({ workers: 'many' });
  });
});
