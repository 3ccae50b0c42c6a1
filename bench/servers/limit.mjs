// "The limit": N plain node:http processes accepting on one listening socket they inherited, nothing else.
// The master binds, hands the socket to its children as fd 3, closes its own copy and only waits.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { argPort, createServer } from './common.mjs';

if (process.env.BENCH_LIMIT_CHILD) {
  createServer().listen({ fd: 3 });
} else {
  const port = argPort();
  const workers = Number(process.argv[3] ?? 2);
  const sock = net.createServer();
  sock.listen({ port, host: '127.0.0.1', backlog: 2048 }, () => {
    const children = [];
    for (let i = 0; i < workers; i++) {
      children.push(spawn(process.execPath, [new URL(import.meta.url).pathname], {
        stdio: ['ignore', 'inherit', 'inherit', sock._handle.fd],
        env: { ...process.env, BENCH_LIMIT_CHILD: '1' },
      }));
    }
    // The children hold duplicates of the socket: the master stops accepting on its own.
    sock.close();
    const stop = () => {
      for (const c of children) c.kill('SIGTERM');
      process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    setInterval(() => {}, 1 << 30);
  });
}
