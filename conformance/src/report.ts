import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReplicaSample } from './context.ts';
import type { ReportEnvironment } from './environment.ts';
import { type TestResult, toJUnitXml } from './junit.ts';
import { type EventOutcome, isDelivered, isRefused } from './load.ts';
import type { PreflightResult } from './preflight.ts';
import { PROFILES, type Profile } from './profile.ts';
import {
  type ChartMarker,
  type ChartSpec,
  type Fact,
  formatValue,
  type HeadlineFigure,
  type PreviousRun,
  type ReportDocument,
  type ReportSection,
  renderReport,
  SERIES_STYLES,
  type SeriesStyle,
  type Unit,
  type WaterfallStep,
} from './render.ts';

export interface ScenarioReport {
  readonly id: string;
  readonly title: string;
  readonly state: TestResult['state'];
  readonly durationMs: number;
  readonly error?: string;
  readonly metrics: Readonly<Record<string, number | string | boolean>>;
  readonly notes: readonly string[];
  readonly deployment: string;
  /** ms since the run started. */
  readonly start: number;
  readonly end: number;
  readonly samples: readonly ReplicaSample[];
  readonly events: readonly EventOutcome[];
  /** Phase boundaries and faults drawn on the charts (absent in reports before markers existed). */
  readonly markers?: readonly ChartMarker[];
  /** Cold-start steps, when the scenario records them. */
  readonly waterfall?: readonly WaterfallStep[];
}

/** The JSON result (`conformance.json`). */
export interface ConformanceResult {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly mode: 'local' | 'cluster';
  readonly profile: string;
  /** The profile as run (with command-line overrides). */
  readonly settings?: Profile;
  readonly namespace: string;
  readonly image: string;
  readonly passed: boolean;
  readonly counts: {
    readonly tests: number;
    readonly passed: number;
    readonly failed: number;
    readonly skipped: number;
  };
  readonly environment?: ReportEnvironment;
  /** The headline figures against their bounds (what `--compare` reads from a previous run). */
  readonly headline?: readonly HeadlineFigure[];
  readonly preflight: readonly PreflightResult[];
  readonly scenarios: readonly ScenarioReport[];
}

/** Labels and units of the scenario metrics, in the order the report lists them; `hidden` ones are in the JSON only. */
const METRIC_LABELS: Readonly<Record<string, { label: string; unit?: Unit | 'text'; hidden?: boolean }>> = {
  deployment: { label: 'revision Deployment', unit: 'text' },
  variant: { label: 'Wasm variant annotation', unit: 'text' },
  autoscalingClass: { label: 'autoscaling class', unit: 'text' },
  scalerAddress: { label: 'scaler address (ScaledObject trigger)', unit: 'text' },
  firstEventLatencyMs: { label: 'first event → reply', unit: 'ms' },
  zeroToReadyMs: { label: 'first event → 1 ready replica', unit: 'ms' },
  podsWithRuntimeClass: { label: 'pods running with the runtime class', unit: 'count' },
  sent: { label: 'events sent', unit: 'events' },
  delivered: { label: 'events answered 200', unit: 'events' },
  acknowledged: { label: 'events acknowledged (200)', unit: 'events' },
  echoed: { label: 'ids echoed back by the function', unit: 'events' },
  gatewayDeliveries: { label: 'deliveries counted by the gateway', unit: 'events' },
  maxReadyReplicas: { label: 'peak ready replicas', unit: 'replicas' },
  maxDesiredReplicas: { label: 'peak desired replicas (spec.replicas)', unit: 'replicas' },
  timeToExpectedReplicasMs: { label: 'time to the expected replicas', unit: 'ms' },
  p50Ms: { label: 'latency p50', unit: 'ms' },
  p99Ms: { label: 'latency p99', unit: 'ms' },
  idleToZeroMs: { label: 'last event → 0 replicas', unit: 'ms' },
  boundMs: { label: 'bound for scale to zero', unit: 'ms' },
  threshold: { label: 'activation threshold', unit: 'events' },
  eventsSent: { label: 'events sent below the threshold', unit: 'events' },
  answeredEarly: { label: 'answered before the observation ended', unit: 'events' },
  maxPendingAtGateway: { label: 'peak events held at the gateway', unit: 'events' },
  observedSeconds: { label: 'observed for', unit: 's' },
  skipped: { label: 'not run', unit: 'text' },
  loadEndedAtMs: { label: 'load ended at', hidden: true },
  deliveredVia: { label: 'first event delivered on', unit: 'text' },
  faults: { label: 'faults injected', unit: 'text' },
};

