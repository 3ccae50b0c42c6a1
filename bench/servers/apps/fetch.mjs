// The same routes as a Fetch handler, served by tunicorn and by @hono/node-server.
import { BIG, HELLO, SLOW_MS } from './routes.mjs';

const JSON_TYPE = { 'content-type': 'application/json' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export default async function fetchHandler(request) {
  const path = new URL(request.url).pathname;
  if (path === '/') return new Response(HELLO, { headers: JSON_TYPE });
  if (path === '/echo') return new Response(await request.arrayBuffer(), { headers: JSON_TYPE });
  if (path === '/big') return new Response(BIG, { headers: { 'content-type': 'application/octet-stream' } });
  if (path === '/slow') {
    await sleep(SLOW_MS);
    return new Response(HELLO, { headers: JSON_TYPE });
  }
  return new Response(null, { status: 404 });
}
