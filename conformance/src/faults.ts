// Faults under load (scenario 7): while a retrying sender keeps events flowing to the function,
// one part of the install is taken away — a gateway pod, the scaler pod, a function pod, the
// autoscaler (rolling restart), and on a local stack the kube-apiserver — and the suite proves
// that every event is acknowledged with its own id (none lost) and records when the fault hit,
// when senders saw failures, and when the part was back.
import { setTimeout as sleep } from 'node:timers/promises';
import { kubeRequest } from '@afterlife/core';
import { AppsV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { type FunctionUnderTest, readReplicas, type ScenarioRecord, type SuiteContext, waitUntil } from './context.ts';
import { ConformanceError } from './errors.ts';
import { type EventOutcome, percentile, sendWithRetry } from './load.ts';

/** Events per second of the steady load, how many at a time, and each event's work in the function. */
const LOAD = { ratePerSecond: 20, concurrency: 50, workMs: 20 } as const;
/** Load before the fault (the function warm, the sender steady) and after recovery. */
const BEFORE_MS = 3000;
const AFTER_MS = 5000;
/** A retrying sender gives an event up this long after its first send. */
const RETRY_DEADLINE_MS = 90_000;
const RECOVERY_TIMEOUT_MS = 180_000;

interface Fault {
  readonly id: string;
  /** What is done, for the timeline ("gateway pod deleted"). */
  readonly what: string;
  /** Only with a local stack (the kube-apiserver restart). */
  readonly localOnly?: boolean;
  /** Injects the fault; returns what it hit (a pod name …) and a probe for "back". */
  inject(ctx: SuiteContext, fn: FunctionUnderTest): Promise<{ target: string; recovered: () => Promise<Recovery> }>;
}

interface Recovery {
  readonly done: boolean;
  readonly state: string;
}

const isReady = (pod: V1Pod) =>
  pod.metadata?.deletionTimestamp === undefined &&
  pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

async function pods(ctx: SuiteContext, namespace: string, labelSelector: string): Promise<V1Pod[]> {
  return (await ctx.kubeConfig.makeApiClient(CoreV1Api).listNamespacedPod({ namespace, labelSelector })).items;
}

/**
 * Deletes one ready pod matching the selector (as `kubectl delete pod` does: graceful, the
 * pod's own grace period); back once it is gone and as many pods are ready as before.
 */
function deletePod(
  id: string,
  what: string,
  where: (ctx: SuiteContext, fn: FunctionUnderTest) => [string, string],
): Fault {
  return {
    id,
    what,
    async inject(ctx, fn) {
      const [namespace, selector] = where(ctx, fn);
      const before = (await pods(ctx, namespace, selector)).filter(isReady);
      const victim = before[0]?.metadata?.name;
      if (!victim) {
        throw new ConformanceError(
          'SCENARIO_FAILED',
          `no ready pod in ${namespace} matches ${selector}: nothing to delete`,
        );
      }
      await ctx.kubeConfig.makeApiClient(CoreV1Api).deleteNamespacedPod({ name: victim, namespace });
      return {
        target: `${namespace}/${victim}`,
        async recovered() {
          const now = await pods(ctx, namespace, selector);
          const gone = !now.some((p) => p.metadata?.name === victim);
          const ready = now.filter(isReady).length;
          return {
            done: gone && ready >= before.length,
            state: `${victim} ${gone ? 'gone' : 'terminating'}, ${ready}/${before.length} ready`,
          };
        },
      };
    },
  };
}

const component =
  (name: string) =>
  (ctx: SuiteContext): [string, string] => [
    ctx.afterlifeNamespace,
    `app.kubernetes.io/name=afterlife,app.kubernetes.io/component=${name}`,
  ];

export const FAULTS: readonly Fault[] = [
  deletePod('gateway-pod', 'a gateway pod deleted', component('gateway')),
  deletePod('scaler-pod', 'the scaler pod deleted', component('scaler')),
  deletePod('function-pod', 'a function pod deleted', (ctx, fn) => [
    ctx.namespace,
    `serving.knative.dev/revision=${fn.revision}`,
  ]),
  {
    id: 'autoscaler-restart',
    what: 'the autoscaler restarted (rolling restart)',
    async inject(ctx) {
      const apps = ctx.kubeConfig.makeApiClient(AppsV1Api);
      const [deployment] = (
        await apps.listNamespacedDeployment({
          namespace: ctx.afterlifeNamespace,
          labelSelector: 'app.kubernetes.io/name=afterlife,app.kubernetes.io/component=autoscaler',
        })
      ).items;
      const name = deployment?.metadata?.name;
      if (!name) throw new ConformanceError('SCENARIO_FAILED', `no autoscaler Deployment in ${ctx.afterlifeNamespace}`);
      // What `kubectl rollout restart` writes.
      await kubeRequest(
        ctx.kubeConfig,
        'PATCH',
        `/apis/apps/v1/namespaces/${ctx.afterlifeNamespace}/deployments/${name}`,
        {
          spec: {
            template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } },
          },
        },
        'application/merge-patch+json',
      );
      return {
        target: `${ctx.afterlifeNamespace}/${name}`,
        async recovered() {
          const d = await apps.readNamespacedDeployment({ name, namespace: ctx.afterlifeNamespace });
          const want = d.spec?.replicas ?? 1;
          const s = d.status;
          const done =
            (s?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) &&
            s?.updatedReplicas === want &&
            s?.readyReplicas === want &&
            s?.replicas === want;
          return {
            done,
            state: `updated ${s?.updatedReplicas ?? 0}, ready ${s?.readyReplicas ?? 0}, total ${s?.replicas ?? 0} of ${want}`,
          };
        },
      };
    },
  },
  {
    id: 'apiserver-restart',
    what: 'the kube-apiserver restarted',
    localOnly: true,
    async inject(ctx) {
      const restart = ctx.restartApiServer;
      if (!restart) throw new ConformanceError('SCENARIO_FAILED', 'no local stack to restart the kube-apiserver of');
      const seconds = await restart();
      return {
        target: `kube-apiserver, down ${seconds.toFixed(1)} s`,
        recovered: async () => ({ done: true, state: 'serving' }),
      };
    },
  },
];

