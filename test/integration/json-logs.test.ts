/**
 * --log-format json, through the real CLI: every line of both logs is parsed with JSON.parse.
 * - the boot, requests (one whose headers hold a quote, a backslash, a tab and bytes that are not UTF-8), a
 *   request that throws (its stack is a field of one line), the app's output under --capture-output (a
 *   multi-line console.error is one line), a worker that dies of an uncaught exception (the master's lines
 *   about it carry its pid), and the stop
 * - with both logs on stdio (the error log on stderr, the access log on stdout) and --capture-output, every line
 *   of stderr and stdout is JSON, the app's output included
 * - each worker class (async, sync, gthread) and HTTP/2 (h2c) write JSON access lines, and StatsD counts the
 *   same requests; a config hook that throws, and a preloaded app's exception in the master, are one line
 *   each with the stack as a field
 * - a text --access-logformat with --log-format json stops the start with one line; so does Gunicorn's
 *   --log-config-dict, which names --log-format json
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, h2Status, request, Server, stopAll, until } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

after(stopAll);

const fx = (name: string) => path.join(FIXTURES, name);

/** Every line of a log file, each parsed (a line that is not JSON fails the test, naming it). */
function jsonLines(file: string): Record<string, unknown>[] {
  const text = readFileSync(file, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), `${file} ends with a newline`);
  return text
    .split('\n')
    .slice(0, -1)
    .map((line) => {
      try {
        const o = JSON.parse(line) as unknown;
        assert.ok(o !== null && typeof o === 'object' && !Array.isArray(o), `an object: ${line}`);
        return o as Record<string, unknown>;
      } catch (err) {
        throw new Error(`not a JSON line in ${file}: ${JSON.stringify(line)} (${(err as Error).message})`);
      }
    });
}

const fileHas = (file: string, re: RegExp) => () => existsSync(file) && re.test(readFileSync(file, 'utf8'));

/** Starts the CLI with both logs in files; resolves once it serves, with the port. */
async function start(args: string[]): Promise<{ s: Server; port: number; errors: string; access: string }> {
  const dir = scratchDir('tunicorn-json-logs-');
  const errors = path.join(dir, 'error.log');
  const access = path.join(dir, 'access.log');
  const s = new Server(['-b', '127.0.0.1:0', '--log-format', 'json', '--error-logfile', errors, '--access-logfile', access, ...args]);
  await until(fileHas(errors, /"msg":"Ready: /), 30000, 'the server to be ready');
  const port = Number(/Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(errors, 'utf8'))![1]);
  return { s, port, errors, access };
}

/** TERM, and the master's exit: every line is written by then. */
async function stop(s: Server): Promise<void> {
  s.signal('SIGTERM');
  const { code } = await s.exited;
  assert.equal(code, 0);
}

/** A request sent as raw bytes (headers Node's client would not send), read to its end. */
function rawRequest(port: number, head: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.end(head));
    let got = '';
    sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
    sock.on('end', () => resolve(got));
    sock.on('error', reject);
    sock.setTimeout(10000, () => sock.destroy(new Error('raw request timed out')));
  });
}

