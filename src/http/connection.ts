import type net from 'node:net';
import { Duplex } from 'node:stream';
import type { Config } from '../config/registry.js';
import type { ProxyProtocolMode } from '../config/sections/http.js';
import type { ErrorLog } from '../logging/error-log.js';
import { parseAllowList, type AllowList } from './allow-list.js';
import { setPeer } from './forwarded.js';
import { fdOf, openRead, pastEmptyLines, type Peek } from './peek.js';
import { lingerClose } from './cut.js';
import { parseProxyHeader, ProxyProtocolError } from './proxy-protocol.js';
import { headerTimeoutRefusal, INVALID_REQUEST_LINE, logRaw, type Refusal, startsWithHead } from './refusals.js';
import type { RefusalLog } from '../logging/refused.js';

/** What an HTTP/2 client with prior knowledge sends first (RFC 9113 section 3.4). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** tchar (RFC 9110 section 5.6.2), by byte: what a method is made of. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;
const isDigit = (b: number | undefined): boolean => b !== undefined && b >= 0x30 && b <= 0x39;

/**
 * Whether `buf[start, eol)` (eol: the LF) is a request line as RFC 9112 spells it: method SP target SP
 * HTTP/d.d CR. llhttp lets some others through (two spaces; FACTS: HTTP/0.9 `GET /`, which it then waits
 * on), so the first one is checked here, on the bytes: no string is made for it.
 */
export function isRequestLine(buf: Uint8Array, start: number, eol: number): boolean {
  let i = start;
  while (i < eol && TCHAR[buf[i]!]) i++;
  if (i === start || buf[i] !== 0x20) return false;
  const target = ++i;
  // Any byte but controls, SP and DEL.
  while (i < eol && buf[i]! > 0x20 && buf[i] !== 0x7f) i++;
  if (i === target || buf[i] !== 0x20) return false;
  // SP "HTTP/" DIGIT "." DIGIT CR, then the LF at eol.
  return (
    eol === i + 10 &&
    buf[i + 1] === 0x48 && buf[i + 2] === 0x54 && buf[i + 3] === 0x54 && buf[i + 4] === 0x50 && buf[i + 5] === 0x2f &&
    isDigit(buf[i + 6]) && buf[i + 7] === 0x2e && isDigit(buf[i + 8]) && buf[i + 9] === 0x0d
  );
}

/** What firstLine() found: a whole request line, the start of one still coming, or neither. */
export enum FirstLine {
  Bad,
  Whole,
  Partial,
}

/**
 * The first request line in `b[0, n)`, after any CRLFs: Whole when isRequestLine accepts it, Partial when its
 * LF has not come yet but what came can begin one (a method, then a space or nothing more), else Bad. Stricter
 * than the parser about what comes before the line (see pastEmptyLines): for a gthread hand-over, a lone CR or
 * LF may end the header section of a request whose start the thread read, and at accept, what this does not
 * call Whole goes the JavaScript way, which skips what the parser skips.
 */
export function firstLine(b: Uint8Array, n: number): FirstLine {
  let start = 0;
  while (start + 1 < n && b[start] === 0x0d && b[start + 1] === 0x0a) start += 2; // empty lines before a request
  let eol = start;
  while (eol < n && b[eol] !== 0x0a) eol++;
  if (eol < n) return isRequestLine(b, start, eol) ? FirstLine.Whole : FirstLine.Bad;
  let i = start;
  while (i < n && b[i]! >= 0x41 && b[i]! <= 0x5a) i++;
  return i > start && (i === n || b[i] === 0x20) ? FirstLine.Partial : FirstLine.Bad;
}

/** Whether the first `n` bytes of `b` can begin the h2c preface ('P' first, then the rest: "POST" is not). */
function mayBePreface(b: Uint8Array, n: number): boolean {
  const m = Math.min(n, H2_PREFACE.length);
  for (let i = 0; i < m; i++) if (b[i] !== H2_PREFACE[i]) return false;
  return true;
}

/**
 * Gives the socket to Node's parser with the bytes already read from it: the parser reads the handle itself
 * from then on, and `bytes` reach it through the 'data' listener it added.
 */
function passWith(socket: net.Socket, bytes: Buffer, pass: (socket: net.Socket) => void): void {
  pass(socket);
  socket.emit('data', bytes);
  socket.resume();
}

/**
 * Whether the first chunk of a connection holds a first request line that isRequestLine refuses: then it is
 * answered 400 and ended here. A chunk that ends before the line's LF is left to Node's parser. The empty lines
 * before the line are skipped as the parser skips them (until 2026-12-06 a lone LF there was refused 400 on a
 * connection's first request, and ignored before every later one).
 */
