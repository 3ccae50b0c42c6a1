import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { FetchHandler } from './fetch-bridge.js';

/**
 * The Fetch bridge is imported only for a Fetch app: touching Request/Response loads Node's fetch
 * implementation, about 12 MB of RSS in every worker (measured on Node 20).
 */
const bridge = () => import('./fetch-bridge.js');

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;
export type ErrorSink = (err: unknown, req: IncomingMessage, res: ServerResponse) => void;

/** What a worker serves: a request listener on tunicorn's own server, or the app's own server object. */
export interface ServedApp {
  /** The detected shape, for the log ("Serving app.ts:default as a Fetch handler"). */
  readonly kind: string;
  readonly listener?: RequestListener;
  /** An http.Server the app made: served as it is, so its `upgrade` listeners work. */
  readonly server?: http.Server;
  /** Runs when the worker stops (the framework's close()). */
  readonly close?: () => Promise<void>;
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

/** Wraps a `(req, res)` listener so a throw or a rejected promise becomes a 500 and a log line. */
export function guardListener(fn: (req: IncomingMessage, res: ServerResponse) => unknown, onError: ErrorSink): RequestListener {
  return (req, res) => {
    try {
      const r = fn(req, res);
      if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, (e) => onError(e, req, res));
    } catch (err) {
      onError(err, req, res);
    }
  };
}

export const SHAPES: Shape[] = [
  {
    name: 'http.Server',
    matches: (v) => v instanceof http.Server,
    adapt: (server: http.Server) => ({ kind: 'http.Server', server }),
  },
  {
    name: 'object with fetch()',
    matches: (v) => typeof v === 'object' && v !== null && typeof (v as { fetch?: unknown }).fetch === 'function',
    adapt: async (o: { fetch: FetchHandler }, ctx) => ({
      kind: 'Fetch handler (object with fetch)',
      listener: (await bridge()).fetchListener((r) => o.fetch(r), ctx.onError),
    }),
  },
  {
    name: 'Fetch handler',
    matches: (v) => typeof v === 'function' && v.length === 1,
    adapt: async (fn: FetchHandler, ctx) => ({ kind: 'Fetch handler', listener: (await bridge()).fetchListener(fn, ctx.onError) }),
  },
  {
    name: '(req, res) listener',
    matches: (v) => typeof v === 'function' && v.length >= 2,
    adapt: (fn: RequestListener, ctx) => ({ kind: '(req, res) listener', listener: guardListener(fn, ctx.onError) }),
  },
];

export const ACCEPTED =
  'a (req, res) listener, a Fetch handler (request) => Response, an object with fetch(), an http.Server, ' +
  'or a function of no arguments that returns (or resolves to) one of these';

export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'function') return `a function of ${v.length} parameter(s)`;
  if (typeof v === 'object') {
    const name = (v as object).constructor?.name;
    const keys = Object.keys(v).slice(0, 5);
    return `${name && name !== 'Object' ? `an instance of ${name}` : 'an object'}${keys.length ? ` with keys ${keys.join(', ')}` : ''}`;
  }
  return `a ${typeof v} (${JSON.stringify(v)})`;
}
