/** The one module that touches Node internals to bind without accepting (src/listeners/handle.ts), and priming. */
import assert from 'node:assert/strict';
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../src/config/setting.js';
import { parseAddress, UNIX_PATH_MAX } from '../../src/listeners/address.js';
import { bindOne, bindRetrying, closeListeners, resolveHost } from '../../src/listeners/bind.js';
import { bindTcp, BindError, localAddress, openFd } from '../../src/listeners/handle.js';
import { errnoName, primeListeners, type MasterNative } from '../../src/listeners/prime.js';
import { startupIsIP, startupIsIPv6 } from '../../src/ip.js';
import { scratchDir } from '../helpers/scratch.js';

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

describe('binding without accepting', () => {
  it('binds port 0 to a real port and exposes the fd', () => {
    const h = bindTcp('127.0.0.1', 0, 'test');
    try {
      assert.ok(h.fd > 2);
      assert.ok(localAddress(h)!.port > 0);
    } finally {
      h.close();
    }
  });

});

// The master's native module as `npm run build` compiles it (npm test builds first); without it, the helper process.
const builtNative = (() => {
  try {
    return createRequire(import.meta.url)('../../dist/native/master.node') as MasterNative;
  } catch (err) {
    return `dist/native/master.node did not load: ${(err as Error).message}`;
  }
})();

it('errnoName names an errno by its number, and says the number for one it does not know', () => {
  assert.equal(errnoName(os.constants.errno.EADDRINUSE), 'EADDRINUSE');
  assert.equal(errnoName(os.constants.errno.EBADF), 'EBADF');
  assert.equal(errnoName(100_000), 'errno 100000');
});

for (const [how, native] of [
  ['listen(2) in this process', builtNative],
  ['a helper process', 'no native module'],
] as const) {
  describe(`priming by ${how}`, { skip: how !== 'a helper process' && typeof native === 'string' && native }, () => {
    it('a bound socket refuses connections until primed; after priming the kernel queues them and this process never accepts', async () => {
      const l = await bindOne('127.0.0.1:0');
      const port = (l.address as { port: number }).port;
      try {
        await assert.rejects(connect(port), /ECONNREFUSED/);
        let accepted = 0;
        (l.handle as unknown as { onconnection: () => void }).onconnection = () => accepted++;
        assert.equal(await primeListeners([l.fd], 16, [], native), typeof native === 'string' ? 'a helper process' : 'listen(2)');
        const c = await connect(port); // completes in the kernel backlog
        await new Promise((r) => setImmediate(r));
        assert.equal(accepted, 0);
        c.destroy();
      } finally {
        closeListeners([l]);
      }
    });

    it('says why a bind failed, naming the address (libuv would only report a busy port at listen)', async () => {
      const first = await bindOne('127.0.0.1:0');
      const port = (first.address as { port: number }).port;
      try {
        await primeListeners([first.fd], 4, [first.url], native);
        await assert.rejects(bindOne(`127.0.0.1:${port}`), (e: unknown) =>
          e instanceof BindError && e.message === `cannot bind http://127.0.0.1:${port}: address already in use (another process listens there; pick another port or stop it)`);
      } finally {
        closeListeners([first]);
      }
    });

    it('two sockets bound to one address: the second fails to listen, named with its index', async () => {
      // SO_REUSEADDR lets both bind while neither listens; listen() on the second is what fails.
      const first = await bindOne('127.0.0.1:0');
      const port = (first.address as { port: number }).port;
      const second = await bindOne(`127.0.0.1:${port}`);
      try {
        await assert.rejects(primeListeners([first.fd, second.fd], 8, ['first', 'second'], native), (e: unknown) =>
          e instanceof BindError && e.code === 'EADDRINUSE' && e.index === 1 &&
          e.message === 'cannot bind second: address already in use (another process listens there; pick another port or stop it)');
      } finally {
        closeListeners([first, second]);
      }
    });
  });
}

