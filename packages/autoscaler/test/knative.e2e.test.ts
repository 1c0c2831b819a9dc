/**
 * Real Knative revisions scaled 0 ↔ N by the Afterlife autoscaler: Knative Serving's own webhook
 * and controller make the Revisions, Deployments and PodAutoscalers; this package's controller
 * owns the PAs of class afterlife.dev (SKS + ScaledObject + status); the real KEDA operator
 * scales the Deployments on the real scaler's pushes; the real gateway (discovery `knative`)
 * routes events by the Route's traffic and holds them while a revision is at zero; the pods
 * (reference function + Knative's real queue-proxy) run on the devcluster's real node.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, parseCountsSnapshot } from '@afterlife/core';
import { KubeRequestError, kubeRequest, waitFor } from '@afterlife/devcluster';
import { useCluster, useKnativeServing } from '@afterlife/devcluster/testing';
import { type Gateway, loadConfig as loadGatewayConfig, startGateway } from '@afterlife/gateway';
import { loadConfig as loadScalerConfig, type RunningScaler, startScaler } from '@afterlife/scaler';
import { type Autoscaler, startAutoscaler } from '../src/autoscaler.ts';
import { loadConfig } from '../src/config.ts';

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
}
interface Obj {
  metadata: { name: string; uid?: string; ownerReferences?: { uid: string; controller?: boolean }[] };
  spec?: Record<string, unknown>;
  status?: { conditions?: Condition[]; traffic?: { revisionName: string; percent?: number }[]; [key: string]: unknown };
}
interface Reply {
  readonly status: number;
  readonly echoId: string;
  readonly ms: number;
  /** The gateway's error answer, when not 200. */
  readonly body?: string;
}

const logger = createLogger('autoscaler-e2e', {
  level: process.env.AFTERLIFE_TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent',
});
const CLASS = { 'autoscaling.knative.dev/class': 'afterlife.dev', 'autoscaling.knative.dev/min-scale': '0' };

