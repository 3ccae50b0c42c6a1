import type http from 'node:http';
import type net from 'node:net';

/**
 * How a client's FIN on an HTTP/1 connection is read. A FIN is both what a client that gives up sends
 * (its close) and what one that half-closes after its request and waits for the answer sends (`nc -N`,
 * `shutdown(SHUT_WR)`, some load balancers' health checks); the server cannot tell them apart when it comes.
 *
 * Node's own reading (`httpAllowHalfOpen` false) ends the connection at the FIN: an idle stream or a handler
 * still thinking learns at once that its client is gone (its request emits 'close', a Fetch handler's
 * `request.signal` aborts), but whatever the app writes after the FIN is refused. A large response under
 * backpressure (`res.write()` waiting for 'drain', a piped stream) lost everything past what the socket buffers
 * held when the FIN came (3.75 of 8 MiB on Node 20 on Linux; 64 to 128 KiB over TLS), while a client that
 * half-closed was still to read it.
 *
 * So the FIN ends the connection only when the client has taken everything written to it: when bytes are still
 * queued for it (the kernel's send buffer is full, the rest waits in the socket), the response goes on, whole,
 * and the connection closes after it (with the responses to requests pipelined before the FIN: Node marks the
 * last one to close). Going on costs nothing when the client has in fact closed: its kernel answers the next
 * bytes that reach it with a reset, and the write fails, which closes the response as a FIN would have, within
 * a round trip. When nothing is queued, no write is coming that would show it, and the FIN is the only sign.
 *
 * Sets the server's `httpAllowHalfOpen` (read by Node's socketOnEnd at each FIN), so Node leaves the connection
 * open when a response is on it; `endAtFin` then ends it as Node would have, unless bytes are queued. The same
 * holds for HTTP/1.1 over TLS, whose TLS socket must also be allowed to stay half-open (see HttpLayer).
 */
export function readHalfCloses(server: http.Server): void {
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
}

/** Node's parser on a connection it serves: null once the connection is upgraded (or closed). */
type Served = net.Socket & { parser?: unknown };

/**
 * A connection's 'end' listener (the client's FIN), added after Node's: shared by every connection, no closure.
 * With no response on the connection Node has ended it already (no longer writable). An upgraded connection (a
 * WebSocket, a tunnel after `CONNECT`) is the app's, as its FIN is: a plain one stays half-open until the app
 * ends it, as before (a tunnel still sends what its far end answers).
 */
export function endAtFin(this: Served): void {
  if (this.parser != null && this.writable && this.writableLength === 0) this.end();
}

/**
 * endAtFin for HTTP/1.1 over TLS: an upgraded TLS connection ends at the FIN, as the TLS socket (made with
 * allowHalfOpen false) did before HttpLayer allowed it to stay half-open.
 */
export function endAtFinTls(this: Served): void {
  if (this.parser == null) this.end();
  else endAtFin.call(this);
}
