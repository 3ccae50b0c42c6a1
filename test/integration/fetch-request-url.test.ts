/**
 * A Fetch handler's `request.url` is the serialized URL, as the Fetch standard's Request (and a clone of it)
 * says: dot segments removed, characters the URL parser escapes escaped, the host canonical.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, it } from 'node:test';
import { exchange } from '../helpers/raw.js';
import { FIXTURES, Server, stopAll } from '../helpers/server.js';

after(stopAll);

it('request.url is what the standard Request serializes, read first or after a clone', async () => {
  const s = new Server(['-b', '127.0.0.1:0', '-w', '1', path.join(FIXTURES, 'fetch-url-lazy.ts')]);
  const port = await s.port();
  const ask = async (target: string, host: string) => {
    const r = await exchange(port, [{ send: `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n` }], { want: 1, waitClose: true, ms: 5000 });
    return JSON.parse(r.responses[0]!.body) as { url: string; clone: string };
  };
  const cases: [string, string, string][] = [
    ['/api/users?id=1', 'a', 'http://a/api/users?id=1'],
    ['/public/../admin/x', 'a', 'http://a/admin/x'],
    ['/public/%2e%2E/admin', 'a', 'http://a/admin'],
    ['/./p?q=<b>', 'a', 'http://a/p?q=%3Cb%3E'],
    ['/p', 'EXAMPLE.com:80', 'http://example.com/p'],
    ['/p', '127.1:8080', 'http://127.0.0.1:8080/p'],
    ['/p', '[0:0::1]', 'http://[::1]/p'],
    ['http://Other.COM:80/p', 'a', 'http://other.com/p'],
  ];
  for (const [target, host, want] of cases) {
    assert.deepEqual(await ask(target, host), { url: want, clone: want }, `${target} Host: ${host}`);
  }
  await s.kill();
});
