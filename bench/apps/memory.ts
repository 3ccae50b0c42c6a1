// Memory-heavy: builds a 200 MB heap at start (a model, a cache, a big lookup table), then answers cheaply.
import type { IncomingMessage, ServerResponse } from 'node:http';

const MB = 1024 * 1024;
// Many small arrays of numbers: JavaScript heap, not an external buffer, as a real in-memory cache would be.
const table: number[][] = [];
for (let i = 0; i < 200; i++) table.push(Array.from({ length: MB / 8 }, (_, j) => i * j + 0.5));

export default function app(req: IncomingMessage, res: ServerResponse): void {
  const i = (req.url?.length ?? 0) % table.length;
  const body = JSON.stringify({ value: table[i]![i] });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
