/**
 * The reference echo function as a plain Node.js program: the runtime-initialization baseline a
 * Wasm function is meant to beat (packages/devcluster/bench/node.bench.ts). Same contract as the
 * Go/Wasm echo (go/functions/echo): GET /healthz → 200 "ok"; POST / with a binary-mode CloudEvent
 * → 200 and a binary-mode reply (ce-type dev.afterlife.echo.reply, ce-id "<id>-reply", ce-echoid),
 * after ce-workms milliseconds of simulated work. Node 24 runs it as TypeScript (type stripping).
 */
import { createServer } from 'node:http';

const MAX_WORK_MS = 60_000;

const server = createServer((request, response) => {
  if (request.url === '/healthz' && request.method === 'GET') {
    response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
    return;
  }
  if (request.url !== '/' || request.method !== 'POST') {
    response.writeHead(request.url === '/' ? 405 : 404, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ error: `no route for ${request.method} ${request.url}` }));
    return;
  }
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const id = request.headers['ce-id'];
    if (typeof id !== 'string' || id === '') {
      response.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'ce-id missing' }));
      return;
    }
    const workMs = Math.min(Math.max(Number(request.headers['ce-workms'] ?? 0) || 0, 0), MAX_WORK_MS);
    setTimeout(() => {
      response.writeHead(200, {
        'content-type': 'application/json',
        'ce-specversion': '1.0',
        'ce-type': 'dev.afterlife.echo.reply',
        'ce-source': '/afterlife/echo',
        'ce-id': `${id}-reply`,
        'ce-echoid': id,
      });
      response.end(JSON.stringify({ id, data: Buffer.concat(chunks).toString('utf8'), workMs }));
    }, workMs);
  });
});

server.listen(Number(process.env.PORT ?? 8080));
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => server.close(() => process.exit(0)));
