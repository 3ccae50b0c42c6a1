/**
 * --log-format json: the escaping of values into JSON strings (valid UTF-8 whatever bytes a client sent), the
 * access log's JSON line and JSON templates, the error log's JSON lines (a stack as a field), captured output,
 * and the check of the setting's combination with --access-logformat.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { describe, it, mock } from 'node:test';
import { resolveConfig } from '../../src/config/resolve.js';
import { DEFAULT_ACCESS_LOG_FORMAT } from '../../src/config/sections/logging.js';
import { GUNICORN_ONLY } from '../../src/config/gunicorn-only.js';
import { jsonTemplateProblem } from '../../src/logging/access-format.js';
import { AccessLog, compileAccessFormat as compileToString } from '../../src/logging/access-log.js';
import { ErrorLog } from '../../src/logging/error-log.js';
import { capturedJson, IsoClock, jsonBytes } from '../../src/logging/json-line.js';
import { LogSink } from '../../src/logging/sink.js';
import { scratchDir } from '../helpers/scratch.js';
import { compileToSink, samePartByPart, sameThroughTheBuffer } from '../helpers/stored-line.js';

const tmp = () => scratchDir('tunicorn-json-');
/** A byte string (one character a byte) from bytes. */
const byteString = (bytes: number[]): string => Buffer.from(bytes).toString('latin1');
/** What a reader of the log gets: the bytes as UTF-8, inside quotes, parsed. */
const read = (escaped: string): string => JSON.parse(`"${Buffer.from(escaped, 'latin1').toString('utf8')}"`) as string;
/** A byte string is valid UTF-8 when decoding and encoding it again gives the same bytes. */
const validUtf8 = (s: string): boolean => {
  const b = Buffer.from(s, 'latin1');
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
};

function entry(over: { headers?: string[]; url?: string } = {}) {
  const req = {
    method: 'GET',
    url: over.url ?? '/a/b?x=1',
    httpVersion: '1.1',
    headers: {},
    rawHeaders: over.headers ?? ['User-Agent', 'ua/1', 'X-Request-Id', 'r-7'],
    socket: { remoteAddress: '10.0.0.9' },
  } as unknown as IncomingMessage;
  const res = { statusCode: 201, headersSent: true, getHeader: (n: string) => (n === 'content-length' ? 12 : undefined) } as unknown as ServerResponse;
  return { req, res, start: 1000, end: 1250.5, queue: 3.4 };
}

describe('JSON escaping of byte strings', () => {
  it('escapes quotes, backslashes and control characters, and keeps printable ASCII', () => {
    const v = 'a"b\\c\nd\re\tf\x01g\x1fh\x7fi';
    const out = jsonBytes(v);
    assert.equal(out, 'a\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh\\u007fi');
    assert.equal(read(out), v);
    assert.equal(jsonBytes('plain /path?x=1'), 'plain /path?x=1');
  });

  it('keeps valid UTF-8 as it came, and writes each other byte as \\u00XX (its latin1 reading)', () => {
    const cases: [number[], string][] = [
      [[0x63, 0x61, 0x66, 0xc3, 0xa9], 'café'],
      [[0xe2, 0x82, 0xac], '€'],
      [[0xf0, 0x9f, 0x98, 0x80], '😀'],
      [[0xff], '\u00ff'],
      [[0xc3], '\u00c3'], // a lead byte with nothing after it
      [[0xc3, 0x28], '\u00c3('], // a lead byte followed by no continuation
      [[0xc0, 0xaf], '\u00c0\u00af'], // overlong
      [[0xed, 0xa0, 0x80], '\u00ed\u00a0\u0080'], // a surrogate, encoded
      [[0xf4, 0x90, 0x80, 0x80], '\u00f4\u0090\u0080\u0080'], // past U+10FFFF
      [[0xe2, 0x82], '\u00e2\u0082'], // cut short
      [[0x80, 0x41], '\u0080A'], // a continuation byte alone
    ];
    for (const [bytes, want] of cases) {
      const out = jsonBytes(byteString(bytes));
      assert.ok(validUtf8(out), `valid UTF-8 for ${bytes}`);
      assert.equal(read(out), want, String(bytes));
    }
  });

  it('writes a character past 0xff (a value the app set) as its UTF-8 bytes', () => {
    assert.equal(read(jsonBytes('\u010a\u2028x\ud83d\ude00\ud800')), '\u010a\u2028x😀\ufffd');
  });

  it('gives valid JSON for any bytes, and LogSink.putJson writes what jsonBytes gives', () => {
    const file = path.join(tmp(), 'a.log');
    const sink = new LogSink(file, 1, 0, 'latin1');
    const values: string[] = [];
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed);
    for (let n = 0; n < 300; n++) {
      const bytes = Array.from({ length: rand() % 40 }, () => (n % 3 === 0 ? rand() % 256 : 0x20 + (rand() % 0x70)));
      values.push(byteString(bytes));
    }
    for (const v of values) {
      sink.put('"');
      sink.putJson(v);
      sink.put('"');
      sink.endLine();
    }
    sink.close();
    const lines = readFileSync(file, 'utf8').split('\n').slice(0, -1);
    assert.equal(lines.length, values.length);
    lines.forEach((line, i) => {
      assert.equal(line, `"${Buffer.from(jsonBytes(values[i]!), 'latin1').toString('utf8')}"`);
      assert.equal(typeof JSON.parse(line), 'string');
    });
  });
});

