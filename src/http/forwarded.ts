import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/registry.js';
import { parseAllowList, type AllowList } from './allow-list.js';
import { fdOf, openPeer } from './peek.js';

/**
 * Where the client a trusted proxy named is kept on a request. Registered symbols, this one and the next: the
 * app may import `tunicorn` through jiti, which gives it its own copy of this module (and of `clientAddress`).
 */
const kClient = Symbol.for('tunicorn.client');
/** The socket's own peer, kept once a proxied client address has replaced it on the socket. */
const kPeer = Symbol.for('tunicorn.peer');

type PeerSocket = net.Socket & { [kPeer]?: string | undefined };
/** The response Node is writing on a socket now (see WritingSocket in server.ts); `req` is its request. */
type AnsweringSocket = net.Socket & { _httpMessage?: { req?: IncomingMessage } | null };

/** Who a request came from, as the app should see it. */
export interface ClientInfo {
  readonly address: string | undefined;
  readonly secure: boolean;
}

type Tagged = IncomingMessage & { [kClient]?: ClientInfo };

/** Sets the address a socket reports as its peer (the client behind a proxy). */
export function setPeer(socket: net.Socket, address: string | undefined): void {
  Object.defineProperty(socket, 'remoteAddress', { value: address, configurable: true, writable: true });
}

/**
 * The client's address: what a trusted proxy said, else the socket's peer (its own, even once another
 * request on the connection has set a proxied address there). The request's own for its whole life.
 */
export function clientAddressOf(req: IncomingMessage): string | undefined {
  const t = (req as Tagged)[kClient];
  if (t) return t.address;
  const socket = req.socket as PeerSocket | null | undefined;
  return socket && kPeer in socket ? socket[kPeer] : socket?.remoteAddress;
}

/**
 * An HTTP/2 request's client, kept on the request as it arrives. Its socket is a view of the session's, and a
 * stream loses its session when it closes (Node clears the link): read after that, `clientAddress()` (which
 * stays the request's for work that outlives the response), the access log's `%(h)s` of a stream the client
 * reset, and the scheme of a Fetch URL made late were undefined and `http`. Nothing is kept for a stream
 * closed already (reset in the same read as its HEADERS): there is no session left to ask.
 */
export function keepH2Client(req: IncomingMessage): void {
  const t = req as Tagged;
  if (t[kClient]) return;
  const socket = req.socket as (net.Socket & { encrypted?: boolean }) | undefined;
  const address = socket?.remoteAddress;
  if (address !== undefined) t[kClient] = { address, secure: socket!.encrypted === true };
}

/** The native peer-address reader, looked up on first use (null: not built). */
let nativePeer: ((fd: number) => string | undefined) | null | undefined;
/**
 * Addresses read natively, by descriptor, with the connection they belong to: the later requests of a
 * keep-alive connection reuse it (a getpeername costs about 0.6 us here). Not a property on Node's socket nor a
 * WeakMap keyed by it, for the reasons AcceptTimes gives (src/workers/queue-time.ts); `forgetPeer` clears an
 * entry when its connection closes.
 */
const peerOwner: (net.Socket | null)[] = [];
const peerText: (string | undefined)[] = [];

/**
 * The client's address, read now: the access log reads it when a request starts, because once the client has
 * closed the connection there is nothing left to ask. `socket.remoteAddress` costs about 11 us per connection
 * on a plain node:http server (measured at Connection: close load): Node sets the answer's three properties from
 * C++ and keeps it as a property added to the socket. Where native/peek.c is built, a plain TCP socket is asked
 * directly (one getpeername(2), a string back; a Unix socket has no address: undefined, as from Node). An
 * address a PROXY protocol header set, or one Node has already read, is taken as it is.
 */
export function peerAddress(req: IncomingMessage): string | undefined {
  const t = (req as Tagged)[kClient];
  if (t) return t.address;
  const socket = req.socket as (net.Socket & { _peername?: unknown; _parent?: net.Socket | null }) | null;
  if (!socket) return undefined;
  if (nativePeer === undefined) {
    const found = openPeer();
    nativePeer = typeof found === 'string' ? null : found;
  }
  if (nativePeer !== null && socket._peername === undefined && !Object.hasOwn(socket, 'remoteAddress')) {
    // Over TLS the request's socket wraps the one accepted (for HTTP/2, through the session's proxy).
    const accepted = socket._parent ?? socket;
    const fd = fdOf(accepted);
    if (fd >= 0) {
      if (peerOwner[fd] === accepted) return peerText[fd];
      const address = nativePeer(fd);
      peerOwner[fd] = accepted;
      peerText[fd] = address;
      return address;
    }
  }
  return socket.remoteAddress;
}

