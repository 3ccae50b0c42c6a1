import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';

/**
 * Stand-ins for what the access log reads of a request and its response (see AccessEntry), for an answer
 * tunicorn wrote straight to the socket: a request Node's parser rejected (400, 414, 431, 505), one whose
 * header section did not come within header_timeout (408), a first request line the gate refused (400), and a
 * refused upgrade or CONNECT request, which has no response object.
 */

/**
 * A request whose head was never parsed: the access log writes `-` for its request line, method, path,
 * version and headers (the bytes it got are not a request to quote), and the client's address from its socket.
 */
export class UnparsedRequest {
  readonly method = undefined;
  readonly url = undefined;
  readonly httpVersion = undefined;
  readonly rawHeaders: string[] = [];
  readonly headers = {};
  constructor(readonly socket: net.Socket) {}
}

/**
 * An answer written to the socket: its status, its header block (for `%({name}o)s`) and the body bytes sent
 * (none for a HEAD request).
 */
export class RawAnswer {
  readonly headersSent = true;
  constructor(
    readonly statusCode: number,
    readonly _header: string,
    readonly _contentLength: number,
  ) {}

  getHeader(): undefined {
    return undefined;
  }
}

/** Told of each answer tunicorn gives without the app: the access log's line and StatsD's count for it. */
export interface RefusalLog {
  /** A refusal sent through the request's response object: logged once the response closes. */
  response(req: IncomingMessage, res: ServerResponse): void;
  /**
   * A refusal written to the socket itself: logged now. `req`: the request, when Node parsed its head; else
   * null. `head`: the status line and header block written; `body`: the body bytes written after it.
   */
  raw(req: IncomingMessage | null, socket: net.Socket, status: number, head: string, body: number): void;
}
