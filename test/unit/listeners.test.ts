/** The one module that touches Node internals to bind without accepting (src/listeners/handle.ts), and priming. */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { bindOne, closeListeners } from '../../src/listeners/bind.js';
import { bindTcp, BindError, localAddress } from '../../src/listeners/handle.js';
import { primeListeners } from '../../src/listeners/prime.js';

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

  it('a bound socket refuses connections until primed; after priming the kernel queues them and this process never accepts', async () => {
    const l = await bindOne('127.0.0.1:0');
    const port = (l.address as { port: number }).port;
    try {
      await assert.rejects(connect(port), /ECONNREFUSED/);
      let accepted = 0;
      (l.handle as unknown as { onconnection: () => void }).onconnection = () => accepted++;
      await primeListeners([l.fd], 16);
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
      await primeListeners([first.fd], 4, [first.url]);
      await assert.rejects(bindOne(`127.0.0.1:${port}`), (e: unknown) =>
        e instanceof BindError && e.message === `cannot bind http://127.0.0.1:${port}: address already in use (another process listens there; pick another port or stop it)`);
    } finally {
      closeListeners([first]);
    }
  });
});
