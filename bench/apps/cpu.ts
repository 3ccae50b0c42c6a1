// CPU-bound: every request computes for 5 ms (templating, serialisation, crypto) without awaiting anything.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

export default function app(_req: IncomingMessage, res: ServerResponse): void {
  const end = performance.now() + 5;
  let h = 'seed';
  while (performance.now() < end) h = createHash('sha256').update(h).digest('hex');
  const body = JSON.stringify({ hash: h });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
