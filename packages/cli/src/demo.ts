import { setTimeout as sleep } from 'node:timers/promises';
import { type EventOutcome, percentile, sendBurst, sendEvent, startLocalAfterlife } from '@afterlife/conformance';
import {
  AFTERLIFE_AUTOSCALER_CLASS,
  countsOf,
  fetchCounts,
  type Logger,
  WASM_VARIANT_ANNOTATION,
} from '@afterlife/core';
import { applyObjects, trackPodStarts, waitFor } from '@afterlife/devcluster';
import {
  ANNOTATION_AUTOSCALING_CLASS,
  LABEL_RUNTIME,
  LABEL_SCALING,
  RUNTIME_WASMEDGE,
  SCALING_EVENTS,
} from '@afterlife/webhook';
import { AppsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { CliError } from './errors.ts';
import { type DemoReport, type PhaseSpan, type Sample, summarize, writeReport } from './report.ts';

export interface DemoOptions {
  /** CI-sized load and waits. */
  readonly short: boolean;
  readonly reportDir: string;
  readonly logger: Logger;
  /** Where progress lines go (the terminal). */
  readonly print: (line: string) => void;
}

const NAMESPACE = 'afterlife-demo';
const FUNCTION = 'echo';
/** Knative names the first revision `<service>-00001` and its Deployment `<revision>-deployment`. */
const REVISION = `${FUNCTION}-00001`;
const DEPLOYMENT = `${REVISION}-deployment`;
/** The burst's replica cap (`autoscaling.knative.dev/max-scale`). */
const MAX_SCALE = 4;

interface Profile {
  readonly idleMs: number;
  readonly burst: { count: number; ratePerSecond: number; concurrency: number };
  readonly workMs: number;
  readonly cooldownSeconds: number;
  readonly scaleToZeroTimeoutMs: number;
}

const PROFILES: Record<'short' | 'full', Profile> = {
  short: {
    idleMs: 3000,
    burst: { count: 600, ratePerSecond: 40, concurrency: 60 },
    workMs: 250,
    cooldownSeconds: 5,
    scaleToZeroTimeoutMs: 120_000,
  },
  full: {
    idleMs: 10_000,
    burst: { count: 1800, ratePerSecond: 60, concurrency: 100 },
    workMs: 500,
    cooldownSeconds: 15,
    scaleToZeroTimeoutMs: 180_000,
  },
};

/**
 * The main job: a real local cluster with a real node (kubelet + containerd, Wasm through the
 * `wasmedge` handler), Knative Serving's real controllers, Afterlife's webhook, gateway, scaler and
 * autoscaler as processes, the reference Wasm function as a Knative Service, CloudEvents load in phases,
 * and a report that shows 0 → 1 → N → 0 with every event delivered.
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const { print, logger } = options;
  const profile = PROFILES[options.short ? 'short' : 'full'];
  const demoStart = performance.now();
  const clock = () => performance.now() - demoStart;
  const local = await startLocalAfterlife({ name: `demo-${process.pid}`, logger, print });
  try {
    const { kubeConfig, ports } = local;
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
      body: {
        apiVersion: 'serving.knative.dev/v1',
        kind: 'Service',
        metadata: {
          name: FUNCTION,
          namespace: NAMESPACE,
          labels: { [LABEL_RUNTIME]: RUNTIME_WASMEDGE, [LABEL_SCALING]: SCALING_EVENTS },
        },
        spec: {
          template: {
            metadata: {
              annotations: {
                'autoscaling.knative.dev/max-scale': String(MAX_SCALE),
                'afterlife.dev/cooldown-seconds': String(profile.cooldownSeconds),
                'afterlife.dev/polling-interval-seconds': '1',
              },
            },
            spec: { containers: [{ image: image.reference, ports: [{ containerPort: 8080 }] }] },
          },
        },
      },
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
    const events: EventOutcome[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          const [deployment, counts] = await Promise.all([
            apps.readNamespacedDeployment({ name: DEPLOYMENT, namespace: NAMESPACE }),
            fetchCounts(`http://127.0.0.1:${ports.gatewayAdmin}`),
          ]);
          const fn = countsOf(counts, { namespace: NAMESPACE, name: REVISION });
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
      const recent = events.filter((e) => e.status === 200).map((e) => e.latencyMs);
      print(
        `  [${(now / 1000).toFixed(1).padStart(6)}s] ${phase.padEnd(10)} replicas ${last?.readyReplicas ?? 0}/${last?.desiredReplicas ?? 0}  pending ${String(last?.pending ?? 0).padStart(4)}  in-flight ${String(last?.inFlight ?? 0).padStart(4)}  delivered ${String(events.filter((e) => e.status === 200).length).padStart(5)}/${events.length}  p50 ${ms(percentile(recent, 50))} p99 ${ms(percentile(recent, 99))}`,
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
    start = clock();
    const firstTicker = setInterval(() => progress('one-event'), 250);
    const first = await sendEvent({ ...target, workMs: 0 }, 'one-event', clock);
    clearInterval(firstTicker);
    events.push(first);
    phases.push({ name: 'one-event', start, end: clock() });
    const oneEventStart = start;
    print(
      `  first event answered with ${first.status} in ${first.latencyMs.toFixed(0)} ms (echoed id ${first.echoedId === first.id ? 'matches' : 'MISSING'})`,
    );

    // Phase 3: burst.
    print(
      `▸ phase burst: ${profile.burst.count} events at ${profile.burst.ratePerSecond}/s, ${profile.workMs} ms of work each`,
    );
    start = clock();
    await sendBurst(target, { phase: 'burst', ...profile.burst }, clock, (outcome) => {
      events.push(outcome);
      progress('burst');
    });
    phases.push({ name: 'burst', start, end: clock() });

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
    });
    const before = samples.filter((s) => s.t < oneEventStart);
    const checks = {
      'webhook injected runtimeClassName wasmedge into the Knative Service': injected,
      'function was at 0 replicas before the first event':
        before.length > 0 && before.every((s) => s.readyReplicas === 0),
      'first event scaled 0 → 1 and was answered': first.status === 200 && firstReady !== undefined,
      'burst scaled up to 2 or more replicas': summary.maxReplicas >= 2,
      'idle scaled back to 0': Number.isFinite(zeroAt),
      'every event sent was delivered (delivered = sent)': summary.delivered === summary.sent,
      'the function echoed every event id': summary.echoedIds === summary.sent,
    };
    const report: DemoReport = {
      startedAt: new Date(Date.now() - clock()).toISOString(),
      mode: options.short ? 'short' : 'full',
      function: { namespace: NAMESPACE, name: FUNCTION, image: image.reference },
      checks,
      summary,
      phases,
      samples,
      events,
    };
    const files = await writeReport(options.reportDir, report);
    print('');
    print('Summary');
    for (const [name, ok] of Object.entries(checks)) print(`  ${ok ? '✔' : '✘'} ${name}`);
    print(
      `  sent ${summary.sent}, delivered ${summary.delivered}, failed ${summary.failed}, max replicas ${summary.maxReplicas}`,
    );
    print(
      `  first event → reply ${summary.firstEventLatencyMs.toFixed(0)} ms; first event → 1 ready replica ${summary.zeroToOneMs.toFixed(0)} ms`,
    );
    print(
      `  latency p50 ${summary.p50Ms.toFixed(1)} ms, p99 ${summary.p99Ms.toFixed(1)} ms; idle → 0 in ${(summary.backToZeroMs / 1000).toFixed(1)} s`,
    );
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
