import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '@afterlife/core';
import { applyObjects } from '@afterlife/devcluster';
import {
  ANNOTATION_AUTOSCALING_CLASS,
  ANNOTATION_SCALED_OBJECT_OVERRIDE,
  ANNOTATION_WASM_VARIANT,
  LABEL_RUNTIME,
  LABEL_SCALING,
  RUNTIME_WASMEDGE,
  SCALING_EVENTS,
} from '@afterlife/webhook';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import {
  gatewayCounts,
  gatewayDelivered,
  type ReplicaState,
  readReplicas,
  type ScenarioRecord,
  type SuiteContext,
  scaledObjectFor,
  waitUntil,
} from './context.ts';
import { ConformanceError } from './errors.ts';
import { type EventOutcome, percentile, sendBurst, sendEvent } from './load.ts';
import { materializeRevision } from './revision.ts';

/** A scenario: a mocha test body over the shared context. */
export interface Scenario {
  readonly id: string;
  readonly title: string;
  /** Upper bound for the whole test (ms), from the profile. */
  timeoutMs(ctx: SuiteContext): number;
  run(ctx: SuiteContext, rec: ScenarioRecord): Promise<void>;
}

/** The opted-in function. Locally it is `echo` in `LOCAL_NAMESPACE`: `materializeRevision` builds that revision. */
export const FUNCTION_NAME = 'conformance-echo';
export const LOCAL_NAMESPACE = 'afterlife-conformance-local';
const functionName = (ctx: SuiteContext) => (ctx.local ? 'echo' : FUNCTION_NAME);
const OPTED_OUT_NAME = 'conformance-plain';
const THRESHOLD_NAME = 'conformance-threshold';

interface KnativeServiceLike {
  metadata?: { name?: string; annotations?: Record<string, string> };
  spec: {
    template: {
      metadata?: { annotations?: Record<string, string>; labels?: Record<string, string> };
      spec: { runtimeClassName?: string; containers: Array<Record<string, unknown>> };
    };
  };
}

function fail(message: string): never {
  throw new ConformanceError('SCENARIO_FAILED', message);
}

function needFunction(ctx: SuiteContext) {
  return ctx.fn ?? fail('no function under test: the injection scenario did not deploy it (see its failure)');
}

async function createKnativeService(
  ctx: SuiteContext,
  name: string,
  labels: Record<string, string>,
  dryRun = false,
): Promise<KnativeServiceLike> {
  const custom = ctx.kubeConfig.makeApiClient(CustomObjectsApi);
  try {
    return (await custom.createNamespacedCustomObject({
      group: 'serving.knative.dev',
      version: 'v1',
      namespace: ctx.namespace,
      plural: 'services',
      ...(dryRun ? { dryRun: 'All' } : {}),
      body: {
        apiVersion: 'serving.knative.dev/v1',
        kind: 'Service',
        metadata: { name, namespace: ctx.namespace, labels },
        spec: {
          template: { spec: { containers: [{ image: ctx.image, ports: [{ containerPort: 8080 }] }] } },
        },
      },
    })) as KnativeServiceLike;
  } catch (error) {
    const body = (error as { body?: unknown }).body;
    const detail = typeof body === 'string' ? body : errorMessage(error);
    if (/webhook/i.test(detail)) {
      fail(`creating Knative Service ${ctx.namespace}/${name} failed at the Afterlife webhook: ${detail}`);
    }
    fail(`creating Knative Service ${ctx.namespace}/${name} failed: ${detail}`);
  }
}

const ms = (value: number) => (Number.isFinite(value) ? `${value.toFixed(0)} ms` : 'n/a');

