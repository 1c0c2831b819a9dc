import { setTimeout as sleep } from 'node:timers/promises';
import {
  type ChartMarker,
  PROFILES as CONFORMANCE_PROFILES,
  detectEnvironment,
  type EventOutcome,
  formatTrace,
  headlineLines,
  isDelivered,
  isRefused,
  type PreviousRun,
  percentile,
  previousRunLine,
  sendBurst,
  sendEvent,
  startColdStartTrace,
  traceWaterfall,
} from '@afterlife/conformance';
import {
  AFTERLIFE_AUTOSCALER_CLASS,
  ANNOTATION_AUTOSCALING_CLASS,
  fetchAllCounts,
  functionService,
  gatewayAdmins,
  type Logger,
  sumCounts,
  trackPodStarts,
  WASM_VARIANT_ANNOTATION,
} from '@afterlife/core';
import { AFTERLIFE_NAMESPACE, applyObjects, startLocalAfterlife, waitFor } from '@afterlife/devcluster';
import { AppsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { CliError } from './errors.ts';
import { devclusterVersions } from './local-stack.ts';
import {
  capacityOf,
  capacityText,
  type DemoProfile,
  type DemoProfileName,
  type DemoReport,
  demoHeadline,
  type PhaseSpan,
  type Sample,
  summarize,
  writeReport,
} from './report.ts';

export interface DemoOptions {
  /** `short`: CI-sized load and waits; `full`: the default; `overload`: beyond the capacity. */
  readonly profile: DemoProfileName;
  readonly reportDir: string;
  readonly logger: Logger;
  /** Where progress lines go (the terminal). */
  readonly print: (line: string) => void;
  /** A previous run's headline, shown next to this run's (`--compare`). */
  readonly previous?: PreviousRun;
}

const NAMESPACE = 'afterlife-demo';
const FUNCTION = 'echo';
/** Knative names the first revision `<service>-00001` and its Deployment `<revision>-deployment`. */
const REVISION = `${FUNCTION}-00001`;
const DEPLOYMENT = `${REVISION}-deployment`;
/** The replica cap of every profile (`autoscaling.knative.dev/max-scale`). */
const MAX_SCALE = 4;
/** Held + in-flight events per replica the autoscaler aims for (its default, written out). */
const TARGET_PER_REPLICA = 10;
/** The conformance suite's cold-start bound (short profile): the first event's bound here too. */
const COLD_START_BOUND_MS = CONFORMANCE_PROFILES.short.coldStartTimeoutSeconds * 1000;

/**
 * The demo's profiles. With the local gateway's 10 events at a time per replica and 500 ms of work,
 * max-scale 4 takes 80 events/s. `full` (the default) and `short` send 40/s — half of that, 20 in
 * flight, 2 replicas at the autoscaler's target — so the function scales up, the events held while
 * it does drain, and latency comes back to the work time. `overload` sends 150/s against a
 * pending limit of 200: the gateway holds up to the limit and answers 503 + Retry-After beyond it.
 */
export const DEMO_PROFILES: Readonly<Record<DemoProfileName, DemoProfile>> = {
  short: {
    name: 'short',
    purpose: 'CI-sized healthy scaling',
    idleMs: 3000,
    burst: { count: 600, ratePerSecond: 40, concurrency: 200 },
    workMs: 500,
    maxScale: MAX_SCALE,
    targetPerReplica: TARGET_PER_REPLICA,
    cooldownSeconds: 5,
    scaleToZeroTimeoutMs: 120_000,
    pendingLimit: 5000,
    coldStartBoundMs: COLD_START_BOUND_MS,
    overload: false,
  },
  full: {
    name: 'full',
    purpose: 'healthy scaling: half the capacity of the maximum',
    idleMs: 10_000,
    burst: { count: 1800, ratePerSecond: 40, concurrency: 200 },
    workMs: 500,
    maxScale: MAX_SCALE,
    targetPerReplica: TARGET_PER_REPLICA,
    cooldownSeconds: 15,
    scaleToZeroTimeoutMs: 180_000,
    pendingLimit: 5000,
    coldStartBoundMs: COLD_START_BOUND_MS,
    overload: false,
  },
  overload: {
    name: 'overload',
    purpose: 'beyond the capacity: holding up to the pending limit, then 503 + Retry-After',
    idleMs: 5000,
    burst: { count: 3000, ratePerSecond: 150, concurrency: 1000 },
    workMs: 500,
    maxScale: MAX_SCALE,
    targetPerReplica: TARGET_PER_REPLICA,
    cooldownSeconds: 15,
    scaleToZeroTimeoutMs: 180_000,
    pendingLimit: 200,
    coldStartBoundMs: COLD_START_BOUND_MS,
    overload: true,
  },
};

/**
 * The main job: a real local cluster with a real node (kubelet + containerd, Wasm through the
 * `wasmedge` handler), Knative Serving's real controllers, Afterlife installed by `helm install` of
 * its chart (webhook, gateway, scaler and autoscaler as pods), the reference Wasm function as a Knative Service, CloudEvents load in phases,
 * and a report that shows 0 → 1 → N → 0 with every event delivered.
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const { print, logger } = options;
  const profile = DEMO_PROFILES[options.profile];
  const demoStart = performance.now();
  const clock = () => performance.now() - demoStart;
  const local = await startLocalAfterlife({
    name: `demo-${process.pid}`,
    logger,
    print,
    pendingLimit: profile.pendingLimit,
    // One gateway: its concurrency and pending limit are per gateway, so the capacity figures
    // (and the overload profile) hold as stated; the chart's default is 2 replicas.
    values: { gateway: { replicas: 1 } },
  });
  try {
    const { kubeConfig } = local;
    // Every gateway pod's admin API through the API server's pod proxy, as `afterlife status` reads them.
    const admins = () => gatewayAdmins(kubeConfig, { namespace: AFTERLIFE_NAMESPACE });
    const image = { reference: local.image };
    await applyObjects(kubeConfig, [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } }]);

    print('▸ deploying the function as a Knative Service labelled for Afterlife…');
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    const apps = kubeConfig.makeApiClient(AppsV1Api);
    const knativeService = (await custom.createNamespacedCustomObject({
      group: 'serving.knative.dev',
      version: 'v1',
      namespace: NAMESPACE,
      plural: 'services',
      body: functionService({
        name: FUNCTION,
        namespace: NAMESPACE,
        image: image.reference,
        annotations: {
          'autoscaling.knative.dev/max-scale': String(profile.maxScale),
          'autoscaling.knative.dev/target': String(profile.targetPerReplica),
          'afterlife.dev/cooldown-seconds': String(profile.cooldownSeconds),
          'afterlife.dev/polling-interval-seconds': '1',
        },
      }),
    })) as KnativeService;
    const template = knativeService.spec.template;
    const injected = template.spec.runtimeClassName === 'wasmedge';
    const autoscalingClass = template.metadata?.annotations?.[ANNOTATION_AUTOSCALING_CLASS];
    print(
      `  webhook injected runtimeClassName=${template.spec.runtimeClassName ?? '(none)'}, variant=${template.metadata?.annotations?.[WASM_VARIANT_ANNOTATION] ?? '(none)'}, class=${autoscalingClass ?? '(none)'}`,
    );
    if (autoscalingClass !== AFTERLIFE_AUTOSCALER_CLASS) {
      throw new CliError('DEMO_FAILED', `the webhook did not set the ${AFTERLIFE_AUTOSCALER_CLASS} autoscaling class`);
    }

    // Knative's controller makes the revision (started once at its initial scale); the Afterlife
    // autoscaler gives it a ScaledObject, marks it Ready and lets KEDA take it to zero.
    print(`▸ waiting for Knative revision ${REVISION} to be Ready, routed and back at 0 replicas…`);
    await waitFor(
      `revision ${REVISION} Ready at 0 replicas`,
      async () => {
        const [revision, deployment, route] = await Promise.all([
          custom.getNamespacedCustomObject({
            group: 'serving.knative.dev',
            version: 'v1',
            namespace: NAMESPACE,
            plural: 'revisions',
            name: REVISION,
          }) as Promise<{ status?: { conditions?: { type: string; status: string }[] } }>,
          apps.readNamespacedDeployment({ name: DEPLOYMENT, namespace: NAMESPACE }),
          // The gateway routes by the Route's traffic, which follows the Revision turning Ready.
          custom.getNamespacedCustomObject({
            group: 'serving.knative.dev',
            version: 'v1',
            namespace: NAMESPACE,
            plural: 'routes',
            name: FUNCTION,
          }) as Promise<{ status?: { traffic?: { revisionName?: string; percent?: number }[] } }>,
        ]);
        const routed = route.status?.traffic?.some((t) => t.revisionName === REVISION && (t.percent ?? 0) > 0);
        const ready = revision.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        const atZero = (deployment.spec?.replicas ?? 0) === 0 && (deployment.status?.readyReplicas ?? 0) === 0;
        return ready && atZero && routed ? true : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 250, guard: () => local.assertHealthy() },
    );
    print(`  ${REVISION} Ready at 0 replicas at ${(clock() / 1000).toFixed(1)}s`);

    // Every function pod's start, from a watch (the API's timestamps have 1 s resolution).
    const podStarts = await trackPodStarts(kubeConfig, NAMESPACE, {
      labelSelector: `serving.knative.dev/revision=${REVISION}`,
    });
    // Sampling: replicas from the API, held/in-flight/delivered from the gateway.
    const samples: Sample[] = [];
    const phases: PhaseSpan[] = [];
    const markers: ChartMarker[] = [];
    const events: EventOutcome[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          const [deployment, counts] = await Promise.all([
            apps.readNamespacedDeployment({ name: DEPLOYMENT, namespace: NAMESPACE }),
            admins().then(fetchAllCounts),
          ]);
          const fn = sumCounts(counts.snapshots, { namespace: NAMESPACE, name: REVISION });
          samples.push({
            t: clock(),
            desiredReplicas: deployment.spec?.replicas ?? 0,
            readyReplicas: deployment.status?.readyReplicas ?? 0,
            pending: fn?.pending ?? 0,
            inFlight: fn?.inFlight ?? 0,
            delivered: fn?.delivered ?? 0,
          });
        } catch (error) {
          logger.debug({ err: String(error) }, 'sample failed');
        }
        await sleep(250);
      }
    })();
    let lastPrint = 0;
    const progress = (phase: string) => {
      const now = clock();
      if (now - lastPrint < 1000) return;
      lastPrint = now;
      const last = samples.at(-1);
      // Latency of the replies of the last 5 s: the live view of "coming back down".
      const recent = events
        .filter((e) => isDelivered(e) && e.sentAt + e.latencyMs >= now - 5000)
        .map((e) => e.latencyMs);
      const refused = events.filter(isRefused).length;
      print(
        `  [${(now / 1000).toFixed(1).padStart(6)}s] ${phase.padEnd(10)} replicas ${last?.readyReplicas ?? 0}/${last?.desiredReplicas ?? 0}  pending ${String(last?.pending ?? 0).padStart(4)}  in-flight ${String(last?.inFlight ?? 0).padStart(4)}  delivered ${String(events.filter(isDelivered).length).padStart(5)}/${events.length}${refused ? `  refused ${refused}` : ''}  last 5 s p50 ${ms(percentile(recent, 50))} p99 ${ms(percentile(recent, 99))}`,
      );
    };
    const target = { url: local.functionUrl(NAMESPACE, FUNCTION), workMs: profile.workMs };

    // Phase 1: idle at zero.
    print('▸ phase idle: the function sits at 0 replicas');
    let start = clock();
    while (clock() - start < profile.idleMs) {
      progress('idle');
      await sleep(200);
    }
    phases.push({ name: 'idle', start, end: clock() });

    // Phase 2: one event from zero.
    print('▸ phase one-event: a single CloudEvent while at zero');
    const tracer = await startColdStartTrace({
      kubeConfig,
      namespace: NAMESPACE,
      revision: REVISION,
      deployment: DEPLOYMENT,
      gatewayAdmins: admins,
      scalerAdminUrl: local.scalerAdminUrl,
    });
    start = clock();
    const firstTicker = setInterval(() => progress('one-event'), 250);
    const firstSentAt = Date.now();
    const first = await sendEvent({ ...target, workMs: 0 }, 'one-event', clock)
      .catch((error: unknown) => {
        tracer.stop();
        throw error;
      })
      .finally(() => clearInterval(firstTicker));
    const trace = await tracer.finish({ sentAt: firstSentAt, repliedAt: firstSentAt + first.latencyMs });
    events.push(first);
    phases.push({ name: 'one-event', start, end: clock() });
    const oneEventStart = start;
    print(
      `  first event answered with ${first.status} in ${first.latencyMs.toFixed(0)} ms (echoed id ${first.echoedId === first.id ? 'matches' : 'MISSING'})`,
    );
    print('  the cold start, hop by hop (ms after the event was sent; step since the hop before):');
    for (const line of formatTrace(trace)) print(`    ${line}`);

    // Phase 3: burst.
    const capacity = capacityOf(profile, local.gateway.replicaConcurrency);
    print(
      `▸ phase burst: ${profile.burst.count} events at ${profile.burst.ratePerSecond}/s, ${profile.workMs} ms of work each`,
    );
    print(`  ${capacityText(capacity, local.gateway)}`);
    start = clock();
    markers.push({ t: start, label: `burst start: ${profile.burst.ratePerSecond} events/s`, kind: 'phase' });
    let lastSentAt = start;
    await sendBurst(target, { phase: 'burst', ...profile.burst }, clock, (outcome) => {
      events.push(outcome);
      lastSentAt = Math.max(lastSentAt, outcome.sentAt);
      progress('burst');
    });
    markers.push({ t: lastSentAt, label: 'last event sent', kind: 'phase' });
    phases.push({ name: 'burst', start, end: clock() });
    const burstPhase = phases.at(-1) as PhaseSpan;

    // Phase 4: idle until back at zero (bounded).
    print('▸ phase cool-down: no events; waiting for scale to zero');
    start = clock();
    let zeroAt = Number.NaN;
    while (clock() - start < profile.scaleToZeroTimeoutMs) {
      progress('cool-down');
      const last = samples.at(-1);
      if (last && last.t > start && last.desiredReplicas === 0 && last.readyReplicas === 0) {
        zeroAt = last.t;
        break;
      }
      await sleep(250);
    }
    phases.push({ name: 'cool-down', start, end: clock() });
    sampling = false;
    await sampler;

    // Deployment status lags the first reply a little, so look for 0 → 1 over the whole run.
    const firstReady = samples.find((s) => s.t >= oneEventStart && s.readyReplicas >= 1);
    podStarts.stop();
    // Pod first seen (created by the ReplicaSet) → Ready, for each Wasm pod that started.
    const coldStarts = podStarts
      .starts()
      .filter((start) => start.fromCreation && start.ready !== undefined)
      .map((start) => (start.ready ?? 0) - start.firstSeen);
    const summary = summarize(samples, events, {
      firstEventLatencyMs: first.latencyMs,
      zeroToOneMs: firstReady ? firstReady.t - oneEventStart : Number.NaN,
      backToZeroMs: zeroAt - start,
      wasmColdStartsMs: coldStarts,
      burst: burstPhase,
      expectedReplicas: capacity.neededReplicas,
    });
    if (!profile.overload && Number.isFinite(summary.scaledAtMs)) {
      markers.push({
        t: summary.scaledAtMs,
        label: `scaled: ≥ ${capacity.neededReplicas} ready, nothing held`,
        kind: 'event',
      });
    }
    const before = samples.filter((s) => s.t < oneEventStart);
    // Every 503 says when to retry: a refusal a sender can act on, not a failure.
    const refusalsSayRetryAfter = events.filter((e) => e.status === 503).every((e) => e.retryAfter !== undefined);
    const checks: Record<string, boolean> = {
      'webhook injected runtimeClassName wasmedge into the Knative Service': injected,
      'function was at 0 replicas before the first event':
        before.length > 0 && before.every((s) => s.readyReplicas === 0),
      'first event scaled 0 → 1 and was answered': first.status === 200 && firstReady !== undefined,
      'burst scaled up to 2 or more replicas': summary.maxReplicas >= 2,
      'idle scaled back to 0': Number.isFinite(zeroAt),
      ...(profile.overload
        ? {
            'the gateway refused events beyond its pending limit with 503 + Retry-After':
              summary.refused > 0 && refusalsSayRetryAfter,
            [`held events never exceeded the pending limit (${profile.pendingLimit})`]:
              summary.maxPending <= profile.pendingLimit,
            'every event was delivered or refused with 503 + Retry-After (none lost)': summary.lost === 0,
          }
        : { 'every event sent was delivered (delivered = sent)': summary.delivered === summary.sent }),
      'the function echoed every event id it acknowledged': summary.echoedIds === summary.delivered,
    };
    const environment = await detectEnvironment(kubeConfig, { fallbacks: devclusterVersions(local) });
    const finished = new Date();
    const base: DemoReport = {
      startedAt: new Date(finished.getTime() - clock()).toISOString(),
      finishedAt: finished.toISOString(),
      mode: profile.name,
      profile,
      capacity,
      gateway: local.gateway,
      environment,
      function: { namespace: NAMESPACE, name: FUNCTION, image: image.reference },
      checks,
      summary,
      phases,
      markers,
      samples,
      events,
      coldStartTrace: trace,
      waterfall: traceWaterfall(trace, oneEventStart),
    };
    const report: DemoReport = { ...base, headline: demoHeadline(base) };
    const files = await writeReport(options.reportDir, report, options.previous ? { previous: options.previous } : {});
    print('');
    print('Summary');
    for (const [name, ok] of Object.entries(checks)) print(`  ${ok ? '✔' : '✘'} ${name}`);
    print(`  ${capacityText(capacity, local.gateway)}`);
    print(options.previous ? `  headline, ${previousRunLine(options.previous, profile.name)}:` : '  headline:');
    for (const line of headlineLines(report.headline ?? [], options.previous)) print(`    ${line}`);
    print(`  Wasm pod start (created → Ready): ${coldStarts.map((v) => `${v.toFixed(0)} ms`).join(', ') || 'n/a'}`);
    print(`  report: ${files.html}\n          ${files.json}`);
    return report;
  } finally {
    await local.stop();
  }
}

interface KnativeService {
  spec: {
    template: {
      metadata?: { annotations?: Record<string, string> };
      spec: { runtimeClassName?: string };
    };
  };
}

const ms = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(0)}ms` : '-');
