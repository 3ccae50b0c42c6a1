import http from 'node:http';
import type http2 from 'node:http2';
import type https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Config } from '../config/registry.js';
import { lazy } from '../lazy.js';
import type { ErrorLog } from '../logging/error-log.js';
import { countBodyBytes, formatNeedsBodyBytes } from '../logging/body-bytes.js';
import { holdToContentLength } from './content-length.js';
import { dropH2ConnectionFields } from './connection-fields.js';
import { cutResponse, isLingering, lingerClose, lingerWhileReceiving, mute, resetUnfinished } from './cut.js';
import { answeredRaw } from '../logging/access-log.js';
import type { RequestListener } from '../app/shapes.js';
import { checkFirstLineOf, ConnectionGate } from './connection.js';
import { tlsOptionsOf, unverifiedCertificate } from './tls.js';
import { ForwardedHeaders, keepH2Client } from './forwarded.js';
import { HAS_BODY, HostMemo, http2Limits, limitsOf, maxHeaderSize, rejectReason, rejectReasonH2 } from './guard.js';
import { logRaw, type Refusal, refusalHeaders, Refusals, startsWithHead } from './refusals.js';
import type { RefusalLog } from '../logging/refused.js';
import { closeAsDecided, IdleSessions, sweepHeaderTimeouts, sweepIdleConnections } from './keep-alive.js';
import { appIsBehind, sweepStalledBodies } from './body-timeout.js';
import { endAtFin, endAtFinTls, readHalfCloses } from './half-close.js';

/** Node's response field for the `Keep-Alive: timeout=N` header (_http_outgoing.js), 0 for none. */
type KeepAliveResponse = http.ServerResponse & { _keepAliveTimeout: number };

/**
 * The response Node is writing on a socket now; the responses to requests pipelined behind it wait in Node's
 * queue and take its place one by one as each finishes. Node's own 'clientError' default reads the same field.
 */
type WritingSocket = net.Socket & { _httpMessage?: http.ServerResponse | null };

/**
 * Runs for an HTTP/1 'upgrade' or 'connect' request that passed the checks, just before the app's listeners
 * get it (the worker's access log: see WorkerRuntime.upgrading).
 */
export type UpgradeHook = (req: http.IncomingMessage, socket: Duplex) => void;

/** Any server tunicorn serves HTTP with: plain, TLS, or TLS with HTTP/2 (and HTTP/1.1 fallback). */
export type AnyHttpServer = http.Server | https.Server | http2.Http2SecureServer;

// The TLS modules load only when TLS is on (src/lazy.ts).

/**
 * Requests that asked for `100-continue`: Node gives them to the server's 'checkContinue' listener (see
 * answerRefusedByNode), which passes them on as requests; the `100 Continue` goes out only once the checks
 * have passed, as Gunicorn sends it, never before a refusal.
 */
const continuing = new WeakSet<http.IncomingMessage>();
/** Requests with an `Expect` other than `100-continue` (Node's 'checkExpectation'): 417 after the checks. */
const expecting = new WeakSet<http.IncomingMessage>();
/** Either set has had a request: until then (most servers, always) no request looks them up. */
let expectations = false;

/** Whether `req` asked for `Expect: 100-continue` (and no `100 Continue` has been sent for it by tunicorn). */
export function asksToContinue(req: http.IncomingMessage): boolean {
  return continuing.has(req);
}

/** Whether `req` has an `Expect` other than `100-continue`. */
export function hasOtherExpectation(req: http.IncomingMessage): boolean {
  return expecting.has(req);
}

/**
 * What the app does that the layer must know of. What its own server listened for itself, taken off it by the
 * caller, which runs those listeners
 * (through the request listener) for the requests concerned: 'checkContinue' (asksToContinue) and
 * 'checkExpectation' (hasOtherExpectation). Node would give those requests to them directly, past the checks,
 * the forwarded headers, the access log and the error handling.
 */
export interface AppExpectations {
  readonly continues?: boolean;
  readonly expectations?: boolean;
  /** The app swaps the prototypes of requests and responses (Express): HTTP/2 ones keep their members. */
  readonly swapsPrototypes?: boolean;
}

/**
 * How often Node sweeps connections for the header timeout (its default, 30 s, would let one live 40 s); the sweeps
 * run its check every 0.5 s instead where they can (sweepHeaderTimeouts).
 */
const CHECK_INTERVAL_MS = 1000;

/**
 * The HTTP layer of a worker: it makes the server (plain, TLS, TLS + HTTP/2), applies the limits and
 * timeouts, answers what Node's parser rejects, and checks each request before the app sees it.
 */
