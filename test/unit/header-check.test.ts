/**
 * Node's header_timeout check (src/http/keep-alive.ts `sweepHeaderTimeouts`): taken from Node's own timer, which
 * runs every second on an idle server, into the sweeps, which sleep while no connection is open. A real
 * http.Server on loopback: Node's timer is cleared, and a client that never ends its header section still gets
 * Node's 408. A file of its own: the sweeps are the module's, one set per thread, as in a worker.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { it } from 'node:test';
import { sweepHeaderTimeouts } from '../../src/http/keep-alive.js';

it("runs Node's header-timeout check from the sweeps, with Node's timer cleared", { timeout: 10_000 }, async (t) => {
  const server = http.createServer({ headersTimeout: 300, requestTimeout: 0, connectionsCheckingInterval: 1000 }, (_req, res) => res.end('ok'));
  t.after(() => server.close());
  let moved: boolean | undefined;
  // After Node's own 'listening' listener (added as the server was made), which starts its timer.
  server.once('listening', () => (moved = sweepHeaderTimeouts(server, 1000)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  assert.equal(moved, true, 'the timer was found');
  const key = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connectionsCheckingInterval')!;
  const timer = (server as unknown as Record<symbol, { _destroyed: boolean }>)[key]!;
  assert.equal(timer._destroyed, true, "Node's own timer is cleared");

  // A header section that never ends: Node's check, run by a sweep every 0.5 s, answers 408 once 300 ms pass.
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, '127.0.0.1');
  t.after(() => client.destroy());
  client.write('GET / HTTP/1.1\r\nHost: x\r\n');
  let got = '';
  client.on('data', (b: Buffer) => (got += b.toString('latin1')));
  await once(client, 'close');
  assert.match(got, /^HTTP\/1\.1 408 Request Timeout\r\n/);
});
