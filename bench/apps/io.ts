// I/O-bound: every request awaits 50 ms (a database or an upstream API), then answers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

const body = JSON.stringify({ message: 'Hello World' });

export default async function app(_req: IncomingMessage, res: ServerResponse): Promise<void> {
  await sleep(50);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
