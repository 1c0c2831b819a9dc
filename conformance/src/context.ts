import { setTimeout as sleep } from 'node:timers/promises';
import {
  type CountsSnapshot,
  errorMessage,
  type FunctionCounts,
  fetchAllCounts,
  type GatewayAdmin,
  gatewayAdmins,
  type Logger,
  sumCounts,
} from '@afterlife/core';
import { AppsV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { ConformanceError } from './errors.ts';
import type { EventOutcome } from './load.ts';
import type { Profile } from './profile.ts';
import type { ChartMarker, WaterfallStep } from './render.ts';

/** One replica sample of a Deployment under test (plus the gateway's held count when known). */
export interface ReplicaSample {
  /** ms since the run started. */
  readonly t: number;
  readonly deployment: string;
  readonly desiredReplicas: number;
  readonly readyReplicas: number;
  readonly pending: number;
}

/** What one scenario measured, for the JSON and HTML reports. */
export interface ScenarioRecord {
  readonly id: string;
  start: number;
  end: number;
  /** Deployment whose replicas the charts show. */
  deployment: string;
  readonly metrics: Record<string, number | string | boolean>;
  readonly events: EventOutcome[];
  /** Human-readable notes (also the JUnit system-out). */
  readonly notes: string[];
  /** Moments drawn on the scenario's charts: load start/end, faults injected (t on the run's clock). */
  readonly markers: ChartMarker[];
  /** Steps of a cold start, drawn as a waterfall when a scenario records them. */
  readonly waterfall: WaterfallStep[];
}

/** The function the scenarios drive, once the injection scenario deployed it. */
export interface FunctionUnderTest {
  readonly namespace: string;
  /** The Knative Service name (= the gateway's function name). */
  readonly name: string;
  /** Its first revision (`<svc>-00001`): what the gateway holds and counts events for. */
  readonly revision: string;
  /** The revision's Deployment (`<svc>-00001-deployment`). */
  readonly deployment: string;
  /** `<gateway-url>/ns/<namespace>/fn/<name>`. */
  readonly url: string;
  /** The injected pod template annotations, and the scaler address of the revision's ScaledObject trigger. */
  readonly podAnnotations: Readonly<Record<string, string>>;
  readonly scalerAddress: string;
}

export interface SuiteContext {
  readonly kubeConfig: KubeConfig;
  readonly local: boolean;
  /** Run the fault scenario (`--faults`; always with a local stack). */
  readonly faults: boolean;
  /** Namespace of the Afterlife install (its pods are what the faults delete). */
  readonly afterlifeNamespace: string;
  /** A local stack's kube-apiserver restart (the one fault a user's cluster is not asked to take). */
  readonly restartApiServer?: () => Promise<number>;
  readonly namespace: string;
  readonly gatewayUrl: string;
  readonly gatewayAdminUrl: string | undefined;
  /** The scaler's metrics port, for the cold-start trace's scaler hop. */
  readonly scalerAdminUrl: string | undefined;
  readonly image: string;
  readonly runtimeClassName: string;
  readonly profile: Profile;
  readonly logger: Logger;
  readonly print: (line: string) => void;
  /** ms since the run started. */
  readonly clock: () => number;
  readonly records: Map<string, ScenarioRecord>;
  readonly samples: ReplicaSample[];
  fn: FunctionUnderTest | undefined;
  /** Deployments the sampler watches. */
  readonly watched: Set<string>;
}

export function record(ctx: SuiteContext, id: string): ScenarioRecord {
  const existing = ctx.records.get(id);
  if (existing) return existing;
  const created: ScenarioRecord = {
    id,
    start: ctx.clock(),
    end: ctx.clock(),
    deployment: ctx.fn?.deployment ?? '',
    metrics: {},
    events: [],
    notes: [],
    markers: [],
    waterfall: [],
  };
  ctx.records.set(id, created);
  return created;
}

export class WaitTimeoutError extends ConformanceError {
  constructor(what: string, timeoutMs: number, lastState: string) {
    super(
      'WAIT_TIMEOUT',
      `timed out after ${(timeoutMs / 1000).toFixed(0)}s waiting for ${what}; last observed: ${lastState}`,
    );
  }
}

/**
 * Bounded polling like KEDA's e2e helpers: `probe` returns `{ done, state }`; the last `state`
 * is in the error when the deadline passes. A probe that throws counts as not done.
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<{ done: boolean; state: string }>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = 'never observed';
  for (;;) {
    try {
      const { done, state } = await probe();
      last = state;
      if (done) return state;
    } catch (error) {
      last = `error: ${errorMessage(error)}`;
    }
    if (Date.now() >= deadline) throw new WaitTimeoutError(what, timeoutMs, last);
    await sleep(intervalMs);
  }
}

export interface ReplicaState {
  readonly desired: number;
  readonly ready: number;
  readonly text: string;
}

export async function readReplicas(kubeConfig: KubeConfig, namespace: string, name: string): Promise<ReplicaState> {
  const d = await kubeConfig.makeApiClient(AppsV1Api).readNamespacedDeployment({ name, namespace });
  const desired = d.spec?.replicas ?? 0;
  const ready = d.status?.readyReplicas ?? 0;
  return { desired, ready, text: `deployment ${namespace}/${name} spec.replicas=${desired} ready=${ready}` };
}

/**
 * Every gateway's admin API: `--gateway-admin-url` when given (a port-forward reaches one pod,
 * the same one its events go to), else each gateway pod of the install through the API
 * server's pod proxy (a Service spreads the events over all of them).
 */
export function suiteGatewayAdmins(ctx: SuiteContext): Promise<GatewayAdmin[]> {
  return gatewayAdmins(ctx.kubeConfig, {
    ...(ctx.gatewayAdminUrl ? { urls: [ctx.gatewayAdminUrl] } : { namespace: ctx.afterlifeNamespace }),
  });
}

/** The gateways' counts snapshots (none when no gateway answers: the charts lose the held line). */
async function gatewaySnapshots(ctx: SuiteContext): Promise<CountsSnapshot[]> {
  try {
    return (await fetchAllCounts(await suiteGatewayAdmins(ctx))).snapshots;
  } catch {
    return [];
  }
}

/** The gateways' counts of one revision of the suite, summed (undefined when no gateway answers or knows it). */
export async function gatewayCounts(ctx: SuiteContext, revision: string): Promise<FunctionCounts | undefined> {
  const { snapshots, unreachable } = await fetchAllCounts(await suiteGatewayAdmins(ctx));
  if (snapshots.length === 0) {
    throw new ConformanceError(
      'SCENARIO_FAILED',
      `no gateway admin API answered: ${unreachable.join('; ') || 'no gateway pods found'}`,
    );
  }
  return sumCounts(snapshots, { namespace: ctx.namespace, name: revision });
}

/** Delivered count of a revision over the gateways (undefined when no gateway answers). */
export async function gatewayDelivered(ctx: SuiteContext, revision: string): Promise<number | undefined> {
  try {
    return (await gatewayCounts(ctx, revision))?.delivered ?? 0;
  } catch {
    return undefined;
  }
}

/** Samples every watched Deployment's replicas every `intervalMs` until stopped. */
export function startSampler(ctx: SuiteContext, intervalMs = 500): () => Promise<void> {
  let running = true;
  const apps = ctx.kubeConfig.makeApiClient(AppsV1Api);
  const loop = (async () => {
    while (running) {
      const t = ctx.clock();
      const snapshots = await gatewaySnapshots(ctx);
      for (const deployment of ctx.watched) {
        try {
          const d = await apps.readNamespacedDeployment({ name: deployment, namespace: ctx.namespace });
          const revision = d.metadata?.labels?.['serving.knative.dev/revision'] ?? deployment;
          ctx.samples.push({
            t,
            deployment,
            desiredReplicas: d.spec?.replicas ?? 0,
            readyReplicas: d.status?.readyReplicas ?? 0,
            pending: sumCounts(snapshots, { namespace: ctx.namespace, name: revision })?.pending ?? 0,
          });
        } catch (error) {
          ctx.logger.debug({ err: errorMessage(error), deployment }, 'sample failed');
        }
      }
      await sleep(intervalMs);
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

/** The ScaledObject (KEDA) that targets a Deployment, if any. */
export async function scaledObjectFor(
  kubeConfig: KubeConfig,
  namespace: string,
  deployment: string,
): Promise<{ name: string; cooldownPeriod: number; scalerAddress: string } | undefined> {
  const list = (await kubeConfig.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({
    group: 'keda.sh',
    version: 'v1alpha1',
    namespace,
    plural: 'scaledobjects',
  })) as {
    items?: Array<{
      metadata?: { name?: string };
      spec?: {
        scaleTargetRef?: { name?: string };
        cooldownPeriod?: number;
        triggers?: Array<{ metadata?: Record<string, string> }>;
      };
    }>;
  };
  const so = list.items?.find((item) => item.spec?.scaleTargetRef?.name === deployment);
  if (!so) return undefined;
  return {
    name: so.metadata?.name ?? '',
    cooldownPeriod: so.spec?.cooldownPeriod ?? 300,
    scalerAddress: so.spec?.triggers?.[0]?.metadata?.scalerAddress ?? '',
  };
}
