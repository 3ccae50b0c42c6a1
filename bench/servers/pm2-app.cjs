// The app as PM2 cluster mode runs it: PM2 starts it under node:cluster, so listen() goes through its primary.
const http = require('node:http');

import('./apps/listener.mjs').then(({ default: listener }) => {
  http.createServer({ noDelay: true }, listener).listen({ port: Number(process.env.PORT), host: '127.0.0.1', backlog: 2048 });
});
