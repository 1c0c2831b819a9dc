import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type EventOutcome, percentile } from '@afterlife/conformance';

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

const WIDTH = 900;
const HEIGHT = 260;
const PAD = { left: 50, right: 20, top: 20, bottom: 30 };

function escapeXml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}

/** A line/scatter chart as inline SVG: no scripts, no external assets, renders anywhere. */
function chart(
  id: string,
  title: string,
  series: ReadonlyArray<{ name: string; color: string; points: ReadonlyArray<[number, number]>; dots?: boolean }>,
  phases: readonly PhaseSpan[],
  yLabel: string,
): string {
  const all = series.flatMap((s) => s.points);
  // Time runs from the first phase (cluster start-up before it is not interesting).
  const minX = Math.min(...phases.map((p) => p.start), ...all.map(([px]) => px));
  const maxX = Math.max(minX + 1, ...all.map(([px]) => px), ...phases.map((p) => p.end));
  const maxY = Math.max(1, ...all.map(([, y]) => y)) * 1.1;
  const x = (v: number) => PAD.left + ((v - minX) / (maxX - minX)) * (WIDTH - PAD.left - PAD.right);
  const y = (v: number) => HEIGHT - PAD.bottom - (v / maxY) * (HEIGHT - PAD.top - PAD.bottom);
  const phaseBands = phases
    .map(
      (p, i) =>
        `<rect x="${x(p.start).toFixed(1)}" y="${PAD.top}" width="${Math.max(1, x(p.end) - x(p.start)).toFixed(1)}" height="${HEIGHT - PAD.top - PAD.bottom}" fill="${i % 2 ? '#f4f4f8' : '#eef4fb'}"/><text x="${(x(p.start) + 3).toFixed(1)}" y="${PAD.top + 12}" font-size="11" fill="#555">${escapeXml(p.name)}</text>`,
    )
    .join('');
  const lines = series
    .map((s) => {
      if (s.dots) {
        return s.points
          .map(
            ([px, py]) =>
              `<circle class="point" cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="2" fill="${s.color}"/>`,
          )
          .join('');
      }
      const d = s.points.map(([px, py], i) => `${i ? 'L' : 'M'}${x(px).toFixed(1)},${y(py).toFixed(1)}`).join('');
      return `<path class="series" d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`;
    })
    .join('');
  const legend = series
    .map(
      (s, i) =>
        `<rect x="${PAD.left + i * 150}" y="${HEIGHT - 12}" width="10" height="10" fill="${s.color}"/><text x="${PAD.left + i * 150 + 14}" y="${HEIGHT - 3}" font-size="11">${escapeXml(s.name)}</text>`,
    )
    .join('');
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const v = (maxY / 1.1) * f;
      return `<text x="${PAD.left - 6}" y="${y(v) + 4}" font-size="10" text-anchor="end">${v >= 10 ? v.toFixed(0) : v.toFixed(1)}</text><line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`;
    })
    .join('');
  return `<figure><figcaption>${escapeXml(title)}</figcaption><svg id="${id}" xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escapeXml(title)}">${phaseBands}${ticks}<text x="12" y="${PAD.top + 10}" font-size="10" transform="rotate(-90 12 ${PAD.top + 10})" text-anchor="end">${escapeXml(yLabel)}</text>${lines}${legend}<text x="${WIDTH - PAD.right}" y="${HEIGHT - PAD.bottom + 14}" font-size="10" text-anchor="end">seconds → ${((maxX - minX) / 1000).toFixed(0)}</text></svg></figure>`;
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
    ['Wasm pod cold starts (bound → ready)', s.wasmColdStartsMs.map((v) => `${v.toFixed(0)} ms`).join(', ') || '—'],
  ];
  const checks = Object.entries(report.checks)
    .map(([name, ok]) => `<li class="${ok ? 'ok' : 'fail'}">${ok ? '✔' : '✘'} ${escapeXml(name)}</li>`)
    .join('');
  const replicas = chart(
    'replicas-chart',
    'Replicas and held events over time',
    [
      { name: 'ready replicas', color: '#1f77b4', points: report.samples.map((p) => [p.t, p.readyReplicas]) },
      { name: 'desired replicas', color: '#9467bd', points: report.samples.map((p) => [p.t, p.desiredReplicas]) },
      { name: 'pending (held)', color: '#ff7f0e', points: report.samples.map((p) => [p.t, p.pending]) },
    ],
    report.phases,
    'count',
  );
  const latency = chart(
    'latency-chart',
    'Event latency (send → function reply through the gateway)',
    [
      {
        name: 'latency per event (ms)',
        color: '#2ca02c',
        dots: true,
        points: report.events.filter((e) => e.status === 200).map((e) => [e.sentAt, e.latencyMs]),
      },
    ],
    report.phases,
    'ms',
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
