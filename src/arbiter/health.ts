import { lstatSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import { formatAddress, parseAddress } from '../listeners/address.js';
import { resolveHost, unixSocketAnswers } from '../listeners/bind.js';
import { BindError, explainBindError, explainUnixBindError } from '../listeners/handle.js';
import { CONTENT_TYPE } from './prometheus.js';

const isSocket = (p: string): boolean => {
  try {
    return lstatSync(p).isSocket();
  } catch {
    return false;
  }
};

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
 *   GET /metrics      -> Prometheus metrics, with the `metrics` setting (`metrics` returns null without it)
 */
export class HealthServer {
  readonly #server: http.Server;

  constructor(
    private readonly state: () => HealthState,
    private readonly metrics: () => Promise<string> | null = () => null,
  ) {
    this.#server = http.createServer((req, res) => this.answer(req, res));
    this.#server.keepAliveTimeout = 1000;
  }

  /**
   * Listens on `raw` and resolves with the URL bound. Fails as a --bind address does, in the same words: a
   * ConfigError for a host that does not resolve, a BindError (with the errno's code) for the rest.
   */
  async listen(raw: string, umask = 0): Promise<string> {
    const a = parseAddress(raw);
    const host = a.kind === 'tcp' ? await resolveHost(a.host, 'healthBind (--health-bind)') : '';
    const listen = () =>
      new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        const done = () => {
          this.#server.off('error', reject);
          resolve();
        };
        if (a.kind === 'tcp') this.#server.listen({ host, port: a.port }, done);
        else if (a.kind === 'unix') {
          // The umask setting for the socket file, as for a unix: bind (bind(2) happens within listen()).
          const old = process.umask(umask);
          try {
            this.#server.listen(a.path, done);
          } finally {
            process.umask(old);
          }
        }
        else this.#server.listen({ fd: a.fd }, done);
      });
    try {
      try {
        await listen();
      } catch (err) {
        // A socket file left by a master that did not exit (SIGKILL, the OOM killer): replaced, as --bind and
        // the control socket replace theirs. One that answers is live (an old master's, during USR2).
        const stale =
          a.kind === 'unix' && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && isSocket(a.path) && !(await unixSocketAnswers(a.path));
        if (!stale) throw err;
        unlinkSync(a.path);
        await listen();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = !code ? (err as Error).message : a.kind === 'unix' ? explainUnixBindError(a.path, code) : explainBindError(code);
      throw new BindError(`cannot bind the health endpoint ${formatAddress(a)} (--health-bind): ${why}`, code ?? 'EUNKNOWN');
    }
    const addr = this.#server.address();
    return typeof addr === 'string' ? `unix:${addr}` : addr ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : raw;
  }

  close(): void {
    this.#server.close();
    this.#server.closeAllConnections();
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      const text = this.metrics();
      if (text) return void text.then((body) => this.send(req, res, 200, body, CONTENT_TYPE), (err: Error) => this.send(req, res, 500, `metrics failed: ${err.message}\n`));
    }
    const s = this.state();
    let status: number;
    if (req.method !== 'GET' && req.method !== 'HEAD') status = 405;
    else if (path === '/health/live') status = s.live ? 200 : 503;
    else if (path === '/health/ready' || path === '/health') status = s.ready ? 200 : 503;
    else status = 404;
    const body =
      status === 404
        ? `not found: try /health/live or /health/ready${path === '/metrics' ? ' (/metrics needs --metrics)' : ''}\n`
        : status === 405
          ? `method not allowed: ${req.method} (the health endpoint answers GET and HEAD)\n`
          : `${status === 200 ? 'ok' : http.STATUS_CODES[status]!.toLowerCase()}: ${s.detail}\n`;
    this.send(req, res, status, body);
  }

  private send(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
    if (res.destroyed) return;
    res.writeHead(status, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      // RFC 9110, 15.5.6: a 405 names the methods that are allowed.
      ...(status === 405 ? { allow: 'GET, HEAD' } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}
