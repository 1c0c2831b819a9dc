// One cold start, hop by hop: when each part of the chain (gateway → scaler → KEDA → Deployment →
// pod → kubelet → EndpointSlice → gateway → function) did its step, from that part's own record
// or from what the API server streamed to a watch. Printed by the demo, drawn as a waterfall in
// the demo's and the suite's reports, measured by the cold-start bench.
import {
  errorMessage,
  type GatewayAdmin,
  type GatewayColdStart,
  isRecord,
  parseColdStarts,
  trackPodStarts,
} from '@afterlife/core';
import { type KubeConfig, type V1Deployment, type V1EndpointSlice, Watch } from '@kubernetes/client-node';
import type { WaterfallStep } from './render.ts';

/** One step of the chain: when it happened (epoch ms) and who said so. */
export interface ColdStartHop {
  readonly id: HopId;
  readonly label: string;
  readonly at: number;
  /** Where the time comes from: a component's record, or a watch of the API server. */
  readonly source: string;
}

export type HopId =
  | 'sent'
  | 'held'
  | 'scaler-pushed'
  | 'keda-scaled'
  | 'pod-created'
  | 'pod-scheduled'
  | 'sandbox-ready'
  | 'containers-started'
  | 'endpoint-listed'
  | 'probe-answered'
  | 'pod-ready'
  | 'endpoint-ready'
  | 'delivered'
  | 'gateway-reply'
  | 'reply';

/** What a finished trace says. */
export interface ColdStartTrace {
  /** Every hop seen, in time order. */
  readonly hops: readonly ColdStartHop[];
  /** `probe`: delivered once queue-proxy answered (before kubelet Ready); `ready`: after; null without the gateway's record. */
  readonly via: 'probe' | 'ready' | null;
  /** Hops the trace expected but did not see, and why (no admin URL given, record missing …). */
  readonly missing: readonly string[];
}

export interface ColdStartTraceOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** The revision whose cold start is traced (its pods, private EndpointSlice, gateway record). */
  readonly revision: string;
  /** Its Deployment (`<revision>-deployment` for Knative). */
  readonly deployment: string;
  /** The gateways' admin APIs (`/v1/cold-starts`); without them the gateway's hops are missing. */
  readonly gatewayAdmins?: (() => Promise<readonly GatewayAdmin[]>) | undefined;
  /** The scaler's admin base URL (`/v1/activations`); without it the scaler's hop is missing. */
  readonly scalerAdminUrl?: string | undefined;
}

const LABELS: Record<HopId, string> = {
  sent: 'event sent',
  held: 'gateway held it (no endpoint)',
  'scaler-pushed': 'scaler pushed isActive to KEDA',
  'keda-scaled': 'KEDA scaled the Deployment 0 → 1',
  'pod-created': 'pod created (ReplicaSet)',
  'pod-scheduled': 'pod scheduled',
  // Both come with kubelet's first status update after it started the pod, which waits for its
  // next PLEG relist (every second): the API cannot say when each happened on the node.
  'sandbox-ready': 'kubelet reported sandbox ready',
  'containers-started': 'kubelet reported containers started',
  'endpoint-listed': 'endpoint listed (not ready)',
  'probe-answered': 'queue-proxy answered the probe',
  'pod-ready': 'pod Ready (kubelet probe)',
  'endpoint-ready': 'endpoint ready in EndpointSlice',
  delivered: 'gateway delivered the event',
  'gateway-reply': 'function replied to the gateway',
  reply: 'reply at the sender',
};

/** A running trace: start it before sending the event, finish it after the reply. */
export interface ColdStartTracer {
  finish(sender: { readonly sentAt: number; readonly repliedAt: number }): Promise<ColdStartTrace>;
  /** Stops the watches without a result (on failure paths). */
  stop(): void;
}

const WATCH_SOURCE = 'API server watch';
/**
 * A `performance.now()` reading as epoch ms, against both clocks read now — not
 * `performance.timeOrigin`: the wall clock may have been stepped since the process started (it
 * was, by 0.46 s, in a long bench run), and every other hop is a `Date.now()` reading.
 */
export function epochOf(performanceMs: number): number {
  return Date.now() - (performance.now() - performanceMs);
}

/**
 * Starts watching the revision's Deployment, pods and private EndpointSlices. Times from a
 * watch are when the event reached this process (the API's own timestamps have one-second
 * resolution); the gateway's and the scaler's come from their clocks (the same machine locally;
 * NTP-synchronised nodes on a cluster, so small skews are possible there).
 */