describe('what is wrong with an fd://N', () => {
  it('an fd nothing passed, or a file: said so, where Node says only EINVAL', () => {
    const isOpen = (fd: number) => {
      try {
        fstatSync(fd);
        return true;
      } catch {
        return false;
      }
    };
    let free = 1000;
    while (isOpen(free)) free++;
    assert.throws(() => openFd(free, `fd://${free}`), (e: unknown) =>
      e instanceof BindError && e.message === `cannot bind fd://${free}: not an open file descriptor (nothing passed this process a socket there)`);
    const dir = scratchDir('tunicorn-fd-');
    const fd = openSync(path.join(dir, 'f'), 'w');
    try {
      assert.throws(() => openFd(fd, `fd://${fd}`), (e: unknown) => e instanceof BindError && e.message === `cannot bind fd://${fd}: not a socket (file descriptor ${fd} is a file)`);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true });
    }
  });

  it('fd://3 with nothing passed: Node\'s own epoll or eventfd descriptor is there, and the error says so', () => {
    // The lowest descriptor Node opened for its event loop (Linux names it anon_inode:[...]).
    const own = readdirSync('/proc/self/fd')
      .map(Number)
      .sort((a, b) => a - b)
      .find((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith('anon_inode:');
        } catch {
          return false;
        }
      });
    assert.ok(own !== undefined, 'no anon_inode descriptor in this process');
    const link = readlinkSync(`/proc/self/fd/${own}`);
    assert.throws(() => openFd(own, `fd://${own}`), (e: unknown) =>
      e instanceof BindError && e.message === `cannot bind fd://${own}: not a socket (file descriptor ${own} is Node's own ${link}: nothing passed this process a socket there)`);
  });
});

describe('which address a host name binds', () => {
  const lookup = (all: { address: string; family: number }[]) => async () => all;
  it('its IPv4 address, as Gunicorn binds localhost (127.0.0.1), also when the resolver lists ::1 first', async () => {
    const both = lookup([{ address: '::1', family: 6 }, { address: '127.0.0.1', family: 4 }]);
    assert.equal(await resolveHost('dual.test', 'bind (--bind)', both), '127.0.0.1');
  });
  it('its first address when it has no IPv4 one; an IP address as it is; none is an error naming the setting', async () => {
    assert.equal(await resolveHost('v6only.test', 'bind (--bind)', lookup([{ address: '::1', family: 6 }])), '::1');
    assert.equal(await resolveHost('::1', 'bind (--bind)', lookup([])), '::1');
    await assert.rejects(resolveHost('none.test', 'healthBind (--health-bind)', lookup([])), (e: unknown) =>
      e instanceof ConfigError && e.message === 'invalid value for healthBind (--health-bind): cannot resolve host "none.test"');
  });
});