function refusedFirstLine(socket: net.Socket, buf: Buffer, log: ErrorLog, refusals: RefusalLog | null): boolean {
  const start = pastEmptyLines(buf);
  const eol = buf.indexOf(0x0a, start);
  if (eol < 0 || isRequestLine(buf, start, eol)) return false;
  log.debug(`Bad request from ${socket.remoteAddress}: answered ${INVALID_REQUEST_LINE.line}`);
  const head = startsWithHead(buf, start);
  socket.end(head ? INVALID_REQUEST_LINE.rawHead : INVALID_REQUEST_LINE.raw);
  logRaw(refusals, null, socket, INVALID_REQUEST_LINE, head);
  // What the client sent after the line is read and thrown away until it closes, for a bounded time: a plain
  // close with bytes unread would reset the connection and lose the 400, and a client that kept its side open
  // held the connection (a sync worker with it) for as long as it liked.
  lingerClose(socket);
  return true;
}

/**
 * The same look at the first request line for an HTTP/1.1 connection over TLS (ALPN `http/1.1` or none), on
 * its first decrypted chunk, before `pass` gives the TLS socket to Node's parser: the gate cannot read it at
 * accept, where the descriptor holds ciphertext. The chunk is read through the TLS socket's stream, before the
 * parser reads the socket's handle itself (a 'data' listener added after that would take it from the parser
 * for the connection's life). header_timeout is the server's TLS timer (HttpLayer), from the accept.
 */
export function checkFirstLineOf(secure: net.Socket, pass: (socket: net.Socket) => void, log: ErrorLog, refusals: RefusalLog | null = null): void {
  const done = () => {
    secure.off('data', onData);
    secure.off('end', destroySocket);
    secure.off('close', done);
    secure.off('error', destroySocket);
    secure.pause();
  };
  const onData = (chunk: Buffer) => {
    done();
    // Answered 408 at header_timeout while it was held here: nothing more is served on it.
    if (!secure.writable) return;
    if (!refusedFirstLine(secure, chunk, log, refusals)) passWith(secure, chunk, pass);
  };
  secure.on('data', onData);
  // As on plain HTTP: a peer that closes its side before its first request is owed nothing.
  secure.on('end', destroySocket);
  secure.on('close', done);
  // Node's parser listens for errors from the hand-over on; until then one must not go unheard.
  secure.on('error', destroySocket);
}

/** Shared by every socket the gate holds: no closure per connection. */
function destroySocket(this: net.Socket): void {
  this.destroy();
}

/**
 * What happens to a plain-HTTP connection before Node's parser sees it: the PROXY protocol header (when on),
 * and a look at the first request line (see isRequestLine).
 *
 * Where native/peek.c is built, the gate first reads what the kernel holds for the socket as it is accepted
 * (one recv(2) that does not wait): a whole, valid first request line there (the usual case: a client sends its
 * request as it connects) and the bytes go to Node's parser at once, which answers the first request before the
 * event loop has polled the socket even once; the parser reads the socket's handle itself from then on.
 * Otherwise (no module, nothing arrived yet, a partial or bad line, maybe h2c, the PROXY protocol) the first
 * bytes pass through JavaScript as they come, after any read at accept, and are handed to the parser once it
 * has taken the socket.
 *
 * A connection held here is not yet Node's, so Node's header timeout does not cover it: the gate times it
 * itself, to the millisecond rather than with a sweep every second as Node does. A sync worker or a gthread
 * thread serves one connection at a time, and a silent one holds it until then.
 */
export class ConnectionGate {
  readonly #mode: ProxyProtocolMode;
  readonly #allowFrom: AllowList;
  readonly #timeoutMs: number;
  readonly #timedOut: Refusal;
  /** Peers that may speak h2c (HTTP/2 without TLS, prior knowledge); null when h2 is not offered. */
  readonly #h2cFrom: AllowList | null;
  /** native/peek.c's read(fd), or null (no module, or the PROXY protocol on). */
  readonly #read: Peek | null;
  readonly #bytes: Uint8Array;
  /** How the gate sees first bytes, for the worker's debug log. */
  readonly how: string;

  /**
   * `read`: native/peek.c's read function, or why there is none (then every first chunk is read in
   * JavaScript); opened here when not given.
   */
  constructor(
    cfg: Config,
    private readonly log: ErrorLog,
    read?: Peek | string,
    /** Where its answers are logged (the access log, StatsD), if anywhere. */
    private readonly refusals: RefusalLog | null = null,
  ) {
    this.#h2cFrom = cfg.httpProtocols.includes('h2') ? parseAllowList(cfg.forwardedAllowIps) : null;
    this.#mode = cfg.proxyProtocol;
    this.#allowFrom = parseAllowList(cfg.proxyAllowFrom);
    this.#timeoutMs = cfg.headerTimeout * 1000;
    this.#timedOut = headerTimeoutRefusal(cfg);
    // A PROXY protocol header comes first, and is parsed in JavaScript: no native read then.
    const found = this.#mode !== 'off' ? `proxy_protocol ${this.#mode}` : (read ?? openRead());
    this.#read = typeof found === 'string' ? null : found;
    this.#bytes = this.#read ? new Uint8Array(this.#read.buffer) : new Uint8Array(0);
    this.how =
      typeof found === 'string' ? `reading them in JavaScript (${found})` : 'reading them at accept (native read)';
  }

