// A (req, res) listener: GET / hello JSON, POST /echo echoes the body, GET /big 1 MB, GET /slow waits 50 ms.
import { BIG, HELLO, SLOW_MS } from './routes.mjs';

const JSON_HEADERS = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(HELLO) };

export default function listener(req, res) {
  const url = req.url;
  if (url === '/') {
    res.writeHead(200, JSON_HEADERS);
    res.end(HELLO);
  } else if (url === '/echo') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  } else if (url === '/big') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length });
    res.end(BIG);
  } else if (url === '/slow') {
    setTimeout(() => {
      res.writeHead(200, JSON_HEADERS);
      res.end(HELLO);
    }, SLOW_MS);
  } else {
    res.writeHead(404);
    res.end();
  }
}