const injection: Scenario = {
  id: 'injection',
  title: '1. injection: an opted-in Knative Service gets runtimeClassName and annotations; an opted-out one does not',
  timeoutMs: (ctx) => (ctx.profile.coldStartTimeoutSeconds + 120) * 1000,
  async run(ctx, rec) {
    const optedIn = await createKnativeService(ctx, functionName(ctx), {
      [LABEL_RUNTIME]: RUNTIME_WASMEDGE,
      [LABEL_SCALING]: SCALING_EVENTS,
    });
    const template = optedIn.spec.template;
    const annotations = template.metadata?.annotations ?? {};
    const observed = `runtimeClassName=${template.spec.runtimeClassName ?? '(none)'} annotations=${JSON.stringify(annotations)}`;
    rec.notes.push(`opted-in template: ${observed}`);
    if (template.spec.runtimeClassName !== ctx.runtimeClassName) {
      fail(
        `the Afterlife webhook did not inject runtimeClassName ${ctx.runtimeClassName} into the opted-in Service (is the MutatingWebhookConfiguration installed and the webhook serving?); observed ${observed}`,
      );
    }
    for (const key of [ANNOTATION_WASM_VARIANT, ANNOTATION_AUTOSCALING_CLASS, ANNOTATION_SCALED_OBJECT_OVERRIDE]) {
      if (!annotations[key]) fail(`the Afterlife webhook did not add annotation ${key}; observed ${observed}`);
    }
    const override = JSON.parse(annotations[ANNOTATION_SCALED_OBJECT_OVERRIDE] ?? '{}') as {
      spec: { triggers: Array<{ type: string; metadata: Record<string, string> }> };
    };
    const scalerAddress = override.spec?.triggers?.[0]?.metadata?.scalerAddress ?? '';
    rec.metrics.variant = annotations[ANNOTATION_WASM_VARIANT] ?? '';
    rec.metrics.scalerAddress = scalerAddress;

    // Server-side dry run: admission runs in full (the webhook has sideEffects None), but no
    // revision of a Wasm image without the runtime class is ever started.
    const optedOut = await createKnativeService(ctx, OPTED_OUT_NAME, {}, true);
    const outTemplate = optedOut.spec.template;
    const outAnnotations = outTemplate.metadata?.annotations ?? {};
    rec.notes.push(
      `opted-out template: runtimeClassName=${outTemplate.spec.runtimeClassName ?? '(none)'} annotations=${JSON.stringify(outAnnotations)}`,
    );
    if (outTemplate.spec.runtimeClassName !== undefined || outAnnotations[ANNOTATION_SCALED_OBJECT_OVERRIDE]) {
      fail(`the opted-out Service was mutated: ${rec.notes.at(-1)}`);
    }

    let deployment: string;
    if (ctx.local) {
      // No Knative controller locally: create what it and autoscaler-keda would for revision 00001.
      await materializeRevision(ctx.kubeConfig, {
        namespace: LOCAL_NAMESPACE,
        name: 'echo',
        template,
        override,
        cooldownSeconds: ctx.profile.cooldownSeconds,
      });
      deployment = 'echo';
    } else {
      deployment = `${functionName(ctx)}-00001-deployment`;
    }
    const apps = ctx.kubeConfig.makeApiClient(AppsV1Api);
    const podTemplate = await waitUntil(
      `Deployment ${ctx.namespace}/${deployment}`,
      async () => {
        const d = await apps.readNamespacedDeployment({ name: deployment, namespace: ctx.namespace });
        const rc = d.spec?.template.spec?.runtimeClassName;
        return { done: rc !== undefined, state: `pod template runtimeClassName=${rc ?? '(none)'}` };
      },
      120_000,
      500,
    );
    if (!podTemplate.endsWith(`=${ctx.runtimeClassName}`)) fail(`revision Deployment ${podTemplate}`);
    // Pods that exist now (on a real cluster Knative starts one) must run under the class.
    const pods = await ctx.kubeConfig.makeApiClient(CoreV1Api).listNamespacedPod({
      namespace: ctx.namespace,
      labelSelector: `serving.knative.dev/service=${functionName(ctx)}`,
    });
    for (const pod of pods.items) {
      if (pod.spec?.runtimeClassName !== ctx.runtimeClassName) {
        fail(`pod ${pod.metadata?.name} runs with runtimeClassName=${pod.spec?.runtimeClassName ?? '(none)'}`);
      }
    }
    const name = functionName(ctx);
    ctx.fn = {
      namespace: ctx.namespace,
      name,
      deployment,
      url: `${ctx.gatewayUrl.replace(/\/$/, '')}/ns/${ctx.namespace}/fn/${name}`,
      podAnnotations: template.metadata?.annotations ?? {},
      scalerAddress,
    };
    ctx.watched.add(deployment);
    rec.deployment = deployment;
    rec.metrics.deployment = deployment;
    ctx.print(
      `    injected runtimeClassName=${ctx.runtimeClassName}, variant ${rec.metrics.variant}; revision ${deployment}`,
    );
  },
};

async function waitForZero(ctx: SuiteContext, deployment: string, timeoutMs: number): Promise<string> {
  return waitUntil(
    `${ctx.namespace}/${deployment} at 0 replicas`,
    async () => {
      const r = await readReplicas(ctx.kubeConfig, ctx.namespace, deployment);
      return { done: r.desired === 0 && r.ready === 0, state: r.text };
    },
    timeoutMs,
  );
}