export async function startColdStartTrace(options: ColdStartTraceOptions): Promise<ColdStartTracer> {
  const { kubeConfig, namespace, revision, deployment } = options;
  const seen = new Map<HopId, ColdStartHop>();
  const mark = (id: HopId, at: number, source: string) => {
    if (!seen.has(id)) seen.set(id, { id, label: LABELS[id], at, source });
  };
  const watch = new Watch(kubeConfig);
  const aborts: AbortController[] = [];
  const ignore = () => undefined;
  try {
    aborts.push(
      await watch.watch(
        `/apis/apps/v1/namespaces/${namespace}/deployments`,
        { fieldSelector: `metadata.name=${deployment}` },
        (_type: string, object: V1Deployment) => {
          if ((object.spec?.replicas ?? 0) >= 1) mark('keda-scaled', Date.now(), WATCH_SOURCE);
        },
        ignore,
      ),
    );
    aborts.push(
      await watch.watch(
        `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
        {
          labelSelector: `serving.knative.dev/revision=${revision},networking.internal.knative.dev/serviceType=Private`,
        },
        (_type: string, slice: V1EndpointSlice) => {
          const now = Date.now();
          for (const endpoint of slice.endpoints ?? []) {
            if ((endpoint.addresses ?? []).length === 0 || endpoint.conditions?.terminating === true) continue;
            mark('endpoint-listed', now, WATCH_SOURCE);
            if (endpoint.conditions?.ready === true) mark('endpoint-ready', now, WATCH_SOURCE);
          }
        },
        ignore,
      ),
    );
  } catch (error) {
    for (const abort of aborts) abort.abort();
    throw error;
  }
  const pods = await trackPodStarts(kubeConfig, namespace, {
    labelSelector: `serving.knative.dev/revision=${revision}`,
  });
  const stop = () => {
    pods.stop();
    for (const abort of aborts) abort.abort();
  };
  return {
    stop,
    async finish(sender) {
      // The slice and Ready come a moment after the reply when the gateway delivered on the probe.
      await waitForHops(seen, ['pod-ready', 'endpoint-ready'], 5000);
      stop();
      const missing: string[] = [];
      mark('sent', sender.sentAt, 'the sender');
      mark('reply', sender.repliedAt, 'the sender');
      // The first pod that started from creation after the trace began: the one the event woke.
      const start = pods
        .starts()
        .filter((candidate) => candidate.fromCreation)
        .sort((a, b) => a.firstSeen - b.firstSeen)[0];
      if (start === undefined) missing.push('no pod of the revision was created while tracing');
      else {
        mark('pod-created', epochOf(start.firstSeen), WATCH_SOURCE);
        if (start.scheduled !== undefined) mark('pod-scheduled', epochOf(start.scheduled), WATCH_SOURCE);
        if (start.sandboxReady !== undefined) mark('sandbox-ready', epochOf(start.sandboxReady), WATCH_SOURCE);
        if (start.started !== undefined) mark('containers-started', epochOf(start.started), WATCH_SOURCE);
        if (start.ready !== undefined) mark('pod-ready', epochOf(start.ready), WATCH_SOURCE);
      }
      let via: ColdStartTrace['via'] = null;
      const record = await gatewayRecord(options, sender.sentAt, missing);
      if (record !== undefined) {
        via = record.via;
        mark('held', record.heldAt, 'gateway /v1/cold-starts');
        if (record.endpointAnsweredAt !== null) mark('probe-answered', record.endpointAnsweredAt, 'gateway prober');
        mark('delivered', record.deliveredAt, 'gateway /v1/cold-starts');
        if (record.repliedAt !== null) mark('gateway-reply', record.repliedAt, 'gateway /v1/cold-starts');
      }
      const pushedAt = await scalerActivation(options, sender.sentAt, missing);
      if (pushedAt !== undefined) mark('scaler-pushed', pushedAt, 'scaler /v1/activations');
      for (const id of ['keda-scaled', 'endpoint-listed', 'pod-ready', 'endpoint-ready'] as const) {
        if (!seen.has(id)) missing.push(`${LABELS[id]}: not seen by the watch`);
      }
      return { hops: [...seen.values()].sort((a, b) => a.at - b.at), via, missing };
    },
  };
}

async function waitForHops(seen: ReadonlyMap<HopId, ColdStartHop>, ids: readonly HopId[], timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  while (ids.some((id) => !seen.has(id)) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
}

async function getJson(url: URL): Promise<unknown> {
  const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

/** The record of this cold start (held after the event was sent) by whichever gateway held it. */
async function gatewayRecord(
  options: ColdStartTraceOptions,
  sentAt: number,
  missing: string[],
): Promise<GatewayColdStart | undefined> {
  if (!options.gatewayAdmins) {
    missing.push('gateway hops: no gateway admin API');
    return undefined;
  }
  const problems: string[] = [];
  let admins: readonly GatewayAdmin[] = [];
  try {
    admins = await options.gatewayAdmins();
  } catch (error) {
    missing.push(`gateway hops: ${errorMessage(error)}`);
    return undefined;
  }
  for (const admin of admins) {
    try {
      const record = parseColdStarts(await admin.get('/v1/cold-starts')).find(
        (entry) =>
          entry.namespace === options.namespace && entry.name === options.revision && entry.heldAt >= sentAt - 1000,
      );
      if (record) return record;
    } catch (error) {
      problems.push(`${admin.where}: ${errorMessage(error)}`);
    }
  }
  missing.push(
    `gateway hops: no cold start of ${options.revision} on record${problems.length ? ` (${problems.join('; ')})` : ''}`,
  );
  return undefined;
}

/** When the scaler pushed `isActive: true` for the revision after the event was sent. */
async function scalerActivation(
  options: ColdStartTraceOptions,
  sentAt: number,
  missing: string[],
): Promise<number | undefined> {
  if (!options.scalerAdminUrl) {
    missing.push('scaler hop: no scaler admin URL');
    return undefined;
  }
  try {
    const body = await getJson(new URL('/v1/activations', options.scalerAdminUrl));
    const list = isRecord(body) && Array.isArray(body.activations) ? body.activations : [];
    const key = `${options.namespace}/${options.revision}`;
    const found = list.find(
      (entry) =>
        isRecord(entry) &&
        entry.function === key &&
        typeof entry.pushedAt === 'number' &&
        entry.pushedAt >= sentAt - 1000,
    );
    if (!isRecord(found) || typeof found.pushedAt !== 'number') {
      missing.push(`scaler hop: no activation of ${key} on record`);
      return undefined;
    }
    return found.pushedAt;
  } catch (error) {
    missing.push(`scaler hop: ${errorMessage(error)}`);
    return undefined;
  }
}

/** The waterfall: each hop a bar from the hop before it, on a clock whose `sentAt` is `origin`. */
export function traceWaterfall(trace: ColdStartTrace, origin: number): WaterfallStep[] {
  const sent = trace.hops.find((hop) => hop.id === 'sent')?.at ?? trace.hops[0]?.at ?? 0;
  const steps: WaterfallStep[] = [];
  let previous = sent;
  for (const hop of trace.hops) {
    if (hop.id === 'sent') continue;
    steps.push({ label: hop.label, start: origin + (previous - sent), end: origin + (hop.at - sent) });
    previous = Math.max(previous, hop.at);
  }
  return steps;
}

/** The hop table, one line per hop: at (ms after sent), the step since the previous hop, source. */
export function formatTrace(trace: ColdStartTrace): string[] {
  const sent = trace.hops.find((hop) => hop.id === 'sent')?.at ?? trace.hops[0]?.at ?? 0;
  const width = Math.max(...trace.hops.map((hop) => hop.label.length));
  let previous = sent;
  const lines = trace.hops.map((hop) => {
    const line = `${hop.label.padEnd(width)}  ${`+${Math.round(hop.at - sent)} ms`.padStart(9)}  ${`(${Math.round(hop.at - previous)} ms)`.padStart(10)}  ${hop.source}`;
    previous = Math.max(previous, hop.at);
    return line;
  });
  lines.push(
    `delivered ${trace.via === 'probe' ? 'on the queue-proxy probe, before kubelet Ready' : trace.via === 'ready' ? 'once the EndpointSlice said ready' : '(gateway record missing)'}`,
  );
  for (const note of trace.missing) lines.push(`missing: ${note}`);
  return lines;
}

/** The hops as durations from `sent` (for JSON reports and benches). */
export function traceOffsets(trace: ColdStartTrace): Partial<Record<HopId, number>> {
  const sent = trace.hops.find((hop) => hop.id === 'sent')?.at ?? 0;
  return Object.fromEntries(trace.hops.map((hop) => [hop.id, Math.round(hop.at - sent)]));
}