/** `trace.<hop>Ms`: the cold-start hops, drawn as the waterfall; in the JSON as numbers too. */
const TRACE_METRIC_PREFIX = 'trace.';
/** `fault.<id>.<figure>`: each fault's timeline, in the notes and on the chart as markers; in the JSON as numbers. */
const FAULT_METRIC_PREFIX = 'fault.';

/** "firstEventLatencyMs" → "first event latency" with the unit its suffix names. */
function metricFact(key: string, value: number | string | boolean): Fact | undefined {
  const known = METRIC_LABELS[key];
  if (known?.hidden || key.startsWith(TRACE_METRIC_PREFIX) || key.startsWith(FAULT_METRIC_PREFIX)) return undefined;
  const unit: Unit | 'text' =
    known?.unit ?? (/Ms$/.test(key) ? 'ms' : /Seconds$/.test(key) ? 's' : typeof value === 'number' ? 'count' : 'text');
  const label =
    known?.label ??
    key
      .replace(/(Ms|Seconds)$/, '')
      .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
      .toLowerCase();
  const text = typeof value === 'number' && unit !== 'text' ? formatValue(value, unit) : String(value);
  return { label, value: text };
}

const scenario = (result: ConformanceResult, id: string) => result.scenarios.find((s) => s.id === id);
const metric = (result: ConformanceResult, id: string, key: string): number | null => {
  const value = scenario(result, id)?.metrics[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
};

/** Events sent, acknowledged, echoed and lost over every scenario. */
export function eventTotals(events: readonly EventOutcome[]): {
  sent: number;
  acknowledged: number;
  echoed: number;
  refused: number;
  lost: number;
} {
  const sent = events.length;
  const acknowledged = events.filter(isDelivered).length;
  const echoed = events.filter((e) => isDelivered(e) && e.echoedId === e.id).length;
  const refused = events.filter(isRefused).length;
  return { sent, acknowledged, echoed, refused, lost: sent - echoed - refused };
}

/**
 * The headline figures of a conformance run against the suite's bounds: first event → reply,
 * time to N replicas, time back to zero, events sent/acknowledged/echoed, lost = 0.
 */
export function conformanceHeadline(result: ConformanceResult): HeadlineFigure[] {
  const profile = result.settings ?? PROFILES[result.profile as Profile['name']] ?? PROFILES.short;
  const coldMs = profile.coldStartTimeoutSeconds * 1000;
  const expected = profile.expectedReplicas;
  const zeroBound = metric(result, 'scale-to-zero', 'boundMs');
  const totals = eventTotals(result.scenarios.flatMap((s) => s.events));
  const ran = result.scenarios.length > 0;
  return [
    {
      key: 'first-event-reply',
      label: 'first event → reply, from 0 replicas',
      value: metric(result, 'scale-from-zero', 'firstEventLatencyMs'),
      unit: 'ms',
      bound: { op: 'max', value: coldMs, note: `the ${profile.name} profile's cold-start bound` },
      better: 'lower',
      source: 'scenario 2 · scale from zero',
    },
    {
      key: 'first-event-ready',
      label: 'first event → 1 ready replica',
      value: metric(result, 'scale-from-zero', 'zeroToReadyMs'),
      unit: 'ms',
      bound: { op: 'max', value: coldMs, note: `the ${profile.name} profile's cold-start bound` },
      better: 'lower',
      source: 'scenario 2 · scale from zero',
    },
    {
      key: 'time-to-n-replicas',
      label: `time to ${expected} ready replicas under load`,
      value: metric(result, 'scale-up', 'timeToExpectedReplicasMs'),
      unit: 'ms',
      bound: {
        op: 'max',
        value: (profile.load.durationSeconds + 2) * 1000,
        note: `while ${profile.load.ratePerSecond} events/s run for ${profile.load.durationSeconds} s (+2 s)`,
      },
      better: 'lower',
      source: 'scenario 3 · scale up',
    },
    {
      key: 'peak-replicas',
      label: 'peak ready replicas under load',
      value: metric(result, 'scale-up', 'maxReadyReplicas'),
      unit: 'replicas',
      bound: { op: 'min', value: expected, note: 'the expected replicas' },
      better: 'higher',
      source: 'scenario 3 · scale up',
    },
    {
      key: 'load-p50',
      label: 'latency p50 under load',
      value: metric(result, 'scale-up', 'p50Ms'),
      unit: 'ms',
      better: 'lower',
      source: `scenario 3 · ${profile.workMs} ms of work per event, includes scaling up`,
    },
    {
      key: 'load-p99',
      label: 'latency p99 under load',
      value: metric(result, 'scale-up', 'p99Ms'),
      unit: 'ms',
      better: 'lower',
      source: 'scenario 3 · scale up',
    },
    {
      key: 'back-to-zero',
      label: 'last event → 0 replicas',
      value: metric(result, 'scale-to-zero', 'idleToZeroMs'),
      unit: 'ms',
      ...(zeroBound === null
        ? {}
        : {
            bound: {
              op: 'max' as const,
              value: zeroBound,
              note: `cooldown ${profile.cooldownSeconds} s + HPA window 5 s + margin ${profile.scaleToZeroMarginSeconds} s`,
            },
          }),
      better: 'lower',
      source: 'scenario 4 · scale to zero',
    },
    {
      key: 'events-sent',
      label: 'events sent',
      value: ran ? totals.sent : null,
      unit: 'events',
      better: 'none',
      source: 'every scenario',
    },
    {
      key: 'events-acknowledged',
      label: 'events acknowledged (200)',
      value: ran ? totals.acknowledged : null,
      unit: 'events',
      bound: { op: 'equal', value: totals.sent, note: 'every event sent' },
      better: 'none',
      source: 'every scenario',
    },
    {
      key: 'events-echoed',
      label: 'events echoed by the function with their own id',
      value: ran ? totals.echoed : null,
      unit: 'events',
      bound: { op: 'equal', value: totals.sent, note: 'every event sent' },
      better: 'none',
      source: 'every scenario',
    },
    {
      key: 'events-lost',
      label: 'events lost',
      value: ran ? totals.lost : null,
      unit: 'events',
      bound: { op: 'equal', value: 0 },
      better: 'lower',
      source: 'sent − echoed − refused with 503 + Retry-After',
    },
  ];
}

const MIN_CHART_SAMPLES = 3;

/**
 * The charts of one scenario, only for series worth drawing: replicas (step lines) and held
 * events from ≥ 3 samples, latency from ≥ 3 answered events; time in seconds from the scenario's
 * start, with its markers.
 */
export function scenarioCharts(s: ScenarioReport, workMs?: number): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const markers = s.markers ?? [];
  const origin = s.start;
  if (s.samples.length >= MIN_CHART_SAMPLES) {
    charts.push({
      id: `${s.id}-replicas`,
      title: `Replicas of ${s.deployment || 'the function'}`,
      yLabel: 'replicas',
      origin,
      integer: true,
      markers,
      series: [
        { name: 'ready replicas', kind: 'step', points: s.samples.map((p) => [p.t, p.readyReplicas] as const) },
        {
          name: 'desired replicas (spec.replicas)',
          kind: 'step',
          points: s.samples.map((p) => [p.t, p.desiredReplicas] as const),
          style: SERIES_STYLES[1] as SeriesStyle,
        },
      ],
    });
    if (s.samples.some((p) => p.pending > 0)) {
      charts.push({
        id: `${s.id}-held`,
        title: 'Events held at the gateway',
        yLabel: 'events held',
        origin,
        integer: true,
        markers,
        series: [
          {
            name: 'held events',
            kind: 'step',
            points: s.samples.map((p) => [p.t, p.pending] as const),
            style: SERIES_STYLES[2] as SeriesStyle,
          },
        ],
      });
    }
  }
  const answered = s.events.filter(isDelivered);
  if (answered.length >= MIN_CHART_SAMPLES) {
    charts.push({
      id: `${s.id}-latency`,
      title: 'Latency per event: sent → reply through the gateway',
      yLabel: 'latency (ms)',
      origin,
      markers,
      ...(workMs === undefined ? {} : { references: [{ value: workMs, label: `work per event ${workMs} ms` }] }),
      series: [{ name: 'answered 200', kind: 'dots', points: answered.map((e) => [e.sentAt, e.latencyMs] as const) }],
    });
  }
  return charts;
}

