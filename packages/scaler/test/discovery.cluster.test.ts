/**
 * EndpointSlice discovery against the devcluster's real kube-apiserver. The gateway is a real
 * process inside a network namespace the test creates (EndpointSlices reject loopback addresses).
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createNetnsHost, type NetnsHost } from '@afterlife/devcluster';
import { useCluster } from '@afterlife/devcluster/testing';
import { CoreV1Api, DiscoveryV1Api } from '@kubernetes/client-node';
import { type RunningScaler, startScaler } from '../src/scaler.ts';
import { counts, silentLogger, testConfig, waitFor } from './helpers.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/gateway-process.ts', import.meta.url));

describe("gateway discovery from a Service's EndpointSlices (real apiserver + netns gateway)", function () {
  this.timeout(120_000);
  const cluster = useCluster({ namespacePrefix: 'scaler-disc' });
  let host: NetnsHost | undefined;
  let scaler: RunningScaler | undefined;

  after(async () => {
    await scaler?.close();
    await host?.destroy();
  });

  it('follows the gateways listed in the EndpointSlices, and drops one that stops serving', async () => {
    const ns = cluster.namespace;
    host = await createNetnsHost({ label: 'scgw' });
    const child = host.spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      env: {
        ...process.env,
        PORT: '9090',
        GATEWAY_ID: 'gw-netns',
        FUNCTIONS: JSON.stringify([counts(ns, 'fn', { pending: 3, inFlight: 1 })]),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`gateway process exited with ${code}`)));
    });

    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    const discovery = cluster.kubeConfig.makeApiClient(DiscoveryV1Api);
    await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'afterlife-gateway' },
        spec: {
          ports: [
            { name: 'admin', port: 9090 },
            { name: 'events', port: 8080 },
          ],
        },
      },
    });
    const sliceBody = (serving: boolean) => ({
      metadata: { name: 'afterlife-gateway-1', labels: { 'kubernetes.io/service-name': 'afterlife-gateway' } },
      addressType: 'IPv4',
      ports: [{ name: 'admin', port: 9090, protocol: 'TCP' }],
      endpoints: [{ addresses: [host?.ip ?? ''], conditions: { ready: serving, serving } }],
    });
    await discovery.createNamespacedEndpointSlice({ namespace: ns, body: sliceBody(true) });

    scaler = await startScaler(
      testConfig([], {
        AFTERLIFE_SCALER_GATEWAY_URLS: '',
        AFTERLIFE_SCALER_GATEWAY_SERVICE: `${ns}/afterlife-gateway`,
      }),
      { kubeConfig: cluster.kubeConfig, logger: silentLogger, defaultMetrics: false },
    );
    const running = scaler;
    const url = `http://${host.ip}:9090`;
    await waitFor('discovered', () => running.gatewayUrls().includes(url), 10_000);
    await waitFor('counts from the netns gateway', () => running.aggregator.totals(`${ns}/fn`).pending === 3, 10_000);
    assert.deepEqual(running.aggregator.totals(`${ns}/fn`), { pending: 3, inFlight: 1, ratePerSecond: 0, gateways: 1 });

    await discovery.replaceNamespacedEndpointSlice({
      name: 'afterlife-gateway-1',
      namespace: ns,
      body: sliceBody(false),
    });
    await waitFor('not serving → dropped', () => running.gatewayUrls().length === 0, 10_000);
    await waitFor('its counts are gone', () => running.aggregator.totals(`${ns}/fn`).gateways === 0, 5000);
  });
});
