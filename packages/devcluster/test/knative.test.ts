import assert from 'node:assert/strict';
import { KubeRequestError, kubeRequest } from '../src/kube.ts';
import { useCluster, useKnativeServing } from '../src/testing.ts';
import { waitFor } from '../src/wait.ts';

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
}
interface Obj {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: { conditions?: Condition[]; [key: string]: unknown };
}
interface Container {
  readonly name: string;
  readonly image: string;
}

/** Not in any registry: the first test only checks what the controller writes. */
const UNPULLABLE_IMAGE = 'dev.local/afterlife/hello:1';

describe('Knative Serving controllers on the devcluster', function () {
  this.timeout(120_000);
  const cluster = useCluster({ namespacePrefix: 'kn' });
  const knative = useKnativeServing(cluster);
  /** The reference function as a native image: revision pods really run it beside the real queue-proxy. */
  let runnableImage = '';

  const get = async <T = Obj>(path: string): Promise<T> => (await kubeRequest(cluster.kubeConfig, 'GET', path)) as T;
  const ns = (group: string, resource: string, name = ''): string =>
    `${group}/namespaces/${cluster.namespace}/${resource}${name ? `/${name}` : ''}`;
  const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> =>
    waitFor(what, probe, { timeoutMs, intervalMs: 250, guard: () => knative.assertHealthy() });
  const condition = (object: Obj, type: string): Condition | undefined =>
    object.status?.conditions?.find((c) => c.type === type);
  const createService = (name: string, annotations: Record<string, string> = {}, image = UNPULLABLE_IMAGE) =>
    kubeRequest(cluster.kubeConfig, 'POST', ns('/apis/serving.knative.dev/v1', 'services'), {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name },
      spec: { template: { metadata: { annotations }, spec: { containers: [{ image }] } } },
    });

  before(function () {
    runnableImage = cluster.state?.images.echoNative ?? '';
    if (!runnableImage) this.skip();
  });

  it('turns a Service into a Configuration, a Revision and a Deployment with user-container and queue-proxy', async () => {
    await createService('hello');
    const configuration = await until<Obj>('Configuration hello', () =>
      get(ns('/apis/serving.knative.dev/v1', 'configurations', 'hello')),
    );
    assert.equal(configuration.metadata.labels?.['serving.knative.dev/service'], 'hello');
    const revision = await until<Obj>('Revision hello-00001', () =>
      get(ns('/apis/serving.knative.dev/v1', 'revisions', 'hello-00001')),
    );
    assert.equal(revision.metadata.labels?.['serving.knative.dev/configuration'], 'hello');
    const deployment = await until('Deployment hello-00001-deployment', () =>
      get<{ spec: { template: { spec: { containers: Container[] } } } }>(
        ns('/apis/apps/v1', 'deployments', 'hello-00001-deployment'),
      ),
    );
    const containers = deployment.spec.template.spec.containers;
    assert.deepEqual(
      containers.map((c) => c.name),
      ['user-container', 'queue-proxy'],
    );
    assert.equal(containers[0]?.image, UNPULLABLE_IMAGE, 'tag resolution is off for the image');
    assert.equal(containers[1]?.image, knative.queueImage);
    // Default class is KPA; no KPA autoscaler runs, so its PodAutoscaler is created but never reconciled.
    const pa = await until<Obj>('PodAutoscaler hello-00001', () =>
      get(ns('/apis/autoscaling.internal.knative.dev/v1alpha1', 'podautoscalers', 'hello-00001')),
    );
    assert.equal(pa.metadata.annotations?.['autoscaling.knative.dev/class'], 'kpa.autoscaling.knative.dev');
  });

  it('reconciles an hpa-class revision: HPA, ServerlessService and the revision Services, Revision Ready', async () => {
    await createService(
      'scaled',
      { 'autoscaling.knative.dev/class': 'hpa.autoscaling.knative.dev', 'autoscaling.knative.dev/min-scale': '0' },
      runnableImage,
    );
    const pa = await until<Obj>('PodAutoscaler scaled-00001', () =>
      get(ns('/apis/autoscaling.internal.knative.dev/v1alpha1', 'podautoscalers', 'scaled-00001')),
    );
    assert.equal(pa.metadata.annotations?.['autoscaling.knative.dev/class'], 'hpa.autoscaling.knative.dev');
    const hpa = await until('HPA scaled-00001', () =>
      get<{ spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number } }>(
        ns('/apis/autoscaling/v2', 'horizontalpodautoscalers', 'scaled-00001'),
      ),
    );
    assert.deepEqual(
      { kind: hpa.spec.scaleTargetRef.kind, name: hpa.spec.scaleTargetRef.name },
      { kind: 'Deployment', name: 'scaled-00001-deployment' },
    );
    // Knative's HPA class cannot go below one replica: min-scale 0 becomes minReplicas 1.
    assert.equal(hpa.spec.minReplicas, 1);
    for (const name of ['scaled-00001', 'scaled-00001-private']) {
      await until(`Service ${name}`, () => get(ns('/api/v1', 'services', name)));
    }
    // The pod runs on the real node: Knative's queue-proxy (built from serving's cmd/queue) in
    // front of the reference function. Once both are ready the SKS has endpoints and the
    // Revision becomes Ready.
    const revision = await until('Revision scaled-00001 Ready', async () => {
      const object = await get(ns('/apis/serving.knative.dev/v1', 'revisions', 'scaled-00001'));
      return condition(object, 'Ready')?.status === 'True' ? object : undefined;
    });
    assert.equal(condition(revision, 'ResourcesAvailable')?.status, 'True');
    // An event through the real queue-proxy (port 8012) reaches the function and comes back.
    const pods = await get<{ items: Array<{ status?: { podIP?: string } }> }>(
      `${ns('/api/v1', 'pods')}?labelSelector=serving.knative.dev%2Frevision%3Dscaled-00001`,
    );
    const podIp = pods.items[0]?.status?.podIP;
    assert.ok(podIp, 'the revision pod has an address on the node bridge');
    const reply = await fetch(`http://${podIp}:8012/`, {
      method: 'POST',
      headers: { 'ce-id': 'kn-1', 'ce-source': '/test', 'ce-type': 'dev.afterlife.test', 'ce-specversion': '1.0' },
      body: '{}',
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers.get('ce-echoid'), 'kn-1');
    const sks = await get(ns('/apis/networking.internal.knative.dev/v1alpha1', 'serverlessservices', 'scaled-00001'));
    assert.equal(condition(sks, 'Ready')?.status, 'True');
    assert.equal(sks.spec?.mode, 'Serve');
    // No ingress implementation runs: the Route's Ingress is never Ready, so neither is the Service.
    // The Route lags the Configuration by a reconcile: wait until both report their settled state.
    const service = await until('Service scaled: Configuration ready, Route waiting for its Ingress', async () => {
      const object = await get(ns('/apis/serving.knative.dev/v1', 'services', 'scaled'));
      const settled =
        condition(object, 'ConfigurationsReady')?.status === 'True' &&
        condition(object, 'RoutesReady')?.reason === 'IngressNotConfigured';
      return settled ? object : undefined;
    });
    assert.equal(service.status?.latestReadyRevisionName, 'scaled-00001');
    assert.equal(condition(service, 'RoutesReady')?.status, 'Unknown');
    assert.equal(condition(service, 'Ready')?.status, 'Unknown');
    assert.equal(condition(service, 'Ready')?.reason, 'IngressNotConfigured');
    const ingress = await get(ns('/apis/networking.internal.knative.dev/v1alpha1', 'ingresses', 'scaled'));
    assert.equal(
      ingress.metadata.annotations?.['networking.knative.dev/ingress.class'],
      'istio.ingress.networking.knative.dev',
    );
  });

  it('rejects a Service without an image through the real validating webhook', async () => {
    await assert.rejects(createService('broken', {}, ''), (error: unknown) => {
      assert.ok(error instanceof KubeRequestError, String(error));
      assert.equal(error.status, 400);
      assert.match(error.message, /image/);
      return true;
    });
  });
});
