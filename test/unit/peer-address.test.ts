/**
 * The client address the access log names (%(h)s), read when a request starts: over real sockets, the native
 * getpeername (native/peek.c) must give what Node's `socket.remoteAddress` gives, for IPv4, IPv6, an IPv4
 * client of a dual-stack listener and a Unix socket, and an address set for the socket (PROXY protocol) or
 * already read by Node must win over the kernel's.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
// From dist: the native module is found next to the compiled code (dist/native/peek.node).
import { peerAddress, setPeer } from '../../dist/http/forwarded.js';
import { openPeer } from '../../dist/http/peek.js';
import { until } from '../helpers/server.js';
import { scratchDir } from '../helpers/scratch.js';

type Seen = { peer: string | undefined; cached: boolean; node: string | undefined };

/** One request to a server listening on `where`; what peerAddress said, and then what Node says. */
async function seen(where: net.ListenOptions, client: http.RequestOptions, before?: (req: http.IncomingMessage) => void): Promise<Seen> {
  let got: Seen | undefined;
  const server = http.createServer((req, res) => {
    before?.(req);
    const peer = peerAddress(req);
    const cached = (req.socket as net.Socket & { _peername?: unknown })._peername !== undefined;
    got = { peer, cached, node: req.socket.remoteAddress };
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(where, resolve));
  try {
    const port = where.path ? undefined : (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve, reject) => {
      http
        .get({ ...client, port, path: '/', agent: false }, (res) => {
          res.resume();
          res.on('end', resolve);
        })
        .on('error', reject);
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  assert.ok(got, 'the request reached the server');
  return got;
}

const hasIPv6 = Object.values(os.networkInterfaces()).some((list) => list?.some((a) => a.family === 'IPv6' && a.internal));

describe('the client address for the access log', () => {
  const tmp = scratchDir('tunicorn-peer-');
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('native/peek.c is built with peer()', () => {
    assert.equal(typeof openPeer(), 'function', `dist/native/peek.node has peer(): ${String(openPeer())}`);
  });

  it('IPv4: the address Node gives, read without Node (nothing cached on the socket)', async () => {
    const s = await seen({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1' });
    assert.deepEqual(s, { peer: '127.0.0.1', cached: false, node: '127.0.0.1' });
  });

  it('IPv4 octets of one, two and three digits, written as Node writes them', async () => {
    for (const from of ['127.0.0.9', '127.10.99.100', '127.255.200.1', '127.1.0.90']) {
      const s = await seen({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', localAddress: from });
      assert.deepEqual(s, { peer: from, cached: false, node: from });
    }
  });

  it('IPv6 loopback', { skip: !hasIPv6 && 'no IPv6 loopback here' }, async () => {
    const s = await seen({ host: '::1', port: 0 }, { host: '::1' });
    assert.deepEqual(s, { peer: '::1', cached: false, node: '::1' });
  });

  it('an IPv4 client of a dual-stack listener: the mapped form, as Node gives it', { skip: !hasIPv6 && 'no IPv6 here' }, async () => {
    const s = await seen({ host: '::', port: 0, ipv6Only: false }, { host: '127.0.0.1' });
    assert.equal(s.peer, s.node);
    assert.equal(s.peer, '::ffff:127.0.0.1');
  });

  it('a Unix socket has no address: undefined, as from Node', async () => {
    const s = await seen({ path: path.join(tmp, 's.sock') }, { socketPath: path.join(tmp, 's.sock') });
    assert.equal(s.peer, undefined);
    assert.equal(s.node, undefined);
  });

  it('keep-alive: each request of a connection gets its address; a new connection on a reused descriptor, its own', async () => {
    /** Two clients in turn, two requests each: what the app saw, and the descriptor each request came on. */
    const twoClients = async (): Promise<{ seenBy: string[]; fds: number[] }> => {
      const seenBy: string[] = [];
      const fds: number[] = [];
      const server = http.createServer((req, res) => {
        // Node's own read is left out: it would keep the answer on the socket, which peerAddress then uses.
        const fd = (req.socket as net.Socket & { _handle: { fd: number } })._handle.fd;
        seenBy.push(`${req.url} ${peerAddress(req)} ${(req.socket as net.Socket & { _peername?: unknown })._peername ? 'cached' : 'native'}`);
        fds.push(fd);
        res.end('ok');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as net.AddressInfo).port;
      try {
        // Linux answers on all of 127/8: each client connects from its own source address.
        for (const from of ['127.0.0.2', '127.0.0.3']) {
          const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
          for (const n of [1, 2])
            await new Promise<void>((resolve, reject) => {
              http
                .get({ host: '127.0.0.1', port, path: `/${from}/${n}`, localAddress: from, agent }, (res) => {
                  res.resume();
                  res.on('end', resolve);
                })
                .on('error', reject);
            });
          agent.destroy();
          await until(() => (server as http.Server & { _connections: number })._connections === 0, 3000, 'the connection closed');
        }
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
      return { seenBy, fds };
    };
    // The case the check by connection is for: the second connection gets the first one's descriptor. The
    // kernel gives the lowest free one, which is usually it; a descriptor the process opened in between (the
    // test runner's own) can take it, so the pair is tried again, up to five times.
    let reused = false;
    for (let attempt = 0; attempt < 5 && !reused; attempt++) {
      const { seenBy, fds } = await twoClients();
      assert.deepEqual(seenBy, [
        '/127.0.0.2/1 127.0.0.2 native',
        '/127.0.0.2/2 127.0.0.2 native',
        '/127.0.0.3/1 127.0.0.3 native',
        '/127.0.0.3/2 127.0.0.3 native',
      ]);
      assert.deepEqual([fds[1], fds[3]], [fds[0], fds[2]], 'each connection keeps its descriptor');
      reused = fds[2] === fds[0];
    }
    assert.ok(reused, 'in five tries, the second connection never got the first one\'s descriptor');
  });

  it('an address set for the socket (PROXY protocol) wins over the kernel', async () => {
    const s = await seen({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1' }, (req) => setPeer(req.socket, '203.0.113.7'));
    assert.equal(s.peer, '203.0.113.7');
  });

  it('an address Node already read is taken as it is', async () => {
    let read: string | undefined;
    const s = await seen({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1' }, (req) => {
      read = req.socket.remoteAddress;
    });
    assert.equal(read, '127.0.0.1');
    assert.equal(s.peer, '127.0.0.1');
  });
});