describe('what is wrong with an address', () => {
  const FORMS = ' (expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N)';
  const rejects = (raw: string, why: string) =>
    assert.throws(() => parseAddress(raw), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.message, `invalid value for bind (--bind): ${JSON.stringify(raw)}; ${why}${FORMS}`);
      return true;
    });

  it('an empty or blank address is an error, not every interface on port 8000 (an unset -b "$BIND")', () => {
    for (const raw of ['', ' ', '\t \n']) rejects(raw, 'the address is empty');
  });

  it('a URL: says to drop the scheme, not to bracket an IPv6 address', () => {
    rejects('http://127.0.0.1:0', 'drop the "http://": tunicorn binds HOST:PORT, not a URL');
    rejects('HTTP://localhost', 'drop the "HTTP://": tunicorn binds HOST:PORT, not a URL');
    rejects('http://[::1]:8000/', 'drop the "http://": tunicorn binds HOST:PORT, not a URL');
    rejects('https://0.0.0.0:8443', 'drop the "https://": tunicorn binds HOST:PORT, not a URL, and serves TLS with --certfile and --keyfile');
  });

  // It was read as a host name, and the line said "cannot resolve host".
  it('a socket path without unix: says to add it', () => {
    rejects('/run/app.sock', 'a Unix socket path needs its prefix: write unix:/run/app.sock');
    rejects('./app.sock', 'a Unix socket path needs its prefix: write unix:./app.sock');
    rejects('../run/app', 'a Unix socket path needs its prefix: write unix:../run/app');
    rejects('app.sock', 'a Unix socket path needs its prefix: write unix:app.sock');
    assert.deepEqual(parseAddress('example.com:8000'), { kind: 'tcp', host: 'example.com', port: 8000 });
  });

  it('a space inside a HOST:PORT address is named; around one it is trimmed, as before', () => {
    rejects('127.0.0.1 :8000', 'the address contains a space');
    rejects('localhost: 8000', 'the address contains a space');
    assert.deepEqual(parseAddress(' 127.0.0.1:8000 '), { kind: 'tcp', host: '127.0.0.1', port: 8000 });
    assert.deepEqual(parseAddress('unix:/tmp/a b.sock'), { kind: 'unix', path: '/tmp/a b.sock' });
  });

  it('a Unix socket path longer than the kernel takes (libuv would cut it short and bind elsewhere)', () => {
    const long = `/tmp/${'s'.repeat(UNIX_PATH_MAX - 5)}`;
    assert.deepEqual(parseAddress(`unix:${long}`), { kind: 'unix', path: long });
    rejects(`unix:${long}x`, `the socket path is ${UNIX_PATH_MAX + 1} bytes long; a Unix socket path has at most ${UNIX_PATH_MAX}`);
  });

  it('a number as the host of HOST:PORT: said to be a host, with the forms that bind that port (the resolver would read 0.0.31.64)', () => {
    rejects('8000:8001', '"8000" is read as a host, not a port: give :8000 (every interface) or 127.0.0.1:8000');
    assert.deepEqual(parseAddress('127.0.0.1'), { kind: 'tcp', host: '127.0.0.1', port: 8000 });
    assert.deepEqual(parseAddress('0:8000'), { kind: 'tcp', host: '0', port: 8000 });
  });

  it('still takes the Gunicorn forms', () => {
    assert.deepEqual(parseAddress(':9000'), { kind: 'tcp', host: '0.0.0.0', port: 9000 });
    assert.deepEqual(parseAddress('*:9000'), { kind: 'tcp', host: '0.0.0.0', port: 9000 });
    assert.deepEqual(parseAddress('unix:///run/app.sock'), { kind: 'unix', path: '/run/app.sock' });
    assert.deepEqual(parseAddress('fd://3'), { kind: 'fd', fd: 3 });
  });

  it('unix://PATH is PATH as Gunicorn reads it: a relative path stays relative, not one in /', () => {
    // Gunicorn binds ./app.sock for unix://app.sock; kept, the "//" made it /app.sock.
    assert.deepEqual(parseAddress('unix://app.sock'), { kind: 'unix', path: 'app.sock' });
    assert.deepEqual(parseAddress('unix://run/app.sock'), { kind: 'unix', path: 'run/app.sock' });
    assert.deepEqual(parseAddress('unix:app.sock'), { kind: 'unix', path: 'app.sock' });
    rejects('unix://', 'the socket path is empty');
  });

  it('tcp://HOST:PORT is HOST:PORT, as Gunicorn reads it', () => {
    assert.deepEqual(parseAddress('tcp://127.0.0.1:9000'), parseAddress('127.0.0.1:9000'));
    assert.deepEqual(parseAddress('TCP://[::1]:9000'), parseAddress('[::1]:9000'));
  });

  it('a port alone is refused with the two ways to write it, not bound as the host "8000"', () => {
    rejects('8000', 'a port alone is not an address: write 127.0.0.1:8000 (this machine only) or :8000 (every interface)');
    assert.deepEqual(parseAddress('localhost'), { kind: 'tcp', host: 'localhost', port: 8000 });
  });
});