  /**
   * Takes a socket accepted paused (`pauseOnConnect`); calls `pass` with it once it may be served as HTTP/1,
   * or `passH2c` with a stream of it (the bytes read first included) for HTTP/2 with prior knowledge.
   */
  accept(socket: net.Socket, pass: (socket: net.Socket) => void, passH2c: (stream: Duplex) => void): void {
    const mode = this.#mode;
    if (mode !== 'off' && !this.#allowFrom.allows(socket.remoteAddress)) {
      this.log.debug(`PROXY protocol: connection from ${socket.remoteAddress} is not in proxy_allow_from; closed`);
      socket.destroy();
      return;
    }
    // What a native read at accept found, when it is not a whole, valid first line: the JavaScript way goes on
    // from it (a bad line is answered 400 from it, now that it has been read).
    let first: Buffer | null = null;
    if (this.#read !== null) {
      const fd = fdOf(socket);
      const n = fd < 0 ? -1 : this.#read(fd);
      if (n === 0) {
        // The peer closed before sending anything (wrk probes an address with a connect and a close).
        socket.destroy();
        return;
      }
      if (n > 0) {
        const b = this.#bytes;
        // A copy: the gate's buffer is read into again at the next accept.
        first = Buffer.from(b.subarray(0, n));
        if (!(this.#h2cFrom !== null && mayBePreface(b, n)) && firstLine(b, n) === FirstLine.Whole) {
          passWith(socket, first, pass);
          return;
        }
      }
    }
    let buf: Buffer | null = null;
    let proxied = mode === 'off';
    /** The bytes handed to Node's parser, once they are: the timer then checks the first request came. */
    let handed: Buffer | null = null;
    // From the connection's start, as over TLS: Node's own header timer starts only at the first byte it
    // parses, so a client that waited here before trickling its header section would get twice the time.
    const timer = setTimeout(() => (handed ? this.firstRequestLate(socket, handed) : socket.destroy()), this.#timeoutMs);
    timer.unref();
    /** The gate lets go of the socket; the timer stays only once the socket goes to Node's parser. */
    let keepTimer = false;
    const done = () => {
      if (!keepTimer) clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', destroySocket);
      socket.off('close', done);
      socket.pause();
    };
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
      const h2c = this.#h2cFrom !== null && mayBePreface(buf, buf.length);
      if (h2c && buf.length < H2_PREFACE.length) return;
      keepTimer = true;
      done();
      if (h2c && this.#h2cFrom!.allows(socket.remoteAddress)) {
        clearTimeout(timer);
        passH2c(streamOf(socket, buf));
        return;
      }
      if (refusedFirstLine(socket, buf, this.log, this.refusals)) {
        clearTimeout(timer);
        return;
      }
      handed = buf;
      socket.once('close', () => clearTimeout(timer));
      passWith(socket, buf, pass);
    };
    socket.on('data', onData);
    // The peer closed its side before its first request was complete (wrk probes an address with a connect
    // and a close): nothing is owed to it, and a half-open socket must not hold the worker until the header
    // timeout (a sync worker serves one connection at a time).
    socket.on('end', destroySocket);
    socket.on('close', done);
    socket.on('error', destroySocket);
    // Reading starts (on the next tick) even when the first chunk settles it here: after a 400 the peer's FIN
    // must still be read for the socket to close.
    socket.resume();
    if (first !== null) onData(first);
  }

  /**
   * header_timeout has passed since the connection came, and the gate handed it to Node's parser: unless its
   * first request has reached the app (a response being written, or one sent), its header section is still
   * not complete. Answered 408 and closed, as Node's own timer would, from the connection's start.
   */
  private firstRequestLate(socket: ServedSocket, head: Buffer): void {
    if (socket.destroyed || !socket.parser || socket._httpMessage || socket.bytesWritten > 0) return;
    const r = this.#timedOut;
    this.log.debug(`Bad request from ${socket.remoteAddress}: no whole first request within header_timeout of the connection; answered ${r.line}`);
    if (socket.writable) {
      socket.end(startsWithHead(head) ? r.rawHead : r.raw);
      logRaw(this.refusals, null, socket, r, startsWithHead(head));
    }
    socket.destroySoon();
  }
}

/** What Node's server keeps on a socket it serves: its parser (null once upgraded), the response being written. */
type ServedSocket = net.Socket & { parser?: unknown; _httpMessage?: unknown };

/**
 * The socket as a plain stream, starting with the bytes already read. Node's HTTP/2 session reads a socket's
 * handle directly and would miss them; given a stream without a handle, it reads through JavaScript.
 */
function streamOf(socket: net.Socket, head: Buffer): Duplex {
  const d = new Duplex({
    read: () => void socket.resume(),
    write: (chunk: Buffer, _enc, cb) => void socket.write(chunk, cb),
    final: (cb) => {
      socket.end();
      cb();
    },
    destroy: (err, cb) => {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  d.push(head);
  socket.on('data', (c: Buffer) => {
    if (!d.push(c)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('close', () => d.destroy());
  for (const name of ['remoteAddress', 'remotePort', 'remoteFamily', 'localAddress', 'localPort'] as const)
    Object.defineProperty(d, name, { get: () => socket[name] });
  d.on('error', () => socket.destroy());
  socket.resume();
  return d;
}
