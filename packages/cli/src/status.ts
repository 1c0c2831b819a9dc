/**
 * `afterlife status`: one view of the functions on a cluster, read like `kubectl get` from the
 * Knative Services, Revisions, PodAutoscalers, ScaledObjects and HPAs, and from the gateways'
 * counts (through the API server's pod proxy, so a kubeconfig is all it needs). With a
 * FUNCTION, why it is or is not scaling, from the same sources, with the fix where one is known.
 */
import {
  AFTERLIFE_AUTOSCALER_CLASS,
  type CountsSnapshot,
  errorMessage,
  type GatewayColdStart,
  gatewayAdmins,
  KubeRequestError,
  kubeRequest,
  parseColdStarts,
  parseCountsSnapshot,
  parseFlags,
  UsageError,
} from '@afterlife/core';
import type { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
}
interface Obj {
  metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec?: {
    replicas?: number;
    template?: { metadata?: { annotations?: Record<string, string> }; spec?: { runtimeClassName?: string } };
    containers?: { ports?: { name?: string; containerPort: number }[] }[];
    minReplicaCount?: number;
    maxReplicaCount?: number;
  };
  status?: {
    conditions?: Condition[];
    traffic?: { revisionName?: string; percent?: number; latestRevision?: boolean }[];
    latestReadyRevisionName?: string;
    latestCreatedRevisionName?: string;
    readyReplicas?: number;
    replicas?: number;
    phase?: string;
    containerStatuses?: { name: string; ready: boolean; state?: { waiting?: { reason?: string; message?: string } } }[];
  };
}
interface List {
  items: Obj[];
}

/** One routed revision of a function, with what scales it and what the gateways hold for it. */
export interface RevisionStatus {
  readonly name: string;
  readonly percent: number;
  readonly desired: number;
  readonly ready: number;
  readonly pending: number;
  readonly inFlight: number;
  readonly ratePerSecond: number;
  readonly delivered: number;
  readonly failed: number;
  /** `afterlife.dev`, or the class of the autoscaler that owns it. */
  readonly autoscalingClass: string;
  readonly conditions: {
    readonly podAutoscaler: readonly Condition[];
    readonly scaledObject: readonly Condition[] | undefined;
    readonly hpa: readonly Condition[] | undefined;
  };
  /** Why pods of the revision do not start (waiting reasons, unschedulable), when they do not. */
  readonly podProblems: readonly string[];
  /** Its last cold start as the gateways recorded it; null when none is on record. */
  readonly lastColdStart: ColdStartSummary | null;
}

export interface FunctionStatus {
  readonly namespace: string;
  readonly name: string;
  readonly ready: boolean;
  readonly readyMessage: string;
  readonly revisions: readonly RevisionStatus[];
}

export interface StatusSnapshot {
  readonly functions: readonly FunctionStatus[];
  /** Gateways asked for counts, and those that did not answer (with why). */
  readonly gateways: { readonly answered: readonly string[]; readonly unreachable: readonly string[] };
}

export interface StatusOptions {
  /** Only this namespace (default: all the kubeconfig user may list). */
  readonly namespace?: string;
  /** Only this Knative Service. */
  readonly name?: string;
  /** Gateway admin URLs to ask instead of discovering gateway pods (e.g. a port-forward). */
  readonly gatewayAdminUrls?: readonly string[];
}

const list = async (kubeConfig: KubeConfig, path: string): Promise<Obj[]> =>
  ((await kubeRequest(kubeConfig, 'GET', path)) as List).items;

/** Everything a revision's status is read from, by `namespace/name` (pods by revision). */
interface RelatedObjects {
  readonly revisions: Map<string, Obj>;
  readonly deployments: Map<string, Obj>;
  readonly podAutoscalers: Map<string, Obj>;
  readonly scaledObjects: Map<string, Obj>;
  readonly hpas: Map<string, Obj>;
  readonly pods: Map<string, Obj[]>;
}

/**
 * One list per kind over the whole scope instead of six reads per revision: with 1,000 functions
 * that is six requests, not six thousand. A kind whose API is not served (KEDA not installed) is empty.
 */