describe('Afterlife autoscaler: real Knative revisions scaled 0 ↔ N through KEDA', function () {
  this.timeout(240_000);
  const cluster = useCluster({ namespacePrefix: 'as' });
  const knative = useKnativeServing(cluster, { hpa: false });
  let image = '';
  let gateway: Gateway | undefined;
  let scaler: RunningScaler | undefined;
  let autoscaler: Autoscaler | undefined;
  let sequence = 0;

  const ns = () => cluster.namespace;
  const api = (group: string, resource: string, name = '') =>
    `${group}/namespaces/${ns()}/${resource}${name ? `/${name}` : ''}`;
  const serving = (resource: string, name = '') => api('/apis/serving.knative.dev/v1', resource, name);
  const get = async <T = Obj>(path: string): Promise<T> => (await kubeRequest(cluster.kubeConfig, 'GET', path)) as T;
  const gone = async (path: string): Promise<true | undefined> => {
    try {
      await get(path);
      return undefined;
    } catch (error) {
      if (error instanceof KubeRequestError && error.status === 404) return true;
      throw error;
    }
  };
  const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> =>
    waitFor(what, probe, { timeoutMs, intervalMs: 250, guard: () => knative.assertHealthy() });
  const condition = (object: Obj, type: string) => object.status?.conditions?.find((c) => c.type === type);

  const startOurAutoscaler = (identity: string) =>
    startAutoscaler(
      loadConfig({
        AFTERLIFE_AUTOSCALER_SCALER_ADDRESS: `127.0.0.1:${scaler?.port}`,
        AFTERLIFE_AUTOSCALER_NAMESPACES: ns(),
        AFTERLIFE_AUTOSCALER_LEASE_NAMESPACE: ns(),
        AFTERLIFE_AUTOSCALER_IDENTITY: identity,
        AFTERLIFE_AUTOSCALER_ADMIN_PORT: '0',
        AFTERLIFE_AUTOSCALER_HOST: '127.0.0.1',
        AFTERLIFE_AUTOSCALER_DEFAULT_COOLDOWN: '5s',
        AFTERLIFE_AUTOSCALER_DEFAULT_POLLING_INTERVAL: '1s',
        AFTERLIFE_AUTOSCALER_DEFAULT_MAX_SCALE: '3',
        AFTERLIFE_AUTOSCALER_LEASE_DURATION: '4s',
        AFTERLIFE_AUTOSCALER_LEASE_RENEW_DEADLINE: '3s',
        AFTERLIFE_AUTOSCALER_LEASE_RETRY_PERIOD: '500ms',
      }),
      { logger, kubeConfig: cluster.kubeConfig, defaultMetrics: false },
    );

  const createService = (name: string, annotations: Record<string, string>, env: Record<string, string> = {}) =>
    kubeRequest(cluster.kubeConfig, 'POST', serving('services'), {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name },
      spec: {
        template: {
          metadata: { annotations },
          spec: {
            containers: [
              {
                image,
                ports: [{ containerPort: 8080 }],
                env: Object.entries(env).map(([key, value]) => ({ name: key, value })),
              },
            ],
          },
        },
      },
    });
  const revisionReady = (name: string) =>
    until(`Revision ${name} Ready`, async () => {
      const revision = await get(serving('revisions', name)).catch(() => undefined);
      return revision && condition(revision, 'Ready')?.status === 'True' ? revision : undefined;
    });
  const replicas = async (revision: string) => {
    const deployment = await get<{ spec?: { replicas?: number }; status?: { readyReplicas?: number } }>(
      api('/apis/apps/v1', 'deployments', `${revision}-deployment`),
    );
    return { desired: deployment.spec?.replicas ?? 0, ready: deployment.status?.readyReplicas ?? 0 };
  };
  const atZero = (revision: string) =>
    until(`${revision} at 0 replicas`, async () => {
      const r = await replicas(revision);
      return r.desired === 0 && r.ready === 0 ? true : undefined;
    });
  const routedTo = (service: string, revisions: readonly string[]) =>
    until(`Route ${service} sends traffic to ${revisions.join(' + ')}`, async () => {
      const route = await get(serving('routes', service)).catch(() => undefined);
      const names = (route?.status?.traffic ?? []).filter((t) => (t.percent ?? 0) > 0).map((t) => t.revisionName);
      return names.length === revisions.length && revisions.every((r) => names.includes(r)) ? true : undefined;
    });
  const send = async (service: string, workMs = 0): Promise<Reply> => {
    const id = `e2e-${++sequence}`;
    const started = performance.now();
    const response = await fetch(`http://127.0.0.1:${gateway?.eventsPort}/ns/${ns()}/fn/${service}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'ce-id': id,
        'ce-source': '/autoscaler-e2e',
        'ce-type': 'dev.afterlife.test',
        'ce-specversion': '1.0',
        'ce-workms': String(workMs),
      },
      body: JSON.stringify({ n: sequence }),
      signal: AbortSignal.timeout(120_000),
    });
    const text = await response.text();
    const reply: Reply = {
      status: response.status,
      echoId: response.headers.get('ce-echoid') ?? '',
      ms: performance.now() - started,
      ...(response.status === 200 ? {} : { body: text }),
    };
    if (reply.status === 200) assert.equal(reply.echoId, id, 'the reply answers this event');
    return reply;
  };
  /** Sends one event every `everyMs` until `stop` resolves; every reply is kept. */
  const steadyLoad = (service: string, everyMs: number, workMs: number) => {
    const replies: Promise<Reply>[] = [];
    let running = true;
    const loop = (async () => {
      for (let i = 0; running && i < 2000; i++) {
        replies.push(send(service, workMs));
        await sleep(everyMs);
      }
    })();
    return {
      async stop(): Promise<Reply[]> {
        running = false;
        await loop;
        return Promise.all(replies);
      },
    };
  };
  const delivered = async (): Promise<Map<string, number>> => {
    const response = await fetch(`http://127.0.0.1:${gateway?.adminPort}/v1/counts`);
    const snapshot = parseCountsSnapshot(await response.json());
    return new Map(snapshot.functions.map((f) => [f.name, f.delivered]));
  };

  before(async function () {
    image = cluster.state?.images.echoNative ?? '';
    if (!image) this.skip();
    gateway = await startGateway(
      loadGatewayConfig({
        AFTERLIFE_GATEWAY_PORT: '0',
        AFTERLIFE_GATEWAY_ADMIN_PORT: '0',
        AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
        AFTERLIFE_GATEWAY_ID: 'gateway-e2e',
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
        AFTERLIFE_SCALER_GATEWAY_URLS: `http://127.0.0.1:${gateway.adminPort}`,
        AFTERLIFE_SCALER_LOG_LEVEL: 'silent',
      }),
      { logger, defaultMetrics: false },
    );
    autoscaler = await startOurAutoscaler('e2e-1');
  });

  after(async function () {
    this.timeout(60_000);
    await autoscaler?.close();
    await scaler?.close();
    await gateway?.close();
  });

  it('an opted-in Service becomes a Ready Revision at 0 replicas, its SKS and ScaledObject owned by the PA', async () => {
    await createService('hello', { ...CLASS, 'autoscaling.knative.dev/target': '1' });
    await revisionReady('hello-00001');
    const pa = await get(api('/apis/autoscaling.internal.knative.dev/v1alpha1', 'podautoscalers', 'hello-00001'));
    for (const [kind, path] of [
      ['SKS', api('/apis/networking.internal.knative.dev/v1alpha1', 'serverlessservices', 'hello-00001')],
      ['ScaledObject', api('/apis/keda.sh/v1alpha1', 'scaledobjects', 'hello-00001')],
    ] as const) {
      const owned = await get(path);
      assert.ok(
        owned.metadata.ownerReferences?.some((ref) => ref.uid === pa.metadata.uid && ref.controller),
        `${kind} is controlled by the PodAutoscaler`,
      );
    }
    const scaledObject = await get<{
      spec: { minReplicaCount: number; triggers: { type: string; metadata: Record<string, string> }[] };
    }>(api('/apis/keda.sh/v1alpha1', 'scaledobjects', 'hello-00001'));
    assert.equal(scaledObject.spec.triggers[0]?.type, 'external-push');
    assert.equal(scaledObject.spec.triggers[0]?.metadata.revision, 'hello-00001');
    await until('ScaledObject min back at 0 once initialized', async () => {
      const so = await get<{ spec: { minReplicaCount: number } }>(
        api('/apis/keda.sh/v1alpha1', 'scaledobjects', 'hello-00001'),
      );
      return so.spec.minReplicaCount === 0 ? true : undefined;
    });
    await atZero('hello-00001');
    // Inactive at zero, as with Knative's own autoscaler, and still Ready.
    const after = await until('Revision hello-00001 inactive at zero', async () => {
      const r = await get(serving('revisions', 'hello-00001'));
      return condition(r, 'Active')?.status === 'False' ? r : undefined;
    });
    assert.equal(condition(after, 'Active')?.reason, 'NoTraffic');
    assert.equal(condition(after, 'Ready')?.status, 'True');
    await routedTo('hello', ['hello-00001']);
  });

  it('the first event at zero wakes the revision 0 → 1 and gets the reply', async () => {
    const reply = await send('hello');
    assert.equal(reply.status, 200, JSON.stringify(reply));
    const r = await replicas('hello-00001');
    assert.ok(r.desired >= 1, `scaled up (desired ${r.desired})`);
    process.stdout.write(`      first event at zero → reply: ${reply.ms.toFixed(0)} ms\n`);
  });

  it('load scales it out to N replicas; idle brings it back to 0 and the Revision stays Ready', async () => {
    let peak = 0;
    const watcher = (async () => {
      for (let i = 0; i < 200 && peak < 2; i++) {
        peak = Math.max(peak, (await replicas('hello-00001')).ready);
        await sleep(250);
      }
    })();
    // Work long enough that a second pod can start and turn Ready while the events are still in flight.
    const replies = await Promise.all(Array.from({ length: 8 }, () => send('hello', 10_000)));
    await watcher;
    assert.deepEqual(
      replies.filter((r) => r.status !== 200),
      [],
    );
    assert.ok(peak >= 2, `scaled out to ${peak} ready replicas under 8 concurrent events at target 1`);
    await atZero('hello-00001');
    await revisionReady('hello-00001');
  });

  it('a new revision rolled out under load: no event lost, traffic moves, the old revision goes to 0', async () => {
    const load = steadyLoad('hello', 100, 100);
    await sleep(1000);
    await kubeRequest(
      cluster.kubeConfig,
      'PATCH',
      serving('services', 'hello'),
      {
        spec: {
          template: {
            spec: { containers: [{ image, ports: [{ containerPort: 8080 }], env: [{ name: 'VERSION', value: '2' }] }] },
          },
        },
      },
      'application/merge-patch+json',
    );
    await revisionReady('hello-00002');
    await routedTo('hello', ['hello-00002']);
    await sleep(2000);
    const replies = await load.stop();
    const failed = replies.filter((r) => r.status !== 200);
    assert.equal(
      failed.length,
      0,
      `every event delivered (${replies.length} sent; failures: ${JSON.stringify(failed.slice(0, 3))})`,
    );
    const counts = await delivered();
    assert.ok((counts.get('hello-00002') ?? 0) > 0, 'the new revision received events');
    await atZero('hello-00001');
  });

  it('a 50/50 traffic split: both revisions receive events', async () => {
    await kubeRequest(
      cluster.kubeConfig,
      'PATCH',
      serving('services', 'hello'),
      {
        spec: {
          traffic: [
            { revisionName: 'hello-00001', percent: 50 },
            { revisionName: 'hello-00002', percent: 50 },
          ],
        },
      },
      'application/merge-patch+json',
    );
    await routedTo('hello', ['hello-00001', 'hello-00002']);
    const before = await delivered();
    const replies = await Promise.all(Array.from({ length: 30 }, () => send('hello')));
    assert.deepEqual(
      replies.filter((r) => r.status !== 200),
      [],
    );
    const after = await delivered();
    for (const revision of ['hello-00001', 'hello-00002']) {
      const got = (after.get(revision) ?? 0) - (before.get(revision) ?? 0);
      assert.ok(got > 0, `${revision} received ${got} of 30 events`);
    }
  });

  it('the autoscaler restarted mid-load: nothing lost, the new leader takes over', async () => {
    const load = steadyLoad('hello', 150, 50);
    await sleep(500);
    await autoscaler?.close();
    autoscaler = await startOurAutoscaler('e2e-2');
    await until('the restarted autoscaler leads', async () => (autoscaler?.elector.leading ? true : undefined), 30_000);
    await createService('fresh', CLASS);
    await revisionReady('fresh-00001');
    const replies = await load.stop();
    assert.equal(replies.filter((r) => r.status !== 200).length, 0, `all ${replies.length} events delivered`);
  });

  it('a PodAutoscaler of another class is ignored', async () => {
    await createService('other', { 'autoscaling.knative.dev/class': 'kpa.autoscaling.knative.dev' });
    await until('PodAutoscaler other-00001', () =>
      get(api('/apis/autoscaling.internal.knative.dev/v1alpha1', 'podautoscalers', 'other-00001')).catch(
        () => undefined,
      ),
    );
    await sleep(2000);
    await autoscaler?.controller.whenIdle();
    assert.ok(await gone(api('/apis/keda.sh/v1alpha1', 'scaledobjects', 'other-00001')), 'no ScaledObject');
    assert.ok(
      await gone(api('/apis/networking.internal.knative.dev/v1alpha1', 'serverlessservices', 'other-00001')),
      'no SKS',
    );
    const pa = await get(api('/apis/autoscaling.internal.knative.dev/v1alpha1', 'podautoscalers', 'other-00001'));
    assert.equal(pa.status?.conditions, undefined, 'its status is not written');
  });

  it('bad annotations: a clear message on the Revision, and other revisions keep being served', async () => {
    // Knative's own validation already refuses max-scale below min-scale, with a clear message.
    await assert.rejects(
      createService('inverted', {
        ...CLASS,
        'autoscaling.knative.dev/min-scale': '3',
        'autoscaling.knative.dev/max-scale': '1',
      }),
      (error: unknown) => error instanceof KubeRequestError && /max-scale/.test(error.message),
    );
    await createService('typo', { ...CLASS, 'afterlife.dev/coldown-seconds': '10' });
    const revision = await until("Revision typo-00001 carries the autoscaler's message", async () => {
      const r = await get(serving('revisions', 'typo-00001')).catch(() => undefined);
      return r && condition(r, 'Active')?.reason === 'InvalidAnnotations' ? r : undefined;
    });
    assert.match(
      condition(revision, 'Active')?.message ?? '',
      /afterlife.dev\/coldown-seconds .*did you mean afterlife.dev\/cooldown-seconds/,
    );
    assert.notEqual(
      condition(revision, 'Ready')?.status,
      'False',
      'not failed: fixing the annotation makes a new revision',
    );
    assert.equal((await send('fresh')).status, 200);
  });

  it("a ScaledObject of the revision's name that the PA does not control is reported, never overwritten", async () => {
    const stray = {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name: 'stray-00001' },
      spec: {
        scaleTargetRef: { name: 'somebody-else' },
        minReplicaCount: 0,
        triggers: [{ type: 'cpu', metadata: { value: '50' } }],
      },
    };
    await kubeRequest(cluster.kubeConfig, 'POST', api('/apis/keda.sh/v1alpha1', 'scaledobjects'), stray);
    await createService('stray', CLASS);
    const pa = await until('PodAutoscaler stray-00001 reports NotOwned', async () => {
      const p = await get(
        api('/apis/autoscaling.internal.knative.dev/v1alpha1', 'podautoscalers', 'stray-00001'),
      ).catch(() => undefined);
      return p && condition(p, 'Active')?.reason === 'NotOwned' ? p : undefined;
    });
    assert.match(condition(pa, 'Active')?.message ?? '', /existing ScaledObject "stray-00001" that we do not own/);
    const so = await get<{ spec: { scaleTargetRef: { name: string } } }>(
      api('/apis/keda.sh/v1alpha1', 'scaledobjects', 'stray-00001'),
    );
    assert.equal(so.spec.scaleTargetRef.name, 'somebody-else', 'left as it was');
  });

  it('deleting the Service removes the SKS and the ScaledObject with the PodAutoscaler', async () => {
    await kubeRequest(cluster.kubeConfig, 'DELETE', serving('services', 'fresh'));
    await until('ScaledObject fresh-00001 gone', () =>
      gone(api('/apis/keda.sh/v1alpha1', 'scaledobjects', 'fresh-00001')),
    );
    await until('SKS fresh-00001 gone', () =>
      gone(api('/apis/networking.internal.knative.dev/v1alpha1', 'serverlessservices', 'fresh-00001')),
    );
  });
});
