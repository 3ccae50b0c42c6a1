import type http from 'node:http';
import type net from 'node:net';

/**
 * How often idle keep-alive connections are looked for. A connection is closed between `keepalive` + 1 s and
 * that + SWEEP_MS after its last response.
 */
const SWEEP_MS = 500;

/** Node's own margin: it closes an idle connection 1 s after the `Keep-Alive: timeout=N` it advertised. */
const MARGIN_MS = 1000;

/** What Node's connection list gives for each connection (`closeIdleConnections` reads the same field). */
interface TrackedParser {
  readonly socket?: net.Socket & { _httpMessage?: http.ServerResponse | null };
}
interface ConnectionsList {
  idle(): TrackedParser[];
}

/** An idle connection as the last sweep saw it: its byte count then, and when it was first seen idle. */
interface Mark {
  readonly read: number;
  readonly since: number;
}

/**
 * Node keeps the keep-alive timeout with a timer on each socket: set when a response finishes, cleared when
 * the next request arrives, two timer-list operations for every request on a keep-alive connection. This
 * keeps the same timeout with one sweep per worker instead, over the list Node already keeps of the
 * connections that are not parsing a request (the one behind `closeIdleConnections()`). A connection is closed
 * once two sweeps `keepalive` + 1 s apart found it idle, with no response on it and no byte read in between.
 *
 * Call it once the server is 'listening' (Node makes the list then). It returns false, having done nothing,
 * if the list is not there (a Node release that changed it): the caller then leaves the timeout to Node.
 */
export function sweepIdleConnections(server: http.Server, keepAliveMs: number): boolean {
  const key = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections');
  const list = key && (server as unknown as Record<symbol, ConnectionsList | undefined>)[key];
  if (typeof list?.idle !== 'function') return false;
  const limit = keepAliveMs + MARGIN_MS;
  let marks = new Map<net.Socket, Mark>();
  const sweep = (): void => {
    const now = performance.now();
    const next = new Map<net.Socket, Mark>();
    for (const { socket } of list.idle()) {
      // Idle in Node's sense means only "not parsing a request": a response may still be running or be
      // written to a slow reader. Its socket holds it until its last byte is handed to the kernel.
      if (!socket || socket._httpMessage || socket.destroyed) continue;
      const read = socket.bytesRead;
      const mark = marks.get(socket);
      const since = mark !== undefined && mark.read === read ? mark.since : now;
      if (now - since >= limit) socket.destroy();
      else next.set(socket, { read, since });
    }
    marks = next;
  };
  setInterval(sweep, Math.min(SWEEP_MS, keepAliveMs)).unref();
  return true;
}
