import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppLoadError } from './errors.js';
import type { ServedApp } from './shapes.js';

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * --reload only: what a worker serves when the app's code does not load, so the developer sees why in the
 * browser (never in production: it shows file paths and source lines).
 */
export function loadErrorPage(err: AppLoadError): ServedApp {
  const html =
    '<!doctype html><meta charset="utf-8"><title>App failed to load</title>' +
    '<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em;overflow:auto}</style>' +
    `<h1>App failed to load</h1><p>${escape(err.message)}</p><pre>${escape(err.detail || err.message)}</pre>` +
    '<p>tunicorn --reload restarts the workers when a watched file changes.</p>\n';
  return {
    kind: 'the load error page (--reload)',
    listener: (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(500, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html), 'cache-control': 'no-store' });
      res.end(html);
    },
  };
}
