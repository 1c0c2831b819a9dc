/**
 * End to end with the REAL KEDA operator and metrics adapter of the devcluster: the scaler runs in
 * this process on 127.0.0.1 (where the operator, also a local process, reaches it), a real HTTP SSE
 * gateway (FakeGateway: the gateway admin counts contract) reports the pending counts.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useCluster } from '@afterlife/devcluster/testing';
import { AppsV1Api, AutoscalingV2Api, CustomObjectsApi } from '@kubernetes/client-node';
import { type RunningScaler, startScaler } from '../src/scaler.ts';
import { counts, FakeGateway, silentLogger, testConfig, waitFor } from './helpers.ts';

const POLLING_INTERVAL_S = 1;
const COOLDOWN_S = 5;

describe('end to end with the real KEDA operator', function () {
  this.timeout(240_000);
  const cluster = useCluster({ namespacePrefix: 'scaler' });
  let gateway: FakeGateway;
  let scaler: RunningScaler;
  let apps: AppsV1Api;
  let custom: CustomObjectsApi;

  before(async () => {
    gateway = await FakeGateway.start('gw-e2e', { heartbeatMs: 500 });
    scaler = await startScaler(testConfig([gateway.url], { AFTERLIFE_SCALER_STREAM_INTERVAL: '1s' }), {
      logger: silentLogger,
      defaultMetrics: false,
    });
    apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
    custom = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
  });

  after(async () => {
    const ns = cluster.namespace;
    for (const name of ['fn-push', 'fn-poll', 'fn-typo']) {
      await custom
        .deleteNamespacedCustomObject({
          group: 'keda.sh',
          version: 'v1alpha1',
          namespace: ns,
          plural: 'scaledobjects',
          name,
        })
        .catch(() => undefined);
    }
    await scaler?.close();
    await gateway?.close();
  });

  function deployment(name: string) {
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: cluster.namespace },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [{ name: 'fn', image: 'registry.invalid/afterlife/fn:latest' }] },
        },
      },
    };
  }

  function scaledObject(name: string, type: 'external' | 'external-push', metadata: Record<string, string>) {
    return {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name, namespace: cluster.namespace },
      spec: {
        scaleTargetRef: { name },
        pollingInterval: POLLING_INTERVAL_S,
        cooldownPeriod: COOLDOWN_S,
        minReplicaCount: 0,
        maxReplicaCount: 5,
        advanced: {
          horizontalPodAutoscalerConfig: {
            behavior: {
              scaleUp: { stabilizationWindowSeconds: 0 },
              scaleDown: { stabilizationWindowSeconds: 0 },
            },
          },
        },
        triggers: [{ type, metadata: { scalerAddress: `127.0.0.1:${scaler.port}`, ...metadata } }],
      },
    };
  }

  async function createScaled(name: string, type: 'external' | 'external-push', metadata: Record<string, string>) {
    await apps.createNamespacedDeployment({ namespace: cluster.namespace, body: deployment(name) });
    await custom.createNamespacedCustomObject({
      group: 'keda.sh',
      version: 'v1alpha1',
      namespace: cluster.namespace,
      plural: 'scaledobjects',
      body: scaledObject(name, type, metadata),
    });
  }

  async function readScaledObject(name: string): Promise<{ status?: { conditions?: Condition[] } }> {
    return (await custom.getNamespacedCustomObject({
      group: 'keda.sh',
      version: 'v1alpha1',
      namespace: cluster.namespace,
      plural: 'scaledobjects',
      name,
    })) as { status?: { conditions?: Condition[] } };
  }

  const replicas = async (name: string): Promise<number> =>
    (await apps.readNamespacedDeployment({ name, namespace: cluster.namespace })).spec?.replicas ?? 0;

  /** Polls spec.replicas every 25 ms and returns the ms from `since` until it equals `want`. */
  async function timeToReplicas(name: string, want: number, since: number, timeoutMs: number): Promise<number> {
    await waitFor(`${name} replicas=${want}`, async () => (await replicas(name)) === want, timeoutMs, 25);
    return performance.now() - since;
  }

  it('scales 0→1 on pending (external-push faster than polling external), to N through the HPA, and back to 0', async () => {
    const ns = cluster.namespace;
    gateway.set([counts(ns, 'fn-push'), counts(ns, 'fn-poll')]);
    await createScaled('fn-push', 'external-push', {
      function: `${ns}/fn-push`,
      metric: 'concurrency',
      targetValue: '1',
    });
    await createScaled('fn-poll', 'external', { function: 'fn-poll', metric: 'concurrency', targetValue: '1' });

    // KEDA is ready when both ScaledObjects are Ready and it has opened the push stream.
    await waitFor(
      'ScaledObjects ready',
      async () => {
        const all = await Promise.all(['fn-push', 'fn-poll'].map(readScaledObject));
        return all.every((so) => so.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      },
      60_000,
      250,
    );
    await waitFor(
      'KEDA opened StreamIsActive',
      async () => ((await scaler.metrics.activeStreams.get()).values[0]?.value ?? 0) >= 1,
      30_000,
      100,
    );
    assert.equal(await replicas('fn-push'), 0);
    assert.equal(await replicas('fn-poll'), 0);

    // One event held for each function at the same instant.
    const t0 = performance.now();
    gateway.set([counts(ns, 'fn-push', { pending: 1 }), counts(ns, 'fn-poll', { pending: 1 })]);
    const [pushMs, pollMs] = await Promise.all([
      timeToReplicas('fn-push', 1, t0, 30_000),
      timeToReplicas('fn-poll', 1, t0, 30_000),
    ]);
    console.log(
      `      event→replicas=1: external-push ${pushMs.toFixed(0)} ms, external (polling ${POLLING_INTERVAL_S}s) ${pollMs.toFixed(0)} ms`,
    );

    // A burst: 4 in flight for fn-push with targetValue 1 → the HPA (KEDA's external metric) asks for 4.
    const t1 = performance.now();
    gateway.set([counts(ns, 'fn-push', { pending: 1, inFlight: 3 }), counts(ns, 'fn-poll', { pending: 1 })]);
    const burstMs = await timeToReplicas('fn-push', 4, t1, 90_000);
    console.log(`      burst (concurrency 4, target 1) → replicas=4 through the HPA: ${burstMs.toFixed(0)} ms`);
    const hpa = await cluster.kubeConfig
      .makeApiClient(AutoscalingV2Api)
      .readNamespacedHorizontalPodAutoscaler({ name: 'keda-hpa-fn-push', namespace: ns });
    assert.equal(hpa.spec.metrics?.[0]?.external?.metric.name, `s0-afterlife-concurrency-${ns}-fn-push`);

    // Idle: nothing pending or in flight → KEDA scales both back to zero after the cooldown.
    const t2 = performance.now();
    gateway.set([counts(ns, 'fn-push'), counts(ns, 'fn-poll')]);
    const [idlePush, idlePoll] = await Promise.all([
      timeToReplicas('fn-push', 0, t2, 90_000),
      timeToReplicas('fn-poll', 0, t2, 90_000),
    ]);
    console.log(
      `      idle→replicas=0 (cooldown ${COOLDOWN_S}s): external-push ${idlePush.toFixed(0)} ms, external ${idlePoll.toFixed(0)} ms`,
    );
  });

  it('KEDA re-opens the push stream after a scaler restart, and 0→1 is still immediate', async () => {
    const ns = cluster.namespace;
    const port = scaler.port;
    await scaler.close();
    scaler = await startScaler(
      testConfig([gateway.url], { AFTERLIFE_SCALER_STREAM_INTERVAL: '1s', AFTERLIFE_SCALER_PORT: String(port) }),
      { logger: silentLogger, defaultMetrics: false },
    );
    const restarted = performance.now();
    await waitFor(
      'KEDA re-opened StreamIsActive',
      async () => ((await scaler.metrics.activeStreams.get()).values[0]?.value ?? 0) >= 1,
      60_000,
      100,
    );
    console.log(`      KEDA re-opened the stream ${(performance.now() - restarted).toFixed(0)} ms after the restart`);
    assert.equal(await replicas('fn-push'), 0);
    const t0 = performance.now();
    gateway.set([counts(ns, 'fn-push', { pending: 1 }), counts(ns, 'fn-poll')]);
    const ms = await timeToReplicas('fn-push', 1, t0, 30_000);
    console.log(`      after restart: event→replicas=1 (external-push) ${ms.toFixed(0)} ms`);
    gateway.set([counts(ns, 'fn-push'), counts(ns, 'fn-poll')]);
  });

  it("a metadata typo: KEDA marks the ScaledObject not ready, logs the scaler's message, and the Deployment stays at 0", async () => {
    const ns = cluster.namespace;
    await createScaled('fn-typo', 'external', { function: 'fn-typo', targetValu: '3' });
    gateway.set([counts(ns, 'fn-typo', { pending: 2 })]);
    const condition = await waitFor(
      'Ready=False on the typo ScaledObject',
      async () =>
        (await readScaledObject('fn-typo')).status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'False'),
      60_000,
      250,
    );
    console.log(`      KEDA says: ${condition.reason}: ${condition.message}`);
    // KEDA logs the scaler's own INVALID_ARGUMENT message (naming the key and the fix) in the
    // operator log; on a local devcluster we can read it there.
    const stateDir = cluster.state?.stateDir;
    if (stateDir !== undefined) {
      const log = join(stateDir, 'logs', 'keda-operator.log');
      const line = await waitFor(
        "the scaler's message in KEDA's operator log",
        async () =>
          (await readFile(log, 'utf8').catch(() => ''))
            .split('\n')
            .find((l) => l.includes('fn-typo') && l.includes('did you mean')),
        30_000,
        500,
      );
      assert.match(line, /unknown key \\?"targetValu\\?"; did you mean \\?"targetValue\\?"\?/);
      console.log(
        `      KEDA operator log: ...${line.slice(line.indexOf('invalid trigger metadata'), line.indexOf('invalid trigger metadata') + 120)}...`,
      );
    }
    assert.equal(await replicas('fn-typo'), 0);
  });
});

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
