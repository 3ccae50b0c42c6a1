import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { appWork } from './app-work.js';
import { isHttpServer } from './capture.js';
import { AppResultError, stackText } from './errors.js';
import type { FetchHandler } from './fetch-bridge.js';
import { stopPart } from './stop-parts.js';

/**
 * The Fetch bridge and the Response stand-in touch the global Request and Response, which loads undici
 * (~7 MB of RSS): only Fetch apps pay for it. The stand-in is installed once the app is known to be a Fetch
 * handler, before its first request; a Response made while the module was imported is a native one, which
 * the bridge writes too (by reading its body).
 */
async function bridge(): Promise<typeof import('./fetch-bridge.js')> {
  const [b, r] = await Promise.all([import('./fetch-bridge.js'), import('./fetch-response.js')]);
  r.installResponse();
  return b;
}

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;
export type ErrorSink = (err: unknown, req: IncomingMessage, res: ServerResponse) => void;

/** What a worker serves: a request listener on tunicorn's own server, or the app's own server object. */
export interface ServedApp {
  /** The detected shape, for the log ("Serving app.ts as a Fastify app"). */
  readonly kind: string;
  readonly listener?: RequestListener;
  /** An http.Server (or https.Server) the app made: served as it is, so its `upgrade` listeners work. */
  readonly server?: http.Server;
  /** Runs in each worker after the app loaded, before it accepts (the module's `startup` export). */
  readonly startup?: () => Promise<void>;
  /** Runs when the worker stops: the framework's close(), then the module's `shutdown` export. */
  readonly close?: () => Promise<void>;
  /**
   * The framework's close() alone, where `close` also runs the module's `shutdown` export: what the master's
   * --preload copy runs (its lifespan exports belong to the workers).
   */
  readonly frameworkClose?: () => Promise<void>;
  /**
   * The framework resolves the client from the forwarded headers itself (Express `trust proxy`, Fastify
   * `trustProxy`): the socket keeps the proxy's address, which its trust check judges (forwarded.ts).
   */
  readonly ownsProxyTrust?: boolean;
  /** The listener swaps the prototypes of requests and responses (Express; see swapsPrototypes). */
  readonly swapsPrototypes?: boolean;
}

export interface AdaptContext {
  readonly onError: ErrorSink;
}

/** One app shape: how to recognise it and how to serve it. Tried in order; the first match wins. */
export interface Shape {
  readonly name: string;
  readonly matches: (value: unknown) => boolean;
  readonly adapt: (value: any, ctx: AdaptContext) => Promise<ServedApp> | ServedApp;
}

/**
 * Wraps a `(req, res)` listener so a throw or a rejected promise becomes a 500 and a log line. `onResolved`, when
 * given, sees what a listener's promise resolved to (see unansweredResult).
 */
