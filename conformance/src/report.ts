import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReplicaSample } from './context.ts';
import { escapeXml, type TestResult, toJUnitXml } from './junit.ts';
import type { EventOutcome } from './load.ts';
import type { PreflightResult } from './preflight.ts';

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
}

/** The JSON result (`conformance.json`). */
export interface ConformanceResult {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly mode: 'local' | 'cluster';
  readonly profile: string;
  readonly namespace: string;
  readonly image: string;
  readonly passed: boolean;
  readonly counts: {
    readonly tests: number;
    readonly passed: number;
    readonly failed: number;
    readonly skipped: number;
  };
  readonly preflight: readonly PreflightResult[];
  readonly scenarios: readonly ScenarioReport[];
}

const WIDTH = 900;
const HEIGHT = 260;
const PAD = { left: 50, right: 20, top: 20, bottom: 30 };

/** A named span of time shaded behind a chart (e.g. the phases of a load run). */
export interface ChartPhase {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

export interface ChartSeries {
  readonly name: string;
  readonly color: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  /** Points instead of a line (scatter). */
  readonly dots?: boolean;
}

/**
 * A line/scatter chart as inline SVG: no scripts, no external assets, renders anywhere.
 * x is milliseconds, shown from the first phase or point.
 */
export function svgChart(
  title: string,
  series: readonly ChartSeries[],
  options: { id?: string; phases?: readonly ChartPhase[]; yLabel?: string } = {},
): string {
  const phases = options.phases ?? [];
  const yLabel = options.yLabel ?? '';
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return `<p class="empty">${escapeXml(title)}: no data</p>`;
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
  return `<figure><figcaption>${escapeXml(title)}</figcaption><svg${options.id ? ` id="${options.id}"` : ''} class="chart" xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escapeXml(title)}">${phaseBands}${ticks}<text x="12" y="${PAD.top + 10}" font-size="10" transform="rotate(-90 12 ${PAD.top + 10})" text-anchor="end">${escapeXml(yLabel)}</text>${lines}${legend}<text x="${WIDTH - PAD.right}" y="${HEIGHT - PAD.bottom + 14}" font-size="10" text-anchor="end">seconds → ${((maxX - minX) / 1000).toFixed(0)}</text></svg></figure>`;
}

function scenarioHtml(s: ScenarioReport): string {
  const replicas = svgChart(`replicas over time — ${s.deployment || 'n/a'}`, [
    { name: 'ready replicas', color: '#1f77b4', points: s.samples.map((p) => [p.t, p.readyReplicas] as const) },
    { name: 'desired replicas', color: '#9467bd', points: s.samples.map((p) => [p.t, p.desiredReplicas] as const) },
    { name: 'held events', color: '#ff7f0e', points: s.samples.map((p) => [p.t, p.pending] as const) },
  ]);
  const latency = svgChart('latency per event (ms)', [
    {
      name: 'send → reply',
      color: '#2ca02c',
      dots: true,
      points: s.events.filter((e) => e.status === 200).map((e) => [e.sentAt, e.latencyMs] as const),
    },
  ]);
  const metrics = Object.entries(s.metrics)
    .map(([k, v]) => `<tr><td>${escapeXml(k)}</td><td>${escapeXml(String(v))}</td></tr>`)
    .join('');
  return `<section class="${s.state}"><h2>${s.state === 'passed' ? '✔' : s.state === 'failed' ? '✘' : '–'} ${escapeXml(s.title)}</h2>
<p>${(s.durationMs / 1000).toFixed(1)} s${s.error ? ` — <strong>${escapeXml(s.error)}</strong>` : ''}</p>
<table>${metrics}</table>${s.notes.length ? `<ul>${s.notes.map((n) => `<li><code>${escapeXml(n)}</code></li>`).join('')}</ul>` : ''}
${replicas}${latency}</section>`;
}

export function renderConformanceHtml(result: ConformanceResult): string {
  const preflight = result.preflight
    .map(
      (p) =>
        `<tr class="${p.ok ? 'passed' : 'failed'}"><td>${escapeXml(p.name)}</td><td>${p.ok ? 'ok' : 'FAILED'}</td><td>${escapeXml(p.message)}</td><td>${escapeXml(p.fix)}</td></tr>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Afterlife conformance report</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse}td{padding:.2rem .6rem;border-bottom:1px solid #eee;vertical-align:top}.failed h2,tr.failed{color:#cf222e}.passed h2{color:#1a7f37}section{margin:2rem 0}figcaption{font-weight:600}code{white-space:pre-wrap;word-break:break-all}</style>
</head><body>
<h1>Afterlife conformance — ${result.passed ? 'PASSED' : 'FAILED'}</h1>
<p>${escapeXml(result.startedAt)} → ${escapeXml(result.finishedAt)} · ${result.mode} · profile ${escapeXml(result.profile)} · namespace ${escapeXml(result.namespace)} · image <code>${escapeXml(result.image)}</code></p>
<p>${result.counts.passed} passed, ${result.counts.failed} failed, ${result.counts.skipped} skipped of ${result.counts.tests}</p>
<h2>Preflight</h2><table>${preflight}</table>
${result.scenarios.map(scenarioHtml).join('\n')}
</body></html>
`;
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
): Promise<ReportFiles> {
  await mkdir(dir, { recursive: true });
  const files = {
    junit: join(dir, 'junit.xml'),
    json: join(dir, 'conformance.json'),
    html: join(dir, 'conformance.html'),
  };
  await writeFile(files.junit, toJUnitXml('afterlife-conformance', tests, new Date(result.startedAt)));
  await writeFile(files.json, `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(files.html, renderConformanceHtml(result));
  return files;
}
