/** The access log format compiler: Gunicorn's atoms. */
import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { describe, it, mock } from 'node:test';
import { AccessLog, answeredRaw, compileAccessFormat as compileToString, targetParts } from '../../src/logging/access-log.js';
import { compileToSink, samePartByPart, sameThroughTheBuffer } from '../helpers/stored-line.js';
import { scratchDir } from '../helpers/scratch.js';
import { RawAnswer, UnparsedRequest } from '../../src/logging/refused.js';
import { Refusal } from '../../src/http/refusals.js';
import { DEFAULT_ACCESS_LOG_FORMAT } from '../../src/config/sections/logging.js';

function entry(over: Partial<IncomingMessage> = {}) {
  const headers: Record<string, string> = { referer: 'http://r/', 'user-agent': 'ua/1', authorization: 'Basic ' + Buffer.from('ann:pw').toString('base64'), 'x-id': '42' };
  const req = {
    method: 'POST',
    url: '/a/b?x=1',
    httpVersion: '1.1',
    headers,
    // As a client spelled them: the log reads Referer, User-Agent and Authorization from here.
    rawHeaders: [['Referer', 'http://r/'], ['User-Agent', 'ua/1'], ['user-agent', 'second/9'], ['AUTHORIZATION', headers.authorization!], ['X-Id', '42']].flat(),
    socket: { remoteAddress: '10.0.0.9' },
    ...over,
  } as unknown as IncomingMessage;
  const res = { statusCode: 201, getHeader: (n: string) => (n === 'content-length' ? 12 : n === 'x-out' ? 'yes' : undefined) } as unknown as ServerResponse;
  return { req, res, start: 1000, end: 1250.5 };
}

const tmp = scratchDir('tunicorn-access-');