export class HttpLayer {
  readonly server: AnyHttpServer;
  /** Set for plain HTTP: every connection passes through it before Node's parser (see ConnectionGate). */
  readonly gate: ConnectionGate | null;
  readonly #limits;
  /** What a refused request is answered, built once (refusals.ts). */
  readonly #refusals: Refusals;
  readonly #forwarded: ForwardedHeaders;
  readonly #bodyMs: number;
  /** body_timeout for an HTTP/1 request, timed by a timer of its own; 0 once sweepStalledBodies times them all. */
  #eachBodyMs: number;
  /**
   * The keep-alive timeout (ms) each HTTP/1 response advertises when a sweep keeps it instead of Node's timer
   * per socket (see keep-alive.ts); 0 when Node keeps it (`keepalive` 0, a Node without the list) and
   * advertises it.
   */
  #advertised = 0;
  /** Connections whose last response refuses a request: Node closes them once it is sent. */
  readonly #refused = new WeakSet<net.Socket>();
  /** The 'connect' listener answerRefusedByNode put on the server, when no one else listened. */
  #connectFallback: ((req: http.IncomingMessage, second: Duplex | http.ServerResponse) => void) | null = null;
  /** HTTP/2 sessions (TLS and h2c): closed when idle, and given a GOAWAY on a graceful stop. */
  readonly #sessions: IdleSessions;
  #h2c: http2.Http2Server | null = null;
  /** The h2c connection being handed to #h2c, while it makes its session. */
  #h2cStream: Duplex | null = null;
  /** The access log writes `%(b)s` or `%(B)s`: responses count their body bytes (body-bytes.ts). */
  readonly #countsBodyBytes: boolean;
  readonly #handler: RequestListener;
  /**
   * Connections that bypass the gate (TLS), from their hand-over until their first request, with the timer
   * that closes them at header_timeout; null for plain HTTP, which the gate times. Node's own clocks do not
   * cover this span: its header timeout starts once the handshake is done, and its handshake timeout (120 s)
   * does not run for a socket handed to the server this way.
   */
  readonly #firstRequest: WeakMap<net.Socket, FirstRequestWait> | null;
  readonly #headerMs: number;
  /** What the app's own server listened for itself (see AppExpectations). */
  readonly #app: AppExpectations;
  /** The server is a TLS server tunicorn made (--certfile), HTTP/2 or not: it takes the master's ticket keys. */
  readonly #madeTls: boolean;
  /** Where the answers given without the app are logged (the access log, StatsD); null when neither is on. */
  readonly #refusalLog: RefusalLog | null;

