import type net from 'node:net';
import type { Config } from '../config/registry.js';
import type { ProxyProtocolMode } from '../config/sections/http.js';
import type { ErrorLog } from '../logging/error-log.js';
import { parseAllowList, type AllowList } from './allow-list.js';
import { setPeer } from './forwarded.js';
import { parseProxyHeader, ProxyProtocolError } from './proxy-protocol.js';

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

/** An HTTP/0.9 request line: a method and a target, and no version. */
const HTTP09 = /^[A-Za-z]+ [^ \r\n]+\r?$/;

/**
 * What happens to a plain-HTTP connection before Node's parser sees it: the PROXY protocol header (when on),
 * and a look at the first line, because llhttp waits silently for more after an HTTP/0.9 `GET /` (FACTS)
 * until the header timeout. Only the first chunk of a connection passes through JavaScript; the bytes read
 * are handed to the parser after it has taken the socket (it reads the socket's handle directly from then on).
 */
export class ConnectionGate {
  readonly #mode: ProxyProtocolMode;
  readonly #allowFrom: AllowList;
  readonly #timeoutMs: number;

  constructor(
    cfg: Config,
    private readonly log: ErrorLog,
  ) {
    this.#mode = cfg.proxyProtocol;
    this.#allowFrom = parseAllowList(cfg.proxyAllowFrom);
    this.#timeoutMs = cfg.headerTimeout * 1000;
  }

  /** Takes a socket accepted paused (`pauseOnConnect`); calls `pass` with it once it may be served. */
  accept(socket: net.Socket, pass: (socket: net.Socket) => void): void {
    const mode = this.#mode;
    if (mode !== 'off' && !this.#allowFrom.allows(socket.remoteAddress)) {
      this.log.debug(`PROXY protocol: connection from ${socket.remoteAddress} is not in proxy_allow_from; closed`);
      socket.destroy();
      return;
    }
    let buf: Buffer | null = null;
    let proxied = mode === 'off';
    const timer = setTimeout(() => socket.destroy(), this.#timeoutMs);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
    };
    const onClose = () => done();
    const onData = (chunk: Buffer) => {
      buf = buf ? Buffer.concat([buf, chunk]) : chunk;
      if (!proxied && mode !== 'off') {
        let header;
        try {
          header = parseProxyHeader(buf, mode);
        } catch (err) {
          done();
          this.log.debug(`PROXY protocol: ${err instanceof ProxyProtocolError ? err.message : String(err)} from ${socket.remoteAddress}; closed`);
          socket.destroy();
          return;
        }
        if (!header) return;
        if (header.address) {
          setPeer(socket, header.address);
          Object.defineProperty(socket, 'remotePort', { value: header.port, configurable: true, writable: true });
        }
        proxied = true;
        buf = buf.subarray(header.length);
        if (buf.length === 0) return;
      }
      done();
      const eol = buf.indexOf(0x0a);
      if (eol >= 0 && HTTP09.test(buf.toString('latin1', 0, eol))) {
        socket.end(BAD_REQUEST);
        return;
      }
      pass(socket);
      // The parser now reads the handle itself; what was read already goes to it through the 'data' listener
      // it added.
      socket.emit('data', buf);
      socket.resume();
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', () => socket.destroy());
    socket.resume();
  }
}
