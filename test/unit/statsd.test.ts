/**
 * StatsD (statsd_host, statsd_prefix, dogstatsd_tags): the address, the prefix and the tags as Gunicorn reads
 * them, the lines and their datagrams, the settings' checks, the error log's counting, and the client on a
 * loopback socket (port 0).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import dnsCallbacks from 'node:dns';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import dns from 'node:dns/promises';
import { performance } from 'node:perf_hooks';
import { describe, it, type TestContext } from 'node:test';
import { parseArgs } from '../../src/config/args.js';
import { GUNICORN_ONLY } from '../../src/config/gunicorn-only.js';
import { settingForFlag } from '../../src/config/registry.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { ConfigError } from '../../src/config/setting.js';
import { countLogLines, ErrorLog, type CountedLevel } from '../../src/logging/error-log.js';
import {
  DATAGRAM_BYTES,
  formatMs,
  STATSD_DELAY_MS,
  formatStatsdAddress,
  parseStatsdHost,
  prefixProblem,
  StatsdBatch,
  statsdPrefix,
  statsdTags,
  statusMetric,
  tagsProblem,
} from '../../src/logging/statsd-lines.js';
import { openStatsd, StatsdClient } from '../../src/logging/statsd.js';
import { scratchDir } from '../helpers/scratch.js';

const quiet = { warning: () => {}, debug: () => {} };
const resolve = (argv: string[], fileValues: Record<string, unknown> = {}) => resolveConfig({ argv, env: {}, cwd: '/nonexistent', fileValues });

describe('statsd_host', () => {
  it("reads Gunicorn's forms: HOST:PORT, [IPv6]:PORT, and a HOST alone for port 8125", () => {
    assert.deepEqual(parseStatsdHost('127.0.0.1:9125'), { host: '127.0.0.1', port: 9125 });
    assert.deepEqual(parseStatsdHost(' Statsd.Example.com:1 '), { host: 'statsd.example.com', port: 1 });
    assert.deepEqual(parseStatsdHost('localhost'), { host: 'localhost', port: 8125 });
    assert.deepEqual(parseStatsdHost('[::1]:9125'), { host: '::1', port: 9125 });
    assert.deepEqual(parseStatsdHost('[::1]'), { host: '::1', port: 8125 });
    // A port alone is not a host (the resolver would read 8125 as 0.0.31.189).
    assert.equal(parseStatsdHost('8125'), '"8125" is read as a host, not a port: give 127.0.0.1:8125 (expected HOST:PORT, [IPv6]:PORT, or HOST for port 8125)');
    assert.match(String(parseStatsdHost('9125:8125')), /^"9125" is read as a host, not a port/);
    assert.deepEqual(parseStatsdHost('datadog-agent.monitoring.svc.cluster.local.:8125'), { host: 'datadog-agent.monitoring.svc.cluster.local.', port: 8125 });
    // Gunicorn's own guard: `unix:PORT` is the host "unix", not a socket path.
    assert.deepEqual(parseStatsdHost('unix:8125'), { host: 'unix', port: 8125 });
    assert.equal(formatStatsdAddress({ host: '::1', port: 8125 }), '[::1]:8125');
    assert.equal(formatStatsdAddress({ host: 'localhost', port: 8125 }), 'localhost:8125');
  });

  it('says why for anything else; a Unix socket names what Node lacks and what to give instead', () => {
    const why = (v: string) => {
      const r = parseStatsdHost(v);
      assert.equal(typeof r, 'string', v);
      return r as string;
    };
    for (const v of ['unix:///run/statsd.sock', 'unix:/run/statsd.sock', 'UNIX://x']) assert.match(why(v), /Node has no Unix datagram sockets .*HOST:PORT$/);
    assert.match(why('::1:8125'), /brackets, as \[::1\]:8125/);
    assert.match(why(''), /empty/);
    assert.match(why(':8125'), /the host is empty/);
    assert.match(why('h:0'), /the port "0" is not 1\.\.65535/);
    assert.match(why('h:65536'), /not 1\.\.65535/);
    assert.match(why('h:x'), /the port "x"/);
    assert.match(why('udp://h:8125'), /drop the scheme/);
    assert.match(why('[::1'), /no closing/);
    assert.match(why('[nothost]:1'), /not an IPv6 address/);
    assert.match(why('[::1]8125'), /":PORT" after "]"/);
    assert.match(why('bad!host:1'), /not a host name or an IP address/);
    assert.match(why('a b:1'), /space/);
    for (const v of ['h:0', 'bad!host:1']) assert.match(why(v), /expected HOST:PORT, \[IPv6\]:PORT, or HOST for port 8125/);
  });

  it('is a setting with its flag and config key, no longer one of Gunicorn\'s refused ones', async () => {
    for (const name of ['statsd_host', 'statsd_prefix', 'dogstatsd_tags']) assert.equal(GUNICORN_ONLY[name], undefined, name);
    assert.equal(settingForFlag('--statsd-host')?.key, 'statsdHost');
    assert.equal(settingForFlag('--statsd-prefix')?.key, 'statsdPrefix');
    assert.equal(settingForFlag('--dogstatsd-tags')?.key, 'dogstatsdTags');
    const r = await resolve(['--statsd-host', 'localhost:9125', '--statsd-prefix', 'svc', '--dogstatsd-tags', 'env:prod', 'app.ts']);
    assert.equal(r.config.statsdHost, 'localhost:9125');
    assert.equal(r.config.statsdPrefix, 'svc');
    assert.equal(r.config.dogstatsdTags, 'env:prod');
    const d = await resolve(['app.ts']);
    assert.equal(d.config.statsdHost, null);
    assert.equal(d.config.statsdPrefix, '');
    assert.equal(d.config.dogstatsdTags, '');
    assert.equal((await resolve(['app.ts'], { statsdHost: '127.0.0.1:1', statsdPrefix: 'a', dogstatsdTags: 'b' })).config.statsdHost, '127.0.0.1:1');
    assert.deepEqual(parseArgs(['--statsd-host=x:1', 'app.ts']).values.get('statsdHost'), ['x:1']);
  });

  it('a bad value is one line naming the setting, the value and the form', async () => {
    await assert.rejects(
      resolve(['--statsd-host', 'unix:///run/statsd.sock', 'app.ts']),
      (err: Error) =>
        err instanceof ConfigError &&
        /^invalid value for statsdHost \(--statsd-host\): "unix:\/\/\/run\/statsd.sock"; a Unix socket .* Node has no Unix datagram sockets/.test(err.message) &&
        !err.message.includes('\n'),
    );
    await assert.rejects(resolve(['--statsd-host', 'h:99999', 'app.ts']), /^ConfigError: invalid value for statsdHost \(--statsd-host\): "h:99999"; the port/);
    await assert.rejects(resolve(['app.ts'], { statsdHost: 8125 }), /invalid value for statsdHost .*expected a string/);
    await assert.rejects(resolve(['--statsd-prefix', 'a b', 'app.ts']), /invalid value for statsdPrefix \(--statsd-prefix\): "a b"; expected printable ASCII/);
    await assert.rejects(resolve(['--dogstatsd-tags', 'env:prod,a|b', 'app.ts']), /invalid value for dogstatsdTags \(--dogstatsd-tags\): .*the tag "a\|b"/);
  });
});

describe('statsd_prefix and dogstatsd_tags', () => {
  it('adds one "." to the prefix, as Gunicorn (its own tests: "test", "test.", "test...", "test.asdf.")', () => {
    assert.equal(statsdPrefix(''), '');
    assert.equal(statsdPrefix('test'), 'test.');
    assert.equal(statsdPrefix('test.'), 'test.');
    assert.equal(statsdPrefix('test...'), 'test.');
    assert.equal(statsdPrefix('test.asdf.'), 'test.asdf.');
    assert.equal(prefixProblem('service.app-1_x'), undefined);
    for (const bad of ['a:b', 'a|b', 'a@b', 'a#b', 'a b', 'é', 'a\nb']) assert.ok(prefixProblem(bad), bad);
  });

  it('ends every line with |#tags, the list trimmed', () => {
    assert.equal(statsdTags(''), '');
    assert.equal(statsdTags(' , '), '');
    assert.equal(statsdTags('yucatan,libertine:rhubarb'), '|#yucatan,libertine:rhubarb');
    assert.equal(statsdTags('env:prod, web ,'), '|#env:prod,web');
    assert.equal(tagsProblem('env:prod, web'), undefined);
    for (const bad of ['a|b', 'a b', 'é']) assert.ok(tagsProblem(bad), bad);
  });
});

describe('StatsD lines', () => {
  /** A batch whose datagrams are collected as text. */
  function batch(prefix = 'app.', tags = '|#env:test', max = DATAGRAM_BYTES) {
    const datagrams: Buffer[] = [];
    return { b: new StatsdBatch(prefix, tags, (d) => datagrams.push(d), max), datagrams, text: () => datagrams.map((d) => d.toString('latin1')) };
  }

  it("writes Gunicorn's lines: a timing in ms, counters with their rate, a gauge, each with the tags", () => {
    const { b, text } = batch();
    b.timing('gunicorn.request.duration', 7000);
    b.gauge('gunicorn.workers', 3);
    b.count('gunicorn.log.critical');
    b.flush();
    assert.deepEqual(text(), ['app.gunicorn.request.duration:7000|ms|#env:test\napp.gunicorn.workers:3|g|#env:test\napp.gunicorn.log.critical:1|c|@1.0|#env:test']);
  });

  it('sums a counter until the flush: one line, not one per event', () => {
    const { b, text } = batch('', '');
    assert.ok(b.empty);
    for (let i = 0; i < 5; i++) b.count('gunicorn.requests');
    b.count(statusMetric(200), 4);
    b.count(statusMetric(404));
    assert.ok(!b.empty);
    b.flush();
    assert.deepEqual(text(), ['gunicorn.requests:5|c|@1.0\ngunicorn.request.status.200:4|c|@1.0\ngunicorn.request.status.404:1|c|@1.0']);
    assert.ok(b.empty);
    b.flush();
    assert.equal(text().length, 1, 'nothing to send: no datagram');
    b.count('gunicorn.requests');
    b.flush();
    assert.equal(text()[1], 'gunicorn.requests:1|c|@1.0', 'counted afresh after a flush');
  });

  it('fills datagrams up to the limit with whole lines, sends each full one at once, and never reuses one', () => {
    const { b, datagrams, text } = batch('app.', '|#env:test', 200);
    for (let i = 0; i < 40; i++) b.timing('gunicorn.request.duration', i + 0.5);
    // Sent as they filled, before any flush.
    assert.ok(datagrams.length >= 5, `${datagrams.length} datagrams`);
    const first = text()[0]!;
    b.flush();
    assert.equal(datagrams[0]!.toString('latin1'), first, 'a datagram handed out is not written again');
    const lines: string[] = [];
    for (const d of text()) {
      assert.ok(Buffer.byteLength(d) <= 200, `${Buffer.byteLength(d)} bytes`);
      assert.ok(!d.startsWith('\n') && !d.endsWith('\n'));
      lines.push(...d.split('\n'));
    }
    assert.deepEqual(lines, Array.from({ length: 40 }, (_, i) => `app.gunicorn.request.duration:${i + 0.5}|ms|#env:test`));
    // Each datagram was full: the next line would not have fitted.
    const sizes = text().map((d) => d.length);
    for (let i = 0; i < sizes.length - 1; i++) assert.ok(sizes[i]! + 1 + lines[0]!.length + 2 > 200, `datagram ${i} (${sizes[i]} bytes) had room`);
  });

  it('sends a line longer than a datagram alone, whole', () => {
    const { b, text } = batch('', '|#' + 'x'.repeat(300), 100);
    b.gauge('g', 1);
    b.gauge('g', 2);
    assert.deepEqual(text(), [`g:1|g|#${'x'.repeat(300)}`, `g:2|g|#${'x'.repeat(300)}`]);
  });

  it('counts a request: its time as a line at once, gunicorn.requests and the status as counters on the flush', () => {
    const { b, text } = batch('', '');
    b.request(200, 1.25);
    b.request(404, 2);
    b.request(200, 0.0004);
    b.request(undefined, 3);
    assert.ok(!b.empty);
    b.flush();
    assert.deepEqual(text(), [
      [
        'gunicorn.request.duration:1.25|ms',
        'gunicorn.request.duration:2|ms',
        'gunicorn.request.duration:0|ms',
        'gunicorn.request.duration:3|ms',
        'gunicorn.requests:4|c|@1.0',
        'gunicorn.request.status.200:2|c|@1.0',
        'gunicorn.request.status.404:1|c|@1.0',
      ].join('\n'),
    ]);
    assert.ok(b.empty);
    b.request(503, 1);
    b.flush();
    assert.deepEqual(text()[1]!.split('\n').slice(1), ['gunicorn.requests:1|c|@1.0', 'gunicorn.request.status.503:1|c|@1.0'], 'the counts start again after a flush');
  });

  it('writes milliseconds with at most three decimals, as Gunicorn (microseconds)', () => {
    assert.equal(formatMs(7000), '7000');
    assert.equal(formatMs(0.1234567), '0.123');
    assert.equal(formatMs(12.3456), '12.346');
    assert.equal(formatMs(12.3), '12.3');
    assert.equal(formatMs(0.05), '0.05');
    assert.equal(formatMs(0.0004), '0');
    assert.equal(formatMs(-1), '0');
    assert.equal(formatMs(NaN), '0');
    // The digits are written straight into the datagram: the same as the number's own string.
    for (let i = 0; i < 20000; i++) {
      const ms = i < 10000 ? i * 0.0137 : Math.random() * 10 ** (i % 8);
      assert.equal(formatMs(ms), String(Math.round(ms * 1000) / 1000), String(ms));
    }
    const { b, text } = batch('', '', 100000);
    const values = Array.from({ length: 500 }, (_, i) => i * 1.0071);
    for (const v of values) b.timing('t', v);
    b.flush();
    assert.deepEqual(text()[0]!.split('\n'), values.map((v) => `t:${formatMs(v)}|ms`));
    assert.equal(statusMetric(503), 'gunicorn.request.status.503');
    assert.equal(statusMetric(503), statusMetric(503));
  });
});