/** A steady stream of events, each sent by a retrying sender, until stopped. */
function steadyLoad(ctx: SuiteContext, url: string, phase: string, onOutcome: (o: EventOutcome) => void) {
  let running = true;
  const inFlight = new Set<Promise<void>>();
  const loop = (async () => {
    const gapMs = 1000 / LOAD.ratePerSecond;
    let next = performance.now();
    while (running) {
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
      next += gapMs;
      if (inFlight.size >= LOAD.concurrency) {
        await Promise.race(inFlight);
        continue;
      }
      const task = sendWithRetry({ url, workMs: LOAD.workMs }, phase, ctx.clock, RETRY_DEADLINE_MS).then(onOutcome);
      const tracked = task.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    }
  })();
  return async () => {
    running = false;
    await loop;
    await Promise.all(inFlight);
  };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** One fault under load: its timeline goes to the record's markers, metrics (`fault.<id>.*`) and notes. */
async function underLoad(
  ctx: SuiteContext,
  rec: ScenarioRecord,
  fn: FunctionUnderTest,
  fault: Fault,
): Promise<string[]> {
  const events: EventOutcome[] = [];
  const loadStart = ctx.clock();
  const stop = steadyLoad(ctx, fn.url, `fault-${fault.id}`, (o) => events.push(o));
  let injectedAt = Number.NaN;
  let recoveredAt = Number.NaN;
  let target = '';
  try {
    // The function up and answering before the fault.
    await waitUntil(
      `${fn.deployment} serving the steady load before the fault`,
      async () => {
        const r = await readReplicas(ctx.kubeConfig, ctx.namespace, fn.deployment);
        const acked = events.filter((e) => e.status === 200).length;
        return { done: r.ready >= 1 && acked >= 5, state: `${r.text}, ${acked} acknowledged` };
      },
      (ctx.profile.coldStartTimeoutSeconds + 30) * 1000,
    );
    await sleep(BEFORE_MS);
    injectedAt = ctx.clock();
    const injected = await fault.inject(ctx, fn);
    target = injected.target;
    rec.markers.push({ t: injectedAt, label: `${fault.what}: ${target}`, kind: 'fault' });
    ctx.print(`    ${fault.what} (${target}) at ${seconds(injectedAt)}`);
    await waitUntil(`${fault.what}: ${target} back`, injected.recovered, RECOVERY_TIMEOUT_MS, 250);
    recoveredAt = ctx.clock();
    rec.markers.push({ t: recoveredAt, label: `back after ${fault.what}`, kind: 'event' });
    await sleep(AFTER_MS);
  } finally {
    await stop();
    rec.events.push(...events);
  }
  const failures = events.flatMap((e) => e.failures ?? []);
  const failedAt = failures.map((f) => f.at);
  const lost = events.filter((e) => e.status !== 200 || e.echoedId !== e.id);
  const retried = events.filter((e) => (e.attempts ?? 1) > 1);
  const latencies = events.filter((e) => e.status === 200).map((e) => e.latencyMs);
  const key = (name: string) => `fault.${fault.id}.${name}`;
  Object.assign(rec.metrics, {
    [key('loadStartMs')]: Math.round(loadStart),
    [key('injectedAtMs')]: Math.round(injectedAt),
    [key('recoveredAfterMs')]: Math.round(recoveredAt - injectedAt),
    [key('sent')]: events.length,
    [key('acknowledged')]: events.length - lost.length,
    [key('retried')]: retried.length,
    [key('maxAttempts')]: Math.max(1, ...events.map((e) => e.attempts ?? 1)),
    [key('failedAttempts')]: failures.length,
    ...(failedAt.length > 0
      ? {
          [key('firstFailureAfterMs')]: Math.round(Math.min(...failedAt) - injectedAt),
          [key('lastFailureAfterMs')]: Math.round(Math.max(...failedAt) - injectedAt),
        }
      : {}),
    [key('p99Ms')]: Math.round(percentile(latencies, 99)),
  });
  const statuses = [...new Set(failures.map((f) => (f.status === 0 ? (f.error ?? 'no answer') : String(f.status))))];
  const line = `${fault.what} (${target}) at ${seconds(injectedAt)}: back after ${seconds(recoveredAt - injectedAt)}; ${events.length} events, ${events.length - lost.length} acknowledged, ${retried.length} after a retry (max ${rec.metrics[key('maxAttempts')]} attempts${failures.length ? `; failed attempts ${seconds(Math.min(...failedAt) - injectedAt)} – ${seconds(Math.max(...failedAt) - injectedAt)} after the fault: ${statuses.slice(0, 3).join(', ')}` : ''}); p99 ${Math.round(percentile(latencies, 99))} ms`;
  rec.notes.push(line);
  ctx.print(`      ${line}`);
  return lost.map(
    (e) =>
      `${fault.id}: event ${e.id} ${e.status === 200 ? `echoed "${e.echoedId}"` : `answered ${e.status}${e.error ? ` (${e.error})` : ''} after ${e.attempts} attempts`}`,
  );
}

export async function runFaults(ctx: SuiteContext, rec: ScenarioRecord, fn: FunctionUnderTest): Promise<void> {
  const faults = FAULTS.filter((f) => !f.localOnly || ctx.restartApiServer !== undefined);
  rec.deployment = fn.deployment;
  const problems: string[] = [];
  for (const fault of faults) problems.push(...(await underLoad(ctx, rec, fn, fault)));
  rec.metrics.faults = faults.map((f) => f.id).join(', ');
  if (problems.length > 0) {
    throw new ConformanceError(
      'SCENARIO_FAILED',
      `${problems.length} events not acknowledged with their own id under faults: ${problems.slice(0, 3).join('; ')}`,
    );
  }
}

/** Upper bound of the fault scenario (ms). */
export function faultsTimeoutMs(ctx: SuiteContext): number {
  const perFault =
    (ctx.profile.coldStartTimeoutSeconds + 30) * 1000 + BEFORE_MS + RECOVERY_TIMEOUT_MS + AFTER_MS + RETRY_DEADLINE_MS;
  return perFault * FAULTS.length;
}
