/**
 * A raw-socket HTTP/1 client for the hostile-input corpus: sends exact bytes (in timed chunks if asked) and
 * reads back every response and whether the server closed the connection.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface RawResponse {
  status: number;
  /** The status line's reason phrase. */
  reason: string;
  headers: Record<string, string>;
  body: string;
}

export interface RawResult {
  responses: RawResponse[];
  /** The server closed (or reset) the connection. */
  closed: boolean;
  /** Bytes left that did not parse as a response. */
  rest: string;
  /** performance.now() when the last bytes arrived (0: none did). */
  lastDataAt: number;
}

export interface RawStep {
  /** Bytes as a latin1 string. */
  send: string;
  /** Pause before this step. */
  pauseMs?: number;
}

/** Parses as many complete HTTP/1 responses as `data` holds (Content-Length or chunked bodies). */
export function parseResponses(data: string): { responses: RawResponse[]; rest: string } {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const [statusLine, ...lines] = data.slice(at, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine ?? '');
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let p = end + 4;
    let body = '';
    const status = Number(m[1]);
    if (status >= 100 && status < 200) {
      at = p;
      continue;
    }
    if (headers['transfer-encoding']?.includes('chunked')) {
      let complete = false;
      for (;;) {
        const le = data.indexOf('\r\n', p);
        if (le < 0) break;
        const size = parseInt(data.slice(p, le), 16);
        if (size === 0) {
          const te = data.indexOf('\r\n', le + 2);
          if (te < 0) break;
          p = te + 2;
          complete = true;
          break;
        }
        if (data.length < le + 2 + size + 2) break;
        body += data.slice(le + 2, le + 2 + size);
        p = le + 2 + size + 2;
      }
      if (!complete) break;
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (data.length < p + n) break;
      body = data.slice(p, p + n);
      p += n;
    } else if (headers.connection === 'close') {
      body = data.slice(p);
      p = data.length;
    }
    responses.push({ status, reason: m[2]!, headers, body });
    at = p;
  }
  return { responses, rest: data.slice(at) };
}

/**
 * Sends the steps and collects responses until the server closes, `want` responses came and we are not
 * waiting for a close, or `ms` passes. With `halfClose`, our side ends after the last step. With `tls`, over TLS
 * (HTTP/1.1 by ALPN, the server's certificate not checked), the steps starting once the handshake is done.
 */
export function exchange(
  port: number,
  steps: RawStep[],
  opts: { want: number; waitClose: boolean; halfClose?: boolean; ms: number; host?: string; localAddress?: string; tls?: boolean },
): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const to = { port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress };
    const socket = opts.tls ? tls.connect({ ...to, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }) : net.connect(to);
    let data = '';
    let lastDataAt = 0;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      socket.destroy();
      const { responses, rest } = parseResponses(data);
      resolve({ responses, closed, rest, lastDataAt });
    };
    timers.push(setTimeout(() => finish(false), opts.ms));
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      data += d;
      lastDataAt = performance.now();
      if (!opts.waitClose && parseResponses(data).responses.length >= opts.want) {
        // Give the server the chance to show an extra response or a close: end our side and wait for its end.
        socket.end();
      }
    });
    socket.on('close', () => finish(true));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') finish(true);
      else if (!settled) reject(err);
    });
    socket.once(opts.tls ? 'secureConnect' : 'connect', async () => {
      for (const step of steps) {
        if (step.pauseMs) await new Promise((r) => timers.push(setTimeout(r, step.pauseMs)));
        // Ended by us once the responses wanted came (the 'data' listener): the server may still be reading
        // (a lingering close), so the socket is not destroyed yet, and a write would fail after our end.
        if (settled || socket.destroyed || socket.writableEnded) return;
        socket.write(Buffer.from(step.send, 'latin1'));
      }
      if (opts.halfClose && !socket.destroyed) socket.end();
    });
  });
}

/**
 * A kept-alive raw connection: `ask` sends a GET and resolves with the next whole answer, or, once the server has
 * closed or reset the connection, with what came before and how it ended (`(closed by the server)`,
 * `(error ECONNRESET)`).
 */
export class KeptConnection {
  #data = '';
  #waiting: ((r: { raw: string }) => void) | null = null;
  #ended = '';
  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.#data += d;
      const { responses, rest } = parseResponses(this.#data);
      if (responses.length > 0 && this.#waiting) {
        const raw = this.#data.slice(0, this.#data.length - rest.length);
        this.#data = rest;
        this.#settle(raw);
      }
    });
    socket.on('end', () => this.#settle(`${this.#data}(closed by the server)`, true));
    socket.on('error', (e: NodeJS.ErrnoException) => this.#settle(`${this.#data}(error ${e.code})`, true));
  }

  #settle(raw: string, end = false): void {
    if (end) this.#ended ||= raw;
    const w = this.#waiting;
    this.#waiting = null;
    w?.({ raw });
  }

  static open(port: number): Promise<KeptConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new KeptConnection(socket)));
      socket.once('error', reject);
    });
  }

  ask(p: string): Promise<{ raw: string }> {
    if (this.#ended) return Promise.resolve({ raw: this.#ended });
    const answer = new Promise<{ raw: string }>((resolve) => (this.#waiting = resolve));
    this.socket.write(`GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`);
    return answer;
  }
}
