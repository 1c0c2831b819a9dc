import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Deployment,
} from '@kubernetes/client-node';
import { KWOK_NODE_TAINT, waitFor } from '../src/index.ts';
import { useCluster } from '../src/testing.ts';

const run = promisify(execFile);

function deployment(name: string, namespace: string, replicas: number): V1Deployment {
  return {
    metadata: { name, namespace },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
          // Pods that never run go to kwok nodes, which are tainted so pods that must answer land on real nodes only.
          nodeSelector: { type: 'kwok' },
          tolerations: [{ key: KWOK_NODE_TAINT.key, operator: 'Exists', effect: 'NoSchedule' }],
        },
      },
    },
  };
}

async function runningPods(kubeConfig: KubeConfig, namespace: string, app: string) {
  const pods = await kubeConfig.makeApiClient(CoreV1Api).listNamespacedPod({ namespace, labelSelector: `app=${app}` });
  return pods.items.filter((pod) => pod.status?.phase === 'Running' && pod.spec?.nodeName);
}

describe('devcluster: a real control plane', function () {
  this.timeout(180_000);
  const cluster = useCluster({ namespacePrefix: 'devcluster' });

  it('schedules a Deployment of 2 replicas onto kwok nodes, where they run', async () => {
    const apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
    await apps.createNamespacedDeployment({
      namespace: cluster.namespace,
      body: deployment('web', cluster.namespace, 2),
    });
    const pods = await waitFor(
      'two Running pods',
      async () => {
        const running = await runningPods(cluster.kubeConfig, cluster.namespace, 'web');
        return running.length === 2 ? running : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    for (const pod of pods) assert.match(pod.spec?.nodeName ?? '', /^kwok-node-\d+$/);
    // The real scheduler spreads replicas across the two nodes.
    assert.equal(new Set(pods.map((pod) => pod.spec?.nodeName)).size, 2);
  });

  it("serves the external metrics API through KEDA's adapter (aggregation + front proxy)", async () => {
    const { stdout } = await run(cluster.binary('kubectl'), [
      '--kubeconfig',
      cluster.kubeconfigPath,
      'get',
      '--raw',
      '/apis/external.metrics.k8s.io/v1beta1',
    ]);
    const discovery = JSON.parse(stdout) as { kind: string; groupVersion: string };
    assert.equal(discovery.kind, 'APIResourceList');
    assert.equal(discovery.groupVersion, 'external.metrics.k8s.io/v1beta1');
  });

  it('lets KEDA create an HPA for a cron ScaledObject and scale the Deployment from 0', async () => {
    const apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
    await apps.createNamespacedDeployment({
      namespace: cluster.namespace,
      body: deployment('cron', cluster.namespace, 0),
    });
    // A daily window that opened a minute ago and closes in ten: active now, whatever the hour.
    const now = Date.now();
    const cron = (at: number) => {
      const date = new Date(at);
      return `${date.getUTCMinutes()} ${date.getUTCHours()} * * *`;
    };
    await cluster.kubeConfig.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
      group: 'keda.sh',
      version: 'v1alpha1',
      namespace: cluster.namespace,
      plural: 'scaledobjects',
      body: {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'ScaledObject',
        metadata: { name: 'cron', namespace: cluster.namespace },
        spec: {
          scaleTargetRef: { name: 'cron' },
          pollingInterval: 1,
          minReplicaCount: 0,
          maxReplicaCount: 5,
          triggers: [
            {
              type: 'cron',
              metadata: {
                timezone: 'Etc/UTC',
                start: cron(now - 60_000),
                end: cron(now + 600_000),
                desiredReplicas: '3',
              },
            },
          ],
        },
      },
    });
    const hpa = await waitFor(
      'KEDA-created HPA',
      async () =>
        (await cluster.kubeConfig
          .makeApiClient(AutoscalingV2Api)
          .readNamespacedHorizontalPodAutoscaler({ name: 'keda-hpa-cron', namespace: cluster.namespace })
          .catch(() => undefined)) ?? undefined,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    assert.equal(hpa.spec?.scaleTargetRef.name, 'cron');
    assert.equal(hpa.spec?.metrics?.[0]?.type, 'External');
    const replicas = await waitFor(
      'Deployment scaled to 3 by the HPA',
      async () => {
        const current = await apps.readNamespacedDeployment({ name: 'cron', namespace: cluster.namespace });
        return (current.status?.readyReplicas ?? 0) >= 3 ? current.spec?.replicas : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    assert.equal(replicas, 3);
  });

  it('stores and returns a Knative Service', async () => {
    const custom = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    const ref = { group: 'serving.knative.dev', version: 'v1', namespace: cluster.namespace, plural: 'services' };
    await custom.createNamespacedCustomObject({
      ...ref,
      body: {
        apiVersion: 'serving.knative.dev/v1',
        kind: 'Service',
        metadata: { name: 'echo', namespace: cluster.namespace },
        spec: { template: { spec: { containers: [{ image: `${cluster.registry}/echo:1` }] } } },
      },
    });
    const stored = (await custom.getNamespacedCustomObject({ ...ref, name: 'echo' })) as {
      spec: { template: { spec: { containers: Array<{ image: string }> } } };
    };
    assert.equal(stored.spec.template.spec.containers[0]?.image, `${cluster.registry}/echo:1`);
  });

  it('has a working OCI registry', async () => {
    const response = await fetch(`http://${cluster.registry}/v2/`);
    assert.equal(response.status, 200);
  });
});
