/**
 * The keep-alive timeout, kept by a sweep per worker rather than a timer per request (src/http/keep-alive.ts):
 * - each response advertises it (`Keep-Alive: timeout=N`), and an idle connection is closed no sooner than
 *   N + 1 s after its last response, and not long after;
 * - requests keep a connection open, however long it lives;
 * - a client reading a large response slowly is not cut off while the response is still being written.
 * The pauses below are the clients' idle time, the input under test; every wait for the server is bounded.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FIXTURES, Server, stopAll } from '../helpers/server.js';

const KEEPALIVE_S = 1;
/** What the server may take past keepalive + 1 s: one sweep interval, and a loaded machine. */
const LATE_MS = 6000;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw keep-alive connection that reads responses framed by Content-Length, one at a time. */
class Connection {
  readonly socket: net.Socket;
  /** performance.now() when the server closed the connection. */
  readonly closed: Promise<number>;
  #buf = Buffer.alloc(0);
  #wake: (() => void) | null = null;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake?.();
    });
    this.closed = new Promise((resolve) => this.socket.on('close', () => resolve(performance.now())));
    this.socket.on('error', () => {});
  }

  /** Sends a GET and reads its response, within `ms`. */
  async get(target: string, ms = 15000): Promise<{ head: string; length: number; at: number }> {
    this.socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const end = performance.now() + ms;
    for (;;) {
      const split = this.#buf.indexOf('\r\n\r\n');
      if (split >= 0) {
        const head = this.#buf.subarray(0, split).toString('latin1');
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (this.#buf.length >= split + 4 + length) {
          this.#buf = this.#buf.subarray(split + 4 + length);
          return { head, length, at: performance.now() };
        }
      }
      if (this.socket.destroyed) throw new Error(`the connection closed before the response to ${target} was read`);
      const left = end - performance.now();
      if (left <= 0) throw new Error(`no complete response to ${target} within ${ms} ms`);
      await Promise.race([new Promise<void>((r) => (this.#wake = r)), this.closed, pause(Math.min(left, 500))]);
    }
  }
}

describe(`keep-alive timeout (--keep-alive ${KEEPALIVE_S})`, { concurrency: true }, () => {
  let port = 0;
  const open: Connection[] = [];
  const connect = () => {
    const c = new Connection(port);
    open.push(c);
    return c;
  };

  before(async () => {
    const server = new Server(['-b', '127.0.0.1:0', '-w', '1', '--keep-alive', String(KEEPALIVE_S), path.join(FIXTURES, 'listener.ts')]);
    port = await server.port();
    await server.workersBooted(1);
  });
  after(async () => {
    for (const c of open) c.socket.destroy();
    await stopAll();
  });

  it('advertises the timeout, and closes an idle connection no sooner than 1 s after it', async () => {
    const c = connect();
    const r = await c.get('/');
    assert.match(r.head, /^HTTP\/1\.1 200/);
    assert.match(r.head, new RegExp(`\r\nKeep-Alive: timeout=${KEEPALIVE_S}(\r\n|$)`, 'i'));
    const limit = (KEEPALIVE_S + 1) * 1000;
    const closedAt = await Promise.race([c.closed, pause(limit + LATE_MS).then(() => -1)]);
    assert.notEqual(closedAt, -1, `the idle connection was still open ${limit + LATE_MS} ms after its response`);
    const idle = closedAt - r.at;
    assert.ok(idle >= limit - 50, `closed after ${idle.toFixed(0)} ms idle, before keepalive + 1 s (${limit} ms)`);
  });

  it('keeps a connection open while requests come, longer than the timeout', async () => {
    const c = connect();
    // Six requests 800 ms apart: the connection lives 4 s, twice keepalive + 1 s, never idle that long.
    for (let i = 0; i < 6; i++) {
      if (i > 0) await pause(800);
      const r = await c.get('/pid');
      assert.match(r.head, /^HTTP\/1\.1 200/, `request ${i + 1}`);
    }
    assert.equal(c.socket.destroyed, false);
  });

  it('does not cut a response a slow client is still reading', async () => {
    const c = connect();
    // 32 MB fills the socket buffers on both sides: the rest waits in the worker while the client reads
    // nothing for 3.5 s, past keepalive + 1 s and a sweep.
    c.socket.pause();
    c.socket.write('GET /big?mb=32 HTTP/1.1\r\nHost: x\r\n\r\n');
    await pause((KEEPALIVE_S + 1) * 1000 + 1500);
    assert.equal(c.socket.destroyed, false, 'the connection was closed while its response was being written');
    c.socket.resume();
    let got = 0;
    const total = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${got} bytes arrived within 20 s`)), 20000);
      c.socket.removeAllListeners('data');
      c.socket.on('data', (d: Buffer) => {
        got += d.length;
        if (got > 32 * 1024 * 1024) {
          clearTimeout(t);
          resolve(got);
        }
      });
      c.socket.once('close', () => {
        clearTimeout(t);
        resolve(got);
      });
    });
    assert.ok(total > 32 * 1024 * 1024, `read ${total} bytes of a 32 MB response and its head`);
  });
});