async function scaleDownBoundMs(ctx: SuiteContext, deployment: string): Promise<number> {
  const so = await scaledObjectFor(ctx.kubeConfig, ctx.namespace, deployment);
  const cooldown = so?.cooldownPeriod ?? ctx.profile.cooldownSeconds;
  // cooldown + HPA scale-down stabilization (the suite's ScaledObjects use 5 s) + margin.
  return (cooldown + 5 + ctx.profile.scaleToZeroMarginSeconds) * 1000;
}

function checkOutcome(outcome: EventOutcome): string | undefined {
  if (outcome.status !== 200)
    return `event ${outcome.id} answered ${outcome.status}${outcome.error ? ` (${outcome.error})` : ''}`;
  if (outcome.echoedId !== outcome.id) return `event ${outcome.id} echoed "${outcome.echoedId}"`;
  return undefined;
}

const scaleFromZero: Scenario = {
  id: 'scale-from-zero',
  title: '2. scale from zero: one CloudEvent at 0 replicas is delivered and answered',
  timeoutMs: (ctx) =>
    (ctx.profile.coldStartTimeoutSeconds + ctx.profile.cooldownSeconds + ctx.profile.scaleToZeroMarginSeconds + 60) *
      1000 +
    300_000 * (ctx.local ? 0 : 1),
  async run(ctx, rec) {
    const fn = needFunction(ctx);
    const state = await waitForZero(ctx, fn.deployment, await scaleDownBoundMs(ctx, fn.deployment));
    rec.notes.push(`before: ${state}`);
    rec.start = ctx.clock();
    const outcome = await sendEvent({ url: fn.url, workMs: 0 }, 'scale-from-zero', ctx.clock);
    rec.events.push(outcome);
    rec.metrics.firstEventLatencyMs = Math.round(outcome.latencyMs);
    const problem = checkOutcome(outcome);
    const after = await readReplicas(ctx.kubeConfig, ctx.namespace, fn.deployment).catch(
      (e: unknown): ReplicaState => ({ desired: -1, ready: -1, text: errorMessage(e) }),
    );
    if (problem) {
      fail(
        `the first event was not delivered from zero: ${problem} after ${ms(outcome.latencyMs)}; last observed ${after.text}. Is the scaler reachable by KEDA (ScaledObject trigger scalerAddress ${fn.scalerAddress}) and the gateway holding the event?`,
      );
    }
    const ready = await waitUntil(
      `${fn.deployment} to report a ready replica`,
      async () => {
        const r = await readReplicas(ctx.kubeConfig, ctx.namespace, fn.deployment);
        return { done: r.ready >= 1, state: r.text };
      },
      30_000,
    );
    rec.metrics.zeroToReadyMs = Math.round(ctx.clock() - rec.start);
    const pods = await ctx.kubeConfig
      .makeApiClient(CoreV1Api)
      .listNamespacedPod({ namespace: ctx.namespace, labelSelector: `serving.knative.dev/service=${fn.name}` });
    const running = pods.items.filter((p) => p.status?.phase === 'Running');
    for (const pod of running) {
      if (pod.spec?.runtimeClassName !== ctx.runtimeClassName) {
        fail(`pod ${pod.metadata?.name} runs with runtimeClassName=${pod.spec?.runtimeClassName ?? '(none)'}`);
      }
    }
    rec.metrics.podsWithRuntimeClass = running.length;
    rec.notes.push(
      `after: ${ready}; pods running with ${ctx.runtimeClassName}: ${running.map((p) => `${p.metadata?.name}@${p.spec?.nodeName}`).join(', ')}`,
    );
    ctx.print(
      `    first event answered in ${ms(outcome.latencyMs)} (echoed id matches); ${running.length} pod(s) with runtimeClassName ${ctx.runtimeClassName}`,
    );
  },
};