describe('error-log counting', () => {
  it('counts warning, error, critical and exception lines, whatever the level lets through; exception as exception', () => {
    const dir = scratchDir('tunicorn-statsd-');
    const file = path.join(dir, 'error.log');
    const log = new ErrorLog(file, 'critical');
    const seen: CountedLevel[] = [];
    countLogLines((level) => seen.push(level));
    try {
      log.debug('d');
      log.info('i');
      log.warning('w');
      log.error('e');
      log.critical('c');
      log.exception('x', new Error('boom'));
    } finally {
      countLogLines(null);
    }
    log.warning('not counted: no counter');
    log.close();
    assert.deepEqual(seen, ['warning', 'error', 'critical', 'exception']);
    // The level still decides what is written.
    const written = readFileSync(file, 'utf8');
    assert.match(written, /\[CRITICAL\] c/);
    assert.doesNotMatch(written, /\[WARNING\]|\[ERROR\] e/);
  });
});

describe('StatsD client', () => {
  /** A StatsD server on a loopback port the kernel picks; closed by the test's cleanup. */
  async function sink(t: TestContext, address = '127.0.0.1'): Promise<{ port: number; next: () => Promise<string>; close: () => void }> {
    const socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
    let open = true;
    const close = () => {
      if (open) socket.close();
      open = false;
    };
    t.after(close);
    await new Promise<void>((resolve) => socket.bind(0, address, resolve));
    const next = async () => {
      const timer = setTimeout(() => socket.emit('error', new Error('no datagram within 5 s')), 5000);
      try {
        const [msg] = (await once(socket, 'message')) as [Buffer];
        return msg.toString('latin1');
      } finally {
        clearTimeout(timer);
      }
    };
    return { port: (socket.address() as { port: number }).port, next, close };
  }

  it('sends on close what it gathered, without waiting for its timer, even before it is connected; nothing after', async (t) => {
    const s = await sink(t);
    const warnings: string[] = [];
    const c = new StatsdClient({ statsdHost: `127.0.0.1:${s.port}`, statsdPrefix: 'app', dogstatsdTags: 'env:t' }, { warning: (m) => warnings.push(m), debug: (m) => warnings.push(m) });
    t.after(() => c.close());
    const got = s.next();
    c.request(200, 1.5);
    c.request(404, 2);
    c.request(undefined, 3);
    c.close();
    assert.deepEqual((await got).split('\n'), [
      'app.gunicorn.request.duration:1.5|ms|#env:t',
      'app.gunicorn.request.duration:2|ms|#env:t',
      'app.gunicorn.request.duration:3|ms|#env:t',
      'app.gunicorn.requests:3|c|@1.0|#env:t',
      'app.gunicorn.request.status.200:1|c|@1.0|#env:t',
      'app.gunicorn.request.status.404:1|c|@1.0|#env:t',
    ]);
    c.count('after.close');
    c.flush();
    assert.deepEqual(warnings, []);
  });

  it('sends the lines of a connected client at most STATSD_DELAY_MS after the first', async (t) => {
    const s = await sink(t);
    const c = new StatsdClient({ statsdHost: `127.0.0.1:${s.port}`, statsdPrefix: '', dogstatsdTags: '' }, quiet);
    t.after(() => c.close());
    c.gauge('first', 1);
    c.flush();
    assert.equal(await s.next(), 'first:1|g');
    let arrived = false;
    const got = s.next().then((line) => ((arrived = true), line));
    const at = performance.now();
    c.count('later');
    c.count('later');
    // Held for the batch: a timer of half the delay, set after the client's, runs before it (timers run in
    // order of expiry, whatever the load), and the datagram could arrive only after the client's ran. Not a
    // measured lower bound: one failed in CI at 93 ms, as libuv counts a timer from the loop's cached time.
    await new Promise((resolve) => setTimeout(resolve, STATSD_DELAY_MS / 2));
    assert.equal(arrived, false, 'sent before the batch delay');
    assert.equal(await got, 'later:2|c|@1.0');
    const waited = performance.now() - at;
    assert.ok(waited < STATSD_DELAY_MS + 2000, `${waited} ms`);
  });

  it('resolves a host name once and sends to it', async (t) => {
    const local = await dns.lookup('localhost');
    const s = await sink(t, local.address);
    const c = new StatsdClient({ statsdHost: `localhost:${s.port}`, statsdPrefix: '', dogstatsdTags: '' }, quiet);
    t.after(() => c.close());
    const got = s.next();
    c.gauge('gunicorn.workers', 2);
    c.flush();
    assert.equal(await got, 'gunicorn.workers:2|g');
  });

  it('with nothing listening: never throws, counts the failures, warns once', async (t) => {
    const s = await sink(t);
    const port = s.port;
    s.close();
    const warnings: string[] = [];
    let warned: () => void = () => {};
    const first = new Promise<void>((resolve) => (warned = resolve));
    const debug: string[] = [];
    const c = openStatsd(
      { statsdHost: `127.0.0.1:${port}`, statsdPrefix: '', dogstatsdTags: '' },
      {
        warning: (m) => {
          warnings.push(m);
          warned();
        },
        debug: (m) => debug.push(m),
      },
    )!;
    t.after(() => c.close());
    // The refusal comes back for a datagram sent: send until it has (the first may go before the socket is
    // connected, and a connected one's refusals come one send late).
    let rounds = 0;
    const sending = setInterval(() => {
      rounds++;
      c.request(200, 1);
      c.flush();
    }, 20);
    t.after(() => clearInterval(sending));
    await within(first, 5000, 'the warning');
    const errors = c.errors;
    const more = rounds + 10;
    await within(new Promise<void>((resolve) => {
      const check = setInterval(() => rounds >= more && (clearInterval(check), resolve()), 20);
    }), 5000, '10 more sends');
    clearInterval(sending);
    assert.ok(c.errors > errors, `${c.errors} errors counted, ${errors} at the warning`);
    c.close();
    assert.deepEqual(debug, [`StatsD: ${c.sent} datagram(s) sent to 127.0.0.1:${port}, ${c.errors} send(s) failed`]);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, new RegExp(`^StatsD: sending metrics to 127\\.0\\.0\\.1:${port} \\(--statsd-host\\) failed: nothing listens there \\(ECONNREFUSED\\)\\. Metrics are lost while it fails; this process does not say so again$`));
  });

  it('is made only when statsd_host is set, and counts the error-log lines of the process', async (t) => {
    assert.equal(openStatsd({ statsdHost: null, statsdPrefix: 'x', dogstatsdTags: 'y' }, quiet), null);
    const s = await sink(t);
    const c = openStatsd({ statsdHost: `127.0.0.1:${s.port}`, statsdPrefix: 'p', dogstatsdTags: '' }, quiet)!;
    t.after(() => c.close());
    const log = new ErrorLog(path.join(scratchDir('tunicorn-statsd-'), 'e.log'), 'critical');
    t.after(() => log.close());
    const got = s.next();
    log.warning('w');
    log.warning('w');
    log.exception('x', new Error('boom'));
    c.close();
    assert.deepEqual((await got).split('\n'), ['p.gunicorn.log.warning:2|c|@1.0', 'p.gunicorn.log.exception:1|c|@1.0']);
    // Closed: the error log no longer counts into it.
    log.error('e');
  });

  it('sends to a host name\'s IPv4 address when it has one, as Gunicorn (localhost is often ::1 first)', async (t) => {
    const s = await sink(t);
    // /etc/hosts' `::1 localhost` first, as getaddrinfo orders it where the host has IPv6.
    const answers = [{ address: '::1', family: 6 }, { address: '127.0.0.1', family: 4 }];
    const real = dnsCallbacks.lookup as (...a: unknown[]) => void;
    t.mock.method(dnsCallbacks, 'lookup', (host: string, opts: unknown, cb?: (...a: unknown[]) => void) => {
      // node:dgram looks up the address it connects to through it too.
      if (host !== 'statsd.test') return real.call(dnsCallbacks, host, opts, cb);
      const all = typeof opts === 'object' && opts !== null && (opts as { all?: boolean }).all === true;
      const done = (typeof opts === 'function' ? opts : cb) as (...a: unknown[]) => void;
      process.nextTick(() => (all ? done(null, answers) : done(null, answers[0]!.address, answers[0]!.family)));
    });
    const c = new StatsdClient({ statsdHost: `statsd.test:${s.port}`, statsdPrefix: '', dogstatsdTags: '' }, quiet);
    t.after(() => c.close());
    const got = s.next();
    c.gauge('gunicorn.workers', 2);
    c.flush();
    assert.equal(await got, 'gunicorn.workers:2|g');
  });

  it('a socket that cannot connect (no route: an IPv6 address where there is none) drops and counts, never throws', async (t) => {
    // Node hands a failed connect to its callback (EADDRNOTAVAIL for [::1] without IPv6); made so here,
    // without leaving the machine.
    let failed: () => void = () => {};
    const refused = new Promise<void>((resolve) => (failed = resolve));
    t.mock.method(dgram.Socket.prototype, 'connect', function (this: dgram.Socket, _port: number, _address: string, cb: (err?: Error) => void) {
      process.nextTick(() => {
        cb(Object.assign(new Error('connect EADDRNOTAVAIL ::1:8125'), { code: 'EADDRNOTAVAIL' }));
        failed();
      });
    });
    const c = new StatsdClient({ statsdHost: '[::1]:8125', statsdPrefix: '', dogstatsdTags: '' }, quiet);
    t.after(() => c.close());
    c.count('x');
    c.flush();
    await refused;
    c.count('y');
    c.flush();
    assert.equal(c.sent, 0);
    assert.equal(c.errors, 2, 'the queued datagram and the failed connect');
  });
});

/** `p`, or an error naming `what` once `ms` have passed. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, bound]).finally(() => clearTimeout(timer));
}
