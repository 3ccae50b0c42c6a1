// CPU-bound: every request does a fixed amount of computing (templating, serialisation, crypto), about 5 ms on
// the benchmark machine, without awaiting anything. A fixed amount, not "until 5 ms have passed": with more
// processes than cores a request is preempted, and a wall-clock loop would then compute less per request and
// make oversubscription look faster than it is.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** SHA-256 rounds per request: about 5 ms, once warm, on one core of the 2-vCPU AMD EPYC the figures in docs/ come from. */
const ROUNDS = 2300;

export default function app(_req: IncomingMessage, res: ServerResponse): void {
  let h = 'seed';
  for (let i = 0; i < ROUNDS; i++) h = createHash('sha256').update(h).digest('hex');
  const body = JSON.stringify({ hash: h });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
