/**
 * The canonical Knative path, for real: Knative Eventing's own controllers, webhook, in-memory
 * channel and channel-based broker (pods on the real node, installed from the release manifests)
 * deliver a Broker's events through a Trigger to the Afterlife gateway, which holds them while
 * the Wasm function is at zero; the Afterlife autoscaler and KEDA wake it; the function's reply
 * events go back into the Broker and a second Trigger carries them to a sink here, so every
 * event is seen delivered exactly once. Reached through Services, cluster DNS and kube-proxy.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, parseCountsSnapshot, WASM_VARIANT_ANNOTATION } from '@afterlife/core';
import { applyObjects, kubeRequest, waitFor, wasmRuntimeClass } from '@afterlife/devcluster';
import { useCluster, useKnativeEventing, useKnativeFeatures, useKnativeServing } from '@afterlife/devcluster/testing';
import { type Gateway, loadConfig as loadGatewayConfig, startGateway } from '@afterlife/gateway';
import { loadConfig as loadScalerConfig, type RunningScaler, startScaler } from '@afterlife/scaler';
import type { KubernetesObject } from '@kubernetes/client-node';
import { type Autoscaler, startAutoscaler } from '../src/autoscaler.ts';
import { loadConfig } from '../src/config.ts';

const logger = createLogger('eventing-e2e', {
  level: process.env.AFTERLIFE_TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent',
});
const EVENTS = 20;
const EVENT_TYPE = 'dev.afterlife.test';
const REPLY_TYPE = 'dev.afterlife.echo.reply';
const RUNTIME_CLASS = '/apis/node.k8s.io/v1/runtimeclasses/wasmedge';

/** A selectorless Service whose one endpoint is a process on the node's address (a host process here). */
function hostService(namespace: string, name: string, ip: string, port: number): KubernetesObject[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace },
      spec: { ports: [{ name: 'http', port: 80, targetPort: port, protocol: 'TCP' }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name, namespace, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [ip], conditions: { ready: true } }],
      ports: [{ name: 'http', port, protocol: 'TCP' }],
    },
  ] as unknown as KubernetesObject[];
}

/** The fields these tests read of Revisions, Deployments, Brokers, Triggers and Services. */
interface Obj {
  spec?: { replicas?: number; runtimeClassName?: string; clusterIP?: string };
  status?: {
    readyReplicas?: number;
    conditions?: { type: string; status: string }[];
    address?: { url?: string };
  };
}

