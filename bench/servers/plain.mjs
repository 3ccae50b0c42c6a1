// One plain node:http (or https) process.
import { argPort, createServer } from './common.mjs';

createServer().listen({ port: argPort(), host: '127.0.0.1', backlog: 2048 });
