import http from 'node:http';
import { parseAddress } from '../listeners/address.js';

export interface HealthState {
  /** The master runs (always true while it answers). */
  readonly live: boolean;
  /** The wanted number of workers serves and no graceful stop has begun. */
  readonly ready: boolean;
  readonly detail: string;
}

/**
 * The master's own health endpoint (--health-bind). The one socket the master accepts on: it is not the
 * app's, so it says what the master knows (workers serving, stop begun) even when every worker is busy.
 *   GET /health/live  -> 200 while the master runs
 *   GET /health/ready -> 200 ready / 503 not ready
 */
export class HealthServer {
  readonly #server: http.Server;

  constructor(private readonly state: () => HealthState) {
    this.#server = http.createServer((req, res) => this.answer(req, res));
    this.#server.keepAliveTimeout = 1000;
  }

  listen(raw: string): Promise<string> {
    const a = parseAddress(raw);
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      const done = () => {
        this.#server.off('error', reject);
        const addr = this.#server.address();
        resolve(typeof addr === 'string' ? `unix:${addr}` : addr ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : raw);
      };
      if (a.kind === 'tcp') this.#server.listen({ host: a.host, port: a.port }, done);
      else if (a.kind === 'unix') this.#server.listen(a.path, done);
      else this.#server.listen({ fd: a.fd }, done);
    });
  }

  close(): void {
    this.#server.close();
    this.#server.closeAllConnections();
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const s = this.state();
    let status: number;
    if (req.method !== 'GET' && req.method !== 'HEAD') status = 405;
    else if (path === '/health/live') status = s.live ? 200 : 503;
    else if (path === '/health/ready' || path === '/health') status = s.ready ? 200 : 503;
    else status = 404;
    const body = status === 404 ? 'not found: try /health/live or /health/ready\n' : `${status === 200 ? 'ok' : http.STATUS_CODES[status]!.toLowerCase()}: ${s.detail}\n`;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}