// Every test runs both ways: as the string compileAccessFormat gives, and as the bytes the access log stores
// (compileDirectWriter, into a LogSink: test/helpers/stored-line.ts).
for (const [way, compileAccessFormat] of [['as a string', compileToString], ['stored in the sink', compileToSink]] as const) {
  describe(`access log format (${way})`, () => {
    it('renders the default format', () => {
      const line = compileAccessFormat(DEFAULT_ACCESS_LOG_FORMAT)(entry());
      assert.match(line, /^10\.0\.0\.9 - ann \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "POST \/a\/b\?x=1 HTTP\/1\.1" 201 12 "http:\/\/r\/" "ua\/1"$/);
    });

    it('renders the default format without building req.headers (Node builds it on first use)', () => {
      const e = entry();
      Object.defineProperty(e.req, 'headers', { get: () => assert.fail('req.headers was read') });
      assert.match(compileAccessFormat(DEFAULT_ACCESS_LOG_FORMAT)(e), /" 201 12 "http:\/\/r\/" "ua\/1"$/);
    });

    it('reads the wall clock once a second: %(t)s follows the entry\'s end, a monotonic time', () => {
      mock.timers.enable({ apis: ['Date'], now: Date.UTC(2026, 10, 26, 14, 40, 54, 900) });
      try {
        const now = mock.method(Date, 'now');
        const f = compileAccessFormat('%(t)s');
        const at = (end: number) => /:(\d{2}) [+-]\d{4}\]$/.exec(f({ ...entry(), end }))![1];
        assert.equal(at(5000), '54');
        mock.timers.tick(60);
        assert.equal(at(5060), '54', 'within the second: the cached text');
        mock.timers.tick(60);
        assert.equal(at(5120), '55', 'past the second\'s end: read again');
        assert.equal(at(100), '55', 'an end before the cached second: read again');
        assert.equal(now.mock.callCount(), 3, 'the first line, the next second, the earlier end');
      } finally {
        mock.restoreAll();
        mock.timers.reset();
      }
    });

    it('renders timing, parts of the request and headers', () => {
      const f = compileAccessFormat('%(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(D)s %(M)s %(T)s %(L)s %({x-id}i)s %({x-out}o)s %({missing}i)s');
      assert.equal(f(entry()), 'POST /a/b x=1 HTTP/1.1 201 12 250500 250 0 0.250500 42 yes -');
    });

    it('reads a response header given to writeHead() (every Fetch Response\'s) from the header block', () => {
      const f = compileAccessFormat('%({content-type}o)s|%({X-Out}o)s|%({set-cookie}o)s|%({missing}o)s');
      const e = entry();
      (e as { res: unknown }).res = {
        statusCode: 200,
        getHeader: () => undefined,
        _header: 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-out:  yes \r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\n',
      };
      assert.equal(f(e), 'application/json|yes|a=1, b=2|-');
    });

    it('reads the body length from the header block when writeHead() set it, in any spelling', () => {
      const f = compileAccessFormat('%(b)s %(B)s');
      const withHead = (head: string | null) => {
        const e = entry();
        (e as { res: unknown }).res = { statusCode: 200, getHeader: () => undefined, _header: head };
        return f(e);
      };
      assert.equal(withHead('HTTP/1.1 200 OK\r\ncontent-type: a\r\ncontent-length: 25\r\n\r\n'), '25 25');
      assert.equal(withHead('HTTP/1.1 200 OK\r\nContent-Length:7\r\n\r\n'), '7 7');
      assert.equal(withHead('HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 1048576\r\n\r\n'), '1048576 1048576');
      assert.equal(withHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), '- 0');
      assert.equal(withHead(null), '- 0');
    });

    it('takes the body length Node wrote from the response, without searching the header block', () => {
      const f = compileAccessFormat('%(b)s');
      const res = new ServerResponse(new IncomingMessage(new Socket()));
      res.writeHead(200, { 'Content-Length': 5 });
      Object.defineProperty(res, '_header', { get: () => assert.fail('the header block was read') });
      assert.equal(f({ ...entry(), res }), '5');
    });

    it('logs an HTTP/2 response without a length (streamed): its `_header` is a boolean, not a header block', async () => {
      // Node's Http2ServerResponse answers `_header` with headersSent. A streamed response (no Content-Length)
      // reached the header-block search with `true`, and the worker died of "head.indexOf is not a function"
      // as the stream closed: every HTTP/2 streaming response with the access log on.
      const { Http2ServerResponse } = await import('node:http2');
      const res = Object.create(Http2ServerResponse.prototype, {
        headersSent: { value: true },
        statusCode: { value: 200 },
        getHeader: { value: () => undefined },
      }) as ServerResponse;
      assert.equal((res as unknown as { _header: unknown })._header, true, 'the compatibility getter this guards against');
      assert.equal(compileAccessFormat('%(b)s %(B)s %({content-type}o)s')({ ...entry(), res }), '- 0 -');
    });

    it('gives a byte string: request text as sent, the format\'s own text and environment values as UTF-8', () => {
      process.env.TUNICORN_TEST_SITE = 'z\u00fcrich';
      try {
        // A User-Agent and a Basic user sent in UTF-8: Node's parser gives them one character per byte.
        const ua = Buffer.from('caf\u00e9/1').toString('latin1');
        const e = entry({ rawHeaders: ['User-Agent', ua, 'Authorization', 'Basic ' + Buffer.from('j\u00f6rg:pw').toString('base64')] });
        const line = compileAccessFormat('\u2192 %(u)s %(a)s %({TUNICORN_TEST_SITE}e)s')(e);
        assert.equal(Buffer.from(line, 'latin1').toString('utf8'), '\u2192 j\u00f6rg caf\u00e9/1 z\u00fcrich');
      } finally {
        delete process.env.TUNICORN_TEST_SITE;
      }
    });

    // Once: it runs compileAccessFormat in a child process, with and without code generation.
    if (way === 'as a string')
      it('renders the same where code generation from strings is off (the loop instead of a generated function)', () => {
        const mod = JSON.stringify(fileURLToPath(new URL('../../src/logging/access-log.ts', import.meta.url)));
        // The access log too: its line stored at once is made by a generated function, so it is not made there.
        // So is the JSON line's (--log-format json, compileJsonLine).
        const script = `import { AccessLog, compileAccessFormat, compileDirectWriter, compileJsonLine } from ${mod};
          const req = { method: 'GET', url: '/x', httpVersion: '1.1', rawHeaders: ['User-Agent', 'ua'], socket: { remoteAddress: '::1' } };
          const res = { statusCode: 204, getHeader: () => undefined };
          const format = '%(h)s "%(r)s" %(s)s %(b)s "%(a)s"';
          process.stdout.write(compileAccessFormat(format)({ req, res, start: 0, end: 1 }) + ' | ' + (compileDirectWriter(format) === null) + ' ' + (compileJsonLine() === null) + '\\n');
          new AccessLog('-', format).log({ req, res, start: 0, end: 1 });
          new AccessLog('-', ${JSON.stringify(DEFAULT_ACCESS_LOG_FORMAT)}, undefined, 'json').log({ req, res, start: 0, end: 1 });`;
        for (const flags of [[], ['--disallow-code-generation-from-strings']]) {
          const out = execFileSync(process.execPath, [...flags, '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
          const [first, second, json, rest] = out.split('\n');
          const line = '::1 "GET /x HTTP/1.1" 204 - "ua"';
          const off = flags.length > 0;
          assert.deepEqual([first, second, rest], [`${line} | ${off} ${off}`, line, ''], flags.join(' ') || 'default');
          const o = JSON.parse(json!);
          assert.deepEqual({ remote_addr: o.remote_addr, path: o.path, query: o.query, status: o.status, bytes: o.bytes, user_agent: o.user_agent, duration_ms: o.duration_ms }, { remote_addr: '::1', path: '/x', query: null, status: 204, bytes: null, user_agent: 'ua', duration_ms: 1 });
        }
      });

    it('escapes what the client, the app or the environment gave: a quote as Gunicorn, a backslash and control bytes too', () => {
      process.env.TUNICORN_TEST_ESC = 'e"v';
      try {
        // A Basic user is any bytes the client base64-encoded: here a line break and a whole forged line.
        const forged = 'x"\n10.0.0.1 - - [01/Jan/2000 +0000] "GET /admin HTTP/1.1" 200 1 "-" "-"\r\x1b[31m';
        const e = entry({
          url: '/p"a\\th?q="1"',
          headers: { 'x-in': 'i"n' },
          rawHeaders: ['Referer', 'r"\\', 'User-Agent', 'Mozilla" "injected', 'Authorization', 'Basic ' + Buffer.from(`${forged}:pw`).toString('base64')],
        } as Partial<IncomingMessage>);
        (e as { res: unknown }).res = { statusCode: 200, getHeader: (n: string) => (n === 'x-out' ? 'o"\\ut' : undefined) };
        const line = compileAccessFormat('%(u)s "%(r)s" "%(f)s" "%(a)s" %(U)s %(q)s "%({x-in}i)s" "%({x-out}o)s" "%({TUNICORN_TEST_ESC}e)s"')(e);
        assert.equal(
          line,
          'x\\"\\x0a10.0.0.1 - - [01/Jan/2000 +0000] \\"GET /admin HTTP/1.1\\" 200 1 \\"-\\" \\"-\\"\\x0d\\x1b[31m' +
            ' "POST /p\\"a\\\\th?q=\\"1\\" HTTP/1.1" "r\\"\\\\" "Mozilla\\" \\"injected" /p\\"a\\\\th q=\\"1\\" "i\\"n" "o\\"\\\\ut" "e\\"v"',
        );
        assert.ok(!/[\x00-\x1f\x7f]/.test(line), 'no control byte is left');
      } finally {
        delete process.env.TUNICORN_TEST_ESC;
      }
    });

    it('writes a character past 0xff that the app put in a value as its UTF-8 bytes, not as its low byte', () => {
      // An app that decoded its URL in place: %C4%8A is U+010A, whose low byte is a line feed; U+0122's, a quote.
      const e = entry({ url: '/a\u010aforged\u0122 \u20ac' } as Partial<IncomingMessage>);
      const line = compileAccessFormat('"%(U)s"')(e);
      assert.equal(Buffer.from(line, 'latin1').toString('utf8'), '"/a\u010aforged\u0122 \u20ac"');
    });

    it('writes `-` for the request line, method, path, version and headers of a request never parsed', () => {
      const r = new Refusal(431, 'the header section is too large');
      const f = compileAccessFormat('%(h)s "%(r)s" %(m)s %(U)s %(H)s %(s)s %(b)s %(B)s "%(a)s" %({x-id}i)s %({content-type}o)s %(D)s');
      const req = new UnparsedRequest({ remoteAddress: '10.0.0.7' } as Socket) as unknown as IncomingMessage;
      const res = new RawAnswer(431, r.rawHead, r.length) as unknown as ServerResponse;
      assert.equal(f({ req, res, start: 5, end: 5 }), `10.0.0.7 "-" - - - 431 ${r.length} ${r.length} "-" - text/plain; charset=utf-8 0`);
    });

    it('counts the body bytes the client got: 0 for HEAD, 204 and 304 whatever the length; an answer written past the app', () => {
      const f = compileAccessFormat('%(s)s %(b)s %(B)s');
      const sent = (status: number, over: object) => Object.assign(entry().res, { statusCode: status, headersSent: true }, over);
      assert.equal(f({ ...entry({ method: 'HEAD' }), res: sent(200, {}) }), '200 0 0');
      assert.equal(f({ ...entry(), res: sent(304, { _hasBody: false }) }), '304 0 0');
      assert.equal(f({ ...entry(), res: sent(200, { _hasBody: true }) }), '200 12 12');
      // request_deadline's 503 written to the socket, the app's response left unsent.
      const unsent = Object.assign(entry().res, { headersSent: false });
      answeredRaw(unsent, 503, 76);
      assert.equal(f({ ...entry(), res: unsent }), '503 76 76');
    });

    it('reads the first Referer, User-Agent and Authorization of a request, in any case, afresh for each line', () => {
      const f = compileAccessFormat('%(u)s "%(f)s" "%(a)s"');
      const basic = (who: string) => 'Basic ' + Buffer.from(`${who}:pw`).toString('base64');
      const e = entry({ rawHeaders: ['referer', 'r1', 'USER-AGENT', 'u1', 'Referer', 'r2', 'authorization', basic('kim'), 'User-Agent', 'u2', 'Authorization', basic('lou')] });
      assert.equal(f(e), 'kim "r1" "u1"');
      // The same request logged again (an upgrade's line, say) after its headers changed: read again.
      (e.req as { rawHeaders: string[] }).rawHeaders = ['Referer', '', 'User-Agent', 'u3', 'Authorisation', basic('x')];
      assert.equal(f(e), '- "-" "u3"');
      (e.req as { rawHeaders: string[] }).rawHeaders = [];
      assert.equal(f(e), '- "-" "-"');
    });

    it('reads the Basic scheme in any case, as Gunicorn', () => {
      const e = entry({ rawHeaders: ['Authorization', 'basic ' + Buffer.from('lee:pw').toString('base64')] });
      assert.equal(compileAccessFormat('%(u)s')(e), 'lee');
      assert.equal(compileAccessFormat('%(u)s')(entry({ rawHeaders: ['Authorization', 'Bearer abc'] })), '-');
      assert.equal(compileAccessFormat('%(u)s')(entry({ rawHeaders: ['Authorization', 'Basicx'] })), '-');
    });

    it('counts %(T)s, %(M)s and %(D)s as whole units of one time, truncated as Gunicorn\'s timedelta', () => {
      const f = compileAccessFormat('%(T)s %(M)s %(D)s %(L)s');
      assert.equal(f({ ...entry(), start: 0, end: 999.6 }), '0 999 999600 0.999600');
      assert.equal(f({ ...entry(), start: 0, end: 1.6 }), '0 1 1600 0.001600');
      assert.equal(f({ ...entry(), start: 0, end: 2000.0004 }), '2 2000 2000000 2.000000');
    });

    it('names an unknown atom', () => {
      assert.throws(() => compileAccessFormat('%(zz)s'), /unknown atom %\(zz\)s/);
    });

    it('reads %% as a % (Python formatting, as Gunicorn), also before what would be an atom', () => {
      const e = entry();
      assert.equal(compileAccessFormat('100%% %(s)s %%(h)s %%%(m)s 5%')(e), `100% ${e.res.statusCode} %(h)s %POST 5%`);
      assert.doesNotThrow(() => compileAccessFormat('%%(zz)s'));
    });
  });
}

describe('the access log line stored in the sink\'s buffer at once', () => {
  it('stores a line with no put() a part; a value to escape, or a line longer than the buffer, goes part by part to the same bytes', () => {
    const format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" -- and some text of the format\'s own, longer than 32 bytes --';
    const puts = { n: 0 };
    const stored = compileToSink(format, 'text', puts);
    const text = compileToString(format);
    mock.timers.enable({ apis: ['Date'], now: Date.UTC(2026, 11, 6, 22, 0, 0) });
    try {
      const plain = entry();
      assert.equal(stored(plain), text(plain));
      assert.equal(puts.n, 0, 'stored at once');
      samePartByPart(stored, text, puts, [
        entry({ rawHeaders: ['User-Agent', 'a "quoted" agent'] }),
        entry({ url: '/\x1b[31m' }),
        entry({ url: '/caf\u00e9\u2192' }),
        entry({ url: '/' + 'x'.repeat(70_000) }),
      ]);
    } finally {
      mock.timers.reset();
    }
  });

  it('writes whole lines in order through the 64 KB buffer and past it, the same as the string form', () => {
    const format = '%(h)s %(u)s "%(r)s" %(s)s %(b)s "%(a)s" %(D)s';
    const file = path.join(tmp, 'many.log');
    const log = new AccessLog(file, format);
    sameThroughTheBuffer(log, file, compileToString(format), (url, i) => ({ ...entry({ url }), start: i, end: i + (i % 7) }));
  });
});

describe("%(U)s and %(q)s: Gunicorn's PATH_INFO and QUERY_STRING", () => {
  it('leave out an absolute-form target\'s scheme and authority, and a fragment', () => {
    assert.deepEqual(targetParts('/p?a=1'), ['/p', 'a=1']);
    assert.deepEqual(targetParts('/p'), ['/p', undefined]);
    assert.deepEqual(targetParts('/p?'), ['/p', '']);
    assert.deepEqual(targetParts('http://h.example:81/abs/p?x=1'), ['/abs/p', 'x=1']);
    assert.deepEqual(targetParts('http://h.example?x=1'), ['', 'x=1']);
    assert.deepEqual(targetParts('/p?a=1?b=2#frag'), ['/p', 'a=1?b=2']);
    assert.deepEqual(targetParts('/p#f?x'), ['/p', undefined]);
    // OPTIONS * and a CONNECT's authority-form are no path: kept as they are.
    assert.deepEqual(targetParts('*'), ['*', undefined]);
    assert.deepEqual(targetParts('example.com:443'), ['example.com:443', undefined]);
  });
});