describe('Knative Eventing: Broker → Trigger → Afterlife gateway → Wasm function at zero', function () {
  this.timeout(240_000);
  const cluster = useCluster({ namespacePrefix: 'ev' });
  useKnativeServing(cluster, { hpa: false });
  useKnativeFeatures(cluster, { 'kubernetes.podspec-runtimeclassname': 'enabled' });
  useKnativeEventing(cluster);
  let gateway: Gateway | undefined;
  let scaler: RunningScaler | undefined;
  let autoscaler: Autoscaler | undefined;
  let sink: Server | undefined;
  let createdRuntimeClass = false;
  /** ce-echoid of every reply event the second Trigger delivered, in arrival order. */
  const replies: string[] = [];
  const ns = () => cluster.namespace;
  const get = async (path: string) => (await kubeRequest(cluster.kubeConfig, 'GET', path)) as Obj;
  const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000) =>
    waitFor(what, probe, { timeoutMs, intervalMs: 250 });
  const ready = (object: Obj | undefined) =>
    object?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';

  before(async function () {
    const state = cluster.state;
    const nodeIp = state?.realNodes[0]?.ip;
    if (!state?.images.echoWasm || !nodeIp) this.skip();
    // Pods reach the gateway and the sink on the node's address (the bridge this cluster made).
    gateway = await startGateway(
      loadGatewayConfig({
        AFTERLIFE_GATEWAY_PORT: '0',
        AFTERLIFE_GATEWAY_ADMIN_PORT: '0',
        AFTERLIFE_GATEWAY_HOST: nodeIp,
        AFTERLIFE_GATEWAY_ID: 'gateway-eventing-e2e',
        AFTERLIFE_GATEWAY_LOG_LEVEL: 'silent',
        AFTERLIFE_GATEWAY_DRAIN_TIMEOUT: '1s',
        AFTERLIFE_GATEWAY_DISCOVERY: 'knative',
        AFTERLIFE_GATEWAY_NAMESPACES: ns(),
        AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: '90s',
      }),
      { logger, kubeConfig: cluster.kubeConfig, defaultMetrics: false },
    );
    scaler = await startScaler(
      loadScalerConfig({
        AFTERLIFE_SCALER_HOST: '127.0.0.1',
        AFTERLIFE_SCALER_PORT: '0',
        AFTERLIFE_SCALER_METRICS_PORT: '0',
        AFTERLIFE_SCALER_GATEWAY_URLS: `http://${nodeIp}:${gateway.adminPort}`,
        AFTERLIFE_SCALER_LOG_LEVEL: 'silent',
      }),
      { logger, defaultMetrics: false },
    );
    autoscaler = await startAutoscaler(
      loadConfig({
        AFTERLIFE_AUTOSCALER_SCALER_ADDRESS: `127.0.0.1:${scaler.port}`,
        AFTERLIFE_AUTOSCALER_NAMESPACES: ns(),
        AFTERLIFE_AUTOSCALER_LEASE_NAMESPACE: ns(),
        AFTERLIFE_AUTOSCALER_IDENTITY: 'eventing-e2e',
        AFTERLIFE_AUTOSCALER_ADMIN_PORT: '0',
        AFTERLIFE_AUTOSCALER_HOST: '127.0.0.1',
        AFTERLIFE_AUTOSCALER_DEFAULT_COOLDOWN: '5s',
        AFTERLIFE_AUTOSCALER_DEFAULT_POLLING_INTERVAL: '1s',
        AFTERLIFE_AUTOSCALER_DEFAULT_MAX_SCALE: '3',
      }),
      { logger, kubeConfig: cluster.kubeConfig, defaultMetrics: false },
    );
    sink = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        if (request.headers['ce-type'] === REPLY_TYPE) replies.push(String(request.headers['ce-echoid'] ?? ''));
        response.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => sink?.listen(0, nodeIp, resolve));
    const sinkPort = (sink.address() as AddressInfo).port;

    createdRuntimeClass = !(await kubeRequest(cluster.kubeConfig, 'GET', RUNTIME_CLASS).catch(() => undefined));
    await applyObjects(cluster.kubeConfig, [
      wasmRuntimeClass() as KubernetesObject,
      ...hostService(ns(), 'afterlife-gateway', nodeIp, gateway.eventsPort),
      ...hostService(ns(), 'reply-sink', nodeIp, sinkPort),
    ]);
  });

  after(async function () {
    this.timeout(60_000);
    // Cluster-scoped: later tests (afterlife doctor) expect the cluster without it.
    if (createdRuntimeClass) await kubeRequest(cluster.kubeConfig, 'DELETE', RUNTIME_CLASS).catch(() => undefined);
    await new Promise((resolve) => (sink ? sink.close(resolve) : resolve(undefined)));
    await autoscaler?.close();
    await scaler?.close();
    await gateway?.close();
  });

  it('delivers every event once to a function at zero and carries its replies back through the Broker', async () => {
    const post = (path: string, body: unknown) => kubeRequest(cluster.kubeConfig, 'POST', path, body);
    await post(`/apis/serving.knative.dev/v1/namespaces/${ns()}/services`, {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name: 'echo' },
      spec: {
        template: {
          metadata: {
            annotations: {
              'autoscaling.knative.dev/class': 'afterlife.dev',
              'autoscaling.knative.dev/min-scale': '0',
              'autoscaling.knative.dev/target': '5',
              [WASM_VARIANT_ANNOTATION]: 'compat-smart',
            },
          },
          spec: {
            runtimeClassName: 'wasmedge',
            containers: [{ image: cluster.state?.images.echoWasm, ports: [{ containerPort: 8080 }] }],
          },
        },
      },
    });
    const eventing = `/apis/eventing.knative.dev/v1/namespaces/${ns()}`;
    await post(`${eventing}/brokers`, {
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Broker',
      metadata: { name: 'default' },
    });
    const trigger = (name: string, type: string, service: string, uri: string) =>
      post(`${eventing}/triggers`, {
        apiVersion: 'eventing.knative.dev/v1',
        kind: 'Trigger',
        metadata: { name },
        spec: {
          broker: 'default',
          filter: { attributes: { type } },
          subscriber: { ref: { apiVersion: 'v1', kind: 'Service', name: service }, uri },
          // The gateway holds an event through a cold start (its cold-start timeout, 90 s here):
          // the Trigger waits as long, and retries a 503 (held queue full) with backoff.
          delivery: { timeout: 'PT95S', retry: 5, backoffPolicy: 'exponential', backoffDelay: 'PT0.5S' },
        },
      });
    await trigger('to-function', EVENT_TYPE, 'afterlife-gateway', `/ns/${ns()}/fn/echo`);
    await trigger('replies', REPLY_TYPE, 'reply-sink', '/');

    const revision = await until('Revision echo-00001 Ready', async () => {
      const r = await get(`/apis/serving.knative.dev/v1/namespaces/${ns()}/revisions/echo-00001`).catch(
        () => undefined,
      );
      return ready(r) ? r : undefined;
    });
    assert.equal(revision.spec?.runtimeClassName, 'wasmedge');
    await until('echo-00001 at 0 replicas', async () => {
      const d = await get(`/apis/apps/v1/namespaces/${ns()}/deployments/echo-00001-deployment`);
      return (d.spec?.replicas ?? 0) === 0 && (d.status?.readyReplicas ?? 0) === 0 ? true : undefined;
    });
    const broker = await until('Broker default Ready', async () => {
      const b = await get(`${eventing}/brokers/default`);
      return ready(b) ? b : undefined;
    });
    for (const name of ['to-function', 'replies']) {
      await until(`Trigger ${name} Ready`, async () =>
        ready(await get(`${eventing}/triggers/${name}`)) ? true : undefined,
      );
    }

    // Into the Broker as any producer does: its address, through the broker-ingress Service.
    const address = new URL(broker.status?.address?.url ?? '');
    const ingress = await get('/api/v1/namespaces/knative-eventing/services/broker-ingress');
    const ids = Array.from({ length: EVENTS }, (_, i) => `eventing-${i}`);
    const started = performance.now();
    const statuses = await Promise.all(
      ids.map(async (id) => {
        const response = await fetch(`http://${ingress.spec?.clusterIP}${address.pathname}`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'ce-id': id,
            'ce-source': '/eventing-e2e',
            'ce-type': EVENT_TYPE,
            'ce-specversion': '1.0',
          },
          body: JSON.stringify({ id }),
          signal: AbortSignal.timeout(30_000),
        });
        return response.status;
      }),
    );
    assert.deepEqual(
      statuses.filter((s) => s !== 202),
      [],
      'the Broker accepted every event',
    );
    await until(`${EVENTS} replies back through the Broker`, async () => (replies.length >= EVENTS ? true : undefined));
    const firstReplyMs = performance.now() - started;
    // Redeliveries would show as duplicates here, and at the gateway as more deliveries than events.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    assert.deepEqual([...replies].sort(), [...ids].sort(), 'each event answered exactly once');
    const counts = parseCountsSnapshot(
      await (await fetch(`http://${cluster.state?.realNodes[0]?.ip}:${gateway?.adminPort}/v1/counts`)).json(),
    );
    // This gateway serves only the test's namespace: every delivery it counts is one of these events.
    const delivered = counts.functions.reduce((sum, f) => sum + f.delivered, 0);
    assert.equal(delivered, EVENTS, 'the gateway delivered each event once');
    process.stdout.write(
      `      ${EVENTS} events Broker → Trigger → gateway → function at zero: all replies in ${firstReplyMs.toFixed(0)} ms\n`,
    );
  });
});