describe('why a Unix socket could not be bound', () => {
  const tmp = scratchDir('tunicorn-unix-bind-');
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const fails = async (socketPath: string, why: string) =>
    assert.rejects(bindOne(`unix:${socketPath}`), (e: unknown) => {
      assert.ok(e instanceof BindError);
      // libuv says EACCES for a missing directory: never the port hint, always what the directory is.
      assert.equal(e.message, `cannot bind unix:${socketPath}: ${why}`);
      return true;
    });

  it('a directory that does not exist', async () => {
    await fails(path.join(tmp, 'missing', 'app.sock'), `the directory ${path.join(tmp, 'missing')} does not exist`);
    await fails(path.join(tmp, 'missing', 'deeper', 'app.sock'), `the directory ${path.join(tmp, 'missing', 'deeper')} does not exist`);
  });

  it('a file where a directory should be', async () => {
    const file = path.join(tmp, 'file');
    writeFileSync(file, '');
    await fails(path.join(file, 'app.sock'), `${file} is not a directory`);
    await fails(path.join(file, 'sub', 'app.sock'), `${file} is not a directory`);
  });

  it('a directory this user cannot write to', { skip: process.getuid?.() === 0 ? 'root writes to any directory' : false }, async () => {
    const ro = path.join(tmp, 'ro');
    mkdirSync(ro, 0o500);
    await fails(path.join(ro, 'app.sock'), `permission denied: this user cannot create files in ${ro}`);
  });
});

describe('bindRetrying (--bind and --health-bind)', () => {
  const retry = (said: string[]) => ({ attempts: 3, delayMs: 0, say: (line: string) => said.push(line) });

  it('tries a TCP address in use again, saying so each time, and returns what the bind gives once it succeeds', async () => {
    const said: string[] = [];
    let tries = 0;
    const got = await bindRetrying('127.0.0.1:8001', async () => {
      if (++tries < 3) throw new BindError('cannot bind', 'EADDRINUSE');
      return 'bound';
    }, retry(said));
    assert.equal(got, 'bound');
    assert.deepEqual(said, [
      'Connection in use: http://127.0.0.1:8001; retrying in 0 s (attempt 2 of 3)',
      'Connection in use: http://127.0.0.1:8001; retrying in 0 s (attempt 3 of 3)',
    ]);
  });

  it('gives up after the last attempt with the bind\'s own error', async () => {
    const said: string[] = [];
    const err = new BindError('cannot bind the health endpoint', 'EADDRNOTAVAIL');
    await assert.rejects(bindRetrying('10.9.9.9:8001', () => Promise.reject(err), retry(said)), (e) => e === err);
    assert.equal(said.length, 2);
    assert.match(said[0]!, /^Invalid address: http:\/\/10\.9\.9\.9:8001; retrying/);
  });

  it('does not wait on a Unix socket in use (another server answers on it), nor on other errors, nor without retry', async () => {
    const said: string[] = [];
    const inUse = new BindError('in use', 'EADDRINUSE');
    await assert.rejects(bindRetrying('unix:/tmp/x.sock', () => Promise.reject(inUse), retry(said)), (e) => e === inUse);
    const denied = new BindError('denied', 'EACCES');
    await assert.rejects(bindRetrying('127.0.0.1:80', () => Promise.reject(denied), retry(said)), (e) => e === denied);
    await assert.rejects(bindRetrying('127.0.0.1:80', () => Promise.reject(inUse), undefined), (e) => e === inUse);
    assert.deepEqual(said, []);
  });
});

describe('startupIsIPv6 and startupIsIP (src/ip.ts): what net.isIPv6 and net.isIP answer, without their regular expression', () => {
  const cases = [
    '::1', '::', '::0', 'fe80::1%eth0', 'fe80::1%1', 'fe80::1%a.b:c-d', 'fe80::1%', 'fe80::1%eth 0', 'fe80::1%%',
    '::1%', '1::2::3', '::ffff:1.2.3.4', '::ffff:1.2.3.256', '::1.2.3.4', '1.2.3.4', '127.1', '0127.0.0.1',
    '1.2.3.256', 'abcd', '2001:db8::/32', '2001:DB8::1', ' ::1', '::1 ', '[::1]', '1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4',
    '12345::1', '0000:0000::1', 'g::1', ':1', '1:', '1.2.3.4%x', '', 'localhost', 'example.com:80',
  ];
  it('agrees with net.isIPv6 on every case', () => {
    for (const s of cases) assert.equal(startupIsIPv6(s), net.isIPv6(s), JSON.stringify(s));
  });
  it('agrees with net.isIP on every case', () => {
    for (const s of cases) assert.equal(startupIsIP(s), net.isIP(s), JSON.stringify(s));
  });
});
