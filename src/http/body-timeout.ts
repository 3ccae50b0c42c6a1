import type http from 'node:http';
import type net from 'node:net';
import { isLingering } from './cut.js';
import { connectionsList, sweepEvery } from './keep-alive.js';

/** A connection receiving a body as the last sweep saw it: its count of bytes read then, and since when. */
interface Mark {
  readonly read: number;
  readonly since: number;
}

/**
 * What to do with a stalled body: `res` is the request's response, or null once it has been sent (the app
 * answered without waiting for the body, which is still due).
 */
export type OnStall = (req: http.IncomingMessage, res: http.ServerResponse | null, socket: net.Socket) => void;

/**
 * body_timeout for HTTP/1 requests, with one sweep per server instead of a timer per request. A timer on the
 * socket, set when a request with a body came and cleared when the body was whole, cost the worker 7,000
 * instructions for every such request (bench/instructions.sh with LOAD=post: 119 k a request with it, 112 k
 * without, 107-110 k for plain Node; docs/design.md): the two timer-list operations, three listeners and the
 * reads that refreshed it. The sweep looks, every 0.5 s (or every `bodyMs`, if shorter: sweepEvery), at the list Node
 * keeps of the connections whose parser is inside a request (`active()`, beside the `idle()` the keep-alive
 * sweep reads): one whose request has its head and not yet its whole body, and whose count of bytes read has
 * not moved for `bodyMs`, is stalled. A request whose body came between two sweeps is never seen, and costs
 * nothing.
 *
 * The client's silence only counts: while the app is behind (appIsBehind), the socket is not read and the time
 * starts again. A stalled request whose response waits behind an earlier pipelined one's is handled once that
 * one is sent (the next sweep after). A stall is acted on between `bodyMs` and `bodyMs` + the sweep's period
 * after the last byte came.
 *
 * Call it once the server is 'listening' (Node makes the list then). It returns false, having done nothing,
 * if the list is not there (a Node release that changed it): the caller then times each body itself.
 */
export function sweepStalledBodies(server: http.Server, bodyMs: number, onStall: OnStall): boolean {
  const list = connectionsList(server);
  if (typeof list?.active !== 'function') return false;
  const active = list.active.bind(list);
  let marks = new Map<net.Socket, Mark>();
  const sweep = (): void => {
    const now = performance.now();
    const next = new Map<net.Socket, Mark>();
    for (const { socket, incoming: req } of active()) {
      // In its head (header_timeout's), or between two requests: no body is coming.
      if (!socket || !req || req.complete || socket.destroyed || socket.writableEnded || isLingering(socket)) continue;
      const read = socket.bytesRead;
      const mark = marks.get(socket);
      const since = mark !== undefined && mark.read === read && !appIsBehind(req) ? mark.since : now;
      const res = socket._httpMessage ?? null;
      // Not stalled yet, or stalled behind the response to an earlier request, which is still being written.
      if (now - since < bodyMs || (res !== null && res.req !== req)) next.set(socket, { read, since });
      else onStall(req, res, socket);
    }
    marks = next;
  };
  sweepEvery(bodyMs, sweep);
  return true;
}

/**
 * Whether a request body is stalled by the app rather than by the client, for body_timeout: the app has begun
 * to read it and has not taken what came (it is busy between two reads, or paused the request: a pipe to a
 * slow Writable, a Fetch handler awaiting between two chunks of `request.body`). Node then stops reading the
 * socket (HTTP/2: stops opening the stream's window) once that buffer is full, until the app reads on, so the
 * client sends nothing however steady it is: seen, a Fetch handler taking 1.5 s per chunk of a 3 MB upload that
 * curl sent at once got body_timeout's 408 after 1 s. A body the app has not begun to read stays the client's
 * to send. What came and waits is the sign, not isPaused(): that is true too of a request read by `for await`
 * (or `stream/consumers`) while the app waits for the next chunk, and a client that stalled there would never
 * be cut; while the buffer is empty Node reads the socket, and a silent client is the one behind.
 */
export function appIsBehind(req: http.IncomingMessage): boolean {
  return req.readableDidRead && req.readableLength > 0;
}
