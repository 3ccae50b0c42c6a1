// The Fetch handler every Fetch target serves: the same function for tunicorn and @hono/node-server.
export default function hello(_request) {
  return new Response('Hello World', { headers: { 'content-type': 'text/plain' } });
}
