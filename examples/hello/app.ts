// The seed's FastAPI app, in TypeScript: GET / answers {"message": "Hello World"}.
import type { IncomingMessage, ServerResponse } from 'node:http';

export default function app(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'GET' && (req.url === '/' || req.url?.startsWith('/?'))) {
    const body = JSON.stringify({ message: 'Hello World' });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ detail: 'Not Found' }));
}