function scenarioSection(s: ScenarioReport, profile: Profile | undefined): ReportSection {
  const charts = scenarioCharts(s, s.id === 'scale-up' ? profile?.workMs : s.id === 'no-loss' ? 20 : undefined);
  const facts = Object.entries(s.metrics)
    .map(([k, v]) => metricFact(k, v))
    .filter((f): f is Fact => f !== undefined);
  const maxHeld = Math.max(0, ...s.samples.map((p) => p.pending));
  if (s.samples.length > 0 && !('maxPendingAtGateway' in s.metrics)) {
    facts.push({ label: 'peak events held at the gateway (sampled)', value: formatValue(maxHeld, 'events') });
  }
  const few = s.samples.length > 0 && s.samples.length < MIN_CHART_SAMPLES;
  const toS = (t: number) => ((t - s.start) / 1000).toFixed(1);
  return {
    id: `scenario-${s.id}`,
    title: s.title,
    state: s.state,
    summary: `${formatValue(s.durationMs, 'ms')}${s.events.length ? ` · ${formatValue(s.events.length, 'events')} sent` : ''} · ${formatValue(s.samples.length, 'count')} replica samples`,
    ...(s.error ? { error: s.error } : {}),
    facts,
    notes: s.notes,
    charts,
    ...(few
      ? {
          uncharted: {
            reason: `Only ${s.samples.length} replica sample${s.samples.length === 1 ? '' : 's'} in this scenario: too few to draw over time, so here they are.`,
            table: [
              ['t (s)', 'desired replicas', 'ready replicas', 'held events'],
              ...s.samples.map((p) => [
                toS(p.t),
                String(p.desiredReplicas),
                String(p.readyReplicas),
                String(p.pending),
              ]),
            ],
          },
        }
      : {}),
    ...(s.waterfall && s.waterfall.length > 0
      ? {
          waterfall: {
            id: `${s.id}-waterfall`,
            title: 'Cold start, step by step',
            origin: s.start,
            steps: s.waterfall,
          },
        }
      : {}),
  };
}

