// The same routes as an Express 5 app (a (req, res, next) listener to tunicorn).
import express from 'express';
import { BIG, SLOW_MS } from './routes.mjs';

const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.get('/', (req, res) => res.json({ message: 'Hello World' }));
app.post('/echo', express.raw({ type: '*/*', limit: '1mb' }), (req, res) => res.type('application/json').send(req.body));
app.get('/big', (req, res) => res.type('application/octet-stream').send(BIG));
app.get('/slow', (req, res) => setTimeout(() => res.json({ message: 'Hello World' }), SLOW_MS));
export default app;
