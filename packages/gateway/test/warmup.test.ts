import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { QUEUE_PROXY_PROBE_HEADERS, WarmupProber } from '../src/warmup.ts';
import { silent, waitFor } from './helpers.ts';

/**
 * A loopback server answering the way queue-proxy answers the activator probe: `notReadyFor`
 * probes get 503 (the user container is not ready), later ones `200 queue`.
 */
async function queueProxyLike(options: { notReadyFor?: number; port?: number } = {}): Promise<{
  server: Server;
  port: number;
  probes: IncomingHttpHeaders[];
  close(): Promise<void>;
}> {
  const probes: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    probes.push(req.headers);
    if (probes.length <= (options.notReadyFor ?? 0)) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('queue');
  });
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    probes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (yet): bound, read, released. */
async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

const KEY = 'demo/echo-00001';
const FAST = { retryMinMs: 5, retryMaxMs: 20, probeTimeoutMs: 1000 };

describe('warm-up prober (deliver once queue-proxy answers, before kubelet Ready)', function () {
  this.timeout(20_000);
  const stops: (() => unknown)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  function prober(timing: Partial<ConstructorParameters<typeof WarmupProber>[0]['timing']> = {}) {
    const answered: string[] = [];
    const instance = new WarmupProber({
      onAnswered: (key) => answered.push(key),
      logger: silent,
      timing: { ...FAST, ...timing },
    });
    stops.push(() => instance.stop());
    return { instance, answered };
  }

  it("sends queue-proxy's activator probe and reports the address once it answers 200", async () => {
    const pod = await queueProxyLike({ notReadyFor: 3 });
    stops.push(() => pod.close());
    const { instance, answered } = prober();
    const endpoint = { ip: '127.0.0.1', port: pod.port };
    const before = Date.now();
    assert.deepEqual(instance.update(KEY, [endpoint]), [], 'nothing answered yet');
    await waitFor(() => answered.length > 0, 5000);
    assert.deepEqual(answered, [KEY]);
    const [warm, ...rest] = instance.update(KEY, [endpoint]);
    assert.equal(rest.length, 0);
    assert.equal(warm?.ip, '127.0.0.1');
    assert.equal(warm?.port, pod.port);
    assert.ok((warm?.seenAt ?? 0) >= before && (warm?.answeredAt ?? 0) >= (warm?.seenAt ?? 0));
    assert.equal(pod.probes.length, 4, 'three 503s, then the 200');
    for (const headers of pod.probes) {
      assert.equal(headers['k-network-probe'], QUEUE_PROXY_PROBE_HEADERS['K-Network-Probe']);
      assert.equal(headers['user-agent'], QUEUE_PROXY_PROBE_HEADERS['User-Agent']);
    }
  });

  it('retries a refused connection with backoff until queue-proxy listens', async () => {
    const port = await freePort();
    const { instance, answered } = prober();
    instance.update(KEY, [{ ip: '127.0.0.1', port }]);
    await sleep(100);
    assert.equal(answered.length, 0);
    const pod = await queueProxyLike({ port });
    stops.push(() => pod.close());
    await waitFor(() => answered.length > 0, 5000);
    assert.equal(instance.update(KEY, [{ ip: '127.0.0.1', port }]).length, 1);
  });

  it('stops probing an address the slice no longer lists', async () => {
    const pod = await queueProxyLike({ notReadyFor: Number.MAX_SAFE_INTEGER });
    stops.push(() => pod.close());
    const { instance } = prober();
    instance.update(KEY, [{ ip: '127.0.0.1', port: pod.port }]);
    await waitFor(() => pod.probes.length >= 2, 5000);
    instance.update(KEY, []);
    assert.equal(instance.size, 0);
    await sleep(50);
    const seen = pod.probes.length;
    await sleep(200);
    assert.equal(pod.probes.length, seen, 'no probe after the address left');
  });

  it('gives up on an address that never answers 200', async () => {
    const pod = await queueProxyLike({ notReadyFor: Number.MAX_SAFE_INTEGER });
    stops.push(() => pod.close());
    const { instance, answered } = prober({ giveUpMs: 150 });
    const endpoint = { ip: '127.0.0.1', port: pod.port };
    instance.update(KEY, [endpoint]);
    await sleep(400);
    const seen = pod.probes.length;
    assert.ok(seen > 1, `probed more than once (${seen})`);
    await sleep(200);
    assert.equal(pod.probes.length, seen, 'no probe after giving up');
    assert.deepEqual(answered, []);
    assert.deepEqual(instance.update(KEY, [endpoint]), []);
  });

  it('lets an answer expire and probes again (a pod that answered but never turned Ready)', async () => {
    const pod = await queueProxyLike();
    stops.push(() => pod.close());
    const { instance, answered } = prober({ answerTtlMs: 100 });
    const endpoint = { ip: '127.0.0.1', port: pod.port };
    instance.update(KEY, [endpoint]);
    await waitFor(() => answered.length >= 1, 5000);
    // Expired: the watcher hears of it (second call) and the address is probed again.
    await waitFor(() => answered.length >= 2 && pod.probes.length >= 2, 5000);
  });

  it('probes nothing once stopped', async () => {
    const pod = await queueProxyLike();
    stops.push(() => pod.close());
    const { instance } = prober();
    instance.stop();
    assert.deepEqual(instance.update(KEY, [{ ip: '127.0.0.1', port: pod.port }]), []);
    await sleep(100);
    assert.equal(pod.probes.length, 0);
  });
});
