// node:cluster with its default policy on Linux (round-robin: the primary accepts and hands connections out).
import cluster from 'node:cluster';
import { argPort, createServer } from './common.mjs';

const port = argPort();
if (cluster.isPrimary) {
  const workers = Number(process.argv[3] ?? 2);
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  createServer().listen({ port, host: '127.0.0.1', backlog: 2048 });
}
