import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ChartMarker,
  type ChartSeries,
  type ChartSpec,
  type ColdStartTrace,
  type EventOutcome,
  environmentFacts,
  eventTotals,
  formatValue,
  type HeadlineFigure,
  isDelivered,
  isRefused,
  PALETTE,
  type PreviousRun,
  percentile,
  type ReportDocument,
  type ReportEnvironment,
  renderReport,
  SERIES_STYLES,
  type SeriesStyle,
  spanText,
  type WaterfallStep,
} from '@afterlife/conformance';
import type { LocalGatewaySettings } from '@afterlife/devcluster';

export interface Sample {
  /** ms since the demo started. */
  readonly t: number;
  readonly desiredReplicas: number;
  readonly readyReplicas: number;
  readonly pending: number;
  readonly inFlight: number;
  readonly delivered: number;
}

export interface PhaseSpan {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

export type DemoProfileName = 'short' | 'full' | 'overload';

/** How hard the demo pushes and what it expects. */
export interface DemoProfile {
  readonly name: DemoProfileName;
  /** One line for people: what this profile shows. */
  readonly purpose: string;
  readonly idleMs: number;
  readonly burst: { readonly count: number; readonly ratePerSecond: number; readonly concurrency: number };
  /** Simulated work per event in the function (`ce-workms`). */
  readonly workMs: number;
  /** The revision's replica cap (`autoscaling.knative.dev/max-scale`). */
  readonly maxScale: number;
  /** Held + in-flight events per replica the autoscaler aims for (`autoscaling.knative.dev/target`). */
  readonly targetPerReplica: number;
  readonly cooldownSeconds: number;
  readonly scaleToZeroTimeoutMs: number;
  /** Events the gateway holds per function before it answers 503 + Retry-After. */
  readonly pendingLimit: number;
  /** The first event's bound (the conformance suite's cold-start bound). */
  readonly coldStartBoundMs: number;
  /** True when the load is meant to exceed the capacity (`--overload`). */
  readonly overload: boolean;
}

/** What the chosen maximum can take: replicas × concurrency per replica ÷ work time. */
export interface Capacity {
  readonly maxReplicas: number;
  readonly replicaConcurrency: number;
  readonly workMs: number;
  /** `maxReplicas × replicaConcurrency / (workMs / 1000)`. */
  readonly eventsPerSecond: number;
  /** The burst's rate. */
  readonly loadPerSecond: number;
  /** Events in flight the burst needs at the work time (`load × work`). */
  readonly neededInFlight: number;
  readonly targetPerReplica: number;
  /** Replicas the autoscaler's target asks for at that load, capped at the maximum (the headline's N). */
  readonly neededReplicas: number;
}

export function capacityOf(profile: DemoProfile, replicaConcurrency: number): Capacity {
  const work = profile.workMs / 1000;
  const neededInFlight = profile.burst.ratePerSecond * work;
  return {
    maxReplicas: profile.maxScale,
    replicaConcurrency,
    workMs: profile.workMs,
    eventsPerSecond: (profile.maxScale * replicaConcurrency) / work,
    loadPerSecond: profile.burst.ratePerSecond,
    neededInFlight,
    targetPerReplica: profile.targetPerReplica,
    neededReplicas: Math.min(profile.maxScale, Math.max(1, Math.ceil(neededInFlight / profile.targetPerReplica))),
  };
}

/** The capacity statement of the report and the terminal summary. */
export function capacityText(
  c: Capacity,
  gateway?: Pick<LocalGatewaySettings, 'pendingLimit' | 'retryAfterSeconds'>,
): string {
  const share = (c.loadPerSecond / c.eventsPerSecond) * 100;
  const max = `At most ${c.maxReplicas} replicas × ${c.replicaConcurrency} events at a time each ÷ ${formatValue(c.workMs, 'ms')} of work = ${formatValue(c.eventsPerSecond, 'events/s')}.`;
  if (c.loadPerSecond > c.eventsPerSecond) {
    return `${max} The burst sends ${formatValue(c.loadPerSecond, 'events/s')} (${share.toFixed(0)} % of that): more than the maximum can take, so the gateway holds events${gateway ? ` up to its pending limit of ${gateway.pendingLimit} and answers 503 with Retry-After: ${gateway.retryAfterSeconds} beyond it` : ''}.`;
  }
  return `${max} The burst sends ${formatValue(c.loadPerSecond, 'events/s')} (${share.toFixed(0)} % of that): ${c.neededInFlight.toFixed(0)} events in flight at a time, which the autoscaler's target of ${c.targetPerReplica} events per replica turns into ${c.neededReplicas} replica${c.neededReplicas === 1 ? '' : 's'}.`;
}

export interface DemoSummary {
  readonly sent: number;
  /** Answered 2xx by the function. */
  readonly delivered: number;
  /** Refused by the gateway with 503 + Retry-After (beyond its pending limit). */
  readonly refused: number;
  /** Neither delivered nor refused with Retry-After. */
  readonly failed: number;
  readonly echoedIds: number;
  /** Sent, not echoed by the function with its own id, and not refused: what a sender would lose. */
  readonly lost: number;
  readonly maxReplicas: number;
  /** Most events the gateway held at once (sampled). */
  readonly maxPending: number;
  readonly firstEventLatencyMs: number;
  readonly zeroToOneMs: number;
  readonly backToZeroMs: number;
  /** The replicas the burst needs (capacity); how long from the burst's start until that many were ready. */
  readonly expectedReplicas: number;
  readonly timeToExpectedReplicasMs: number;
  /** Latency over the whole burst (answered events), scaling up included. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** When the function was scaled: expected replicas ready and nothing held (ms on the demo clock; NaN if never). */
  readonly scaledAtMs: number;
  /** Latency of the burst's events sent once scaled. */
  readonly scaledP50Ms: number;
  readonly scaledP99Ms: number;
  /** Most replies in one second. */
  readonly peakDeliveredPerSecond: number;
  readonly wasmColdStartsMs: readonly number[];
}

export interface DemoReport {
  readonly startedAt: string;
  readonly finishedAt?: string;
  /** The profile's name. */
  readonly mode: DemoProfileName;
  readonly profile?: DemoProfile;
  readonly capacity?: Capacity;
  readonly gateway?: LocalGatewaySettings;
  readonly environment?: ReportEnvironment;
  readonly function: { readonly namespace: string; readonly name: string; readonly image: string };
  readonly checks: Readonly<Record<string, boolean>>;
  readonly summary: DemoSummary;
  /** The headline figures against their bounds (what `--compare` reads from a previous run). */
  readonly headline?: readonly HeadlineFigure[];
  readonly phases: readonly PhaseSpan[];
  /** Moments drawn on the charts (load start/end, faults). */
  readonly markers?: readonly ChartMarker[];
  readonly samples: readonly Sample[];
  readonly events: readonly EventOutcome[];
  /** Cold-start steps, when recorded. */
  readonly waterfall?: readonly WaterfallStep[];
  /** The first event's cold start, hop by hop (epoch ms, with each time's source). */
  readonly coldStartTrace?: ColdStartTrace;
}

/** The same quantity gets the same look in every chart of the report. */
const STYLE = {
  ready: SERIES_STYLES[0],
  desired: SERIES_STYLES[1],
  held: SERIES_STYLES[2],
  inFlight: SERIES_STYLES[3],
  answered: SERIES_STYLES[0],
  p50: { color: PALETTE.black, dash: '6 2', marker: 'circle' },
  refused: { color: PALETTE.vermillion, dash: '', marker: 'cross' },
} as const satisfies Record<string, SeriesStyle | undefined>;

/** Most values in any one-second window (`times` in ms). */
function peakPerSecond(times: readonly number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let from = 0;
  for (let to = 0; to < sorted.length; to++) {
    while ((sorted[to] as number) - (sorted[from] as number) >= 1000) from++;
    best = Math.max(best, to - from + 1);
  }
  return best;
}

export function summarize(
  samples: readonly Sample[],
  events: readonly EventOutcome[],
  extra: {
    firstEventLatencyMs: number;
    zeroToOneMs: number;
    backToZeroMs: number;
    wasmColdStartsMs: number[];
    /** The burst phase (latency and time-to-N are measured in it); all events when absent. */
    burst?: PhaseSpan;
    expectedReplicas?: number;
  },
): DemoSummary {
  const totals = eventTotals(events);
  const burst = extra.burst;
  const inBurst = burst ? events.filter((e) => e.sentAt >= burst.start && e.sentAt <= burst.end) : events;
  const answered = inBurst.filter(isDelivered);
  const expected = extra.expectedReplicas ?? 1;
  const from = burst?.start ?? 0;
  const burstSamples = samples.filter((s) => s.t >= from && (!burst || s.t <= burst.end));
  const reached = burstSamples.find((s) => s.readyReplicas >= expected);
  const scaled = burstSamples.find((s) => s.readyReplicas >= expected && s.pending === 0);
  const once = scaled ? answered.filter((e) => e.sentAt >= scaled.t).map((e) => e.latencyMs) : [];
  return {
    sent: totals.sent,
    delivered: totals.acknowledged,
    refused: totals.refused,
    failed: totals.sent - totals.acknowledged - totals.refused,
    echoedIds: totals.echoed,
    lost: totals.lost,
    maxReplicas: Math.max(0, ...samples.map((sample) => sample.readyReplicas)),
    maxPending: Math.max(0, ...samples.map((sample) => sample.pending)),
    firstEventLatencyMs: extra.firstEventLatencyMs,
    zeroToOneMs: extra.zeroToOneMs,
    backToZeroMs: extra.backToZeroMs,
    expectedReplicas: expected,
    timeToExpectedReplicasMs: reached ? reached.t - from : Number.NaN,
    p50Ms: percentile(
      answered.map((e) => e.latencyMs),
      50,
    ),
    p99Ms: percentile(
      answered.map((e) => e.latencyMs),
      99,
    ),
    scaledAtMs: scaled ? scaled.t : Number.NaN,
    scaledP50Ms: percentile(once, 50),
    scaledP99Ms: percentile(once, 99),
    peakDeliveredPerSecond: peakPerSecond(events.filter(isDelivered).map((e) => e.sentAt + e.latencyMs)),
    wasmColdStartsMs: extra.wasmColdStartsMs,
  };
}

/** A JSON number (NaN and Infinity are written as null), or null when absent. */
const value = (v: number | null | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * The demo's headline against its bounds: first event → reply, time to N replicas, latency once
 * scaled (a target: near the work time), time back to zero, events sent/acknowledged/echoed,
 * refused and lost. Tolerates reports written before a field existed (their figure is null).
 */
export function demoHeadline(report: DemoReport): HeadlineFigure[] {
  const s = report.summary;
  const profile = report.profile;
  const overload = profile?.overload ?? false;
  const n = value(s.expectedReplicas) ?? value(report.capacity?.neededReplicas) ?? 2;
  const coldBound = profile?.coldStartBoundMs;
  const burstMs = profile ? (profile.burst.count / profile.burst.ratePerSecond) * 1000 : undefined;
  const work = profile?.workMs;
  const figures: HeadlineFigure[] = [
    {
      key: 'first-event-reply',
      label: 'first event → reply, from 0 replicas',
      value: value(s.firstEventLatencyMs),
      unit: 'ms',
      ...(coldBound
        ? { bound: { op: 'max' as const, value: coldBound, note: "the conformance suite's cold-start bound" } }
        : {}),
      better: 'lower',
      source: 'phase one-event',
    },
    {
      key: 'first-event-ready',
      label: 'first event → 1 ready replica',
      value: value(s.zeroToOneMs),
      unit: 'ms',
      ...(coldBound
        ? { bound: { op: 'max' as const, value: coldBound, note: "the conformance suite's cold-start bound" } }
        : {}),
      better: 'lower',
      source: 'phase one-event',
    },
    {
      key: 'time-to-n-replicas',
      label: `time to ${n} ready replica${n === 1 ? '' : 's'} in the burst`,
      value: value(s.timeToExpectedReplicasMs),
      unit: 'ms',
      ...(burstMs ? { bound: { op: 'max' as const, value: burstMs, note: 'while the burst runs' } } : {}),
      better: 'lower',
      source: `phase burst · ${n} = what the load needs at the autoscaler's target`,
    },
    {
      key: 'peak-replicas',
      label: 'peak ready replicas',
      value: value(s.maxReplicas),
      unit: 'replicas',
      bound: {
        op: 'min',
        value: 2,
        note: profile ? `the demo's check; max-scale ${profile.maxScale}` : "the demo's check",
      },
      better: 'higher',
      source: 'phase burst',
    },
  ];
  if (!overload) {
    figures.push({
      key: 'scaled-p50',
      label: 'latency p50 once scaled',
      value: value(s.scaledP50Ms),
      unit: 'ms',
      ...(work
        ? {
            bound: {
              op: 'max' as const,
              value: work * 1.5,
              note: `1.5 × the ${work} ms of work each event asks for`,
              advisory: true,
            },
          }
        : {}),
      better: 'lower',
      source: `events sent after ${n} replicas were ready and nothing was held`,
    });
    figures.push({
      key: 'scaled-p99',
      label: 'latency p99 once scaled',
      value: value(s.scaledP99Ms),
      unit: 'ms',
      better: 'lower',
      source: 'same events',
    });
  }
  figures.push(
    {
      key: 'burst-p50',
      label: 'latency p50 over the whole burst',
      value: value(s.p50Ms),
      unit: 'ms',
      better: 'lower',
      source: 'answered events, scaling up included',
    },
    {
      key: 'burst-p99',
      label: 'latency p99 over the whole burst',
      value: value(s.p99Ms),
      unit: 'ms',
      better: 'lower',
      source: 'answered events, scaling up included',
    },
    {
      key: 'peak-delivered-rate',
      label: 'peak replies per second',
      value: value(s.peakDeliveredPerSecond),
      unit: 'events/s',
      better: 'higher',
      source: report.capacity ? `capacity ${formatValue(report.capacity.eventsPerSecond, 'events/s')}` : 'any second',
    },
    {
      key: 'max-held',
      label: 'peak events held at the gateway',
      value: value(s.maxPending),
      unit: 'events',
      ...(report.gateway
        ? { bound: { op: 'max' as const, value: report.gateway.pendingLimit, note: "the gateway's pending limit" } }
        : {}),
      better: 'lower',
      source: 'sampled every 250 ms',
    },
    {
      key: 'back-to-zero',
      label: 'last event → 0 replicas',
      value: value(s.backToZeroMs),
      unit: 'ms',
      ...(profile
        ? {
            bound: {
              op: 'max' as const,
              value: profile.scaleToZeroTimeoutMs,
              note: `how long the demo waits (cooldown ${profile.cooldownSeconds} s)`,
            },
          }
        : {}),
      better: 'lower',
      source: 'phase cool-down',
    },
    { key: 'events-sent', label: 'events sent', value: value(s.sent), unit: 'events', better: 'none' },
    {
      key: 'events-acknowledged',
      label: 'events acknowledged (2xx)',
      value: value(s.delivered),
      unit: 'events',
      bound: {
        op: 'equal',
        value: s.sent - (overload ? (s.refused ?? 0) : 0),
        note: overload ? 'every event not refused' : 'every event sent',
      },
      better: 'none',
    },
    {
      key: 'events-echoed',
      label: 'events echoed by the function with their own id',
      value: value(s.echoedIds),
      unit: 'events',
      bound: { op: 'equal', value: value(s.delivered) ?? 0, note: 'every event acknowledged' },
      better: 'none',
    },
    {
      key: 'events-refused',
      label: 'events refused with 503 + Retry-After',
      value: value(s.refused),
      unit: 'events',
      bound: overload
        ? { op: 'min', value: 1, note: 'beyond the pending limit the gateway must say "retry later"' }
        : { op: 'equal', value: 0, note: 'the load fits the capacity' },
      better: overload ? 'none' : 'lower',
    },
    {
      key: 'events-lost',
      label: 'events lost',
      value: value(s.lost ?? (s.sent !== undefined && s.echoedIds !== undefined ? s.sent - s.echoedIds : null)),
      unit: 'events',
      bound: { op: 'equal', value: 0 },
      better: 'lower',
      source: 'sent − echoed − refused with 503 + Retry-After',
    },
  );
  return figures;
}

/** A demo report's headline from its JSON (for `--compare`); undefined when it is not one. */
export function demoHeadlineFromJson(json: unknown): HeadlineFigure[] | undefined {
  const record = json as Partial<DemoReport> | null;
  if (typeof record !== 'object' || record === null || typeof record.summary !== 'object' || !record.checks) {
    return undefined;
  }
  return demoHeadline(record as DemoReport);
}

const styled = (style: SeriesStyle | undefined): { style?: SeriesStyle } => (style ? { style } : {});

/** Per-second p50 of answered events (by the second they were sent). */
function p50PerSecond(events: readonly EventOutcome[]): Array<readonly [number, number]> {
  const buckets = new Map<number, number[]>();
  for (const e of events) {
    const key = Math.floor(e.sentAt / 1000);
    const list = buckets.get(key) ?? [];
    list.push(e.latencyMs);
    buckets.set(key, list);
  }
  return [...buckets.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([key, list]) => [key * 1000 + 500, percentile(list, 50)] as const);
}

/** The demo's charts: replicas (steps), events at the gateway (steps), latency per event. */
export function demoCharts(report: DemoReport): ChartSpec[] {
  const origin = report.phases[0]?.start ?? 0;
  const spans = report.phases;
  const markers = report.markers ?? [];
  const charts: ChartSpec[] = [];
  const samples = report.samples;
  if (samples.length >= 3) {
    charts.push({
      id: 'replicas-chart',
      title: 'Replicas over time',
      yLabel: 'replicas',
      origin,
      integer: true,
      spans,
      markers,
      ...(report.profile
        ? { references: [{ value: report.profile.maxScale, label: `max-scale ${report.profile.maxScale}` }] }
        : {}),
      series: [
        {
          name: 'ready replicas',
          kind: 'step',
          points: samples.map((p) => [p.t, p.readyReplicas] as const),
          ...styled(STYLE.ready),
        },
        {
          name: 'desired replicas (spec.replicas)',
          kind: 'step',
          points: samples.map((p) => [p.t, p.desiredReplicas] as const),
          ...styled(STYLE.desired),
        },
      ],
    });
    charts.push({
      id: 'gateway-chart',
      title: 'Events at the gateway: held (waiting for a replica) and in flight',
      yLabel: 'events',
      origin,
      integer: true,
      spans,
      markers,
      ...(report.gateway && report.summary.maxPending > report.gateway.pendingLimit / 2
        ? {
            references: [{ value: report.gateway.pendingLimit, label: `pending limit ${report.gateway.pendingLimit}` }],
          }
        : {}),
      series: [
        { name: 'held', kind: 'step', points: samples.map((p) => [p.t, p.pending] as const), ...styled(STYLE.held) },
        {
          name: 'in flight',
          kind: 'step',
          points: samples.map((p) => [p.t, p.inFlight] as const),
          ...styled(STYLE.inFlight),
        },
      ],
    });
  }
  const answered = report.events.filter(isDelivered);
  const refused = report.events.filter(isRefused);
  if (answered.length >= 3) {
    const series: ChartSeries[] = [
      {
        name: 'answered 200 (one mark per event)',
        kind: 'dots',
        points: answered.map((e) => [e.sentAt, e.latencyMs] as const),
        ...styled(STYLE.answered),
      },
      {
        name: 'p50 per second of the burst',
        kind: 'line',
        points: p50PerSecond(answered.filter((e) => e.phase === 'burst')),
        style: STYLE.p50,
      },
    ];
    if (refused.length > 0) {
      series.push({
        name: 'refused 503 + Retry-After',
        kind: 'dots',
        points: refused.map((e) => [e.sentAt, e.latencyMs] as const),
        style: STYLE.refused,
      });
    }
    charts.push({
      id: 'latency-chart',
      title: 'Latency per event: sent → reply through the gateway',
      yLabel: 'latency (ms)',
      origin,
      spans,
      markers,
      ...(report.profile
        ? { references: [{ value: report.profile.workMs, label: `work per event ${report.profile.workMs} ms` }] }
        : {}),
      series,
    });
  }
  return charts;
}

function describeDemoProfile(p: DemoProfile): string {
  return `${p.name} — ${p.purpose}: ${p.idleMs / 1000} s idle, one event, ${formatValue(p.burst.count, 'events')} at ${p.burst.ratePerSecond}/s (≤ ${p.burst.concurrency} outstanding) with ${p.workMs} ms of work each, max-scale ${p.maxScale}, cooldown ${p.cooldownSeconds} s, gateway pending limit ${p.pendingLimit}`;
}

/** The demo report as the shared report document. */
export function demoDocument(report: DemoReport, previous?: PreviousRun): ReportDocument {
  const checks = Object.entries(report.checks);
  const passed = checks.every(([, ok]) => ok);
  const s = report.summary;
  const notes: string[] = [];
  if (report.capacity) notes.push(capacityText(report.capacity, report.gateway));
  if (s.wasmColdStartsMs.length > 0) {
    notes.push(`Wasm pod starts (created → Ready): ${s.wasmColdStartsMs.map((v) => formatValue(v, 'ms')).join(', ')}.`);
  }
  return {
    title: `Afterlife demo — ${report.function.namespace}/${report.function.name}`,
    passed,
    profile: report.mode,
    verdictLine: `${checks.filter(([, ok]) => ok).length} of ${checks.length} checks passed · profile ${report.mode}`,
    environment: [
      ...environmentFacts(report.environment),
      { label: 'where', value: 'local devcluster, one real node' },
      { label: 'profile', value: report.profile ? describeDemoProfile(report.profile) : report.mode },
      { label: 'function image', value: report.function.image },
      { label: 'run', value: report.finishedAt ? spanText(report.startedAt, report.finishedAt) : report.startedAt },
    ],
    headline: report.headline ? [...report.headline] : demoHeadline(report),
    headlineNotes: notes,
    ...(previous ? { previous } : {}),
    checksTitle: 'Checks',
    checks: checks.map(([name, ok]) => ({ name, ok })),
    sections: [
      {
        id: 'timeline',
        title: 'idle → one event → burst → cool-down',
        state: passed ? 'passed' : 'failed',
        summary: `${formatValue(report.samples.length, 'count')} samples every 250 ms, ${formatValue(report.events.length, 'events')}; time in seconds from the start of the idle phase, phases shaded`,
        facts: report.phases.map((p) => ({
          label: `phase ${p.name}`,
          value: `${((p.start - (report.phases[0]?.start ?? 0)) / 1000).toFixed(1)} s → ${((p.end - (report.phases[0]?.start ?? 0)) / 1000).toFixed(1)} s`,
        })),
        notes: [],
        charts: demoCharts(report),
        ...(report.waterfall && report.waterfall.length > 0
          ? {
              waterfall: {
                id: 'cold-start-waterfall',
                title: 'Cold start, step by step',
                origin: report.waterfall[0]?.start ?? 0,
                steps: report.waterfall,
              },
            }
          : {}),
      },
    ],
  };
}

export function renderHtml(report: DemoReport, options: { previous?: PreviousRun } = {}): string {
  return renderReport(demoDocument(report, options.previous));
}

export async function writeReport(
  dir: string,
  report: DemoReport,
  options: { previous?: PreviousRun } = {},
): Promise<{ json: string; html: string }> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, 'demo-report.json');
  const html = join(dir, 'demo-report.html');
  const withHeadline: DemoReport = { ...report, headline: report.headline ?? demoHeadline(report) };
  await writeFile(json, `${JSON.stringify(withHeadline, null, 2)}\n`);
  await writeFile(html, renderHtml(withHeadline, options));
  return { json, html };
}
