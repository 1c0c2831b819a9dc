/**
 * The whole event path with real parts: a CloudEvent POSTed to the REAL gateway (startGateway) for
 * a function at zero is held → the scaler pushes IsActive=true → the REAL KEDA operator scales the
 * Deployment 0→1 → the test registers a real HTTP receiver as the function's endpoint (what the
 * gateway's EndpointSlice watch does in a cluster) → the held event is delivered and the sender
 * gets the reply → idle → KEDA scales back to 0.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { useCluster } from '@afterlife/devcluster/testing';
import { type Gateway, loadConfig as loadGatewayConfig, startGateway } from '@afterlife/gateway';
import { AppsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { type RunningScaler, startScaler } from '../src/scaler.ts';
import { silentLogger, testConfig, waitFor } from './helpers.ts';

describe('end to end: real gateway + scaler + real KEDA', function () {
  this.timeout(180_000);
  const cluster = useCluster({ namespacePrefix: 'scaler-gw' });
  let gateway: Gateway | undefined;
  let scaler: RunningScaler | undefined;
  let receiver: Server | undefined;

  after(async () => {
    await custom()
      .deleteNamespacedCustomObject({
        group: 'keda.sh',
        version: 'v1alpha1',
        namespace: cluster.namespace,
        plural: 'scaledobjects',
        name: 'echo',
      })
      .catch(() => undefined);
    await scaler?.close();
    await gateway?.close();
    if (receiver) {
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver?.close(resolve));
    }
  });

  const custom = () => cluster.kubeConfig.makeApiClient(CustomObjectsApi);

  it('one CloudEvent wakes the function from zero and is delivered; idle returns it to zero', async () => {
    const ns = cluster.namespace;
    const fn = { namespace: ns, name: 'echo' };
    gateway = await startGateway(
      loadGatewayConfig({
        AFTERLIFE_GATEWAY_PORT: '0',
        AFTERLIFE_GATEWAY_ADMIN_PORT: '0',
        AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
        AFTERLIFE_GATEWAY_ID: 'gateway-e2e',
        AFTERLIFE_GATEWAY_LOG_LEVEL: 'silent',
        AFTERLIFE_GATEWAY_DRAIN_TIMEOUT: '1s',
        AFTERLIFE_GATEWAY_DISCOVERY: 'service', // a plain function fed through gateway.endpoints
      }),
      { logger: silentLogger, defaultMetrics: false },
    );
    gateway.endpoints.setFunction(fn, []);
    scaler = await startScaler(testConfig([`http://127.0.0.1:${gateway.adminPort}`]), {
      logger: silentLogger,
      defaultMetrics: false,
    });
    const running = scaler;

    const apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'echo' },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: 'echo' } },
          template: {
            metadata: { labels: { app: 'echo' } },
            spec: { containers: [{ name: 'fn', image: 'registry.invalid/afterlife/echo:latest' }] },
          },
        },
      },
    });
    await custom().createNamespacedCustomObject({
      group: 'keda.sh',
      version: 'v1alpha1',
      namespace: ns,
      plural: 'scaledobjects',
      body: {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'ScaledObject',
        metadata: { name: 'echo' },
        spec: {
          scaleTargetRef: { name: 'echo' },
          pollingInterval: 1,
          cooldownPeriod: 5,
          minReplicaCount: 0,
          maxReplicaCount: 3,
          triggers: [
            {
              type: 'external-push',
              metadata: { scalerAddress: `127.0.0.1:${running.port}`, function: 'echo', targetValue: '5' },
            },
          ],
        },
      },
    });
    await waitFor(
      'KEDA opened StreamIsActive',
      async () => ((await running.metrics.activeStreams.get()).values[0]?.value ?? 0) >= 1,
      60_000,
      100,
    );
    const replicas = async () =>
      (await apps.readNamespacedDeployment({ name: 'echo', namespace: ns })).spec?.replicas ?? 0;
    assert.equal(await replicas(), 0);

    const sent = performance.now();
    const reply = fetch(`http://127.0.0.1:${gateway.eventsPort}/ns/${ns}/fn/echo`, {
      method: 'POST',
      headers: {
        'ce-id': 'wake-1',
        'ce-source': '/scaler-e2e',
        'ce-type': 'dev.afterlife.test',
        'ce-specversion': '1.0',
        'content-type': 'application/json',
      },
      body: '{"n":1}',
    });
    await waitFor('replicas=1', async () => (await replicas()) === 1, 30_000, 25);
    const wokeMs = performance.now() - sent;
    console.log(`      real gateway → scaler → KEDA: event→replicas=1 in ${wokeMs.toFixed(0)} ms`);

    // The replica becomes ready: a real HTTP receiver is registered as the endpoint.
    const received: string[] = [];
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        received.push(`${req.headers['ce-id']} ${body}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    await new Promise<void>((resolve) => receiver?.listen(0, '127.0.0.1', resolve));
    gateway.endpoints.setFunction(fn, [{ ip: '127.0.0.1', port: (receiver.address() as AddressInfo).port }]);
    const response = await reply;
    assert.equal(response.status, 200);
    assert.deepEqual(received, ['wake-1 {"n":1}']);
    console.log(
      `      event→reply (incl. the test's endpoint registration) ${(performance.now() - sent).toFixed(0)} ms`,
    );

    // Idle: nothing held or in flight → back to zero after the cooldown.
    await waitFor('replicas=0 after idle', async () => (await replicas()) === 0, 60_000, 250);
  });
});
