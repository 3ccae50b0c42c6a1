// The same routes as a Fastify 5 app, handed to tunicorn as a factory of a (req, res) listener (after ready()).
import Fastify from 'fastify';
import { BIG, SLOW_MS } from './routes.mjs';

export default async function makeApp() {
  const app = Fastify({ logger: false });
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => done(null, body));
  app.get('/', async () => ({ message: 'Hello World' }));
  app.post('/echo', async (req, reply) => reply.type('application/json').send(req.body));
  app.get('/big', async (req, reply) => reply.type('application/octet-stream').send(BIG));
  app.get('/slow', async () => {
    await new Promise((r) => setTimeout(r, SLOW_MS));
    return { message: 'Hello World' };
  });
  await app.ready();
  return (req, res) => app.routing(req, res);
}