const scaleUp: Scenario = {
  id: 'scale-up',
  title: '3. scale up under event load: replicas reach the expected count; p50/p99 recorded',
  timeoutMs: (ctx) => (ctx.profile.load.durationSeconds + ctx.profile.coldStartTimeoutSeconds + 60) * 1000,
  async run(ctx, rec) {
    const fn = needFunction(ctx);
    const { load, workMs, expectedReplicas } = ctx.profile;
    const count = Math.round(load.ratePerSecond * load.durationSeconds);
    ctx.print(
      `    sending ${count} events at ${load.ratePerSecond}/s, ≤${load.concurrency} outstanding, ${workMs} ms work each`,
    );
    let maxReady = 0;
    let maxDesired = 0;
    let reachedAt: number | undefined;
    let sampling = true;
    const watcher = (async () => {
      while (sampling) {
        try {
          const r = await readReplicas(ctx.kubeConfig, ctx.namespace, fn.deployment);
          maxReady = Math.max(maxReady, r.ready);
          maxDesired = Math.max(maxDesired, r.desired);
          if (r.ready >= expectedReplicas && reachedAt === undefined) reachedAt = ctx.clock() - rec.start;
        } catch {
          // next round
        }
        await sleep(500);
      }
    })();
    let lastPrint = 0;
    try {
      await sendBurst(
        { url: fn.url, workMs },
        { phase: 'scale-up', count, ratePerSecond: load.ratePerSecond, concurrency: load.concurrency },
        ctx.clock,
        (o) => {
          rec.events.push(o);
          if (ctx.clock() - lastPrint > 3000) {
            lastPrint = ctx.clock();
            ctx.print(`    … ${rec.events.length}/${count} answered, max ready replicas ${maxReady}`);
          }
        },
      );
      rec.metrics.loadEndedAtMs = Math.round(ctx.clock());
      // Replicas may land just after the last reply.
      if (maxReady < expectedReplicas) await sleep(2000);
    } finally {
      sampling = false;
      await watcher;
    }
    const ok = rec.events.filter((e) => e.status === 200);
    const latencies = ok.map((e) => e.latencyMs);
    Object.assign(rec.metrics, {
      sent: rec.events.length,
      delivered: ok.length,
      maxReadyReplicas: maxReady,
      maxDesiredReplicas: maxDesired,
      ...(reachedAt === undefined ? {} : { timeToExpectedReplicasMs: Math.round(reachedAt) }),
      p50Ms: Math.round(percentile(latencies, 50)),
      p99Ms: Math.round(percentile(latencies, 99)),
    });
    ctx.print(
      `    max ready replicas ${maxReady} (desired ${maxDesired}${reachedAt === undefined ? '' : `, ≥${expectedReplicas} after ${ms(reachedAt)}`}); p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}`,
    );
    const failed = rec.events.map(checkOutcome).filter((p) => p !== undefined);
    if (failed.length > 0)
      fail(`${failed.length}/${rec.events.length} events failed under load, e.g. ${failed.slice(0, 3).join('; ')}`);
    if (maxReady < expectedReplicas) {
      fail(`load reached only ${maxReady} ready replicas (desired max ${maxDesired}), expected ≥ ${expectedReplicas}`);
    }
  },
};

const scaleToZero: Scenario = {
  id: 'scale-to-zero',
  title: '4. scale to zero after idle within cooldown + margin',
  timeoutMs: (ctx) => (ctx.profile.cooldownSeconds + ctx.profile.scaleToZeroMarginSeconds + 400) * 1000,
  async run(ctx, rec) {
    const fn = needFunction(ctx);
    const bound = await scaleDownBoundMs(ctx, fn.deployment);
    const loadEnded = ctx.records.get('scale-up')?.metrics.loadEndedAtMs;
    const idleFrom = typeof loadEnded === 'number' ? loadEnded : ctx.clock();
    rec.start = idleFrom;
    const remaining = Math.max(1000, bound - (ctx.clock() - idleFrom));
    const state = await waitForZero(ctx, fn.deployment, remaining);
    const took = ctx.clock() - idleFrom;
    rec.metrics.idleToZeroMs = Math.round(took);
    rec.metrics.boundMs = bound;
    rec.notes.push(`at zero: ${state}`);
    ctx.print(
      `    back to 0 replicas ${(took / 1000).toFixed(1)} s after the last event (bound ${(bound / 1000).toFixed(0)} s)`,
    );
  },
};

