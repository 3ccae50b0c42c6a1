// The soak's app (bench/soak.ts): a cheap answer, and routes for the churn the soak puts a server through.
import { spawn } from 'node:child_process';

export default function soak(req, res) {
  const url = req.url ?? '/';
  if (url.startsWith('/spawn')) {
    // A child that outlives the request (and maybe its worker): the master ends what a recycled worker leaves.
    const child = spawn('sleep', ['20'], { stdio: 'ignore' });
    child.unref();
    child.on('error', () => {});
    // And one that exits before the answer.
    const quick = spawn('true', [], { stdio: 'ignore' });
    quick.on('error', () => {});
    quick.on('exit', () => send(res, 'spawned\n'));
    return;
  }
  if (url.startsWith('/exit')) {
    // A worker (a gthread thread) that leaves a child running and exits on its own, after its answer.
    const child = spawn('sleep', ['20'], { stdio: 'ignore' });
    child.unref();
    child.on('error', () => {});
    res.on('finish', () => setTimeout(() => process.exit(0), 10));
    return send(res, 'exiting\n');
  }
  if (url.startsWith('/block')) {
    // Blocks the event loop past --timeout: the master kills the worker (WORKER TIMEOUT).
    const until = Date.now() + Number(new URL(url, 'http://x').searchParams.get('ms') ?? 3000);
    while (Date.now() < until);
    return send(res, 'unblocked\n');
  }
  if (url.startsWith('/slow')) {
    // Answers late: the client leaves before it does.
    const t = setTimeout(() => send(res, 'late\n'), 500);
    res.on('close', () => clearTimeout(t));
    return;
  }
  if (req.method === 'POST') {
    let n = 0;
    req.on('data', (d) => (n += d.length));
    req.on('end', () => send(res, `${n}\n`));
    return;
  }
  send(res, 'Hello World');
}

function send(res, body) {
  if (res.destroyed) return;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