async function relatedObjects(kubeConfig: KubeConfig, scope: string): Promise<RelatedObjects> {
  const byName = (items: readonly Obj[]) =>
    new Map(items.map((item) => [`${item.metadata.namespace ?? ''}/${item.metadata.name}`, item]));
  const optional = async (path: string): Promise<Obj[]> => {
    try {
      return await list(kubeConfig, path);
    } catch (error) {
      if (error instanceof KubeRequestError && error.status === 404) return [];
      throw error;
    }
  };
  const revisionLabel = 'serving.knative.dev/revision';
  const [revisions, deployments, podAutoscalers, scaledObjects, hpas, pods] = await Promise.all([
    list(kubeConfig, `/apis/serving.knative.dev/v1${scope}/revisions`),
    list(kubeConfig, `/apis/apps/v1${scope}/deployments?labelSelector=${encodeURIComponent(revisionLabel)}`),
    optional(`/apis/autoscaling.internal.knative.dev/v1alpha1${scope}/podautoscalers`),
    optional(`/apis/keda.sh/v1alpha1${scope}/scaledobjects`),
    optional(`/apis/autoscaling/v2${scope}/horizontalpodautoscalers`),
    list(kubeConfig, `/api/v1${scope}/pods?labelSelector=${encodeURIComponent(revisionLabel)}`),
  ]);
  const podsByRevision = new Map<string, Obj[]>();
  for (const pod of pods) {
    const key = `${pod.metadata.namespace ?? ''}/${pod.metadata.labels?.[revisionLabel] ?? ''}`;
    podsByRevision.set(key, [...(podsByRevision.get(key) ?? []), pod]);
  }
  return {
    revisions: byName(revisions),
    deployments: byName(deployments),
    podAutoscalers: byName(podAutoscalers),
    scaledObjects: byName(scaledObjects),
    hpas: byName(hpas),
    pods: podsByRevision,
  };
}

/** The last cold start of a revision as a gateway recorded it (`/v1/cold-starts`). */
export interface ColdStartSummary {
  /** When the first event was held (ISO 8601, the gateway's clock). */
  readonly at: string;
  /** Held → reply at the gateway (→ delivery started, when no reply came). */
  readonly durationMs: number;
  /** `probe`: delivered once queue-proxy answered, before kubelet Ready; `ready`: after the EndpointSlice said ready. */
  readonly via: 'probe' | 'ready';
}

interface GatewayView {
  readonly snapshots: CountsSnapshot[];
  readonly coldStarts: GatewayColdStart[];
  readonly answered: string[];
  readonly unreachable: string[];
}

/**
 * Counts and cold starts of every gateway: the chart's gateway pods through the API server's pod
 * proxy, or the given URLs. A gateway that answers counts but not cold starts still counts as answered.
 */
async function gatewayView(kubeConfig: KubeConfig, urls: readonly string[] | undefined): Promise<GatewayView> {
  const view: GatewayView = { snapshots: [], coldStarts: [], answered: [], unreachable: [] };
  for (const admin of await gatewayAdmins(kubeConfig, urls ? { urls } : {})) {
    try {
      view.snapshots.push(parseCountsSnapshot(await admin.get('/v1/counts')));
      view.answered.push(admin.where);
    } catch (error) {
      view.unreachable.push(`${admin.where}: ${errorMessage(error)}`);
      continue;
    }
    view.coldStarts.push(...parseColdStarts(await admin.get('/v1/cold-starts').catch(() => undefined)));
  }
  return view;
}

/** The latest cold start of `namespace/name` over all gateways' records. */
function lastColdStart(records: readonly GatewayColdStart[], namespace: string, name: string): ColdStartSummary | null {
  let latest: GatewayColdStart | undefined;
  for (const record of records) {
    if (record.namespace !== namespace || record.name !== name) continue;
    if (latest === undefined || record.heldAt > latest.heldAt) latest = record;
  }
  if (latest === undefined) return null;
  return {
    at: new Date(latest.heldAt).toISOString(),
    durationMs: (latest.repliedAt ?? latest.deliveredAt) - latest.heldAt,
    via: latest.via,
  };
}

function podProblems(pods: readonly Obj[]): string[] {
  const problems = new Set<string>();
  for (const pod of pods) {
    const unschedulable = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    if (unschedulable) problems.add(`pod not scheduled: ${unschedulable.message ?? unschedulable.reason ?? ''}`);
    for (const container of pod.status?.containerStatuses ?? []) {
      const waiting = container.state?.waiting;
      if (waiting?.reason && waiting.reason !== 'ContainerCreating' && waiting.reason !== 'PodInitializing') {
        problems.add(`container ${container.name}: ${waiting.reason}${waiting.message ? ` (${waiting.message})` : ''}`);
      }
    }
  }
  return [...problems];
}