export function guardListener(
  fn: (req: IncomingMessage, res: ServerResponse) => unknown,
  onError: ErrorSink,
  onResolved?: (value: unknown, req: IncomingMessage, res: ServerResponse) => void,
): RequestListener {
  return (req, res) => {
    try {
      const r = fn(req, res);
      if (r && typeof (r as Promise<unknown>).then === 'function') {
        (r as Promise<unknown>).then(onResolved && ((v) => onResolved(v, req, res)), (e) => onError(e, req, res));
        appWork.track?.(res, r as Promise<unknown>);
      }
    } catch (err) {
      onError(err, req, res);
    }
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isFn = (v: unknown): v is (...a: unknown[]) => unknown => typeof v === 'function';

/**
 * Two kinds of function that a function's length cannot tell from a (req, res) listener, and that fail every
 * request when served as one: the failure's line in the error log names them and the way out. Only a request
 * that fails pays for the check.
 */
function withShapeHint(onError: ErrorSink, length: number): ErrorSink {
  return (err, req, res) => {
    const hint = shapeHint(err, req, length);
    onError(hint ? hinted(err as TypeError, hint) : err, req, res);
  };
}

function shapeHint(err: unknown, req: IncomingMessage, length: number): string | null {
  if (!(err instanceof TypeError)) return null;
  // A Fetch handler of two parameters, (request, context): h3's toWebHandler(), React Router's
  // createRequestHandler(). Given an IncomingMessage, whose url is a path, its `new URL(request.url)` throws
  // with that path as the input. So does a (req, res) listener's own `new URL(req.url)`, which is no Fetch
  // handler: the line says both.
  if (length === 2 && (err as { code?: unknown }).code === 'ERR_INVALID_URL' && (err as { input?: unknown }).input === req.url)
    return (
      'tunicorn serves a function of two parameters as a (req, res) listener, whose req.url is a path, not a URL ' +
      "(a listener parses it with a base: `new URL(req.url, 'http://localhost')`); a Fetch handler of two, " +
      '(request, context), is served from an object: `export default { fetch: handler }`'
    );
  // A middleware (req, res, next) that passes a request or an error on (@react-router/express's handler): a
  // listener is given no next(), which a Next.js request handler's third parameter (parsedUrl) rules out.
  if (length >= 3 && err.message === 'next is not a function')
    return `tunicorn serves a function of ${length} parameters as a (req, res) listener, with no next(): mount a middleware (req, res, next) on an app (Express: \`app.use(handler)\`) and serve the app`;
  return null;
}

/**
 * A micro handler, `async (req, res) => 'Welcome to Micro'` (micro's README), served as a listener: it answers by
 * what it returns, which micro's serve() sends and tunicorn does not, so each request would wait, unanswered,
 * with nothing logged. A listener whose promise resolves to a body (a string, bytes, a plain object or array) and
 * has not begun its response fails the request with a line naming the way out. Not a number, nor an object or
 * array that holds `res`: what a listener that answers later, keeping `res` (long polling), resolves to as it
 * returns the expression that kept it (`waiting.push(res)`, `pending[id] = { res }`). Only a listener that
 * returns a promise pays for the check, once it settles.
 */
function unansweredResult(onError: ErrorSink): (value: unknown, req: IncomingMessage, res: ServerResponse) => void {
  return (value, req, res) => {
    if (value === undefined || value === null || res.headersSent || res.writableEnded || res.destroyed) return;
    const proto = typeof value === 'object' ? Object.getPrototypeOf(value) : null;
    const body = typeof value === 'string' || value instanceof Uint8Array || Array.isArray(value) || proto === Object.prototype || (typeof value === 'object' && proto === null);
    if (!body || (typeof value === 'object' && !(value instanceof Uint8Array) && holds(value as object, res))) return;
    const what = typeof value === 'string' ? 'a string' : value instanceof Uint8Array ? 'bytes' : Array.isArray(value) ? 'an array' : 'an object';
    onError(
      new AppResultError(
        `the (req, res) listener resolved to ${what} and did not answer: tunicorn sends nothing a listener returns; a micro handler is served as \`export default serve(handler)\` (serve from 'micro'); any other listener answers through res (res.end())`,
      ),
      req,
      res,
    );
  };
}

/** Whether an object or array has `res` among its own values; false when reading them throws (a getter). */
function holds(value: object, res: ServerResponse): boolean {
  try {
    return Object.values(value).includes(res);
  } catch {
    return false;
  }
}

/** `err` with the hint on its first line, its stack (the app's frames) kept. */
function hinted(err: TypeError, hint: string): TypeError {
  const out = new TypeError(`${err.message} (${hint})`, { cause: err });
  const stack = stackText(err);
  const frames = stack.indexOf('\n    at ');
  if (frames !== -1) out.stack = `${out.name}: ${out.message}${stack.slice(frames)}`;
  return out;
}

/** An Express app (the function itself, or a server's 'request' listener) with `trust proxy` set. */
/**
 * A listener that gives each request and response a prototype of its own, built on http.IncomingMessage and
 * http.ServerResponse (Express's `app.request` and `app.response`): over HTTP/2 it would take away the members
 * Node's compatibility objects live by (see keepH2Members in src/http/server.ts).
 */
export function swapsPrototypes(v: unknown): boolean {
  if (!isFn(v)) return false;
  const { request, response } = v as unknown as Record<string, unknown>;
  return isObject(request) && isObject(response) && http.IncomingMessage.prototype.isPrototypeOf(request) && http.ServerResponse.prototype.isPrototypeOf(response);
}

export function expressTrustsProxy(v: unknown): boolean {
  if (!isFn(v)) return false;
  const app = v as unknown as Record<string, unknown>;
  return isFn(app.handle) && isFn(app.enabled) && (app.enabled as (name: string) => boolean)('trust proxy') === true;
}

/** A Fastify instance made with `trustProxy` (its options are kept under an unregistered symbol). */
function fastifyTrustsProxy(app: object): boolean {
  const key = Object.getOwnPropertySymbols(app).find((s) => s.description === 'fastify.options');
  const options = key ? (app as Record<symbol, unknown>)[key] : undefined;
  return isObject(options) && Boolean(options.trustProxy);
}

/**
 * The shapes, in the order they are tried (README "App shapes" documents the same order). Framework objects
 * come before the generic shapes they would also match: a Fastify or Nest app owns an http.Server and
 * needs its own start and close; an Express app is a (req, res, next) listener.
 * A function of no parameters is none of these: load.ts calls it as a factory and tries its result here.
 */
export const SHAPES: Shape[] = [
  {
    name: 'http.Server',
    matches: isHttpServer,
    adapt: (server: http.Server) => ({ kind: 'http.Server', server }),
  },
  {
    // INestApplication: init() runs the module hooks and mounts the routes; the adapter (Express or
    // Fastify) made the http.Server, which Nest's WebSocket gateways attach to.
    name: 'NestJS application',
    matches: (v) => isObject(v) && isFn(v.getHttpAdapter) && isFn(v.getHttpServer) && isFn(v.init) && isFn(v.close),
    adapt: async (app: { init(): Promise<unknown>; getHttpServer(): unknown; close(): Promise<void> }) => {
      await app.init();
      const server = app.getHttpServer();
      if (!isHttpServer(server)) throw new TypeError('the NestJS application has no http.Server after init()');
      // On the Express adapter the server's 'request' listener is the Express app (Serving checks it); on
      // the Fastify adapter, the instance.
      const instance = (app as unknown as { getHttpAdapter(): { getInstance?(): unknown } }).getHttpAdapter().getInstance?.();
      return { kind: 'NestJS application', server, close: () => stopPart("the NestJS application's close()", () => app.close()), ownsProxyTrust: isObject(instance) && fastifyTrustsProxy(instance) };
    },
  },
  {
    // Fastify crashes on a request served before ready() (FACTS); close() runs its onClose hooks.
    name: 'Fastify instance',
    matches: (v) => isObject(v) && isFn(v.routing) && isFn(v.ready) && isFn(v.close) && isHttpServer(v.server),
    adapt: async (app: { ready(): Promise<unknown>; server: http.Server; close(): Promise<void> }) => {
      await app.ready();
      return { kind: 'Fastify instance', server: app.server, close: () => stopPart("the Fastify instance's close() (its onClose hooks)", () => app.close()), ownsProxyTrust: fastifyTrustsProxy(app) };
    },
  },
  {
    // hapi's Hapi.server(): initialize() runs its onPreStart extensions and starts its caches without
    // listening (start() would listen itself); `listener` is its http.Server. stop() runs onPreStop, onPostStop
    // and the 'stop' event; a server that start()ed is served through the row of a listen() captured.
    name: 'hapi server',
    matches: (v) => isObject(v) && isFn(v.initialize) && isFn(v.start) && isFn(v.stop) && isFn(v.route) && isFn(v.inject) && isHttpServer(v.listener),
    adapt: async (app: { initialize(): Promise<void>; listener: http.Server; stop(): Promise<void> }) => {
      await app.initialize();
      return { kind: 'hapi server', server: app.listener, close: () => stopPart("the hapi server's stop()", () => app.stop()) };
    },
  },
  {
    // restify.createServer(): the http.Server it made, whose 'request' and 'upgrade' listeners are restify's.
    name: 'restify server',
    matches: (v) => isObject(v) && isFn(v.pre) && isFn(v.use) && isFn(v.listen) && isObject(v.router) && isHttpServer(v.server),
    adapt: (app: { server: http.Server }) => ({ kind: 'restify server', server: app.server }),
  },
  {
    // A Socket.IO Server: the http.Server it was attached to (`new Server(httpServer)`, or the one its own
    // `new Server(3000)` made), else a new one it is attached to now, which answers 404 outside its path as
    // Socket.IO's own does. Its close() disconnects the clients (a polling client's pending request ends).
    name: 'Socket.IO server',
    matches: (v) => isObject(v) && isFn(v.attach) && isFn(v.of) && isFn(v.serveClient) && isFn(v.close) && isFn(v.fetchSockets),
    adapt: (io: { httpServer?: unknown; attach(server: http.Server): unknown; close(): Promise<void> }) => {
      let server = io.httpServer;
      if (!isHttpServer(server)) {
        server = http.createServer((_req, res) => {
          res.writeHead(404);
          res.end();
        });
        io.attach(server as http.Server);
      }
      return { kind: 'Socket.IO server', server: server as http.Server, close: () => stopPart("the Socket.IO server's close()", () => io.close()) };
    },
  },
  {
    // A Feathers app on Koa or Express (`koa(feathers())`, `express(feathers())`): its listen() makes the
    // http.Server and runs app.setup(server) (the services' setup() and setup hooks, @feathersjs/socketio
    // attaching to that server); teardown(server) runs theirs. Its `app.server` is left unset: teardown()
    // would close it with a callback, which fails on a server that never listened (the --preload copy's).
    name: 'Feathers application',
    matches: (v) => (isObject(v) || isFn(v)) && isFn((v as Record<string, unknown>).setup) && isFn((v as Record<string, unknown>).teardown) && isFn((v as Record<string, unknown>).service) && isFn((v as Record<string, unknown>).hooks) && (isFn((v as Record<string, unknown>).callback) || isFn((v as Record<string, unknown>).handle)),
    adapt: async (app: { callback?(): RequestListener; setup(server: http.Server): Promise<unknown>; teardown(server: http.Server): Promise<unknown> }) => {
      const koa = isFn(app.callback);
      const server = http.createServer(koa ? app.callback!() : (app as unknown as RequestListener));
      await app.setup(server);
      return { kind: `Feathers application (${koa ? 'Koa' : 'Express'})`, server, close: () => stopPart("the Feathers application's teardown()", () => app.teardown(server)) };
    },
  },
  {
    name: 'Koa application',
    matches: (v) => isObject(v) && isFn(v.callback) && isFn(v.use) && Array.isArray(v.middleware),
    adapt: (app: { callback(): RequestListener }, ctx) => ({ kind: 'Koa application', listener: guardListener(app.callback(), ctx.onError) }),
  },
  {
    // next({ dev: false }), Next.js's custom server: prepare() reads the build (and fails, with Next's reason,
    // when there is none); the handler takes (req, res) and an optional parsed URL, left for Next to make.
    name: 'Next.js app',
    matches: (v) => isObject(v) && isFn(v.prepare) && isFn(v.getRequestHandler) && isFn(v.close),
    adapt: async (app: { prepare(): Promise<unknown>; getRequestHandler(): (req: IncomingMessage, res: ServerResponse) => unknown; close(): Promise<unknown> }, ctx) => {
      await app.prepare();
      const handle = app.getRequestHandler();
      return { kind: 'Next.js app', listener: guardListener((req, res) => handle(req, res), ctx.onError), close: () => stopPart("the Next.js app's close()", () => app.close()) };
    },
  },
  {
    // polka() and tinyhttp's `new App()`: handler(req, res) routes a request, as the server their listen()
    // makes calls it (polka binds it; tinyhttp's reads `this`).
    name: 'app with handler() and listen() (polka, tinyhttp)',
    matches: (v) => isObject(v) && isFn(v.handler) && isFn(v.listen) && isFn(v.use) && !isFn(v.fetch),
    adapt: (app: { handler(req: IncomingMessage, res: ServerResponse): unknown; constructor?: { name?: string } }, ctx) => ({
      kind: `${app.constructor?.name === 'Polka' ? 'polka' : app.constructor?.name === 'App' ? 'tinyhttp' : 'app with handler()'} app`,
      listener: guardListener((req, res) => app.handler(req, res), ctx.onError),
    }),
  },
  {
    // GraphQL Yoga's createYoga() (a @whatwg-node/server adapter): a function that is both a Fetch handler
    // and a (req, res) listener. Its fetch() answers with the Response of its own fetch ponyfill, not Node's,
    // so it is served by its Node entry, requestListener(); dispose() runs its plugins' onDispose.
    name: 'GraphQL Yoga (whatwg-node server adapter)',
    matches: (v) => isFn(v) && isFn((v as unknown as Record<string, unknown>).requestListener) && isFn((v as unknown as Record<string, unknown>).handleNodeRequestAndResponse) && isFn((v as unknown as Record<string, unknown>).fetch),
    adapt: (app: { requestListener(req: IncomingMessage, res: ServerResponse): unknown; dispose?(): unknown }, ctx) => ({
      kind: 'GraphQL Yoga (whatwg-node server adapter)',
      listener: guardListener((req, res) => app.requestListener(req, res), ctx.onError),
      close: isFn(app.dispose) ? () => stopPart("the server adapter's dispose()", () => app.dispose!()) : undefined,
    }),
  },
  {
    name: 'object with fetch()',
    matches: (v) => isObject(v) && isFn(v.fetch),
    adapt: async (o: { fetch: FetchHandler }, ctx) => ({
      kind: `Fetch handler (${o.constructor?.name === 'Hono' ? 'Hono app' : 'object with fetch'})`,
      listener: (await bridge()).fetchListener((r) => o.fetch(r), ctx.onError),
    }),
  },
  {
    name: 'Express application',
    matches: (v) => isFn(v) && isFn((v as unknown as Record<string, unknown>).handle) && isFn((v as unknown as Record<string, unknown>).use) && v.length >= 2,
    adapt: (fn: RequestListener, ctx) => ({
      kind: 'Express application',
      listener: guardListener(fn, ctx.onError),
      ownsProxyTrust: expressTrustsProxy(fn),
      swapsPrototypes: swapsPrototypes(fn),
    }),
  },
  {
    name: 'Fetch handler',
    matches: (v) => isFn(v) && v.length === 1,
    adapt: async (fn: FetchHandler, ctx) => ({ kind: 'Fetch handler', listener: (await bridge()).fetchListener(fn, ctx.onError) }),
  },
  {
    name: '(req, res) listener',
    matches: (v) => isFn(v) && (v.length >= 2 || takesRest(v)),
    adapt: (fn: RequestListener, ctx) => ({
      kind: '(req, res) listener',
      listener: guardListener(takesRest(fn) ? madeNoApp(fn) : fn, withShapeHint(ctx.onError, fn.length), unansweredResult(ctx.onError)),
    }),
  },
];

export const ACCEPTED =
  'a (req, res) listener (Express, Koa), a Fetch handler (request) => Response, an object with fetch() (Hono), ' +
  'a Fastify, NestJS, Next.js, hapi, restify, Feathers, polka or tinyhttp app, a Socket.IO Server, GraphQL Yoga, an http.Server, a server the module listen()s on, ' +
  'or a function of no parameters that returns (or resolves to) one of these';

/**
 * What a module exports by mistake, which a shape would take and then fail on every request, said instead of
 * served: an Express Router matches the Express shape (a function with handle() and use()) but throws
 * `argument callback is required` (Express 5) or `out is not a function` (4) without the `next` an app gives
 * it; express and Fastify themselves are the functions that make an app (express() called as a factory
 * serves an app with no routes, a 404 for everything; Fastify's, of one parameter, is taken for a Fetch
 * handler); an h3 1.x app is an object with handler() that takes h3's event, not a request. Null when `v` is
 * none of these.
 */
export function mistakenExport(v: unknown): string | null {
  // h3 1.x's createApp(): its handler() takes an event of h3's, which only h3's adapters make (h3 2.x's app
  // has fetch(), and is served as one).
  if (isObject(v) && isFn(v.handler) && isFn(v.use) && isFn(v.resolve) && Array.isArray(v.stack) && !isFn(v.fetch))
    return "an h3 app (createApp() of h3 1.x), not a listener: serve the one h3 makes of it, `export default toNodeListener(app)` (toNodeListener from 'h3')";
  if (!isFn(v)) return null;
  const f = v as unknown as Record<string, unknown>;
  // A Connect app has handle(), use() and a stack too, but also listen(), and serves alone (finalhandler).
  if (isFn(f.handle) && isFn(f.use) && Array.isArray(f.stack) && !isFn(f.set) && !isFn(f.listen))
    return 'an Express Router, not an app: mount it on an app (`app.use(router)`) and serve the app';
  if (isFn(f.Router) && isFn(f.static) && isObject(f.application))
    return 'express itself (the function that makes an app), not an app: serve the app it made (`const app = express(); export default app`)';
  if (f.fastify === v)
    return "Fastify's factory itself, not an app: serve the instance it made (`const app = Fastify(); export default app`)";
  return null;
}

/**
 * A function whose parameters are a rest parameter alone, `(...args)`: its length is 0, as a factory's, but it
 * takes arguments (Astro's node adapter's handler in middleware mode is `async (...args) => {...}`, a
 * (req, res, next, locals) listener), so it is served as a listener. The parameter list is the first "(" of the
 * source for every function of length 0 (an arrow of one bare parameter has length 1).
 */
function takesRest(v: unknown): boolean {
  return typeof v === 'function' && v.length === 0 && /^[^(]*\(\s*\.\.\./.test(Function.prototype.toString.call(v));
}

/**
 * A listener of a rest parameter alone, `(...args)`, checked for what a factory under a generic wrapper (a
 * memoize, a tracer: `(...args) => factory(...args)`) does when served as one: it makes an app at each request
 * and leaves the response alone, so that every request waits for its timeout with no line said. A call that
 * returns (or resolves to) an app, with nothing sent, fails the request with a line that names the way out.
 * Only these listeners pay for the check.
 */
function madeNoApp(fn: RequestListener): RequestListener {
  const check = (made: unknown, res: ServerResponse) => {
    if (made == null || res.headersSent || !(isFn(made) || SHAPES.some((s) => s.matches(made)))) return;
    throw new AppResultError(
      `the app, a function of a rest parameter (...args) served as a (req, res) listener, returned ${describeValue(made)} and sent nothing: ` +
        'if it makes the app (a factory under a wrapper), serve its call, `FILE:NAME()` (`app.mjs:default()` for the default export)',
    );
  };
  return (req, res) => {
    const r = fn(req, res) as unknown;
    return r && typeof (r as Promise<unknown>).then === 'function' ? (r as Promise<unknown>).then((made) => check(made, res)) : check(r, res);
  };
}

/** A class: a function, but never one to call as a factory (calling it throws `cannot be invoked without 'new'`). */
export function isClass(v: unknown): v is abstract new (...a: never[]) => unknown {
  return typeof v === 'function' && /^class[\s{]/.test(Function.prototype.toString.call(v));
}

/** A class decorated with NestJS's @Module() (its metadata, when reflect-metadata is loaded). */
function isNestModule(v: unknown): boolean {
  const keys = (Reflect as { getMetadataKeys?: (t: object) => unknown[] }).getMetadataKeys?.(v as object) ?? [];
  return ['imports', 'controllers', 'providers'].some((k) => keys.includes(k));
}

export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (isClass(v)) {
    const name = v.name ? ` (${v.name})` : '';
    return isNestModule(v)
      ? `a NestJS module class${name}, not an app: serve a file that makes the app, as \`export default await NestFactory.create(${v.name || 'AppModule'})\` does`
      : `a class${name}, not an instance of it`;
  }
  if (typeof v === 'function') return `a function of ${v.length} parameter(s)`;
  if (typeof v === 'object') {
    const name = (v as object).constructor?.name;
    const keys = Object.keys(v).slice(0, 5);
    return `${name && name !== 'Object' ? `an instance of ${name}` : 'an object'}${keys.length ? ` with keys ${keys.join(', ')}` : ''}`;
  }
  // JSON.stringify throws on a bigint, from inside the line that names the export.
  return `a ${typeof v} (${typeof v === 'bigint' ? `${v}n` : JSON.stringify(v)})`;
}