// Every test of the line runs both ways: as the string compileAccessFormat gives, and as the bytes the access log
// stores (compileJsonLine or compileDirectWriter, into a LogSink).
for (const [way, compileAccessFormat] of [['as a string', compileToString], ['stored in the sink', compileToSink]] as const) {
  describe(`the access log as JSON, ${way}`, () => {
    it('gives tunicorn\'s JSON line for the default format: named fields, numbers, null for none', () => {
      const line = compileAccessFormat(DEFAULT_ACCESS_LOG_FORMAT, 'json')(entry());
      const o = JSON.parse(Buffer.from(line, 'latin1').toString('utf8'));
      assert.match(o.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      assert.deepEqual(
        { ...o, time: 'T' },
        {
          time: 'T',
          level: 'info',
          pid: process.pid,
          role: 'worker',
          msg: 'request completed',
          remote_addr: '10.0.0.9',
          user: null,
          method: 'GET',
          path: '/a/b',
          query: 'x=1',
          protocol: 'HTTP/1.1',
          status: 201,
          bytes: 12,
          duration_ms: 250.5,
          referer: null,
          user_agent: 'ua/1',
          request_id: 'r-7',
          queue_ms: 3,
        },
      );
    });

    it('keeps a line one valid JSON object whatever the client sent', () => {
      const ua = byteString([0x78, 0x22, 0x5c, 0x0a, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0xff, 0xc3, 0xa9]);
      const url = byteString([0x2f, 0xe9, 0x22, 0x3f, 0x71, 0x3d, 0x0d, 0x0a]);
      const line = compileAccessFormat(DEFAULT_ACCESS_LOG_FORMAT, 'json')(entry({ url, headers: ['User-Agent', ua, 'Referer', '"\\'] }));
      assert.ok(!line.includes('\n') && validUtf8(line));
      const o = JSON.parse(Buffer.from(line, 'latin1').toString('utf8'));
      assert.equal(o.user_agent, 'x"\\\n\x1b[31m\u00ffé');
      assert.equal(o.path, '/\u00e9"');
      assert.equal(o.query, 'q=\r\n');
      assert.equal(o.referer, '"\\');
    });

    it('writes null for a status never sent and a length that is not a number', () => {
      const e = entry();
      const res = { statusCode: 200, headersSent: false, getHeader: (n: string) => (n === 'content-length' ? 'abc' : undefined) } as unknown as ServerResponse;
      const o = JSON.parse(compileAccessFormat(DEFAULT_ACCESS_LOG_FORMAT, 'json')({ ...e, res }));
      assert.equal(o.status, null);
      assert.equal(o.bytes, null);
    });

    it('reads another format as a JSON template: its atoms JSON-escaped', () => {
      const f = compileAccessFormat('{"s":"%(s)s","ua":"%(a)s","r":"%(r)s","pct":"%%"}', 'json');
      const e = entry({ headers: ['User-Agent', byteString([0x61, 0x22, 0x0a, 0xff])] });
      const o = JSON.parse(Buffer.from(f(e), 'latin1').toString('utf8'));
      assert.deepEqual(o, { s: '201', ua: 'a"\n\u00ff', r: 'GET /a/b?x=1 HTTP/1.1', pct: '%' });
    });

    it("puts a Content-Length the app set only as digits: any other text (a proxy copies its upstream's) is none", () => {
      const f = compileAccessFormat('{"b":"%(b)s","B":"%(B)s"}', 'json');
      const e = entry();
      const res = { statusCode: 200, headersSent: true, getHeader: (n: string) => (n === 'content-length' ? '2", "forged": "yes' : undefined) } as unknown as ServerResponse;
      assert.deepEqual(JSON.parse(f({ ...e, res })), { b: '-', B: '0' });
      assert.equal(compileAccessFormat('%(b)s %(B)s')({ ...e, res }), '- 0');
    });

    it('leaves the text format as it was', () => {
      assert.match(compileAccessFormat(DEFAULT_ACCESS_LOG_FORMAT, 'text')(entry()), /^10\.0\.0\.9 - - \[.*\] "GET \/a\/b\?x=1 HTTP\/1\.1" 201 12 "-" "ua\/1"$/);
    });

  });
}

describe('the JSON line stored in the sink\'s buffer at once', () => {
  const basic = 'Basic ' + Buffer.from('ann:pw').toString('base64');
  it('stores a line with no put() a part, each field as the string form has it; a value to escape, or a line longer than the buffer, goes part by part to the same bytes', () => {
    const puts = { n: 0 };
    const stored = compileToSink(DEFAULT_ACCESS_LOG_FORMAT, 'json', puts);
    const text = compileToString(DEFAULT_ACCESS_LOG_FORMAT, 'json');
    mock.timers.enable({ apis: ['Date'], now: Date.UTC(2026, 11, 7, 1, 2, 3, 45) });
    try {
      const unsent = { statusCode: 200, headersSent: false, getHeader: () => undefined } as unknown as ServerResponse;
      const never = { ...entry(), queue: undefined, peer: undefined };
      (never.req as { httpVersion?: string }).httpVersion = undefined;
      for (const e of [
        entry(),
        { ...entry({ url: '/', headers: ['Authorization', basic, 'Referer', 'http://r/', 'user-agent', 'ua/2', 'x-request-id', 'id-1'] }), peer: '192.0.2.1' },
        { ...entry({ url: '/?', headers: [] }), res: unsent, queue: undefined },
        never,
      ]) {
        puts.n = 0;
        const line = stored(e);
        assert.equal(line, text(e));
        assert.equal(puts.n, 0, 'stored at once');
        assert.equal(typeof JSON.parse(line), 'object');
      }
      const o = JSON.parse(stored(never));
      assert.equal(o.protocol, null);
      assert.equal(o.queue_ms, null);
      assert.equal(JSON.parse(stored({ ...entry({ headers: ['Authorization', basic] }) })).user, 'ann');
      samePartByPart(stored, text, puts, [
        entry({ headers: ['User-Agent', 'a "quoted" agent'] }),
        entry({ url: '/\x1b[31m' }),
        entry({ url: '/caf' + byteString([0xc3, 0xa9]) }),
        entry({ url: '/caf\u00e9' }),
        entry({ headers: ['X-Request-Id', '\u2192'] }),
        entry({ url: '/' + 'x'.repeat(70_000) }),
      ]);
    } finally {
      mock.timers.reset();
    }
  });

  it('stores a JSON template\'s line at once, and part by part when a value needs escaping, to the same bytes', () => {
    const format = '{"s":"%(s)s","ua":"%(a)s","r":"%(r)s","t":"%(t)s","pct":"%%"}';
    const puts = { n: 0 };
    const stored = compileToSink(format, 'json', puts);
    const text = compileToString(format, 'json');
    mock.timers.enable({ apis: ['Date'], now: Date.UTC(2026, 11, 7, 1, 2, 3, 45) });
    try {
      assert.equal(stored(entry()), text(entry()));
      assert.equal(puts.n, 0, 'stored at once');
      const odd = entry({ headers: ['User-Agent', byteString([0x61, 0x22, 0x0a, 0xff])] });
      assert.equal(stored(odd), text(odd));
      assert.ok(puts.n > 0, 'part by part');
      assert.equal(JSON.parse(Buffer.from(stored(odd), 'latin1').toString('utf8')).ua, 'a"\n\u00ff');
    } finally {
      mock.timers.reset();
    }
  });

  it('writes whole lines through the log\'s buffer: lines across its end, and one longer than the buffer', () => {
    const file = path.join(tmp(), 'a.log');
    const log = new AccessLog(file, DEFAULT_ACCESS_LOG_FORMAT, undefined, 'json');
    const agents = [...Array.from({ length: 120 }, (_, i) => `agent ${i} "${'é\\'.repeat(300)}`), 'x'.repeat(70000) + '\u00ff\n'];
    for (const ua of agents) log.log(entry({ headers: ['User-Agent', Buffer.from(ua, 'utf8').toString('latin1')] }));
    log.close();
    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(
      lines.map((l) => JSON.parse(l).user_agent),
      agents,
    );
  });

  it('writes 3,000 lines in order through the 64 KB buffer and past it, the same as the string form', () => {
    const file = path.join(tmp(), 'many.log');
    const log = new AccessLog(file, DEFAULT_ACCESS_LOG_FORMAT, undefined, 'json');
    const text = compileToString(DEFAULT_ACCESS_LOG_FORMAT, 'json');
    mock.timers.enable({ apis: ['Date'], now: Date.UTC(2026, 11, 7, 1, 2, 3, 45) });
    try {
      sameThroughTheBuffer(log, file, text, (url, i) => ({ ...entry({ url }), start: i, end: i + (i % 7) }));
    } finally {
      mock.timers.reset();
    }
  });
});

describe('the JSON line\'s clock', () => {
  it('reads the wall clock once a second for the time', () => {
    mock.timers.enable({ apis: ['Date'], now: Date.UTC(2026, 11, 6, 6, 1, 2, 900) });
    try {
      const now = mock.method(Date, 'now');
      const clock = new IsoClock();
      assert.equal(clock.at(5000), '2026-12-06T06:01:02.900Z');
      assert.equal(clock.at(5042.7), '2026-12-06T06:01:02.942Z');
      mock.timers.tick(120);
      assert.equal(clock.at(5120), '2026-12-06T06:01:03.020Z');
      assert.equal(now.mock.callCount(), 2);
    } finally {
      mock.restoreAll();
      mock.timers.reset();
    }
  });
});

describe('the JSON template check', () => {
  it('takes a JSON object with each atom inside a string', () => {
    assert.equal(jsonTemplateProblem('{"status":"%(s)s","ua":"%({user-agent}i)s","p":"100%%"}'), undefined);
  });
  it('refuses an atom outside a string, a text format, an array, a template over two lines', () => {
    assert.match(jsonTemplateProblem('{"status":%(s)s}')!, /not JSON with each atom inside a string .*read with each atom as x: \{"status":x\}/);
    assert.match(jsonTemplateProblem(DEFAULT_ACCESS_LOG_FORMAT)!, /not JSON/);
    assert.equal(jsonTemplateProblem('["%(s)s"]'), 'it is not a JSON object ({...})');
    assert.equal(jsonTemplateProblem('{"s":\n"%(s)s"}'), 'it spans lines: a JSON log line is one line');
  });
  it('stops the start with one line naming both settings; the default format, a text log and no access log need no template', async () => {
    const resolve = (argv: string[]) => resolveConfig({ argv, env: {}, cwd: '/nonexistent', fileValues: {} });
    await assert.rejects(
      resolve(['--log-format', 'json', '--access-logfile', '-', '--access-logformat', '%(h)s %(s)s', 'a']),
      /^ConfigError: with --log-format json, accessLogFormat \(--access-logformat\) is a JSON template, as \{"status":"%\(s\)s","path":"%\(U\)s"\} \(leave it unset for tunicorn's JSON line\): it is not JSON/,
    );
    assert.equal((await resolve(['--log-format', 'json', 'a'])).config.logFormat, 'json');
    assert.equal((await resolve(['--log-format', 'json', '--access-logformat', '%(h)s', 'a'])).config.logFormat, 'json', 'no access log: the format is not used');
    assert.equal((await resolve(['--log-format', 'JSON', '--access-logformat', '{"s":"%(s)s"}', 'a'])).config.logFormat, 'json');
    assert.equal((await resolve(['--access-logformat', '%(h)s', 'a'])).config.logFormat, 'text');
    await assert.rejects(resolve(['--log-format', 'xml', 'a']), /invalid value for logFormat \(--log-format\): "xml"; expected one of text, json/);
  });
  it("points Gunicorn's logging settings to it", () => {
    for (const k of ['logger_class', 'logconfig', 'logconfig_dict', 'logconfig_json']) assert.match(GUNICORN_ONLY[k]!.why, /--log-format json/);
  });
});

describe('the error log as JSON', () => {
  it('writes one JSON object a line: a stack, a multi-line message and fields stay in it', () => {
    const file = path.join(tmp(), 'e.log');
    const log = new ErrorLog(file, 'info', { format: 'json', role: 'master' });
    log.info('Booting %s', 'x');
    log.with({ worker_pid: 42 }).error('Worker (pid:42) was sent SIGKILL! Perhaps out of memory?');
    log.warning('two\nlines "quoted"\n');
    const err = new TypeError('bad "thing"\nreally');
    log.exception('Error handling request GET /', err);
    log.exception('Hook threw', 'a string');
    log.debug('not at info');
    log.raw(Buffer.from([0x6f, 0x6b, 0xff, 0x0a, 0x6e, 0x6f, 0x0a]), 'stderr');
    log.raw('', 'stdout');
    log.close();
    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.pop(), '');
    const o = lines.map((l) => JSON.parse(l));
    assert.equal(o.length, 6);
    for (const x of o) {
      assert.match(x.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      assert.equal(x.pid, process.pid);
      assert.equal(x.role, 'master');
    }
    assert.deepEqual([o[0].level, o[0].msg], ['info', 'Booting x']);
    assert.deepEqual([o[1].level, o[1].worker_pid], ['error', 42]);
    assert.equal(o[2].msg, 'two\nlines "quoted"\n');
    assert.equal(o[3].msg, 'Error handling request GET /');
    assert.equal(o[3].err.type, 'TypeError');
    assert.equal(o[3].err.message, 'bad "thing"\nreally');
    assert.match(o[3].err.stack, /^TypeError: bad "thing"\nreally\n {4}at /);
    assert.deepEqual(o[4].err, { type: 'string', message: 'a string' });
    assert.deepEqual([o[5].level, o[5].stream, o[5].msg], ['error', 'stderr', 'ok\u00ff\nno']);
  });

  it('writes an Error whose message and name JSON.stringify throws on (a circular object, a bigint) as text', () => {
    const file = path.join(tmp(), 'e.log');
    const log = new ErrorLog(file, 'info', { format: 'json', role: 'worker' });
    const err = new Error('odd');
    const circle: Record<string, unknown> = {};
    circle.self = circle;
    (err as unknown as { message: unknown }).message = circle;
    (err as unknown as { name: unknown }).name = 10n;
    log.exception('Error handling request GET /', err);
    log.close();
    const o = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual([o.err.type, o.err.message], ['10', '[object Object]']);
  });

  it('carries a gthread thread\'s number in every line', () => {
    const file = path.join(tmp(), 'e.log');
    const log = new ErrorLog(file, 'info', { format: 'json', role: 'worker', fields: { thread: 3 } });
    log.info('hello');
    log.close();
    const o = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual([o.role, o.thread], ['worker', 3]);
  });

  it('leaves the text lines as they were: fields are for JSON, the stack on the lines after', () => {
    const file = path.join(tmp(), 'e.log');
    const log = new ErrorLog(file, 'info');
    log.with({ worker_pid: 42 }).info('Worker exited (pid: 42)');
    log.exception('Failed', new Error('boom'));
    log.close();
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^\[[^\]]+\] \[\d+\] \[INFO\] Worker exited \(pid: 42\)\n\[[^\]]+\] \[\d+\] \[ERROR\] Failed\nError: boom\n {4}at /);
  });

  it('wraps one write of captured output as one line, its final newline dropped', () => {
    const b = capturedJson(Buffer.from('Error: x\n    at y\n'), 'stdout', { role: 'worker' });
    const text = b.toString('utf8');
    assert.equal(text.indexOf('\n'), text.length - 1);
    const o = JSON.parse(text);
    assert.deepEqual([o.level, o.stream, o.msg], ['info', 'stdout', 'Error: x\n    at y']);
  });
});