/** Reads the functions (Knative Services) and how each of their routed revisions scales. */
export async function collectStatus(kubeConfig: KubeConfig, options: StatusOptions = {}): Promise<StatusSnapshot> {
  const scope = options.namespace ? `/namespaces/${options.namespace}` : '';
  let services = await list(kubeConfig, `/apis/serving.knative.dev/v1${scope}/services`);
  if (options.name) services = services.filter((s) => s.metadata.name === options.name);
  const { snapshots, coldStarts, answered, unreachable } = await gatewayView(kubeConfig, options.gatewayAdminUrls);
  const counts = new Map<
    string,
    { pending: number; inFlight: number; rate: number; delivered: number; failed: number }
  >();
  for (const snapshot of snapshots) {
    for (const fn of snapshot.functions) {
      const key = `${fn.namespace}/${fn.name}`;
      const sum = counts.get(key) ?? { pending: 0, inFlight: 0, rate: 0, delivered: 0, failed: 0 };
      counts.set(key, {
        pending: sum.pending + fn.pending,
        inFlight: sum.inFlight + fn.inFlight,
        rate: sum.rate + fn.ratePerSecond,
        delivered: sum.delivered + fn.delivered,
        failed: sum.failed + fn.failed,
      });
    }
  }
  const related = await relatedObjects(kubeConfig, scope);
  const functions: FunctionStatus[] = [];
  for (const service of services) {
    const namespace = service.metadata.namespace ?? '';
    const ready = service.status?.conditions?.find((c) => c.type === 'Ready');
    const routed = (service.status?.traffic ?? []).filter((t) => (t.percent ?? 0) > 0 && t.revisionName);
    const names =
      routed.length > 0
        ? routed
        : service.status?.latestCreatedRevisionName
          ? [{ revisionName: service.status.latestCreatedRevisionName, percent: 0 }]
          : [];
    const revisions: RevisionStatus[] = [];
    for (const entry of names) {
      const name = entry.revisionName ?? '';
      const key = `${namespace}/${name}`;
      const revision = related.revisions.get(key);
      const deployment = related.deployments.get(`${namespace}/${name}-deployment`);
      const pa = related.podAutoscalers.get(key);
      const scaledObject = related.scaledObjects.get(key);
      const hpa = related.hpas.get(`${namespace}/keda-hpa-${name}`);
      const pods = related.pods.get(key) ?? [];
      // Knative Serving's gateway counts are per revision; label discovery counts per Service.
      const held = counts.get(`${namespace}/${name}`) ?? counts.get(`${namespace}/${service.metadata.name}`);
      revisions.push({
        name,
        percent: entry.percent ?? 0,
        desired: deployment?.spec?.replicas ?? 0,
        ready: deployment?.status?.readyReplicas ?? 0,
        pending: held?.pending ?? 0,
        inFlight: held?.inFlight ?? 0,
        ratePerSecond: held?.rate ?? 0,
        delivered: held?.delivered ?? 0,
        failed: held?.failed ?? 0,
        autoscalingClass:
          pa?.metadata.annotations?.['autoscaling.knative.dev/class'] ??
          revision?.metadata.annotations?.['autoscaling.knative.dev/class'] ??
          'kpa.autoscaling.knative.dev',
        conditions: {
          podAutoscaler: pa?.status?.conditions ?? [],
          scaledObject: scaledObject?.status?.conditions,
          hpa: hpa?.status?.conditions,
        },
        podProblems: podProblems(pods),
        lastColdStart:
          lastColdStart(coldStarts, namespace, name) ?? lastColdStart(coldStarts, namespace, service.metadata.name),
      });
    }
    functions.push({
      namespace,
      name: service.metadata.name,
      ready: ready?.status === 'True',
      readyMessage: ready?.status === 'True' ? '' : (ready?.message ?? ready?.reason ?? 'not reconciled yet'),
      revisions,
    });
  }
  functions.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  return { functions, gateways: { answered, unreachable } };
}

/** An age the way `kubectl get` prints one: 45s, 12m, 3h, 2d. */
export function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** `842ms, 3m ago` — the last cold start's duration and how long ago it began. */
function coldStartCell(cold: ColdStartSummary | null | undefined, now: number): string {
  if (!cold) return '-';
  return `${Math.round(cold.durationMs)}ms, ${formatAge(now - Date.parse(cold.at))} ago`;
}