const noLoss: Scenario = {
  id: 'no-loss',
  title: '5. no event lost or duplicated: every id sent is acknowledged and echoed by the function',
  timeoutMs: (ctx) => (ctx.profile.coldStartTimeoutSeconds + 120) * 1000,
  async run(ctx, rec) {
    const fn = needFunction(ctx);
    const before = await gatewayDelivered(ctx, fn.name).catch(() => undefined);
    const { lossEvents, lossConcurrency } = ctx.profile;
    ctx.print(
      `    sending ${lossEvents} events, ${lossConcurrency} at a time${ctx.records.get('scale-to-zero') ? ' (from zero)' : ''}`,
    );
    await sendBurst(
      { url: fn.url, workMs: 20 },
      { phase: 'no-loss', count: lossEvents, ratePerSecond: 1000, concurrency: lossConcurrency },
      ctx.clock,
      (o) => rec.events.push(o),
    );
    const sent = new Set(rec.events.map((e) => e.id));
    const echoed = new Map<string, number>();
    for (const e of rec.events) if (e.echoedId) echoed.set(e.echoedId, (echoed.get(e.echoedId) ?? 0) + 1);
    const problems = rec.events.map(checkOutcome).filter((p) => p !== undefined);
    const missing = [...sent].filter((id) => !echoed.has(id));
    const foreign = [...echoed.keys()].filter((id) => !sent.has(id));
    const after = await gatewayDelivered(ctx, fn.name).catch(() => undefined);
    const deliveries = before !== undefined && after !== undefined ? after - before : undefined;
    Object.assign(rec.metrics, {
      sent: sent.size,
      acknowledged: rec.events.filter((e) => e.status === 200).length,
      echoed: [...echoed.keys()].filter((id) => sent.has(id)).length,
      ...(deliveries !== undefined ? { gatewayDeliveries: deliveries } : {}),
    });
    ctx.print(
      `    ${sent.size} sent, ${rec.metrics.acknowledged} acknowledged, ${rec.metrics.echoed} echoed${deliveries !== undefined ? `, gateway delivered ${deliveries}` : ''}`,
    );
    if (problems.length > 0)
      fail(`${problems.length} events not acknowledged with their own id: ${problems.slice(0, 3).join('; ')}`);
    if (missing.length > 0 || foreign.length > 0) {
      fail(
        `ids missing from the replies: ${missing.slice(0, 3).join(', ')}; unexpected ids: ${foreign.slice(0, 3).join(', ')}`,
      );
    }
    if (deliveries !== undefined && deliveries < sent.size) {
      fail(`the gateway counted ${deliveries} deliveries for ${sent.size} acknowledged events`);
    }
  },
};

/** A held event the suite gives up on after the observation period. */
async function sendHeld(url: string, signal: AbortSignal): Promise<number> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'ce-specversion': '1.0',
        'ce-id': randomUUID(),
        'ce-source': '/afterlife/conformance',
        'ce-type': 'dev.afterlife.conformance.ping',
      },
      body: '{}',
      signal,
    });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

