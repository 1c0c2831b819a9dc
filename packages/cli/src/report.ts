import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type EventOutcome, percentile, svgChart } from '@afterlife/conformance';

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

export interface DemoSummary {
  readonly sent: number;
  readonly delivered: number;
  readonly failed: number;
  readonly echoedIds: number;
  readonly maxReplicas: number;
  readonly firstEventLatencyMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly zeroToOneMs: number;
  readonly backToZeroMs: number;
  readonly wasmColdStartsMs: readonly number[];
}

export interface DemoReport {
  readonly startedAt: string;
  readonly mode: 'short' | 'full';
  readonly function: { readonly namespace: string; readonly name: string; readonly image: string };
  readonly checks: Readonly<Record<string, boolean>>;
  readonly summary: DemoSummary;
  readonly phases: readonly PhaseSpan[];
  readonly samples: readonly Sample[];
  readonly events: readonly EventOutcome[];
}

export function summarize(
  samples: readonly Sample[],
  events: readonly EventOutcome[],
  extra: { firstEventLatencyMs: number; zeroToOneMs: number; backToZeroMs: number; wasmColdStartsMs: number[] },
): DemoSummary {
  const ok = events.filter((event) => event.status >= 200 && event.status < 300);
  const latencies = ok.map((event) => event.latencyMs);
  return {
    sent: events.length,
    delivered: ok.length,
    failed: events.length - ok.length,
    echoedIds: events.filter((event) => event.echoedId === event.id).length,
    maxReplicas: Math.max(0, ...samples.map((sample) => sample.readyReplicas)),
    firstEventLatencyMs: extra.firstEventLatencyMs,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    zeroToOneMs: extra.zeroToOneMs,
    backToZeroMs: extra.backToZeroMs,
    wasmColdStartsMs: extra.wasmColdStartsMs,
  };
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}

export function renderHtml(report: DemoReport): string {
  const s = report.summary;
  const rows: Array<[string, string]> = [
    ['events sent', String(s.sent)],
    ['delivered (2xx)', String(s.delivered)],
    ['ids echoed back by the function', String(s.echoedIds)],
    ['failed', String(s.failed)],
    ['max ready replicas', String(s.maxReplicas)],
    ['first event → reply (cold)', `${s.firstEventLatencyMs.toFixed(0)} ms`],
    ['first event → 1 ready replica', `${s.zeroToOneMs.toFixed(0)} ms`],
    ['latency p50 / p99', `${s.p50Ms.toFixed(1)} / ${s.p99Ms.toFixed(1)} ms`],
    ['idle → 0 replicas', `${(s.backToZeroMs / 1000).toFixed(1)} s`],
    ['Wasm pod starts (created → Ready)', s.wasmColdStartsMs.map((v) => `${v.toFixed(0)} ms`).join(', ') || '—'],
  ];
  const checks = Object.entries(report.checks)
    .map(([name, ok]) => `<li class="${ok ? 'ok' : 'fail'}">${ok ? '✔' : '✘'} ${escapeXml(name)}</li>`)
    .join('');
  const replicas = svgChart(
    'Replicas and held events over time',
    [
      { name: 'ready replicas', color: '#1f77b4', points: report.samples.map((p) => [p.t, p.readyReplicas]) },
      { name: 'desired replicas', color: '#9467bd', points: report.samples.map((p) => [p.t, p.desiredReplicas]) },
      { name: 'pending (held)', color: '#ff7f0e', points: report.samples.map((p) => [p.t, p.pending]) },
    ],
    { id: 'replicas-chart', phases: report.phases, yLabel: 'count' },
  );
  const latency = svgChart(
    'Event latency (send → function reply through the gateway)',
    [
      {
        name: 'latency per event (ms)',
        color: '#2ca02c',
        dots: true,
        points: report.events.filter((e) => e.status === 200).map((e) => [e.sentAt, e.latencyMs]),
      },
    ],
    { id: 'latency-chart', phases: report.phases, yLabel: 'ms' },
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Afterlife demo report</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse}td{padding:.25rem .75rem;border-bottom:1px solid #eee}li.ok{color:#1a7f37}li.fail{color:#cf222e}figure{margin:1.5rem 0}figcaption{font-weight:600;margin-bottom:.5rem}</style>
</head><body>
<h1>Afterlife demo — ${escapeXml(report.function.namespace)}/${escapeXml(report.function.name)}</h1>
<p>Started ${escapeXml(report.startedAt)} · mode ${report.mode} · image <code>${escapeXml(report.function.image)}</code></p>
<h2>Checks</h2><ul>${checks}</ul>
<h2>Summary</h2><table>${rows.map(([k, v]) => `<tr><td>${escapeXml(k)}</td><td>${escapeXml(v)}</td></tr>`).join('')}</table>
${replicas}
${latency}
</body></html>
`;
}

export async function writeReport(dir: string, report: DemoReport): Promise<{ json: string; html: string }> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, 'demo-report.json');
  const html = join(dir, 'demo-report.html');
  await writeFile(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(html, renderHtml(report));
  return { json, html };
}
