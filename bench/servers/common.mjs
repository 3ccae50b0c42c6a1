// Shared by the baseline servers: the app to serve and the http or https server to serve it with.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import listener from './apps/listener.mjs';

/** BENCH_TLS_KEY / BENCH_TLS_CERT select https with that key pair (the TLS load). */
export function createServer() {
  const key = process.env.BENCH_TLS_KEY;
  const cert = process.env.BENCH_TLS_CERT;
  if (key && cert) return https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert), noDelay: true }, listener);
  return http.createServer({ noDelay: true }, listener);
}

export function argPort() {
  const port = Number(process.argv[2]);
  if (!Number.isInteger(port) || port <= 0) throw new Error('usage: node SERVER.mjs PORT [WORKERS]');
  return port;
}