const activationThreshold: Scenario = {
  id: 'activation-threshold',
  title: '6. activation threshold: load below it never activates (replicas stay 0)',
  timeoutMs: (ctx) => (ctx.profile.activationObserveSeconds + 120) * 1000,
  async run(ctx, rec) {
    const fn = needFunction(ctx);
    const {
      activationThreshold: threshold,
      activationRatePerSecond,
      activationObserveSeconds,
      cooldownSeconds,
    } = ctx.profile;
    const labels = { app: THRESHOLD_NAME, 'serving.knative.dev/service': THRESHOLD_NAME };
    await applyObjects(ctx.kubeConfig, [
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: THRESHOLD_NAME, namespace: ctx.namespace, labels },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: THRESHOLD_NAME } },
          template: {
            metadata: { labels, annotations: { ...fn.podAnnotations } },
            spec: {
              runtimeClassName: ctx.runtimeClassName,
              // The image as given: Knative resolves tags to digests in its own Deployments.
              containers: [
                { name: 'user-container', image: ctx.image, ports: [{ name: 'http', containerPort: 8080 }] },
              ],
            },
          },
        },
      } as KubernetesObject,
      {
        apiVersion: 'v1',
        kind: 'Service',
        // The label the chart's gateway discovery selects Knative revisions' private Services by.
        metadata: {
          name: THRESHOLD_NAME,
          namespace: ctx.namespace,
          labels: { ...labels, 'networking.internal.knative.dev/serviceType': 'Private' },
        },
        spec: { selector: { app: THRESHOLD_NAME }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
      } as KubernetesObject,
      {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'ScaledObject',
        metadata: { name: THRESHOLD_NAME, namespace: ctx.namespace },
        spec: {
          scaleTargetRef: { name: THRESHOLD_NAME },
          minReplicaCount: 0,
          maxReplicaCount: 2,
          pollingInterval: 1,
          cooldownPeriod: cooldownSeconds,
          triggers: [
            {
              type: 'external-push',
              metadata: {
                scalerAddress: fn.scalerAddress,
                function: `${ctx.namespace}/${THRESHOLD_NAME}`,
                metric: 'concurrency',
                targetValue: '1',
                activationThreshold: String(threshold),
              },
            },
          ],
        },
      } as KubernetesObject,
    ]);
    ctx.watched.add(THRESHOLD_NAME);
    rec.deployment = THRESHOLD_NAME;
    // KEDA must have picked the ScaledObject up (its HPA exists) before the observation counts.
    await waitUntil(
      `KEDA to manage ScaledObject ${THRESHOLD_NAME}`,
      async () => {
        const so = (await ctx.kubeConfig.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
          group: 'keda.sh',
          version: 'v1alpha1',
          namespace: ctx.namespace,
          plural: 'scaledobjects',
          name: THRESHOLD_NAME,
        })) as {
          status?: { hpaName?: string; conditions?: Array<{ type: string; status: string; message?: string }> };
        };
        const ready = so.status?.conditions?.find((c) => c.type === 'Ready');
        return { done: ready?.status === 'True', state: `Ready=${ready?.status ?? '?'} ${ready?.message ?? ''}` };
      },
      60_000,
      500,
    );
    const url = `${ctx.gatewayUrl.replace(/\/$/, '')}/ns/${ctx.namespace}/fn/${THRESHOLD_NAME}`;
    const abort = new AbortController();
    const held: Array<Promise<number>> = [];
    rec.start = ctx.clock();
    const end = Date.now() + activationObserveSeconds * 1000;
    let maxDesired = 0;
    let maxReady = 0;
    let last = '';
    let nextSend = Date.now();
    let maxPending = 0;
    // Answers before the observation ended: the gateway did not hold the event.
    const early: number[] = [];
    const pendingNow = async () => {
      if (!ctx.gatewayAdminUrl) return;
      try {
        const fnCounts = await gatewayCounts(ctx, THRESHOLD_NAME);
        maxPending = Math.max(maxPending, fnCounts?.pending ?? 0);
      } catch {
        // next round
      }
    };
    try {
      while (Date.now() < end) {
        if (Date.now() >= nextSend && held.length < threshold / 2) {
          held.push(
            sendHeld(url, abort.signal).then((status) => {
              if (!abort.signal.aborted) early.push(status);
              return status;
            }),
          );
          nextSend += 1000 / activationRatePerSecond;
        }
        const r = await readReplicas(ctx.kubeConfig, ctx.namespace, THRESHOLD_NAME);
        maxDesired = Math.max(maxDesired, r.desired);
        maxReady = Math.max(maxReady, r.ready);
        last = r.text;
        await pendingNow();
        await sleep(250);
      }
    } finally {
      abort.abort();
      await Promise.all(held);
    }
    Object.assign(rec.metrics, {
      threshold,
      eventsSent: held.length,
      answeredEarly: early.length,
      ...(ctx.gatewayAdminUrl ? { maxPendingAtGateway: maxPending } : {}),
      maxDesiredReplicas: maxDesired,
      maxReadyReplicas: maxReady,
      observedSeconds: activationObserveSeconds,
    });
    rec.notes.push(`last observed: ${last}`);
    ctx.print(
      `    ${held.length} events sent below activationThreshold ${threshold} for ${activationObserveSeconds}s${ctx.gatewayAdminUrl ? ` (max ${maxPending} held at the gateway)` : ''}: max replicas ${maxDesired}`,
    );
    if (early.length > 0) {
      fail(
        `the gateway answered ${early.length} events (statuses ${[...new Set(early)].join(', ')}) instead of holding them: is Service ${ctx.namespace}/${THRESHOLD_NAME} discovered as function ${THRESHOLD_NAME}?`,
      );
    }
    if (ctx.gatewayAdminUrl && maxPending === 0) {
      fail(
        `the gateway never held an event for ${ctx.namespace}/${THRESHOLD_NAME}, so the threshold was not exercised`,
      );
    }
    if (maxDesired > 0 || maxReady > 0) {
      fail(
        `load below activationThreshold ${threshold} activated the function: max spec.replicas ${maxDesired}, ready ${maxReady}; last observed ${last}`,
      );
    }
  },
};

export const SCENARIOS: readonly Scenario[] = [
  injection,
  scaleFromZero,
  scaleUp,
  scaleToZero,
  noLoss,
  activationThreshold,
];