  constructor(
    cfg: Config,
    private readonly log: ErrorLog,
    listener: RequestListener,
    own?: http.Server,
    upgrading?: UpgradeHook,
    app: AppExpectations = {},
    refusalLog: RefusalLog | null = null,
  ) {
    this.#app = app;
    this.#refusalLog = refusalLog;
    this.#limits = limitsOf(cfg);
    this.#refusals = new Refusals(cfg, this.#limits);
    this.#forwarded = new ForwardedHeaders(cfg);
    this.#bodyMs = cfg.bodyTimeout * 1000;
    this.#eachBodyMs = this.#bodyMs;
    this.#headerMs = cfg.headerTimeout * 1000;
    this.#sessions = new IdleSessions(cfg.keepalive * 1000, cfg.headerTimeout * 1000);
    this.#handler = this.gateRequests()(listener);
    const handler = this.#handler;
    const tlsOptions = tlsOptionsOf(cfg);
    this.#madeTls = tlsOptions !== null;
    const h2 = tlsOptions !== null && cfg.httpProtocols.includes('h2');
    this.#countsBodyBytes = Boolean(cfg.accesslog) && formatNeedsBodyBytes(cfg.accessLogFormat);
    if (this.#countsBodyBytes) {
      countBodyBytes(http.ServerResponse.prototype);
      if (h2) this.countH2BodyBytes();
    }
    // After the count: the bytes past a Content-Length are dropped before it, as they are not sent.
    holdToContentLength(http.ServerResponse.prototype, this.#framingReport);
    closeAsDecided(http.ServerResponse.prototype);
    // A connection closed after a response while its request is still coming in closes without a reset.
    lingerWhileReceiving();
    if (h2) this.prepareH2Responses();
    const options = {
      noDelay: true,
      maxHeaderSize: maxHeaderSize(this.#limits),
      // The Host rules are rejectReason's, whose refusal says what is wrong: Node's own check would answer a
      // missing Host first, with an empty 400.
      requireHostHeader: false,
      insecureHTTPParser: false,
      keepAliveTimeout: cfg.keepalive * 1000,
      headersTimeout: cfg.headerTimeout * 1000,
      requestTimeout: 0,
      connectionsCheckingInterval: CHECK_INTERVAL_MS,
    };
    if (own && !tlsOptions) {
      // The app's own server: its request listeners are in `listener` already. Node reads these options from
      // the server's properties when a connection arrives (the checking interval on 'listening'), so they
      // can still be set.
      this.server = own;
      own.removeAllListeners('request');
      own.on('request', handler);
      Object.assign(own, {
        maxHeaderSize: options.maxHeaderSize,
        requireHostHeader: false,
        insecureHTTPParser: false,
        connectionsCheckingInterval: CHECK_INTERVAL_MS,
      });
    } else if (h2) {
      this.server = lazy.http2().createSecureServer(
        { ...tlsOptions, ...options, ...http2Limits(this.#limits), allowHTTP1: true },
        handler as never,
      );
    } else if (tlsOptions) {
      this.server = lazy.https().createServer({ ...tlsOptions, ...options }, handler);
    } else {
      this.server = http.createServer(options, handler);
    }
    if (own && tlsOptions) {
      // TLS was asked for: the app's plain server would serve cleartext. Its requests (in `listener`) and its
      // upgrade handlers (WebSocket) move to the TLS server.
      for (const event of ['upgrade', 'connect'] as const)
        for (const l of own.listeners(event)) this.server.on(event, l as (...args: unknown[]) => void);
    }
    this.answerRefusedByNode(this.server);
    // Only the app's own server can have 'upgrade' or 'connect' listeners (a WebSocket server on it).
    if (own) this.gateUpgrades(upgrading);
    const s = this.server as http.Server;
    s.keepAliveTimeout = options.keepAliveTimeout;
    // An HTTP/2 server's HTTP/1.1 connections too (allowHTTP1: Node lists them as it does on an https server):
    // Node's timer there is reset by every byte read, empty lines before a request line included.
    if (options.keepAliveTimeout > 0) this.sweepIdle(s, options.keepAliveTimeout);
    if (this.#bodyMs > 0) this.sweepBodies(s, this.#bodyMs);
    s.headersTimeout = options.headersTimeout;
    s.requestTimeout = 0;
    // Node's HTTP/2 server takes no HTTP/1 options: its HTTP/1.1 connections (allowHTTP1) had the parser's
    // default bound of 16 KiB on the header section, read from this property, and a TLS client with a few
    // long cookies got 431 far below the three limits (whose sum its reason named).
    (s as http.Server & { maxHeaderSize: number }).maxHeaderSize = options.maxHeaderSize;
    // Node's HTTP/2 server (its HTTP/1.1 connections, allowHTTP1) sets 30 s itself, whatever the options say:
    // header_timeout would be checked only that often, and a client trickling a later request's header
    // section would hold its connection for 30 s.
    (s as http.Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = CHECK_INTERVAL_MS;
    // Node's check then runs from the sweeps, which sleep while no connection is open, instead of from Node's
    // timer, which woke an idle worker every second (keep-alive.ts).
    s.once('listening', () => sweepHeaderTimeouts(s, CHECK_INTERVAL_MS));
    // Node's parser keeps only the fields it collected in chunks of 32 until it has maxHeadersCount (default
    // 1000: 1023 kept, the rest dropped without a word). One over the limit keeps every field up to it and
    // enough for rejectReason to see one too many and answer 431.
    s.maxHeadersCount = this.#limits.fields + 1;
    s.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => this.onClientError(err, socket));
    if (tlsOptions) s.on('tlsClientError', (err: Error) => this.log.debug(`TLS handshake failed: ${err.message}`));
    // The gate reads raw bytes: not on TLS (the app's own https server included: tls.Server has addContext),
    // whose first request line is checked once decrypted (checkTlsFirstLines).
    const encrypted = tlsOptions !== null || (this.server === own && 'addContext' in own);
    this.gate = encrypted ? null : new ConnectionGate(cfg, log, undefined, refusalLog);
    if (this.gate) {
      this.routeThroughGate(this.gate);
      this.log.debug(`Checking first request lines by ${this.gate.how}`);
    }
    // Before the listener below, which notes the TLS socket for the first request's timer at the handshake.
    if (encrypted) this.checkTlsFirstLines(tlsOptions === null, tlsOptions !== null && cfg.certReqs === 'optional');
    this.#firstRequest = this.gate ? null : new WeakMap();
    if (!this.gate) {
      s.on('secureConnection', (secure: TLSSocket) => {
        const wait = this.#firstRequest!.get(connectionOf(secure));
        if (wait) wait.secure = secure;
      });
      // An HTTP/2 stream is a request, a CONNECT one included (it may go to a 'connect' listener instead).
      if (h2) this.server.on('stream', (stream: http2.ServerHttp2Stream) => this.firstRequestCame(stream.session?.socket));
    }
    if (tlsOptions) this.trackSessions(this.server);
  }

  /**
   * The master's TLS session-ticket keys (base64, 48 bytes), shared by every worker and thread: a client then
   * resumes its session whichever worker the kernel hands its next connection to (Node makes random keys per
   * server otherwise). Replacing them ends the tickets issued under the old ones (Node holds one key). An
   * app's own https.Server keeps its keys: its TLS is the app's, which may share keys of its own (the
   * `ticketKeys` option), and Node does not tell those from the random ones it made. False: not applied.
   */
  useTicketKeys(keys: string): boolean {
    if (this.#madeTls) (this.server as tls.Server).setTicketKeys(Buffer.from(keys, 'base64'));
    return this.#madeTls;
  }

  /**
   * Puts the check of the first request line (checkFirstLineOf) before Node's listener for a TLS connection
   * whose handshake is done, when it speaks HTTP/1.1: what the gate does for a plain one. HTTP/2 (ALPN h2)
   * goes to Node at once; nghttp2 checks its frames. `own`: the app's own https.Server, whose own
   * 'secureConnection' listeners, if it has any, stay as they are: only Node's HTTP listener is put behind it.
   * `verifyIfSent` (cert_reqs optional): a connection whose client sent a certificate that does not verify is
   * closed first, as Node closes one under `required` (see unverifiedCertificate).
   */
  private checkTlsFirstLines(own: boolean, verifyIfSent: boolean): void {
    const server = this.server as tls.Server;
    type Listener = (socket: TLSSocket) => void;
    const listeners = server.listeners('secureConnection') as Listener[];
    // Node adds the same function to every https.Server.
    const node = own ? (lazy.https().createServer().listeners('secureConnection')[0] as Listener) : null;
    const log = this.log;
    server.removeAllListeners('secureConnection');
    readHalfCloses(server as unknown as http.Server);
    for (const l of listeners) {
      if (node !== null && l !== node) {
        server.on('secureConnection', l);
        continue;
      }
      const toHttp = (socket: net.Socket) => l.call(server, socket as TLSSocket);
      // HTTP/1.1 over TLS reads a client's FIN (its close_notify) as plain HTTP does (see readHalfCloses). The
      // TLS socket, made with the server's allowHalfOpen (false: an HTTP/2 session's would never close after
      // the FIN), would end itself at the FIN and refuse every write after it; Node reads the flag at the FIN.
      const toHttp1 = (socket: net.Socket) => {
        socket.allowHalfOpen = true;
        toHttp(socket);
        socket.on('end', endAtFinTls);
      };
      server.on('secureConnection', (secure: TLSSocket) => {
        if (verifyIfSent) {
          const why = unverifiedCertificate(secure);
          if (why !== null) {
            log.debug(`TLS client certificate from ${secure.remoteAddress} did not verify (${why}); closing (cert_reqs optional)`);
            secure.destroy();
            return;
          }
        }
        if (secure.alpnProtocol === 'h2') toHttp(secure);
        else checkFirstLineOf(secure, toHttp1, log, this.#refusalLog);
      });
    }
  }

  /**
   * Takes the keep-alive timeout from Node's socket timers to a sweep, once the server is 'listening' (the
   * worker emits it: the server never listens itself). Node then sets no timer per request, and the gate
   * puts the timeout back on each response for its `Keep-Alive: timeout=N` header.
   */
  private sweepIdle(s: http.Server, ms: number): void {
    s.once('listening', () => {
      if (!sweepIdleConnections(s, ms)) return;
      s.keepAliveTimeout = 0;
      this.#advertised = ms;
    });
  }

  private trackSessions(server: AnyHttpServer | http2.Http2Server): void {
    server.on('session', (session: http2.ServerHttp2Session) => this.#sessions.add(session));
  }

  /**
   * Graceful stop of HTTP/2 sessions: GOAWAY, so clients open no new streams, while the streams running
   * finish; each session closes when its last stream ends (its connection too, should the client keep it).
   */
  closeSessions(): void {
    this.#sessions.closeAll();
  }

  /** Hands a connection accepted elsewhere (a further listening socket) to the server. */
  readonly connection = (socket: net.Socket): void => {
    if (this.#firstRequest) this.timeFirstRequest(socket, this.#firstRequest);
    this.server.emit('connection', socket);
  };

  /**
   * A connection that does not pass through the gate (TLS) must bring its first request, handshake included,
   * within header_timeout, as one on plain HTTP must: else it is closed (with a 408 once the handshake is done
   * and it speaks HTTP/1), and its worker takes the next client. Node's header timeout covers each request
   * after that.
   */
  private timeFirstRequest(socket: net.Socket, waiting: WeakMap<net.Socket, FirstRequestWait>): void {
    const wait: FirstRequestWait = {
      secure: null,
      timer: setTimeout(() => {
        waiting.delete(socket);
        this.noFirstRequest(socket, wait.secure);
      }, this.#headerMs).unref(),
    };
    waiting.set(socket, wait);
    socket.once('close', () => {
      clearTimeout(wait.timer);
      waiting.delete(socket);
    });
  }

  /** header_timeout passed with no request on `socket` (`secure`: its TLS socket, once the handshake is done). */
  private noFirstRequest(socket: net.Socket, secure: TLSSocket | null): void {
    // HTTP/1 whose first request was an upgrade (WebSocket) or a CONNECT: Node freed the parser and handed
    // the socket on, with no 'request'. It is not HTTP any more.
    if ((secure as { parser?: unknown } | null)?.parser === null) return;
    const answer = secure !== null && secure.alpnProtocol !== 'h2' && secure.writable;
    const r = this.#refusals.headerTimeout;
    this.log.debug(
      `No request from ${socket.remoteAddress} within header_timeout${secure ? '' : ' (TLS handshake not done)'}; ` +
        (answer ? `answered ${r.line}` : 'closing'),
    );
    if (answer) {
      secure.end(r.raw);
      logRaw(this.#refusalLog, null, secure, r, false);
      secure.destroySoon();
      // A client that reads nothing must not keep it open either.
      setTimeout(() => socket.destroy(), 1000).unref();
    } else {
      socket.destroy();
    }
  }

  /**
   * Puts the gate before Node's own connection listener: sockets arrive paused (`pauseOnConnect` is read at
   * each accept), the gate reads what it needs, then Node's listener gets the socket. The server still listens
   * itself, so Node's connection tracking (header timeout, closeIdleConnections) and an app's own 'listening'
   * handlers work as usual.
   */
  private routeThroughGate(gate: ConnectionGate): void {
    const server = this.server as http.Server;
    const native = server.listeners('connection') as ((socket: net.Socket) => void)[];
    server.removeAllListeners('connection');
    (server as http.Server & { pauseOnConnect: boolean }).pauseOnConnect = true;
    readHalfCloses(server);
    const toHttp = (socket: net.Socket) => {
      for (const l of native) l.call(server, socket);
      // After Node's own 'end' listener (socketOnEnd), which marks the response to close the connection.
      socket.on('end', endAtFin);
    };
    const toH2c = (stream: Duplex) => {
      const h2c = this.h2c();
      this.#h2cStream = stream;
      try {
        h2c.emit('connection', stream);
      } finally {
        this.#h2cStream = null;
      }
    };
    server.on('connection', (socket: net.Socket) => gate.accept(socket, toHttp, toH2c));
  }

  /** The access log's `%(b)s` of an HTTP/2 response: its end(chunk) writes through write(). */
  private countH2BodyBytes(): void {
    countBodyBytes(lazy.http2().Http2ServerResponse.prototype as unknown as http.ServerResponse, true);
  }

  /**
   * HTTP/2 responses leave out the fields HTTP/2 forbids (connection-fields.ts), and their bodies are held to
   * their Content-Length as HTTP/1 ones are (after the count).
   */
  private prepareH2Responses(): void {
    const proto = lazy.http2().Http2ServerResponse.prototype;
    dropH2ConnectionFields(proto);
    resetUnfinished(proto);
    holdToContentLength(proto as unknown as http.ServerResponse, this.#framingReport);
  }

  /** How a response that does not match its Content-Length is told (content-length.ts). */
  readonly #framingReport = (req: http.IncomingMessage | undefined, message: string): void =>
    this.log.error(`Error handling request ${req?.method} ${req?.url}: ${message}`);

  /** The cleartext HTTP/2 server for h2c from trusted peers, made on first use. */
  private h2c(): http2.Http2Server {
    if (!this.#h2c) {
      if (this.#countsBodyBytes) this.countH2BodyBytes();
      this.prepareH2Responses();
      this.#h2c = lazy.http2().createServer(http2Limits(this.#limits), this.#handler as never);
      this.answerRefusedByNode(this.#h2c);
      this.trackSessions(this.#h2c);
      // Node's session wraps the stream in a socket of its own (a JSStreamSocket), which has no address to
      // ask: req.socket.remoteAddress, clientAddress() and the access log's %(h)s were empty. It is given the
      // connection's addresses, which its remoteAddress and localAddress read (net.Socket's _peername and
      // _sockname), through the session's socket proxy, which passes a property set on to that socket.
      this.#h2c.on('session', (session: http2.ServerHttp2Session) => {
        const d = this.#h2cStream as (Duplex & Partial<Pick<net.Socket, 'remoteAddress' | 'remotePort' | 'remoteFamily' | 'localAddress' | 'localPort'>>) | null;
        if (!d) return;
        Object.assign(session.socket, {
          _peername: { address: d.remoteAddress, port: d.remotePort, family: d.remoteFamily },
          _sockname: { address: d.localAddress, port: d.localPort, family: d.remoteFamily },
        });
      });
    }
    return this.#h2c;
  }

  /** The app's framework judges the forwarded headers itself: the socket keeps the proxy's address. */
  keepPeer(): void {
    this.#forwarded.keepPeer = true;
  }

  private gateRequests(): (listener: RequestListener) => RequestListener {
    const limits = this.#limits;
    const forwarded = this.#forwarded;
    const bodyMs = this.#bodyMs;
    const hosts = new HostMemo();
    const refusals = this.#refusals;
    return (listener) => (req, res) => {
      // Set once the server is made (after this wrapper): null for plain HTTP.
      if (this.#firstRequest) this.firstRequestCame(req.socket);
      if ((req as { stream?: unknown }).stream === undefined) {
        // HTTP/1: what llhttp accepts but a server must not (HTTP/2 frames are checked by nghttp2).
        const found = rejectReason(req, limits, hosts);
        const why = found & ~HAS_BODY;
        if (why) return this.refuse(req, res, refusals.rejected[why]!);
        if (found & HAS_BODY && this.#eachBodyMs > 0) this.watchBody(req, res, bodyMs);
        // Node copied the server's keepAliveTimeout (0 when swept) to the response for its header.
        (res as KeepAliveResponse)._keepAliveTimeout ||= this.#advertised;
      } else {
        keepH2Client(req);
        // HTTP/2 (TLS with ALPN h2, or h2c): the same limits, on the header list nghttp2 decoded.
        const why = rejectReasonH2(req, limits);
        if (why) return this.refuse(req, res, refusals.rejected[why]!);
        // A body is to come (no END_STREAM on the HEADERS frame): it must keep coming, as over HTTP/1.
        const stream = (req as unknown as { stream: http2.ServerHttp2Stream }).stream;
        if (bodyMs > 0 && !stream.endAfterHeaders) this.watchH2Body(req, res, stream, bodyMs);
        if (this.#app.swapsPrototypes) keepH2Members(req, res);
        else hostFromAuthority(req);
      }
      if (!forwarded.apply(req)) return this.refuse(req, res, refusals.schemeHeaders);
      // Only once a request with an Expect header has come (most servers never see one).
      if (expectations) {
        if (continuing.has(req) && !this.#app.continues) {
          res.writeContinue();
          // Sent: an app that calls writeContinue() itself (as on a Node server with a checkContinue listener)
          // must not send the client a second one.
          (res as unknown as { writeContinue: (cb?: () => void) => boolean }).writeContinue = (cb) => {
            if (cb) process.nextTick(cb);
            return true;
          };
        } else if (expecting.has(req) && !this.#app.expectations) return this.refuse(req, res, refusals.expectation);
      }
      listener(req, res);
    };
  }

  /**
   * Node gives an 'upgrade' (WebSocket) or 'connect' request to the server's listeners for that event, never
   * to the 'request' listener that checks requests: the server's emit() checks it first, as gateRequests
   * does (limits, Host, forwarded headers), whenever the app added those listeners. One that fails is refused
   * on its socket; the app never sees it.
   */
  private gateUpgrades(upgrading: UpgradeHook | undefined): void {
    const server = this.server as http.Server;
    const emit = server.emit;
    const limits = this.#limits;
    const forwarded = this.#forwarded;
    const hosts = new HostMemo();
    const refusals = this.#refusals;
    const pass = (req: http.IncomingMessage, socket: Duplex): boolean => {
      // HTTP/2 (a CONNECT stream: `socket` is its response): nghttp2 checked the frames.
      if ((req as { stream?: unknown }).stream !== undefined) {
        if (forwarded.apply(req)) return true;
        this.refuse(req, socket as unknown as http.ServerResponse, refusals.schemeHeaders);
        return false;
      }
      const why = rejectReason(req, limits, hosts) & ~HAS_BODY;
      if (why) {
        this.refuseUpgrade(req, socket as net.Socket, refusals.rejected[why]!);
        return false;
      }
      if (!forwarded.apply(req)) {
        this.refuseUpgrade(req, socket as net.Socket, refusals.schemeHeaders);
        return false;
      }
      upgrading?.(req, socket);
      return true;
    };
    const onlyFallback = (): boolean => server.listenerCount('connect') === 1 && server.listeners('connect')[0] === this.#connectFallback;
    server.emit = function (this: http.Server, event: string | symbol, req?: unknown, socket?: unknown): boolean {
      if (
        (event === 'upgrade' || (event === 'connect' && !onlyFallback())) &&
        !pass(req as http.IncomingMessage, socket as Duplex)
      )
        return true;
      return Reflect.apply(emit, this, arguments) as boolean;
    } as typeof server.emit;
  }

  /** The answer to a refused 'upgrade' or 'connect' request, after any response owed before it; then a close. */
  private refuseUpgrade(req: http.IncomingMessage, socket: net.Socket, r: Refusal): void {
    this.logRefused(req, r, 'a request');
    const answer = (): void => {
      if (socket.destroyed) return;
      const owed = (socket as WritingSocket)._httpMessage;
      if (owed && !owed.destroyed && !owed.writableFinished) return void owed.once('close', answer);
      if (socket.writable) {
        socket.end(req.method === 'HEAD' ? r.rawHead : r.raw);
        logRaw(this.#refusalLog, req, socket, r, req.method === 'HEAD');
      }
      // Bytes the client sent after its request head (a body, its first WebSocket frames) may be unread, and a
      // plain close would reset the connection and lose the answer. (Node 26 hands over a request whose body
      // is still coming as a stream of its own, which has no destroySoon: calling it threw, out of the worker.)
      lingerClose(socket);
    };
    answer();
  }

  /**
   * A request that fails a check gets its status, and a one-line body that says why (refusals.ts); a HEAD
   * request gets the headers only. Over HTTP/1 the connection then closes; over HTTP/2 only its
   * stream ends, and the session's other streams go on.
   */
  private refuse(req: http.IncomingMessage, res: http.ServerResponse, r: Refusal): void {
    const h2 = (req as { stream?: unknown }).stream !== undefined;
    if (h2) {
      this.logRefused(req, r, 'an HTTP/2 request');
    } else {
      this.logRefused(req, r, 'a request');
      res.shouldKeepAlive = false;
      // Its body still coming, unread, Node's close once the refusal is sent lingers (lingerWhileReceiving).
      this.#refused.add(req.socket);
    }
    this.#refusalLog?.response(req, res);
    res.writeHead(r.status, refusalHeaders(r, h2));
    // HTTP/1: Node closes the connection once this response (queued after any earlier pipelined ones) is sent.
    if (req.method === 'HEAD') res.end();
    else res.end(r.body);
  }

  private logRefused(req: http.IncomingMessage, r: Refusal, what: string): void {
    this.log.debug(`Refused ${what} from ${req.socket.remoteAddress}: ${r.line}`);
  }

  /**
   * What Node's servers answer themselves unless someone listens, answered with a reason instead: an
   * `Expect` other than `100-continue` (417, HTTP/1.1 and HTTP/2), and CONNECT when the app serves none (HTTP/2:
   * 405; HTTP/1: Node would drop the connection without a word). The app's own server's 'checkContinue' and
   * 'checkExpectation' listeners were taken off it (AppExpectations); one it adds later takes the event over;
   * its 'connect' listeners keep that event.
   */
  private answerRefusedByNode(server: AnyHttpServer | http2.Http2Server): void {
    const s = server as http.Server;
    // Without a listener Node sends `100 Continue` as the request arrives, before any check: one that is then
    // refused would have invited its body. The request goes the usual way instead (under sync and gthread,
    // it waits for its turn), and the `100 Continue` goes out once it passed (gateRequests).
    // A listener the app adds to its own server later (once it listens: after Nest's `await app.listen()`)
    // takes the event over, as it would on Node's own server: it answers the request, and the request listener
    // must not answer it a second time.
    s.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (s.listenerCount('checkContinue') > 1) return;
      continuing.add(req);
      expectations = true;
      s.emit('request', req, res);
    });
    // The same for an `Expect` other than `100-continue`: its 417 comes after the checks (a request that fails
    // one gets that refusal), and an app server's own listeners get it after them (AppExpectations).
    s.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (s.listenerCount('checkExpectation') > 1) return;
      expecting.add(req);
      expectations = true;
      s.emit('request', req, res);
    });
    if (s.listenerCount('connect') > 0) return;
    const fallback = (req: http.IncomingMessage, second: Duplex | http.ServerResponse): void => {
      if (s.listenerCount('connect') > 1) return;
      const r = this.#refusals.connect;
      // HTTP/2: a stream, with its response. HTTP/1: the socket, which Node's parser has let go.
      if ((req as { stream?: unknown }).stream !== undefined) return this.refuse(req, second as http.ServerResponse, r);
      this.refuseUpgrade(req, second as net.Socket, r);
    };
    if (server === this.server) this.#connectFallback = fallback;
    s.on('connect', fallback);
  }

  /** The first request of a connection not timed by the gate came on `socket` (or one over it): its timer ends. */
  private firstRequestCame(socket: net.Socket | undefined): void {
    if (!socket) return;
    const conn = connectionOf(socket);
    const wait = this.#firstRequest!.get(conn);
    if (wait === undefined) return;
    clearTimeout(wait.timer);
    this.#firstRequest!.delete(conn);
  }

  /**
   * body_timeout over HTTP/1 (sweepStalledBodies), once the server is 'listening': from then on no request has
   * a timer of its own. On a Node release without the connection list the sweep reads, each body keeps the
   * timer it had (watchBody).
   */
  private sweepBodies(s: http.Server, ms: number): void {
    s.once('listening', () => {
      if (sweepStalledBodies(s, ms, (req, res, socket) => this.bodyStalled(req, res, socket, ms))) this.#eachBodyMs = 0;
    });
  }

  /**
   * A body must keep coming: a pause longer than body_timeout cuts the connection (408 if nothing was sent).
   * Only where sweepStalledBodies cannot: a timer on the socket, set for this request.
   */
  private watchBody(req: http.IncomingMessage, res: http.ServerResponse, ms: number): void {
    const socket = req.socket;
    socket.setTimeout(ms);
    req.on('timeout', () => {
      // The app is the one behind: the time is its own (request_deadline bounds it), and the timer starts again.
      if (appIsBehind(req)) return void socket.setTimeout(ms);
      // The linger has its own bound: no second timeout.
      socket.setTimeout(0);
      this.bodyStalled(req, res.writableFinished ? null : res, socket, ms);
    });
    // Once the whole body has come (Node's parser is done with it, the app may not have read it), Node emits
    // the socket's timeout on the response only, and destroys the socket when nothing listens there: a POST
    // whose app answered later than body_timeout without reading its body lost its connection, with nothing
    // sent or logged (curl: "Empty reply from server").
    res.on('timeout', bodyCame);
    req.once('end', () => {
      res.off('timeout', bodyCame);
      // After the response, Node has set its keep-alive timer on the socket (unless a sweep keeps the
      // timeout): leave it.
      if (!res.writableFinished || this.#advertised > 0) socket.setTimeout(0);
    });
  }

  /**
   * The body of `req` stalled for body_timeout (`ms`): 408 if its response has not begun, else the response is
   * cut; `res` null: the response was sent whole before the body came, and the connection closes.
   */
  private bodyStalled(req: http.IncomingMessage, res: http.ServerResponse | null, socket: net.Socket, ms: number): void {
    const r = this.#refusals.bodyTimeout;
    const answer = res !== null && !res.headersSent && socket.writable;
    this.log.debug(`Request body from ${socket.remoteAddress} stalled for ${ms / 1000} s; ${answer ? `answered ${r.line}` : 'closing'}`);
    // The close lingers (lingerClose): the body may be stalled only because the app is not reading it, with
    // the client's bytes unread, and a plain close would reset the connection and lose the 408 or the part
    // of the response sent. What the app writes from now on goes nowhere: after the 408 or the end of the
    // connection, a write would fail the socket and reset it all the same.
    if (res === null) return lingerClose(socket);
    if (!answer) return cutResponse(res);
    answeredRaw(res, r.status, req.method === 'HEAD' ? 0 : r.length);
    mute(res);
    socket.end(req.method === 'HEAD' ? r.rawHead : r.raw);
    lingerClose(socket);
  }

  /**
   * body_timeout for an HTTP/2 request: a stream whose body stops coming (or that never sends it) for that long
   * gets 408 on the stream if the app has not answered, then RST_STREAM with NO_ERROR, which tells the client
   * to stop sending (RFC 9113 section 8.1); a response the app has begun is cut (INTERNAL_ERROR, cutResponse).
   * The session's other streams go on. Without it, such a stream held its place among the 100, and kept the
   * session (and its connection, and under async a worker_connections place) from ever being idle. The timer is
   * Node's own per stream, pushed back by each frame the stream sends or receives, as a socket's is over HTTP/1.
   */
  private watchH2Body(req: http.IncomingMessage, res: http.ServerResponse, stream: http2.ServerHttp2Stream, ms: number): void {
    stream.setTimeout(ms, () => {
      if (stream.destroyed || stream.closed) return;
      // The whole body has come (the client ended its side: END_STREAM), read or not: what is left is the
      // app's time. Without this, a POST whose app answered later than body_timeout got the 408.
      if (stream.state.state === lazy.http2().constants.NGHTTP2_STREAM_STATE_HALF_CLOSED_REMOTE) return void stream.setTimeout(0);
      if (appIsBehind(req)) return void stream.setTimeout(ms);
      const r = this.#refusals.bodyTimeout;
      const answer = !stream.headersSent;
      this.log.debug(
        `HTTP/2 request body from ${req.socket?.remoteAddress} stalled for ${ms / 1000} s; ${answer ? `answered ${r.line}` : 'stream closed'}`,
      );
      stream.setTimeout(0);
      if (!answer) {
        if (res.writableFinished) stream.close(lazy.http2().constants.NGHTTP2_NO_ERROR);
        else cutResponse(res);
        return;
      }
      // On the stream, not through the response object (as request_deadline's 503): the app's response stays
      // unfinished, its close tells the app, and what it writes from now on goes nowhere.
      const head = req.method === 'HEAD';
      answeredRaw(res, r.status, head ? 0 : r.length);
      mute(res);
      stream.respond({ ':status': r.status, ...refusalHeaders(r, true) }, { endStream: head });
      if (!head) stream.end(r.body);
      // Once the 408 is out: RST_STREAM NO_ERROR, the end of the request the client is still to send.
      stream.close(lazy.http2().constants.NGHTTP2_NO_ERROR);
    });
    req.once('end', () => stream.setTimeout(0));
  }

  private onClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    // Cut mid-response (cut.ts): the client's FIN ends it, or its timer. Node's parser, which it no longer
    // feeds, may still fail on the request it had begun, and a response queued behind the cut one may try
    // the ended socket: a close now could reset what the client has not read yet.
    if (isLingering(socket) && err.code !== 'ECONNRESET') return;
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    // Bytes after a refused request (its unread body, say) are not a request of their own.
    if (this.#refused.has(socket)) return;
    // The body of a request already answered failed: its client ended its side before the body's end (the
    // parser's HPE_INVALID_EOF_STATE), or sent a bad chunk after its answer. That request has its answer and
    // its access-log line; a second status line would be read as the answer to a request never sent. The
    // connection just closes, as Gunicorn's workers ignore a premature disconnection.
    const owedNow = (socket as WritingSocket)._httpMessage;
    if ((!owedNow || owedNow.destroyed) && inBody(socket)) {
      this.log.debug(`Request body from ${socket.remoteAddress} cut short after its answer: ${err.code ?? err.message}; connection closed`);
      socket.end();
      socket.destroySoon();
      return;
    }
    // The client closed its side in the middle of a request's body, before the answer (curl's --max-time, a tab
    // closed during an upload): it left, as far as a server can tell. A request only cut short gets no 400, and
    // the access log no status (the README's `-` for a client that leaves); what the app answers from now on
    // (body-parser's 'request aborted') goes nowhere.
    if (err.code === 'HPE_INVALID_EOF_STATE' && inBody(socket)) {
      const incoming = (socket as net.Socket & { parser?: { incoming?: http.IncomingMessage | null } | null }).parser?.incoming;
      const owed = (socket as WritingSocket)._httpMessage;
      if (owed && owed.req === incoming && !owed.headersSent) mute(owed);
      this.log.debug(`Request body from ${socket.remoteAddress} cut short: the client closed its side before the body's end; connection closed`);
      socket.destroy();
      return;
    }
    const flushed = (socket as net.Socket & { parser?: { _headers?: unknown[] } | null }).parser?._headers?.length;
    const r = this.#refusals.forParserError(err, flushed === undefined ? undefined : flushed / 2);
    this.log.debug(`Bad request from ${socket.remoteAddress}: ${err.code ?? err.message}; answered ${r.line}`);
    // The responses still owed for earlier requests on this connection go out first, in order: the garbage
    // that followed them must not cost the client valid answers (FACTS). An error inside the body of the
    // request being answered belongs to that request: the error goes at once, or, once its response has
    // begun, the connection is cut.
    const answer = (): void => {
      if (socket.destroyed) return;
      const owed = (socket as WritingSocket)._httpMessage;
      if (owed && !owed.destroyed) {
        // Still on the socket, even if written: Node puts the next one there when this one's 'finish' has
        // run, and 'close' comes after that (or with the connection).
        if (owed.req.complete) return void owed.once('close', answer);
        // Cut as a failed response is (cutResponse): the client keeps the part sent, where a plain close with
        // the rest of the bad body unread reset the connection and lost it.
        if (!owed.writableFinished && owed.headersSent) return cutResponse(owed);
        // The answer is this request's, written past its response object: the access log's status. What the
        // app writes from now on goes nowhere (a write after the answer's end would reset the connection).
        if (!owed.headersSent) {
          answeredRaw(owed, r.status, headRequest(err, owed) ? 0 : r.length);
          mute(owed);
        }
      }
      if (socket.writable) {
        const head = headRequest(err, owed);
        socket.end(head ? r.rawHead : r.raw);
        // With no response owed, the answer is to a request of its own, never parsed. One whose body failed (the
        // parser's request is not complete) has its line already.
        if ((!owed || owed.destroyed) && !inBody(socket)) logRaw(this.#refusalLog, null, socket, r, head);
      }
      socket.destroySoon();
    };
    answer();
  }
}

/** A connection waiting for its first request: the timer that closes it, and its TLS socket once secured. */
interface FirstRequestWait {
  timer: NodeJS.Timeout;
  secure: TLSSocket | null;
}

/**
 * body_timeout's listener on an HTTP/1 response, for a timeout that comes once the request body has all come:
 * the timer's work is done, and the listener goes (with none, Node destroys the socket on an app's own
 * `res.setTimeout()`, as documented). Before that the request's 'timeout' does the work.
 */
function bodyCame(this: http.ServerResponse): void {
  if (!this.req.complete) return;
  this.off('timeout', bodyCame);
  if (!this.writableFinished) this.socket?.setTimeout(0);
}

/** Whether Node's parser on a socket is inside a request's body: its request came and is not complete. */
function inBody(socket: net.Socket): boolean {
  return (socket as net.Socket & { parser?: { incoming?: http.IncomingMessage | null } | null }).parser?.incoming?.complete === false;
}

/** The connection accepted under a socket: over TLS the request's socket wraps it. */
function connectionOf(socket: net.Socket): net.Socket {
  return (socket as net.Socket & { _parent?: net.Socket | null })._parent ?? socket;
}

/**
 * Whether the request a parser error is answered for is a HEAD request (its answer gets no body): the one
 * still being received when the error is in its body, else the one whose bytes the parser failed on (its
 * first chunk, when the error is in the request head; a request that never began is not).
 */
function headRequest(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, owed: http.ServerResponse | null | undefined): boolean {
  if (owed && !owed.destroyed && !owed.req.complete) return owed.req.method === 'HEAD';
  return startsWithHead(err.rawPacket);
}

/** The members of Node's HTTP/2 compatibility request and response prototypes, read once (see keepH2Members). */
let h2Members: readonly [PropertyDescriptorMap, PropertyDescriptorMap] | null = null;

/**
 * Express (and any framework that gives a request the prototype of its own, built on http.IncomingMessage and
 * http.ServerResponse) would take from an HTTP/2 request and response the getters and methods they live by
 * (`url`, `method`, `headers`, `_read`; `setHeader`, `end`): the app's first HTTP/2 request crashed its worker.
 * Each member of Http2ServerRequest's and Http2ServerResponse's prototypes is put on the objects themselves,
 * where a prototype swap cannot take it; the framework's own members, further down, stay reachable. Only for
 * an app known to swap them (AppExpectations.swapsPrototypes): it costs about 15 us a request.
 */
function keepH2Members(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (!h2Members) {
    const { Http2ServerRequest, Http2ServerResponse } = lazy.http2();
    const own = (proto: object): PropertyDescriptorMap => {
      const { constructor: _, ...members } = Object.getOwnPropertyDescriptors(proto) as PropertyDescriptorMap;
      return members;
    };
    h2Members = [own(Http2ServerRequest.prototype), own(Http2ServerResponse.prototype)];
  }
  Object.defineProperties(req, h2Members[0]);
  Object.defineProperties(res, h2Members[1]);
  hostFromAuthority(req);
}

function hostFromAuthority(req: http.IncomingMessage): void {
  // HTTP/2 carries the Host in :authority (RFC 9113 section 8.3.1), where Express's req.hostname and any app
  // reading req.headers.host look for it, as over HTTP/1.1.
  const headers = req.headers;
  if (headers.host === undefined && typeof headers[':authority'] === 'string') headers.host = headers[':authority'];
}
