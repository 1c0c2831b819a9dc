import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { createLogger } from '@afterlife/core';
import { useCluster } from '@afterlife/devcluster/testing';
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type V1EndpointSlice } from '@kubernetes/client-node';
import type { KnativeRoute } from '../src/knative.ts';
import type { RevisionWeight, TrafficTarget } from '../src/routes.ts';
import type { Gateway } from '../src/server.ts';
import { counts, pendingOf, sendBinary, startTestGateway, waitFor } from './helpers.ts';
import { type NetnsReceiver, NetnsReceivers, RECEIVER_PORT } from './netns-receivers.ts';

const ROUTES = { group: 'serving.knative.dev', version: 'v1', plural: 'routes' } as const;
const SELECTED = { 'afterlife.dev/test-route': 'yes' };

/**
 * Discovery `knative` against the devcluster's real kube-apiserver: Knative's CRDs are installed
 * but no Knative controller runs, so the test writes what Knative would — the Route (its
 * `status.traffic` through the `/status` subresource), each revision's `<revision>-private`
 * Service and its EndpointSlice with Knative's labels — pointing at real receivers.
 */
describe('gateway on a real cluster (discovery knative: Routes + private EndpointSlices)', function () {
  this.timeout(120_000);
  const cluster = useCluster({ namespacePrefix: 'gw-knative' });
  const receivers = new NetnsReceivers();
  const warnings: string[] = [];
  let gw: Gateway;
  let path = '';
  let a: NetnsReceiver;
  let b: NetnsReceiver;
  let c: NetnsReceiver;
  let warm: NetnsReceiver;

  const ref = (name: string) => ({ namespace: cluster.namespace, name });
  const custom = () => cluster.kubeConfig.makeApiClient(CustomObjectsApi);
  const discovery = () => cluster.kubeConfig.makeApiClient(DiscoveryV1Api);

  before(async () => {
    [a, b, c, warm] = await Promise.all([
      receivers.start('kn-a'),
      receivers.start('kn-b'),
      receivers.start('kn-c'),
      // Answers queue-proxy's probe 200: a pod whose containers are up, not yet marked Ready.
      receivers.start('kn-warm', 0, 200),
    ]);
    path = `/ns/${cluster.namespace}/fn/echo`;
    await createRoute('echo', SELECTED);
    await createRoute('unselected', {});
    const logger = createLogger('gateway-test', {
      level: 'warn',
      destination: { write: (line: string) => warnings.push(line) },
    });
    gw = await startTestGateway(
      {
        AFTERLIFE_GATEWAY_DISCOVERY: 'knative',
        AFTERLIFE_GATEWAY_NAMESPACES: cluster.namespace,
        AFTERLIFE_GATEWAY_SERVICE_SELECTOR: 'afterlife.dev/test-route=yes',
        AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: '60s',
      },
      { kubeConfig: cluster.kubeConfig, logger },
    );
  });

  after(async () => {
    await gw?.close();
    await receivers.close();
  });

  async function createRoute(name: string, labels: Record<string, string>): Promise<void> {
    await custom().createNamespacedCustomObject({
      ...ROUTES,
      namespace: cluster.namespace,
      body: {
        apiVersion: 'serving.knative.dev/v1',
        kind: 'Route',
        metadata: { name, labels: { 'serving.knative.dev/service': name, ...labels } },
        spec: { traffic: [{ configurationName: name, latestRevision: true, percent: 100 }] },
      },
    });
  }

  /** Writes the Route's `status.traffic` (as Knative's route reconciler would) and waits for the gateway to see it. */
  async function setTraffic(name: string, traffic: TrafficTarget[], expected: RevisionWeight[]): Promise<void> {
    const current = (await custom().getNamespacedCustomObject({
      ...ROUTES,
      namespace: cluster.namespace,
      name,
    })) as KnativeRoute;
    await custom().replaceNamespacedCustomObjectStatus({
      ...ROUTES,
      namespace: cluster.namespace,
      name,
      body: { ...current, status: { observedGeneration: 1, traffic } },
    });
    await waitFor(
      () => isDeepStrictEqual(gw.routes.weights(ref(name)), expected),
      10_000,
      `the gateway to see the traffic of ${name}`,
    );
  }

  /** What Knative's ServerlessService makes per revision: the private Service and (here by hand) its EndpointSlice. */
  async function createRevision(
    revision: string,
    endpoints: { ip: string; ready: boolean }[],
    portName = 'http',
  ): Promise<void> {
    const labels = {
      'serving.knative.dev/service': 'echo',
      'serving.knative.dev/revision': revision,
      'networking.internal.knative.dev/serviceType': 'Private',
    };
    await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespacedService({
      namespace: cluster.namespace,
      body: {
        metadata: { name: `${revision}-private`, labels },
        spec: { ports: [{ name: portName, port: 80, targetPort: RECEIVER_PORT }] },
      },
    });
    await discovery().createNamespacedEndpointSlice({
      namespace: cluster.namespace,
      body: privateSlice(revision, labels, endpoints, portName),
    });
  }

  function privateSlice(
    revision: string,
    labels: Record<string, string>,
    endpoints: { ip: string; ready: boolean }[],
    portName: string,
  ): V1EndpointSlice {
    return {
      metadata: {
        name: `${revision}-private-1`,
        labels: { ...labels, 'kubernetes.io/service-name': `${revision}-private` },
      },
      addressType: 'IPv4',
      ports: [{ name: portName, port: RECEIVER_PORT, protocol: 'TCP' }],
      endpoints: endpoints.map(({ ip, ready }) => ({ addresses: [ip], conditions: { ready } })),
    };
  }

  async function setReady(revision: string, ip: string): Promise<void> {
    const name = `${revision}-private-1`;
    const current = await discovery().readNamespacedEndpointSlice({ name, namespace: cluster.namespace });
    await discovery().replaceNamespacedEndpointSlice({
      name,
      namespace: cluster.namespace,
      body: { ...current, endpoints: [{ addresses: [ip], conditions: { ready: true } }] },
    });
  }

  async function pendingFor(revision: string, want: number): Promise<void> {
    await waitFor(
      async () => pendingOf(await counts(gw.adminPort), revision) === want,
      10_000,
      `pending=${want} for ${revision}`,
    );
  }

  it('answers 503 + Retry-After while the Route sends traffic to no revision, 404 without a (selected) Route', async () => {
    assert.equal((await fetch(`http://127.0.0.1:${gw.adminPort}/readyz`)).status, 200);
    assert.equal(gw.routes.has(ref('echo')), true);
    const res = await sendBinary(gw.eventsPort, path, 'none-1');
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '2');
    assert.deepEqual(await res.json(), {
      error: 'no_routable_revision',
      message: `no revision of ${cluster.namespace}/echo receives traffic yet`,
    });
    // Only a configurationName (what the Route's spec says before a revision is Ready): still not routable.
    await setTraffic('echo', [{ configurationName: 'echo', latestRevision: true, percent: 100 }], []);
    assert.equal((await sendBinary(gw.eventsPort, path, 'none-2')).status, 503);

    const unselected = await sendBinary(gw.eventsPort, `/ns/${cluster.namespace}/fn/unselected`, 'u-1');
    assert.equal(unselected.status, 404, 'SERVICE_SELECTOR applies to Routes');
    assert.equal((await sendBinary(gw.eventsPort, `/ns/${cluster.namespace}/fn/nothing`, 'u-2')).status, 404);
    assert.deepEqual((await counts(gw.adminPort)).functions, [], 'nothing was accepted');
  });

  it('holds the event for its revision, counts it under ns/<revision>, delivers once the revision is ready', async () => {
    await setTraffic(
      'echo',
      [{ revisionName: 'echo-00001', configurationName: 'echo', latestRevision: true, percent: 100 }],
      [{ revision: 'echo-00001', percent: 100 }],
    );
    const reply = sendBinary(gw.eventsPort, path, 'held-1');
    await pendingFor('echo-00001', 1);
    const names = (await counts(gw.adminPort)).functions.map((fn) => `${fn.namespace}/${fn.name}`);
    assert.deepEqual(names, [`${cluster.namespace}/echo-00001`], 'keyed by the revision, as its ScaledObject is');

    await createRevision('echo-00001', [{ ip: a.host.ip, ready: false }]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(pendingOf(await counts(gw.adminPort), 'echo-00001'), 1, 'not ready yet: still held');
    assert.deepEqual(receivers.received(a), []);

    await setReady('echo-00001', a.host.ip);
    const res = await reply;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('ce-id'), 'reply-held-1');
    assert.deepEqual(receivers.received(a), ['held-1']);
  });

  it('delivers to a not-ready pod once its queue-proxy answers the probe, and records the cold start', async () => {
    await createRoute('warm', SELECTED);
    await setTraffic(
      'warm',
      [{ revisionName: 'warm-00001', configurationName: 'warm', latestRevision: true, percent: 100 }],
      [{ revision: 'warm-00001', percent: 100 }],
    );
    const reply = sendBinary(gw.eventsPort, `/ns/${cluster.namespace}/fn/warm`, 'warm-1');
    await pendingFor('warm-00001', 1);
    // The slice lists the pod, not ready (as the EndpointSlice controller does once it has an IP).
    await createRevision('warm-00001', [{ ip: warm.host.ip, ready: false }]);
    const res = await reply;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('ce-id'), 'reply-warm-1');
    assert.deepEqual(receivers.received(warm), ['warm-1'], 'the probe itself is not an event');
    const slice = await discovery().readNamespacedEndpointSlice({
      name: 'warm-00001-private-1',
      namespace: cluster.namespace,
    });
    assert.equal(slice.endpoints?.[0]?.conditions?.ready, false, 'delivered while the slice still said not ready');
    const served = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/v1/cold-starts`)).json()) as {
      coldStarts: { name: string; via: string; endpoint: string; endpointAnsweredAt: number; deliveredAt: number }[];
    };
    const record = served.coldStarts.find((entry) => entry.name === 'warm-00001');
    assert.equal(record?.via, 'probe');
    assert.equal(record?.endpoint, `${warm.host.ip}:${RECEIVER_PORT}`);
    assert.ok((record?.endpointAnsweredAt ?? Infinity) <= (record?.deliveredAt ?? 0), JSON.stringify(record));
  });

  it('splits events 50/50 between two revisions', async () => {
    await createRevision('echo-00002', [{ ip: b.host.ip, ready: true }]);
    await waitFor(() => (gw.endpoints.endpoints(ref('echo-00002')) ?? []).length === 1);
    await setTraffic(
      'echo',
      [
        { revisionName: 'echo-00001', percent: 50 },
        { revisionName: 'echo-00002', percent: 50, latestRevision: true },
      ],
      [
        { revision: 'echo-00001', percent: 50 },
        { revision: 'echo-00002', percent: 50 },
      ],
    );
    const ids = Array.from({ length: 40 }, (_, i) => `split-${i}`);
    const statuses = await Promise.all(ids.map(async (id) => (await sendBinary(gw.eventsPort, path, id)).status));
    assert.deepEqual(new Set(statuses), new Set([200]));
    const toA = receivers.received(a).filter((id) => id.startsWith('split-'));
    const toB = receivers.received(b).filter((id) => id.startsWith('split-'));
    assert.equal(toA.length + toB.length, ids.length);
    assert.ok(toA.length > 0 && toB.length > 0, `a got ${toA.length}, b got ${toB.length}`);
    const delivered = Object.fromEntries(
      (await counts(gw.adminPort)).functions
        .filter((fn) => fn.name.startsWith('echo-'))
        .map((fn) => [fn.name, fn.delivered]),
    );
    assert.deepEqual(delivered, { 'echo-00001': 1 + toA.length, 'echo-00002': toB.length });
    console.log(`      50/50 split of ${ids.length} events: echo-00001 ${toA.length}, echo-00002 ${toB.length}`);
  });

  it('rollout A → B: events held for A are delivered to A once it has endpoints; new events go to B', async () => {
    // A = echo-00003, at zero: its private slice exists but has no ready endpoint.
    await createRevision('echo-00003', [{ ip: c.host.ip, ready: false }]);
    await setTraffic(
      'echo',
      [{ revisionName: 'echo-00003', percent: 100 }],
      [{ revision: 'echo-00003', percent: 100 }],
    );
    const held = [sendBinary(gw.eventsPort, path, 'roll-a1'), sendBinary(gw.eventsPort, path, 'roll-a2')];
    await pendingFor('echo-00003', 2);

    // The traffic moves to B = echo-00002 (ready); A keeps its slice, so it stays known.
    await setTraffic(
      'echo',
      [{ revisionName: 'echo-00002', percent: 100 }],
      [{ revision: 'echo-00002', percent: 100 }],
    );
    const fresh = await sendBinary(gw.eventsPort, path, 'roll-b1');
    assert.equal(fresh.status, 200);
    assert.ok(receivers.received(b).includes('roll-b1'));
    assert.equal(pendingOf(await counts(gw.adminPort), 'echo-00003'), 2, 'still held for A, A’s ScaledObject wakes it');

    await setReady('echo-00003', c.host.ip);
    assert.deepEqual(
      (await Promise.all(held)).map((res) => res.status),
      [200, 200],
    );
    assert.deepEqual(receivers.received(c).sort(), ['roll-a1', 'roll-a2']);
  });

  it('re-routes events held for a revision that is gone (no Route names it, no EndpointSlice)', async () => {
    await setTraffic(
      'echo',
      [{ revisionName: 'echo-00004', percent: 100 }],
      [{ revision: 'echo-00004', percent: 100 }],
    );
    const held = sendBinary(gw.eventsPort, path, 'gone-1');
    await pendingFor('echo-00004', 1);
    await setTraffic(
      'echo',
      [{ revisionName: 'echo-00002', percent: 100 }],
      [{ revision: 'echo-00002', percent: 100 }],
    );
    const res = await held;
    assert.equal(res.status, 200);
    assert.ok(receivers.received(b).includes('gone-1'), 're-routed to the revision that now receives the traffic');
    assert.equal(gw.endpoints.has(ref('echo-00004')), false);
  });

  it('gives an h2c-only revision no endpoints (warned once) and re-routes its events when its slice goes', async () => {
    await createRevision('echo-00005', [{ ip: a.host.ip, ready: true }], 'http2');
    await setTraffic(
      'echo',
      [{ revisionName: 'echo-00005', percent: 100 }],
      [{ revision: 'echo-00005', percent: 100 }],
    );
    const held = sendBinary(gw.eventsPort, path, 'h2c-1');
    await pendingFor('echo-00005', 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(pendingOf(await counts(gw.adminPort), 'echo-00005'), 1, 'h2c is not delivered to');
    const h2cWarnings = warnings.filter((line) => line.includes('only h2c') && line.includes('echo-00005'));
    assert.equal(h2cWarnings.length, 1, warnings.join(''));

    await setTraffic(
      'echo',
      [{ revisionName: 'echo-00002', percent: 100 }],
      [{ revision: 'echo-00002', percent: 100 }],
    );
    assert.equal(pendingOf(await counts(gw.adminPort), 'echo-00005'), 1, 'its slice still exists: still its own');
    await discovery().deleteNamespacedEndpointSlice({ name: 'echo-00005-private-1', namespace: cluster.namespace });
    const res = await held;
    assert.equal(res.status, 200);
    assert.ok(receivers.received(b).includes('h2c-1'));
    assert.deepEqual(receivers.received(a).includes('h2c-1'), false);
  });
});
