/**
 * `PooledKubeConfig` (core): the typed API clients of a component share one TLS connection pool.
 * Counted against a local HTTPS server standing in for the API server's list endpoint: a plain
 * `KubeConfig` (client-node 2.0.1) handshakes a new TLS connection for every request.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PooledKubeConfig } from '@afterlife/core';
import { createCertificateAuthority } from '@afterlife/devcluster';
import { issueLocalhostServerCert } from '@afterlife/devcluster/testing';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';

describe('PooledKubeConfig: one connection pool for the typed clients', function () {
  this.timeout(30_000);
  let dir: string;
  let server: Server;
  let caPem: string;
  let handshakes = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'afterlife-pooled-kubeconfig-'));
    const ca = await createCertificateAuthority(dir, 'ca', 'pooled-kubeconfig-test-ca', { days: 1 });
    const leaf = await issueLocalhostServerCert(ca, dir, 'server');
    caPem = await readFile(ca.certFile, 'utf8');
    server = createServer({ cert: await readFile(leaf.certFile), key: await readFile(leaf.keyFile) }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'NamespaceList', metadata: {}, items: [] }));
    });
    server.on('secureConnection', () => {
      handshakes += 1;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  const configure = <T extends KubeConfig>(kubeConfig: T): T => {
    const { port } = server.address() as AddressInfo;
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'local', server: `https://127.0.0.1:${port}`, caData: Buffer.from(caPem).toString('base64') }],
      users: [{ name: 'tester', token: 'not-checked' }],
      contexts: [{ name: 'local', cluster: 'local', user: 'tester' }],
      currentContext: 'local',
    });
    return kubeConfig;
  };

  /** TLS handshakes the server saw for `requests` sequential list calls through one typed client. */
  const handshakesFor = async (kubeConfig: KubeConfig, requests: number): Promise<number> => {
    const before = handshakes;
    const api = kubeConfig.makeApiClient(CoreV1Api);
    for (let index = 0; index < requests; index++) {
      const list = await api.listNamespace();
      assert.deepEqual(list.items, []);
    }
    return handshakes - before;
  };

  // undici may open a second connection right after the first response (its pool's reuse race);
  // what matters is that the number stays put however many requests follow.
  it('handshakes a bounded number of TLS connections however many requests, where a plain KubeConfig handshakes one per request', async () => {
    assert.ok((await handshakesFor(configure(new PooledKubeConfig()), 20)) <= 2);
    // Why the class exists; once client-node pools its dispatchers itself this fails and it can go.
    assert.equal(await handshakesFor(configure(new KubeConfig()), 20), 20);
  });

  it('shares the pool between the API clients made from one config', async () => {
    const kubeConfig = configure(new PooledKubeConfig());
    const first = await handshakesFor(kubeConfig, 10);
    const second = await handshakesFor(kubeConfig, 10);
    assert.ok(first <= 2, `first client: ${first} handshakes`);
    assert.equal(second, 0, "the second client reuses the first one's connections");
  });
});
