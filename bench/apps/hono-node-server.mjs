// @hono/node-server serving the same Fetch handler, one process, on the port it is given (0: any).
import { serve } from '@hono/node-server';
import hello from './hello-handler.mjs';

const server = serve({ fetch: hello, port: Number(process.env.PORT ?? 0), hostname: '127.0.0.1' }, (info) => {
  process.stdout.write(`listening ${info.port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