/** The `kubectl get`-style table: one line per routed revision. */
export function formatStatusTable(snapshot: StatusSnapshot, now = Date.now()): string {
  const header = [
    'NAMESPACE',
    'FUNCTION',
    'READY',
    'REVISION',
    'TRAFFIC',
    'REPLICAS',
    'HELD',
    'IN-FLIGHT',
    'RATE/S',
    'DELIVERED',
    'LAST COLD START',
  ];
  const rows = snapshot.functions.flatMap((fn) =>
    (fn.revisions.length > 0 ? fn.revisions : [undefined]).map((r) => [
      fn.namespace,
      fn.name,
      fn.ready ? 'True' : 'False',
      r?.name ?? '-',
      r ? `${r.percent}%` : '-',
      r ? `${r.ready}/${r.desired}` : '-',
      String(r?.pending ?? 0),
      String(r?.inFlight ?? 0),
      (r?.ratePerSecond ?? 0).toFixed(1),
      String(r?.delivered ?? 0),
      coldStartCell(r?.lastColdStart, now),
    ]),
  );
  if (rows.length === 0) return 'No functions (Knative Services) found.';
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Conditions that say something is wrong: False, except being inactive at zero (NoTraffic) by design. */
function falseConditions(conditions: readonly Condition[] | undefined): Condition[] {
  return (conditions ?? []).filter((c) => c.status === 'False' && c.type !== 'Active' && c.reason !== 'NoTraffic');
}

/**
 * Why a function is or is not scaling, as lines a person reads top to bottom: the state, then
 * each problem found with its fix. No problem found says what it is doing.
 */
export function explainFunction(fn: FunctionStatus, gateways: StatusSnapshot['gateways']): string[] {
  const lines = [`${fn.namespace}/${fn.name}: ${fn.ready ? 'Ready' : `not Ready — ${fn.readyMessage}`}`];
  const problems: Array<{ what: string; fix: string }> = [];
  if (gateways.answered.length === 0) {
    problems.push({
      what: `no gateway answered for counts${gateways.unreachable.length ? ` (${gateways.unreachable.join('; ')})` : ''}`,
      fix: 'check the gateway pods: kubectl -n afterlife-system get pods -l app.kubernetes.io/component=gateway',
    });
  }
  if (fn.revisions.length === 0) {
    problems.push({
      what: 'no revision receives traffic yet: events get 503 no_routable_revision',
      fix: `kubectl -n ${fn.namespace} get revisions -l serving.knative.dev/service=${fn.name}; kubectl -n ${fn.namespace} describe ksvc ${fn.name}`,
    });
  }
  for (const r of fn.revisions) {
    lines.push(
      `  revision ${r.name} (${r.percent}% of traffic): ${r.ready}/${r.desired} replicas ready, ${r.pending} held, ${r.inFlight} in flight, ${r.ratePerSecond.toFixed(1)} events/s`,
    );
    if (r.lastColdStart) {
      lines.push(
        `    last cold start ${r.lastColdStart.at}: ${Math.round(r.lastColdStart.durationMs)} ms from the first held event to its reply (${r.lastColdStart.via === 'probe' ? 'delivered on the queue-proxy probe, before kubelet Ready' : 'delivered once the EndpointSlice said ready'})`,
      );
    }
    if (r.autoscalingClass !== AFTERLIFE_AUTOSCALER_CLASS) {
      problems.push({
        what: `${r.name} is scaled by ${r.autoscalingClass}, not by Afterlife: events do not wake it from zero`,
        fix: `opt the Service in (label it for the Afterlife webhook) or set autoscaling.knative.dev/class: ${AFTERLIFE_AUTOSCALER_CLASS} on its template`,
      });
      continue;
    }
    for (const c of falseConditions(r.conditions.podAutoscaler)) {
      problems.push({
        what: `PodAutoscaler ${r.name} ${c.type}=False (${c.reason ?? ''}): ${c.message ?? ''}`,
        fix:
          c.reason === 'InvalidAnnotations'
            ? `fix the annotation named above on the Service's template: kubectl -n ${fn.namespace} edit ksvc ${fn.name}`
            : `kubectl -n ${fn.namespace} describe podautoscaler ${r.name}`,
      });
    }
    if (r.conditions.scaledObject === undefined) {
      problems.push({
        what: `no ScaledObject ${r.name}: the Afterlife autoscaler has not reconciled this revision`,
        fix: 'check the autoscaler: kubectl -n afterlife-system logs deploy/afterlife-autoscaler (is it running, leader, allowed to create ScaledObjects?)',
      });
    } else {
      // KEDA's Fallback and Paused are False when all is well; Ready=False is the trouble.
      for (const c of falseConditions(r.conditions.scaledObject).filter((c) => c.type === 'Ready')) {
        problems.push({
          what: `ScaledObject ${r.name} ${c.type}=False (${c.reason ?? ''}): ${c.message ?? ''}`,
          fix: 'KEDA cannot use the trigger: check the scaler address in the ScaledObject and the scaler pods (kubectl -n afterlife-system get pods -l app.kubernetes.io/component=scaler)',
        });
      }
    }
    // ScalingLimited=False only says the bounds are not in the way.
    for (const c of falseConditions(r.conditions.hpa).filter((c) => c.type !== 'ScalingLimited')) {
      if (c.type === 'ScalingActive' && r.desired === 0) continue; // at zero KEDA holds the HPA inactive
      problems.push({
        what: `HPA keda-hpa-${r.name} ${c.type}=False (${c.reason ?? ''}): ${c.message ?? ''}`,
        fix: 'check the external metrics API: kubectl get apiservice v1beta1.external.metrics.k8s.io',
      });
    }
    for (const problem of r.podProblems) {
      problems.push({
        what: `${r.name}: ${problem}`,
        fix: /not scheduled/.test(problem)
          ? 'no node satisfies the pod (RuntimeClass nodeSelector, resources): kubectl get nodes -l afterlife.dev/wasm=true; kubectl get runtimeclass'
          : `kubectl -n ${fn.namespace} describe pods -l serving.knative.dev/revision=${r.name}`,
      });
    }
    if (r.pending > 0 && r.desired === 0 && problems.length === 0) {
      problems.push({
        what: `${r.pending} events held but ${r.name} is not scaling up`,
        fix: 'the scaler does not push these counts to KEDA: check the scaler logs and that it lists this gateway',
      });
    }
  }
  if (problems.length === 0) {
    const total = fn.revisions.reduce((sum, r) => sum + r.desired, 0);
    lines.push(total === 0 ? '  scaled to zero; the next event wakes it' : '  scaling normally');
  } else {
    for (const problem of problems) lines.push(`  ✗ ${problem.what}`, `    fix: ${problem.fix}`);
  }
  return lines;
}

export type StatusOutput = 'table' | 'json' | 'yaml';

export function renderStatus(snapshot: StatusSnapshot, output: StatusOutput, explain: boolean): string {
  if (output === 'json') return JSON.stringify(snapshot, null, 2);
  if (output === 'yaml') return stringify(snapshot).trimEnd();
  const parts = [formatStatusTable(snapshot)];
  if (explain) for (const fn of snapshot.functions) parts.push('', ...explainFunction(fn, snapshot.gateways));
  return parts.join('\n');
}

const OUTPUTS: readonly StatusOutput[] = ['table', 'json', 'yaml'];

/** `afterlife status [-n NS] [FUNCTION] [-o table|json|yaml] [--watch]`; returns the exit code. */
export async function runStatusCommand(
  argv: string[],
  io: {
    print: (text: string) => void;
    kubeConfig: (file?: string, context?: string) => KubeConfig;
    signal?: AbortSignal;
  },
): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n' },
      output: { type: 'string', short: 'o' },
      watch: { type: 'boolean', short: 'w' },
      interval: { type: 'string' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      'gateway-admin-url': { type: 'string', multiple: true },
    },
  });
  if (positionals.length > 1) throw new UsageError(`one FUNCTION at most, got ${positionals.join(' ')}`);
  const output = (values.output ?? 'table') as StatusOutput;
  if (!OUTPUTS.includes(output))
    throw new UsageError(`-o must be one of ${OUTPUTS.join(', ')}, got "${values.output}"`);
  const intervalSeconds = Number(values.interval ?? 2);
  if (!Number.isFinite(intervalSeconds) || intervalSeconds <= 0) {
    throw new UsageError(`--interval must be a positive number of seconds, got "${values.interval}"`);
  }
  const name = positionals[0];
  if (name && !values.namespace) throw new UsageError('with a FUNCTION, say its namespace: -n NAMESPACE');
  const kubeConfig = io.kubeConfig(values.kubeconfig, values.context);
  const options: StatusOptions = {
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(name ? { name } : {}),
    ...(values['gateway-admin-url'] ? { gatewayAdminUrls: values['gateway-admin-url'] } : {}),
  };
  const once = async (): Promise<StatusSnapshot> => {
    const snapshot = await collectStatus(kubeConfig, options);
    io.print(renderStatus(snapshot, output, name !== undefined));
    return snapshot;
  };
  const first = await once();
  if (name && first.functions.length === 0) {
    io.print(`no Knative Service ${values.namespace}/${name}`);
    return 1;
  }
  // --watch: a new view every interval until Ctrl-C (the signal), like kubectl get -w.
  while (values.watch && !io.signal?.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, intervalSeconds * 1000);
      io.signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    if (!io.signal?.aborted) {
      io.print('');
      await once();
    }
  }
  return 0;
}
