import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AFTERLIFE_AUTOSCALER_CLASS,
  ANNOTATION_AUTOSCALING_CLASS,
  ANNOTATION_SCALED_OBJECT_OVERRIDE,
  errorMessage,
  functionService,
  HPA_CLASS,
  LABEL_RUNTIME,
  LABEL_SCALING,
  RUNTIME_WASMEDGE,
  SCALING_EVENTS,
  WASM_VARIANT_ANNOTATION,
} from '@afterlife/core';
import { AppsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import {
  type FunctionUnderTest,
  gatewayCounts,
  gatewayDelivered,
  type ReplicaState,
  readReplicas,
  type ScenarioRecord,
  type SuiteContext,
  scaledObjectFor,
  suiteGatewayAdmins,
  waitUntil,
} from './context.ts';
import { ConformanceError } from './errors.ts';
import { faultsTimeoutMs, runFaults } from './faults.ts';
import { type EventOutcome, percentile, sendBurst, sendEvent } from './load.ts';
import {
  type ColdStartTrace,
  type ColdStartTracer,
  formatTrace,
  startColdStartTrace,
  traceOffsets,
  traceWaterfall,
} from './trace.ts';

/** A scenario: a mocha test body over the shared context. */
export interface Scenario {
  readonly id: string;
  readonly title: string;
  /** Upper bound for the whole test (ms), from the profile. */
  timeoutMs(ctx: SuiteContext): number;
  run(ctx: SuiteContext, rec: ScenarioRecord): Promise<void>;
}

/** The opted-in function: a Knative Service whose first revision the scenarios drive. */
export const FUNCTION_NAME = 'conformance-echo';
export const LOCAL_NAMESPACE = 'afterlife-conformance-local';
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

/**
 * The suite's own scaling settings on its functions' templates: KEDA's cooldown from the profile
 * and a 1 s poll, so scale-to-zero is timed by the suite (the Afterlife autoscaler honours them;
 * autoscaler-keda ignores them).
 */
function suiteScaling(ctx: SuiteContext): Record<string, string> {
  return {
    'afterlife.dev/cooldown-seconds': String(ctx.profile.cooldownSeconds),
    'afterlife.dev/polling-interval-seconds': '1',
    'autoscaling.knative.dev/target': String(suiteTarget(ctx.profile)),
  };
}

/**
 * The per-replica target (held + in-flight events) that makes the scale-up load need more than
 * the expected replicas: the load keeps rate × work time events in flight (Little's law), and
 * the target splits them over expected + 1 replicas. With the autoscaler's default of 10, the
 * short profile's 10 in flight would sit right at one replica's target, and whether it reached
 * two would depend on how the gateways happened to queue.
 */
export function suiteTarget(profile: SuiteContext['profile']): number {
  const inFlight = (profile.load.ratePerSecond * profile.workMs) / 1000;
  return Math.max(1, Math.floor(inFlight / (profile.expectedReplicas + 1)));
}

async function createKnativeService(
  ctx: SuiteContext,
  name: string,
  labels: Record<string, string>,
  dryRun = false,
  annotations: Record<string, string> = suiteScaling(ctx),
): Promise<KnativeServiceLike> {
  const custom = ctx.kubeConfig.makeApiClient(CustomObjectsApi);
  try {
    return (await custom.createNamespacedCustomObject({
      group: 'serving.knative.dev',
      version: 'v1',
      namespace: ctx.namespace,
      plural: 'services',
      ...(dryRun ? { dryRun: 'All' } : {}),
      body: functionService({ name, namespace: ctx.namespace, image: ctx.image, labels, annotations, optIn: false }),
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
    const optedIn = await createKnativeService(ctx, FUNCTION_NAME, {
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
    const autoscalingClass = annotations[ANNOTATION_AUTOSCALING_CLASS];
    // The Afterlife autoscaler's class (the chart's default route), or autoscaler-keda's with its override.
    const required =
      autoscalingClass === HPA_CLASS
        ? [WASM_VARIANT_ANNOTATION, ANNOTATION_SCALED_OBJECT_OVERRIDE]
        : [WASM_VARIANT_ANNOTATION, ANNOTATION_AUTOSCALING_CLASS];
    for (const key of required) {
      if (!annotations[key]) fail(`the Afterlife webhook did not add annotation ${key}; observed ${observed}`);
    }
    if (autoscalingClass !== AFTERLIFE_AUTOSCALER_CLASS && autoscalingClass !== HPA_CLASS) {
      fail(
        `the Afterlife webhook set ${ANNOTATION_AUTOSCALING_CLASS}=${autoscalingClass}; expected ${AFTERLIFE_AUTOSCALER_CLASS} (or ${HPA_CLASS} on the autoscaler-keda route)`,
      );
    }
    rec.metrics.variant = annotations[WASM_VARIANT_ANNOTATION] ?? '';
    rec.metrics.autoscalingClass = autoscalingClass ?? '';

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

    // Knative's controller makes revision 00001 and its Deployment; the autoscaler its ScaledObject.
    const revision = `${FUNCTION_NAME}-00001`;
    const deployment = `${revision}-deployment`;
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
      labelSelector: `serving.knative.dev/service=${FUNCTION_NAME}`,
    });
    for (const pod of pods.items) {
      if (pod.spec?.runtimeClassName !== ctx.runtimeClassName) {
        fail(`pod ${pod.metadata?.name} runs with runtimeClassName=${pod.spec?.runtimeClassName ?? '(none)'}`);
      }
    }
    let scalerAddress = '';
    await waitUntil(
      `a KEDA ScaledObject for ${ctx.namespace}/${deployment}`,
      async () => {
        const so = await scaledObjectFor(ctx.kubeConfig, ctx.namespace, deployment);
        scalerAddress = so?.scalerAddress ?? '';
        return {
          done: so !== undefined,
          state: so ? `ScaledObject ${so.name}` : 'none targets the revision Deployment',
        };
      },
      120_000,
      500,
    );
    rec.metrics.scalerAddress = scalerAddress;
    rec.notes.push(await waitForRoute(ctx, FUNCTION_NAME, revision));
    const name = FUNCTION_NAME;
    ctx.fn = {
      namespace: ctx.namespace,
      name,
      revision,
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

/**
 * Until the Service's Route sends traffic to `revision`, the gateway answers 503 (nothing is
 * accepted): the Route follows the Revision turning Ready by a moment.
 */
async function waitForRoute(ctx: SuiteContext, service: string, revision: string): Promise<string> {
  const custom = ctx.kubeConfig.makeApiClient(CustomObjectsApi);
  return waitUntil(
    `the Route of ${ctx.namespace}/${service} to send traffic to ${revision}`,
    async () => {
      const route = (await custom.getNamespacedCustomObject({
        group: 'serving.knative.dev',
        version: 'v1',
        namespace: ctx.namespace,
        plural: 'routes',
        name: service,
      })) as { status?: { traffic?: Array<{ revisionName?: string; percent?: number }> } };
      const traffic = route.status?.traffic ?? [];
      return {
        done: traffic.some((t) => t.revisionName === revision && (t.percent ?? 0) > 0),
        state: `status.traffic=${JSON.stringify(traffic)}`,
      };
    },
    (ctx.profile.coldStartTimeoutSeconds + 60) * 1000,
  );
}

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
    // A real cluster may pull the image and schedule slowly.
    300_000,
  async run(ctx, rec) {
    const fn = needFunction(ctx);
    const state = await waitForZero(ctx, fn.deployment, await scaleDownBoundMs(ctx, fn.deployment));
    rec.notes.push(`before: ${state}`);
    // The chain hop by hop: watches of the revision's Deployment, pods and EndpointSlice, plus the
    // gateway's and scaler's own records (when their admin URLs are known).
    const tracer = await startColdStartTrace({
      kubeConfig: ctx.kubeConfig,
      namespace: ctx.namespace,
      revision: fn.revision,
      deployment: fn.deployment,
      gatewayAdmins: () => suiteGatewayAdmins(ctx),
      scalerAdminUrl: ctx.scalerAdminUrl,
    });
    rec.start = ctx.clock();
    rec.markers.push({ t: rec.start, label: 'event sent at 0 replicas', kind: 'phase' });
    let trace: ColdStartTrace;
    try {
      trace = await wakeFromZero(ctx, rec, fn, tracer);
    } catch (error) {
      tracer.stop();
      throw error;
    }
    rec.waterfall.push(...traceWaterfall(trace, rec.start));
    for (const [hop, offset] of Object.entries(traceOffsets(trace))) {
      rec.metrics[`trace.${hop.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())}Ms`] = offset;
    }
    rec.metrics.deliveredVia =
      trace.via === 'probe'
        ? 'the queue-proxy probe (before kubelet Ready)'
        : trace.via === 'ready'
          ? 'EndpointSlice ready'
          : 'unknown (no gateway record)';
    for (const line of formatTrace(trace)) rec.notes.push(`trace: ${line}`);
    for (const line of formatTrace(trace)) ctx.print(`      ${line}`);
  },
};

/** Scenario 2's event and checks: sent at zero, answered, the revision ready, its pods under the runtime class. */
async function wakeFromZero(
  ctx: SuiteContext,
  rec: ScenarioRecord,
  fn: FunctionUnderTest,
  tracer: ColdStartTracer,
): Promise<ColdStartTrace> {
  const sentAt = Date.now();
  const outcome = await sendEvent({ url: fn.url, workMs: 0 }, 'scale-from-zero', ctx.clock);
  rec.events.push(outcome);
  rec.markers.push({ t: outcome.sentAt + outcome.latencyMs, label: `reply ${outcome.status}`, kind: 'event' });
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
  // A pod turned Ready, as the trace's pod watch saw it: the gateway may deliver on queue-proxy's
  // probe before kubelet's Ready, and a short cooldown can take the revision back to zero before
  // a read of the Deployment would see its ready replica.
  const trace = await tracer.finish({ sentAt, repliedAt: sentAt + outcome.latencyMs });
  const podReady = trace.hops.find((hop) => hop.id === 'pod-ready');
  let ready: string;
  if (podReady !== undefined) {
    rec.metrics.zeroToReadyMs = Math.round(podReady.at - sentAt);
    ready = `a pod of ${fn.revision} Ready ${rec.metrics.zeroToReadyMs} ms after the event was sent (pod watch)`;
  } else {
    ready = await waitUntil(
      `${fn.deployment} to report a ready replica`,
      async () => {
        const r = await readReplicas(ctx.kubeConfig, ctx.namespace, fn.deployment);
        return { done: r.ready >= 1, state: r.text };
      },
      30_000,
    );
    rec.metrics.zeroToReadyMs = Math.round(ctx.clock() - rec.start);
  }
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
  return trace;
}

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
      rec.markers.push({ t: ctx.clock(), label: `load start: ${load.ratePerSecond}/s`, kind: 'phase' });
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
      rec.markers.push({ t: ctx.clock(), label: 'load end', kind: 'phase' });
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
    rec.markers.push({ t: idleFrom, label: 'last event answered', kind: 'phase' });
    const remaining = Math.max(1000, bound - (ctx.clock() - idleFrom));
    const state = await waitForZero(ctx, fn.deployment, remaining);
    const took = ctx.clock() - idleFrom;
    rec.markers.push({ t: ctx.clock(), label: 'at 0 replicas', kind: 'event' });
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
    const before = await gatewayDelivered(ctx, fn.revision);
    const { lossEvents, lossConcurrency } = ctx.profile;
    ctx.print(
      `    sending ${lossEvents} events, ${lossConcurrency} at a time${ctx.records.get('scale-to-zero') ? ' (from zero)' : ''}`,
    );
    rec.markers.push({ t: ctx.clock(), label: `${lossEvents} events sent`, kind: 'phase' });
    await sendBurst(
      { url: fn.url, workMs: 20 },
      { phase: 'no-loss', count: lossEvents, ratePerSecond: 1000, concurrency: lossConcurrency },
      ctx.clock,
      (o) => rec.events.push(o),
    );
    rec.markers.push({ t: ctx.clock(), label: 'all answered', kind: 'phase' });
    const sent = new Set(rec.events.map((e) => e.id));
    const echoed = new Map<string, number>();
    for (const e of rec.events) if (e.echoedId) echoed.set(e.echoedId, (echoed.get(e.echoedId) ?? 0) + 1);
    const problems = rec.events.map(checkOutcome).filter((p) => p !== undefined);
    const missing = [...sent].filter((id) => !echoed.has(id));
    const foreign = [...echoed.keys()].filter((id) => !sent.has(id));
    const after = await gatewayDelivered(ctx, fn.revision);
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
    if (fn.podAnnotations[ANNOTATION_AUTOSCALING_CLASS] !== AFTERLIFE_AUTOSCALER_CLASS) {
      // On the autoscaler-keda route the threshold lives in the scaled-object-override, which the suite does not write.
      rec.metrics.skipped = `needs the ${AFTERLIFE_AUTOSCALER_CLASS} autoscaling class`;
      rec.notes.push(`not run: the webhook uses ${fn.podAnnotations[ANNOTATION_AUTOSCALING_CLASS]}`);
      return;
    }
    // A second opted-in function whose revision activates only at `threshold` held events.
    await createKnativeService(
      ctx,
      THRESHOLD_NAME,
      { [LABEL_RUNTIME]: RUNTIME_WASMEDGE, [LABEL_SCALING]: SCALING_EVENTS },
      false,
      {
        ...suiteScaling(ctx),
        'afterlife.dev/cooldown-seconds': String(cooldownSeconds),
        'afterlife.dev/activation-threshold': String(threshold),
        'autoscaling.knative.dev/target': '1',
        'autoscaling.knative.dev/max-scale': '2',
      },
    );
    const revision = `${THRESHOLD_NAME}-00001`;
    const deployment = `${revision}-deployment`;
    ctx.watched.add(deployment);
    rec.deployment = deployment;
    // KEDA must manage the ScaledObject, and the revision (started once at its initial scale) be back at zero.
    await waitUntil(
      `KEDA to manage the ScaledObject of ${revision}`,
      async () => {
        const so = (await ctx.kubeConfig.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
          group: 'keda.sh',
          version: 'v1alpha1',
          namespace: ctx.namespace,
          plural: 'scaledobjects',
          name: revision,
        })) as { status?: { conditions?: Array<{ type: string; status: string; message?: string }> } };
        const ready = so.status?.conditions?.find((c) => c.type === 'Ready');
        return { done: ready?.status === 'True', state: `Ready=${ready?.status ?? '?'} ${ready?.message ?? ''}` };
      },
      (ctx.profile.coldStartTimeoutSeconds + 60) * 1000,
      500,
    );
    await waitForRoute(ctx, THRESHOLD_NAME, revision);
    await waitForZero(ctx, deployment, await scaleDownBoundMs(ctx, deployment));
    const url = `${ctx.gatewayUrl.replace(/\/$/, '')}/ns/${ctx.namespace}/fn/${THRESHOLD_NAME}`;
    const abort = new AbortController();
    const held: Array<Promise<number>> = [];
    rec.start = ctx.clock();
    rec.markers.push({ t: rec.start, label: 'observation start', kind: 'phase' });
    const end = Date.now() + activationObserveSeconds * 1000;
    let maxDesired = 0;
    let maxReady = 0;
    let last = '';
    let nextSend = Date.now();
    let maxPending = 0;
    let countsAnswered = false;
    // Answers before the observation ended: the gateway did not hold the event.
    const early: number[] = [];
    const pendingNow = async () => {
      try {
        const fnCounts = await gatewayCounts(ctx, revision);
        countsAnswered = true;
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
        const r = await readReplicas(ctx.kubeConfig, ctx.namespace, deployment);
        maxDesired = Math.max(maxDesired, r.desired);
        maxReady = Math.max(maxReady, r.ready);
        last = r.text;
        await pendingNow();
        await sleep(250);
      }
    } finally {
      rec.markers.push({ t: ctx.clock(), label: 'observation end: held events released', kind: 'phase' });
      abort.abort();
      await Promise.all(held);
    }
    Object.assign(rec.metrics, {
      threshold,
      eventsSent: held.length,
      answeredEarly: early.length,
      ...(countsAnswered ? { maxPendingAtGateway: maxPending } : {}),
      maxDesiredReplicas: maxDesired,
      maxReadyReplicas: maxReady,
      observedSeconds: activationObserveSeconds,
    });
    rec.notes.push(`last observed: ${last}`);
    ctx.print(
      `    ${held.length} events sent below activationThreshold ${threshold} for ${activationObserveSeconds}s${countsAnswered ? ` (max ${maxPending} held at the gateway)` : ''}: max replicas ${maxDesired}`,
    );
    if (early.length > 0) {
      fail(
        `the gateway answered ${early.length} events (statuses ${[...new Set(early)].join(', ')}) instead of holding them: is Service ${ctx.namespace}/${THRESHOLD_NAME} discovered as function ${THRESHOLD_NAME}?`,
      );
    }
    if (countsAnswered && maxPending === 0) {
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

const faults: Scenario = {
  id: 'faults',
  title:
    '7. faults under load: a gateway pod, the scaler pod and a function pod deleted, the autoscaler restarted (locally also the kube-apiserver): no event lost',
  timeoutMs: faultsTimeoutMs,
  async run(ctx, rec) {
    if (!ctx.faults) {
      rec.metrics.skipped = 'opt-in: --faults';
      rec.notes.push('not run: pass --faults to delete Afterlife pods on this cluster under load');
      return;
    }
    await runFaults(ctx, rec, needFunction(ctx));
  },
};

export const SCENARIOS: readonly Scenario[] = [
  injection,
  scaleFromZero,
  scaleUp,
  scaleToZero,
  noLoss,
  activationThreshold,
  faults,
];
