import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { countBodyBytes, formatNeedsBodyBytes, sentBytes } from '../../src/logging/body-bytes.js';

// A subclass, so the counting wraps its prototype and not Node's ServerResponse in this test process.
class Counted extends ServerResponse {}
countBodyBytes(Counted.prototype);
countBodyBytes(Counted.prototype); // idempotent: a second call must not count twice

function response(method = 'GET'): ServerResponse {
  const req = new IncomingMessage(new Socket());
  req.method = method;
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  return new Counted(req);
}

describe('body bytes for the access log', () => {
  it('counts a chunked body as written: strings in UTF-8 or their encoding, bytes as they are', () => {
    const res = response();
    res.write('hello ');
    res.write(Buffer.from('w\u00f6rld'));
    res.write('\u00e9', 'latin1');
    res.end('!');
    assert.equal((res as unknown as { chunkedEncoding: boolean }).chunkedEncoding, true);
    assert.equal(sentBytes(res), 6 + 6 + 1 + 1);
  });

  it('counts end(body) after writeHead() without a length, and an empty one as 0', () => {
    const res = response();
    res.writeHead(200);
    res.end('abc');
    assert.equal(sentBytes(res), 3);
    const empty = response();
    empty.writeHead(200);
    empty.end();
    assert.equal(sentBytes(empty), 0);
  });

  it('leaves a response with a Content-Length to it: computed by a first end(body), or the app\'s', () => {
    const res = response();
    res.end('twelve bytes');
    assert.equal(sentBytes(res), undefined);
    const own = response();
    own.writeHead(200, { 'Content-Length': 3 });
    own.end('abc');
    assert.equal(sentBytes(own), undefined);
  });

  it('counts nothing Node does not send: HEAD, 204, writes after end', () => {
    const head = response('HEAD');
    head.write('ignored');
    head.end('ignored too');
    assert.equal(sentBytes(head), 0);
    const none = response();
    none.writeHead(204);
    none.end();
    assert.equal(sentBytes(none), 0);
    const late = response();
    late.write('ab');
    late.end('c');
    late.on('error', () => {}); // write after end
    late.write('late');
    late.end('later');
    assert.equal(sentBytes(late), 3);
  });

  it('is on only for a format with %(b)s or %(B)s', () => {
    assert.equal(formatNeedsBodyBytes('%(h)s "%(r)s" %(s)s %(b)s'), true);
    assert.equal(formatNeedsBodyBytes('%(B)s'), true);
    assert.equal(formatNeedsBodyBytes('%(h)s %(s)s %({b}i)s'), false);
  });
});