describe('--log-format json', () => {
  it("writes the answers tunicorn gives without the app as JSON lines: a request never parsed has null where it has no value", async () => {
    const { s, port, access } = await start(['-w', '1', '--limit-request-fields', '5', fx('listener.ts')]);
    assert.match(await rawRequest(port, Buffer.from('NOT HTTP AT ALL\r\n\r\n')), /^HTTP\/1\.1 400 /);
    const many = Array.from({ length: 10 }, (_, i) => `X-H${i}: v\r\n`).join('');
    assert.match(await rawRequest(port, Buffer.from(`GET /f HTTP/1.1\r\nHost: x\r\n${many}Connection: close\r\n\r\n`)), /^HTTP\/1\.1 431 /);
    await stop(s);
    const lines = jsonLines(access);
    const never = lines.find((l) => l.status === 400);
    assert.ok(never, JSON.stringify(lines));
    assert.equal(never.method, null);
    assert.equal(never.protocol, null);
    assert.equal(never.path, null);
    assert.equal(typeof never.bytes, 'number');
    assert.equal(never.remote_addr, '127.0.0.1');
    const fields = lines.find((l) => l.status === 431);
    assert.ok(fields, JSON.stringify(lines));
  });

  it('writes both logs as JSON lines: boot, requests, a stack, captured output, a worker crash', async () => {
    const { s, port, errors, access } = await start(['-w', '1', '--capture-output', fx('json-logs.mjs')]);
    const head = Buffer.concat([
      Buffer.from('GET /?q=%22x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Request-Id: id-1\r\nUser-Agent: ua "q" \\ \t '),
      Buffer.from([0xc3, 0xa9, 0x20, 0xff, 0xfe, 0xc3, 0x28]),
      Buffer.from('\r\nReferer: http://r/\r\n\r\n'),
    ]);
    assert.match(await rawRequest(port, head), /^HTTP\/1\.1 200 /);
    assert.equal((await request(port, '/throw')).status, 500);
    assert.equal((await request(port, '/print')).status, 200);
    assert.equal((await request(port, '/crash')).status, 200);
    await until(
      () => {
        const text = readFileSync(errors, 'utf8');
        return /replacing it/.test(text) && /"msg":"Worker exited \(pid: \d+\)"/.test(text) && text.split('Booting worker with pid:').length === 3;
      },
      20000,
      'the crashed worker to be replaced',
    );
    await stop(s);

    const e = jsonLines(errors);
    for (const l of e) {
      assert.match(String(l.time), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      assert.ok(['debug', 'info', 'warning', 'error', 'critical'].includes(String(l.level)), `level of ${JSON.stringify(l)}`);
      assert.equal(typeof l.pid, 'number');
      assert.ok(l.role === 'master' || l.role === 'worker');
      assert.equal(typeof l.msg, 'string');
    }
    const master = e.filter((l) => l.role === 'master');
    assert.ok(master.every((l) => l.pid === s.pid));
    assert.ok(master.some((l) => String(l.msg).startsWith('Starting tunicorn')));
    const booted = master.filter((l) => String(l.msg).startsWith('Booting worker with pid: '));
    assert.equal(booted.length, 2);
    for (const b of booted) assert.equal(String(b.worker_pid), /pid: (\d+)/.exec(String(b.msg))![1]);

    const failed = e.find((l) => l.msg === 'Error handling request GET /throw');
    assert.ok(failed, 'the failing request');
    assert.equal(failed.role, 'worker');
    const err = failed.err as { type: string; message: string; stack: string };
    assert.deepEqual([err.type, err.message], ['TypeError', 'a "quoted"\nmulti-line failure']);
    assert.match(err.stack, /^TypeError: a "quoted"\nmulti-line failure\n {4}at app \(.*json-logs\.mjs:\d+:\d+\)/);

    const printed = e.filter((l) => l.stream !== undefined);
    assert.deepEqual(
      printed.map((l) => [l.stream, l.level]),
      [
        ['stderr', 'error'],
        ['stdout', 'info'],
        ['stdout', 'info'],
      ],
    );
    assert.match(String(printed[0]!.msg), /^Error: printed by the app\n {4}at app /);
    assert.equal(printed[1]!.msg, 'line one\nline two "quoted" \\ é');
    assert.equal(printed[2]!.msg, 'bad\u00ff\u00c3(');

    const crash = e.find((l) => String(l.msg).startsWith('Uncaught exception in worker'));
    assert.ok(crash, 'the worker says why it exits');
    assert.equal((crash.err as { type: string }).type, 'RangeError');
    const replaced = master.find((l) => String(l.msg).endsWith('is exiting after an uncaught exception: replacing it'));
    assert.ok(replaced, "the master's line about it");
    assert.equal(replaced.worker_pid, crash.pid);
    assert.ok(master.some((l) => l.msg === `Worker exited (pid: ${String(crash.pid)})` && l.worker_pid === crash.pid));
    assert.equal(master.at(-1)!.msg, 'Shutting down: Master');
    // Every master line that names a worker carries its pid as a field (docs/operations.md).
    for (const l of master) {
      const named = /Worker (?:\(pid:\s?(\d+)\)|(\d+) )/.exec(String(l.msg));
      if (named) assert.equal(l.worker_pid, Number(named[1] ?? named[2]), String(l.msg));
    }

    const a = jsonLines(access);
    assert.deepEqual(
      a.map((l) => [l.path, l.status]),
      [
        ['/', 200],
        ['/throw', 500],
        ['/print', 200],
        ['/crash', 200],
      ],
    );
    const first = a[0]!;
    assert.deepEqual([first.method, first.query, first.protocol, first.request_id, first.referer, first.remote_addr], ['GET', 'q=%22x', 'HTTP/1.1', 'id-1', 'http://r/', '127.0.0.1']);
    assert.equal(first.user_agent, 'ua "q" \\ \t é \u00ff\u00fe\u00c3(');
    assert.equal(first.bytes, 3);
    assert.equal(typeof first.duration_ms, 'number');
    assert.deepEqual([first.level, first.role, first.msg, first.pid], ['info', 'worker', 'request completed', crash.pid]);
  });

  it('reports an Error whose message and name are no JSON text (a circular object, a bigint) as a 500 and one line', async () => {
    const { s, port, errors, access } = await start(['-w', '1', fx('json-logs.mjs')]);
    assert.equal((await request(port, '/odd-error')).status, 500);
    // The same worker serves on: the report did not throw out of it.
    assert.equal((await request(port, '/')).status, 200);
    await stop(s);
    const e = jsonLines(errors);
    const failed = e.find((l) => l.msg === 'Error handling request GET /odd-error');
    assert.ok(failed, JSON.stringify(e));
    assert.deepEqual(failed.err && [(failed.err as { type: string }).type, (failed.err as { message: string }).message], ['10', '[object Object]']);
    assert.ok(!e.some((l) => String(l.msg).startsWith('Uncaught exception')), JSON.stringify(e));
    assert.deepEqual(
      jsonLines(access).map((l) => [l.path, l.status]),
      [
        ['/odd-error', 500],
        ['/', 200],
      ],
    );
  });

  it("keeps a JSON template's line whole when the app sends a Content-Length that is not a number", async () => {
    const { s, port, access } = await start(['-w', '1', '--access-logformat', '{"path":"%(U)s","b":"%(b)s","B":"%(B)s"}', fx('json-logs.mjs')]);
    // Raw: Node's client refuses such a response.
    assert.match(await rawRequest(port, Buffer.from('GET /length HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Len: 2", "forged": "yes\r\n\r\n')), /^HTTP\/1\.1 200 /);
    assert.equal((await request(port, '/length', { headers: { 'x-len': '2' } })).status, 200);
    await stop(s);
    assert.deepEqual(jsonLines(access), [
      { path: '/length', b: '-', B: '0' },
      { path: '/length', b: '2', B: '2' },
    ]);
  });

  it('makes stderr and stdout all JSON lines: the error log, the app\'s output (--capture-output) and the access log', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--log-format', 'json', '--capture-output', '--access-logfile', '-', fx('json-logs.mjs')]);
    await s.waitFor(/"msg":"Ready: /, 30000);
    const port = await s.port();
    assert.equal((await request(port, '/print')).status, 200);
    assert.equal((await request(port, '/throw')).status, 500);
    await stop(s);
    await s.drained;
    const parse = (text: string) => text.split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>);
    const e = parse(s.log);
    assert.ok(!e.some((l) => /does nothing while the error log is stderr/.test(String(l.msg))), 'no warning: the capture works on stderr');
    assert.deepEqual(
      e.filter((l) => l.stream !== undefined).map((l) => l.stream),
      ['stderr', 'stdout', 'stdout'],
    );
    assert.ok(e.some((l) => l.msg === 'Error handling request GET /throw'));
    assert.deepEqual(
      parse(s.stdout).map((l) => [l.path, l.status]),
      [
        ['/print', 200],
        ['/throw', 500],
      ],
    );
  });

  for (const [name, args] of [
    ['sync', ['-k', 'sync', '-c', fx('throwing-hook.config.ts')]],
    ['gthread', ['-k', 'gthread', '--threads', '2']],
  ] as const) {
    it(`${name} workers write JSON access lines`, async () => {
      const { s, port, errors, access } = await start(['-w', '1', ...args, fx('json-logs.mjs')]);
      for (let i = 0; i < 3; i++) assert.equal((await request(port, `/n${i}`)).status, 200);
      assert.equal((await request(port, '/throw')).status, 500);
      await stop(s);
      // A gthread worker's threads each gather their own lines: sorted, not in order.
      assert.deepEqual(
        jsonLines(access)
          .map((l) => [l.path, l.status])
          .sort(),
        [
          ['/n0', 200],
          ['/n1', 200],
          ['/n2', 200],
          ['/throw', 500],
        ],
      );
      const e = jsonLines(errors);
      const failed = e.find((l) => l.msg === 'Error handling request GET /throw');
      assert.equal((failed?.err as { type?: string } | undefined)?.type, 'TypeError');
      if (name === 'sync') {
        // A config hook that throws: the master's line, its stack a field.
        const hook = e.find((l) => l.msg === 'Exception in whenReady hook');
        assert.equal(hook?.role, 'master');
        assert.match((hook.err as { stack: string }).stack, /^Error: hook failure on purpose\n {4}at /);
      }
      // The thread that served it; the worker process's own lines (its exit) have none.
      if (name === 'gthread') assert.equal(typeof failed!.thread, 'number');
    });
  }

  it('--preload: an exception the app throws later in the master is one line, its stack a field', async () => {
    const dir = scratchDir('tunicorn-json-logs-');
    const app = path.join(dir, 'throws-in-master.mjs');
    writeFileSync(app, "if (!process.send) setTimeout(() => { throw new Error('late timer error in the master'); }, 500);\nexport default (req, res) => res.end('ok');\n");
    const s = new Server(['-b', '127.0.0.1:0', '-w', '1', '--log-format', 'json', '--preload', app]);
    await s.waitFor(/"msg":"Uncaught exception in the master[^\n]*\n/, 20000);
    await stop(s);
    await s.drained;
    const lines = s.log.split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>);
    const line = lines.find((l) => String(l.msg).startsWith('Uncaught exception in the master'));
    assert.deepEqual([line?.msg, line?.level, line?.role], ['Uncaught exception in the master, from the app (--preload) or a config hook; the master serves on', 'error', 'master']);
    assert.match((line!.err as { stack: string }).stack, /^Error: late timer error in the master\n\s+at .*throws-in-master\.mjs/);
  });

  it('an HTTP/2 (h2c) request gets a JSON access line, and StatsD counts it', async () => {
    const udp = dgram.createSocket('udp4');
    const got: string[] = [];
    udp.on('message', (m) => got.push(...m.toString('latin1').split('\n')));
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    try {
      const { s, port, access } = await start(['-w', '1', '--statsd-host', `127.0.0.1:${udp.address().port}`, fx('json-logs.mjs')]);
      const session = http2.connect(`http://127.0.0.1:${port}`);
      try {
        const status = await h2Status(session, { ':path': '/h2?x=1', 'user-agent': 'h2 "client"' });
        assert.equal(status, 200);
      } finally {
        session.close();
      }
      await until(() => got.some((l) => /^gunicorn\.request\.status\.200:1\|c/.test(l)), 10000, 'the StatsD counter');
      await stop(s);
      const [line, ...rest] = jsonLines(access);
      assert.equal(rest.length, 0);
      assert.deepEqual([line!.path, line!.query, line!.protocol, line!.status, line!.user_agent], ['/h2', 'x=1', 'HTTP/2.0', 200, 'h2 "client"']);
    } finally {
      udp.close();
    }
  });

  it('stops the start with one line for a text --access-logformat, and names itself for --log-config-dict', async () => {
    const s = new Server(['-b', '127.0.0.1:0', '--log-format', 'json', '--access-logfile', '-', '--access-logformat', '%(h)s %(s)s', fx('json-logs.mjs')]);
    const { code } = await s.exited;
    await s.drained;
    assert.notEqual(code, 0);
    assert.equal(s.log.trim().split('\n').length, 1, s.log);
    assert.match(s.log, /^tunicorn: error: with --log-format json, accessLogFormat \(--access-logformat\) is a JSON template, as .*: it is not JSON/);

    const g = new Server(['-b', '127.0.0.1:0', '--log-config-dict', '{}', fx('json-logs.mjs')]);
    assert.notEqual((await g.exited).code, 0);
    await g.drained;
    assert.match(g.log, /--log-format json/);
  });
});
