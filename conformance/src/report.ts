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

const W = 860;
const H = 220;
const P = { l: 48, r: 16, t: 16, b: 28 };

/** A small inline-SVG line/dot chart (same style as the demo report's charts). */
export function svgChart(
  title: string,
  series: ReadonlyArray<{
    name: string;
    color: string;
    points: ReadonlyArray<readonly [number, number]>;
    dots?: boolean;
  }>,
): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return `<p class="empty">${escapeXml(title)}: no data</p>`;
  const minX = Math.min(...all.map(([x]) => x));
  const maxX = Math.max(minX + 1, ...all.map(([x]) => x));
  const maxY = Math.max(1, ...all.map(([, y]) => y)) * 1.1;
  const x = (v: number) => P.l + ((v - minX) / (maxX - minX)) * (W - P.l - P.r);
  const y = (v: number) => H - P.b - (v / maxY) * (H - P.t - P.b);
  const grid = [0, 0.5, 1]
    .map((f) => {
      const v = (maxY / 1.1) * f;
      return `<line x1="${P.l}" x2="${W - P.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/><text x="${P.l - 4}" y="${(y(v) + 4).toFixed(1)}" font-size="10" text-anchor="end">${v >= 10 ? v.toFixed(0) : v.toFixed(1)}</text>`;
    })
    .join('');
  const lines = series
    .map((s) =>
      s.dots
        ? s.points
            .map(([px, py]) => `<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="2" fill="${s.color}"/>`)
            .join('')
        : `<path d="${s.points.map(([px, py], i) => `${i ? 'L' : 'M'}${x(px).toFixed(1)},${y(py).toFixed(1)}`).join('')}" fill="none" stroke="${s.color}" stroke-width="2"/>`,
    )
    .join('');
  const legend = series
    .map(
      (s, i) =>
        `<rect x="${P.l + i * 150}" y="${H - 11}" width="9" height="9" fill="${s.color}"/><text x="${P.l + i * 150 + 13}" y="${H - 3}" font-size="11">${escapeXml(s.name)}</text>`,
    )
    .join('');
  return `<figure><figcaption>${escapeXml(title)}</figcaption><svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeXml(title)}">${grid}${lines}${legend}<text x="${W - P.r}" y="${H - P.b + 14}" font-size="10" text-anchor="end">${((maxX - minX) / 1000).toFixed(1)} s</text></svg></figure>`;
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
