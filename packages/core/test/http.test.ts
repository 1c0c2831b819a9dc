import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AdminServer,
  adminHandler,
  closeServer,
  createMetricsRegistry,
  hasCode,
  listen,
  probeOk,
  probeStatus,
  sendAnswer,
  startAdminServer,
} from '../src/index.ts';

describe('admin endpoints', () => {
  let admin: AdminServer;
  let ready = false;
  const registry = createMetricsRegistry('admin-test', { defaultMetrics: false });
  const base = () => `http://127.0.0.1:${admin.port}`;

  before(async () => {
    admin = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      healthz: () => ({ ok: true, body: { status: 'ok' } }),
      readyz: () => ({ ok: ready, body: ready ? 'ok' : 'not ready: still syncing' }),
      metrics: registry,
      routes: { '/v1/extra': (_req, res) => sendAnswer(res, 200, { extra: true }) },
    });
  });
  after(() => admin.close());

  it('answers /healthz, /readyz (503 until ready) and /metrics, JSON or text as given', async () => {
    const health = await fetch(`${base()}/healthz`);
    assert.equal(health.status, 200);
    assert.match(health.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const unready = await fetch(`${base()}/readyz`);
    assert.equal(unready.status, 503);
    assert.match(unready.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(await unready.text(), 'not ready: still syncing');
    ready = true;
    assert.equal((await fetch(`${base()}/readyz?verbose`)).status, 200);
    const metrics = await fetch(`${base()}/metrics`);
    assert.equal(metrics.headers.get('content-type'), registry.contentType);
    await metrics.text();
  });

  it('serves extra routes, HEAD, and 404 for everything else (other methods included)', async () => {
    assert.deepEqual(await (await fetch(`${base()}/v1/extra`)).json(), { extra: true });
    assert.equal((await fetch(`${base()}/healthz`, { method: 'HEAD' })).status, 200);
    assert.equal((await fetch(`${base()}/healthz`, { method: 'POST' })).status, 404);
    const missing = await fetch(`${base()}/nope`);
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), 'not found\n');
  });

  it('shares a server with other routes: the handler says whether it answered', async () => {
    const handle = adminHandler({
      healthz: () => ({ ok: true, body: 'ok' }),
      readyz: () => ({ ok: true, body: 'ok' }),
      metrics: registry,
    });
    const server = createServer((req, res) => {
      if (!handle(req, res)) sendAnswer(res, 418, { error: `mine: ${req.method} ${req.url}` });
    });
    const port = await listen(server, 0, '127.0.0.1');
    try {
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/healthz`)).text(), 'ok');
      const other = await fetch(`http://127.0.0.1:${port}/mutate`, { method: 'POST' });
      assert.equal(other.status, 418);
      assert.deepEqual(await other.json(), { error: 'mine: POST /mutate' });
    } finally {
      await closeServer(server, 0);
    }
  });

  it('fails to start with the listen error when the port is taken', async () => {
    await assert.rejects(
      startAdminServer({
        host: '127.0.0.1',
        port: admin.port,
        healthz: () => ({ ok: true, body: 'ok' }),
        readyz: () => ({ ok: true, body: 'ok' }),
        metrics: registry,
      }),
      /EADDRINUSE/,
    );
  });

  it('closes with a long-lived stream open', async () => {
    const streaming = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      healthz: () => ({ ok: true, body: 'ok' }),
      readyz: () => ({ ok: true, body: 'ok' }),
      metrics: registry,
      routes: {
        '/stream': (_req, res) => {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(': hello\n\n');
        },
      },
    });
    const response = await fetch(`http://127.0.0.1:${streaming.port}/stream`);
    assert.equal(response.status, 200);
    const started = Date.now();
    await streaming.close();
    assert.ok(Date.now() - started < 2000);
  });
});

describe('probes', () => {
  let server: Server;
  let port = 0;
  let dir = '';
  let socketServer: Server;

  before(async () => {
    const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
      if (req.url === '/slow') return; // never answers
      sendAnswer(res, req.url === '/readyz' ? 200 : 503, 'x');
    };
    server = createServer(handler);
    port = await listen(server, 0, '127.0.0.1');
    dir = await mkdtemp(join(tmpdir(), 'afterlife-probe-'));
    socketServer = createServer(handler);
    await new Promise<void>((resolve) => socketServer.listen(join(dir, 'admin.sock'), resolve));
  });
  after(async () => {
    server.closeAllConnections();
    await closeServer(server, 0);
    await closeServer(socketServer, 0);
    await rm(dir, { recursive: true, force: true });
  });

  it('GETs a URL or a unix socket path and resolves with the status', async () => {
    assert.equal(await probeStatus(`http://127.0.0.1:${port}/readyz`), 200);
    assert.equal(await probeStatus(`http://127.0.0.1:${port}/other`), 503);
    assert.equal(await probeStatus({ socketPath: join(dir, 'admin.sock'), path: '/readyz' }), 200);
    assert.equal(await probeOk({ socketPath: join(dir, 'admin.sock'), path: '/readyz' }), true);
  });

  it('rejects with PROBE_FAILED on another status, a refused connection or no answer in time', async () => {
    await assert.rejects(probeOk(`http://127.0.0.1:${port}/other`), (error: unknown) => {
      assert.ok(hasCode(error, 'PROBE_FAILED'));
      assert.match(String((error as Error).message), /\/other answered 503/);
      return true;
    });
    await assert.rejects(probeStatus('http://127.0.0.1:1/'), (error: unknown) => hasCode(error, 'PROBE_FAILED'));
    await assert.rejects(probeStatus(`http://127.0.0.1:${port}/slow`, { timeoutMs: 100 }), /no answer within 100 ms/);
    await assert.rejects(probeStatus(`https://127.0.0.1:${port}/readyz`), (error: unknown) =>
      hasCode(error, 'PROBE_FAILED'),
    );
  });
});