/** A connection closed: its address, if `peerAddress` kept one, is dropped. `fd`: its descriptor when accepted. */
export function forgetPeer(socket: net.Socket, fd: number): void {
  if (fd >= 0 && peerOwner[fd] === socket) peerOwner[fd] = null;
}

/** Whether the client reached us over TLS (or, from a trusted proxy, says it did); reads no peer address. */
export function isSecure(req: IncomingMessage): boolean {
  const t = (req as Tagged)[kClient];
  if (t) return t.secure;
  return (req.socket as net.Socket & { encrypted?: boolean } | null)?.encrypted === true;
}

const FORWARD_HEADERS = ['forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port'];

/** The address in a Forwarded `for=` or X-Forwarded-For element: quotes, brackets and ports removed. */
function nodeAddress(raw: string): string | undefined {
  let s = raw.trim();
  if (s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1);
  if (s.startsWith('[')) s = s.slice(1, s.indexOf(']') > 0 ? s.indexOf(']') : undefined);
  else if (s.indexOf(':') === s.lastIndexOf(':')) s = s.split(':')[0]!;
  return net.isIP(s) ? s : undefined;
}

/**
 * forwarded_allow_ips and secure_scheme_headers. From a trusted peer the client address and scheme come from
 * Forwarded / X-Forwarded-For / X-Forwarded-Proto / the secure scheme headers; from any other peer those
 * headers are removed before the app sees them.
 */
export class ForwardedHeaders {
  readonly #trusted: AllowList;
  readonly #secure: ReadonlyMap<string, string>;
  readonly #names: ReadonlySet<string>;
  /**
   * The first bytes of those names, `| 0x20` (a letter's lower case): a header whose first byte is not one
   * of them is not looked up (no lower-cased copy of its name), whatever the secure scheme headers are.
   */
  readonly #firsts = new Uint8Array(128);
  /** Set once a request has replaced a socket's peer (a trusted proxy named the client). */
  #replacing = false;
  /**
   * The app's framework resolves the client from the forwarded headers itself, judging the socket's peer
   * against its own trust setting (Express `trust proxy`, Fastify `trustProxy`): the peer is left as it is,
   * the proxy's, or the framework would take the client for the proxy and ignore X-Forwarded-Proto and -Host.
   * `clientAddress()` and the access log still give the client.
   */
  keepPeer = false;

