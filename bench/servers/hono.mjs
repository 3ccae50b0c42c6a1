// @hono/node-server, one process, serving the same Fetch handler tunicorn serves.
import { serve } from '@hono/node-server';
import fetchHandler from './apps/fetch.mjs';
import { argPort } from './common.mjs';

serve({ fetch: fetchHandler, port: argPort(), hostname: '127.0.0.1' });