function describeProfile(p: Profile): string {
  return `${p.name}: ${p.load.ratePerSecond} events/s for ${p.load.durationSeconds} s (≤ ${p.load.concurrency} outstanding), ${p.workMs} ms of work each, expect ≥ ${p.expectedReplicas} replicas; KEDA cooldown ${p.cooldownSeconds} s; ${p.lossEvents} events for the no-loss check`;
}

/** Environment rows shared by the conformance and demo headers. */
export function environmentFacts(env: ReportEnvironment | undefined): Fact[] {
  if (!env) return [{ label: 'versions', value: 'not recorded by this run' }];
  return [
    { label: 'Kubernetes', value: env.kubernetes },
    { label: 'Knative Serving', value: env.knative },
    { label: 'KEDA', value: env.keda },
    { label: 'Wasm nodes', value: env.wasmNodes },
    { label: 'runner', value: env.runner },
  ];
}

/** How long from `start` to `end` (ISO times), for people. */
export function spanText(start: string, end: string): string {
  const ms = Date.parse(end) - Date.parse(start);
  return `${start} → ${end}${Number.isFinite(ms) ? ` (${formatValue(ms, 'ms')})` : ''}`;
}

/** The conformance result as the shared report document. */
export function conformanceDocument(result: ConformanceResult, previous?: PreviousRun): ReportDocument {
  const c = result.counts;
  const settings = result.settings ?? PROFILES[result.profile as Profile['name']];
  return {
    title: 'Afterlife conformance',
    passed: result.passed,
    profile: result.profile,
    verdictLine: `${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped of ${c.tests} (preflight checks and scenarios)`,
    environment: [
      ...environmentFacts(result.environment),
      {
        label: 'where',
        value: result.mode === 'local' ? 'local devcluster (--local), one real node' : 'a cluster (kubeconfig)',
      },
      { label: 'profile', value: settings ? describeProfile(settings) : result.profile },
      { label: 'namespace', value: result.namespace },
      { label: 'workload image', value: result.image },
      { label: 'run', value: spanText(result.startedAt, result.finishedAt) },
    ],
    headline: result.headline ? [...result.headline] : conformanceHeadline(result),
    ...(previous ? { previous } : {}),
    checksTitle: 'Preflight',
    checks: result.preflight.map((p) => ({
      name: p.name,
      ok: p.ok,
      detail: p.message,
      ...(p.fix ? { fix: p.fix } : {}),
    })),
    sections: result.scenarios.map((s) => scenarioSection(s, settings)),
  };
}

export function renderConformanceHtml(result: ConformanceResult, options: { previous?: PreviousRun } = {}): string {
  return renderReport(conformanceDocument(result, options.previous));
}

export interface ReportFiles {
  readonly junit: string;
  readonly json: string;
  readonly html: string;
}

/** Writes `junit.xml`, `conformance.json` and `conformance.html` into `dir`. */
export async function writeReports(
  dir: string,
  result: ConformanceResult,
  tests: readonly TestResult[],
  options: { previous?: PreviousRun } = {},
): Promise<ReportFiles> {
  await mkdir(dir, { recursive: true });
  const files = {
    junit: join(dir, 'junit.xml'),
    json: join(dir, 'conformance.json'),
    html: join(dir, 'conformance.html'),
  };
  const withHeadline: ConformanceResult = { ...result, headline: result.headline ?? conformanceHeadline(result) };
  await writeFile(files.junit, toJUnitXml('afterlife-conformance', tests, new Date(result.startedAt)));
  await writeFile(files.json, `${JSON.stringify(withHeadline, null, 2)}\n`);
  await writeFile(files.html, renderConformanceHtml(withHeadline, options));
  return files;
}