  constructor(cfg: Config) {
    this.#trusted = parseAllowList(cfg.forwardedAllowIps);
    this.#secure = new Map(Object.entries(cfg.secureSchemeHeaders).map(([k, v]) => [k.toLowerCase(), v]));
    this.#names = new Set([...FORWARD_HEADERS, ...this.#secure.keys()]);
    for (const n of this.#names) if (n.charCodeAt(0) < 128) this.#firsts[n.charCodeAt(0) | 0x20] = 1;
  }

  /**
   * Applies the forwarded headers to `req`. False when a trusted peer sent secure scheme headers that
   * contradict each other (one says https, another http): the request is refused with a 400, as Gunicorn's
   * InvalidSchemeHeaders, rather than given a scheme one of them may have been forged to claim.
   */
  apply(req: IncomingMessage): boolean {
    const raw = req.rawHeaders;
    const firsts = this.#firsts;
    let found = false;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      // A header name is ASCII (Node's parser refuses any other byte in one): the index is below 128.
      if (firsts[n.charCodeAt(0) | 0x20] === 1 && this.#names.has(n.toLowerCase())) {
        found = true;
        break;
      }
    }
    const socket = req.socket as PeerSocket | undefined;
    // A socket whose peer an earlier request replaced gets it back; otherwise the peer is read only when a
    // forwarding header is there to judge (on a new connection, reading it costs a getpeername call). Until a
    // peer has been replaced at all, no socket can have one to restore.
    const replaced = this.#replacing && socket !== undefined && kPeer in socket;
    if (!found) {
      if (replaced) this.show(req, socket, socket[kPeer]);
      return true;
    }
    const peer = socket ? (replaced ? socket[kPeer] : socket.remoteAddress) : undefined;
    if (!this.#trusted.allows(peer)) {
      if (replaced) this.show(req, socket, peer);
      this.strip(req);
      return true;
    }
    let address: string | undefined;
    let secure: boolean | undefined;
    const forwarded = req.headers.forwarded;
    if (forwarded) {
      // RFC 7239: the last element was added by the nearest proxy; walk back past trusted ones.
      const elements = forwarded.split(',').map((e) => Object.fromEntries(e.split(';').map((p) => {
        const i = p.indexOf('=');
        return [p.slice(0, i).trim().toLowerCase(), p.slice(i + 1).trim()];
      })) as Record<string, string | undefined>);
      const hops = elements.map((e) => (e.for ? nodeAddress(e.for) : undefined));
      const client = this.clientHop(hops);
      address = hops[client];
      // The scheme of the same hop: the element the proxy facing the client added (or the nearest one after
      // it that names a proto). The last element's is only how the nearest proxy was reached.
      let proto: string | undefined;
      for (let i = Math.max(client, 0); i < elements.length && proto === undefined; i++) proto = elements[i]!.proto?.replaceAll('"', '').toLowerCase();
      if (proto) secure = proto === 'https';
    } else {
      const xff = req.headers['x-forwarded-for'];
      if (xff) address = this.firstUntrusted((Array.isArray(xff) ? xff.join(',') : xff).split(',').map(nodeAddress));
    }
    // Each secure scheme header line, as Gunicorn reads them: all must say the same scheme.
    let scheme: boolean | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const want = this.#secure.get(raw[i]!.toLowerCase());
      if (want === undefined) continue;
      const says = raw[i + 1]!.trim().toLowerCase() === want.toLowerCase();
      if (scheme !== undefined && says !== scheme) return false;
      scheme = says;
    }
    if (scheme === true) secure = true;
    else if (scheme === false && secure === undefined) secure = false;
    (req as Tagged)[kClient] = { address: address ?? clientAddressOf(req), secure: secure ?? isSecure(req) };
    if (this.keepPeer) return true;
    if (address && socket && (req as { stream?: unknown }).stream !== undefined) {
      // HTTP/2: the streams of one session share its socket; this request alone gets a view with the client.
      const view = new Proxy(socket, { get: (t, p) => (p === 'remoteAddress' ? address : Reflect.get(t, p)) });
      Object.defineProperty(req, 'socket', { value: view, configurable: true });
    } else if (address && socket) {
      // Listener apps and frameworks read the peer from the socket; behind a proxy that is the client. A
      // proxy may send requests of several clients on one connection: each request sets it anew.
      if (!(kPeer in socket)) socket[kPeer] = peer;
      this.#replacing = true;
      this.show(req, socket, address);
    } else if (replaced) {
      this.show(req, socket, peer);
    }
    return true;
  }

  /**
   * Makes `address` what `req.socket.remoteAddress` reads for this request. Set on the socket, unless the
   * request is pipelined behind one whose response is still owed (async: Node hands the app every request it
   * has parsed, at once): that one may still read the socket, so this request gets its own view of it, as an
   * HTTP/2 stream does. A request's address stays its own until its response is sent, when the connection
   * may go on to the next request.
   */
  private show(req: IncomingMessage, socket: PeerSocket, address: string | undefined): void {
    if (socket.remoteAddress === address) return;
    const owed = (socket as AnsweringSocket)._httpMessage;
    if (owed && owed.req !== req) {
      const view = new Proxy(socket, { get: (t, p) => (p === 'remoteAddress' ? address : Reflect.get(t, p)) });
      Object.defineProperty(req, 'socket', { value: view, configurable: true, writable: true });
    } else {
      setPeer(socket, address);
    }
  }

  /**
   * Right to left, the first hop that is not a listed proxy (AllowList.listed: `*` lists none, so with `*` alone
   * it is the last hop, the address the connecting proxy saw); the leftmost when all are.
   */
  private firstUntrusted(hops: (string | undefined)[]): string | undefined {
    return hops[this.clientHop(hops)];
  }

  /**
   * The index of firstUntrusted's hop, or of the unknown or obfuscated one the walk stopped at (its address is
   * undefined: do not guess past it); -1 for no hops.
   */
  private clientHop(hops: (string | undefined)[]): number {
    for (let i = hops.length - 1; i >= 0; i--) {
      const h = hops[i];
      if (h === undefined || !this.#trusted.listed(h) || i === 0) return i;
    }
    return -1;
  }

  private strip(req: IncomingMessage): void {
    // Node builds `headers` and `headersDistinct` on first use from rawHeaders, up to the count it parsed: both
    // are built before rawHeaders shrinks (an 'upgrade' request reaches here with neither built yet).
    const headers = req.headers;
    const distinct = (req as { headersDistinct?: Record<string, string[]> }).headersDistinct;
    for (const n of this.#names) {
      delete headers[n];
      if (distinct) delete distinct[n];
    }
    const raw = req.rawHeaders;
    for (let i = raw.length - 2; i >= 0; i -= 2) if (this.#names.has(raw[i]!.toLowerCase())) raw.splice(i, 2);
  }
}
