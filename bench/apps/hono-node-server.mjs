// @hono/node-server serving the same Fetch handler, one process, on the port it is given (0: any): the hello
// handler, or the module FETCH_APP names (a file: URL; fetch-ratio.ts --routed).
import { serve } from '@hono/node-server';

const { default: handler } = await import(process.env.FETCH_APP ?? './hello-handler.mjs');
const server = serve({ fetch: handler, port: Number(process.env.PORT ?? 0), hostname: '127.0.0.1' }, (info) => {
  process.stdout.write(`listening ${info.port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
