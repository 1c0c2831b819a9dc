import { escapeXml } from './junit.ts';

/**
 * The one HTML report renderer of Afterlife: the conformance report and the demo report are both a
 * `ReportDocument` rendered by `renderReport`. Self-contained HTML (inline SVG and CSS, no script,
 * no external asset), readable printed in greyscale and with any colour-vision deficiency: colours
 * from the Okabe–Ito palette, every series also told apart by its dash pattern or marker shape,
 * every chart followed by its data as a table.
 */

/** Okabe & Ito's palette: told apart with every common colour-vision deficiency. */
export const PALETTE = Object.freeze({
  black: '#000000',
  orange: '#E69F00',
  skyBlue: '#56B4E9',
  green: '#009E73',
  yellow: '#F0E442',
  blue: '#0072B2',
  vermillion: '#D55E00',
  purple: '#CC79A7',
});

export type Unit = 'ms' | 's' | 'count' | 'events' | 'replicas' | 'events/s' | 'percent';

/** What a headline figure must be for the run to be good. */
export interface Bound {
  /** `max`: value ≤ bound; `min`: value ≥ bound; `equal`: value = bound. */
  readonly op: 'max' | 'min' | 'equal';
  readonly value: number;
  /** Where the bound comes from, e.g. "cooldown 5 s + HPA window 5 s + margin 40 s". */
  readonly note?: string;
  /** A target the run is held against but that fails nothing (shown as "target", not "bound"). */
  readonly advisory?: boolean;
}

/** One number of the headline table, against its bound; `key` identifies it across runs (`--compare`). */
export interface HeadlineFigure {
  readonly key: string;
  readonly label: string;
  /** null: not measured in this run. */
  readonly value: number | null;
  readonly unit: Unit;
  readonly bound?: Bound;
  /** Which way is an improvement (for the comparison with a previous run). */
  readonly better: 'lower' | 'higher' | 'none';
  /** Where the figure comes from (a scenario, a phase). */
  readonly source?: string;
}

/** The headline of an earlier run, for `--compare`. */
export interface PreviousRun {
  /** The file it was read from. */
  readonly file: string;
  readonly startedAt: string;
  /** Its profile, when the file says (figures of different profiles are not alike). */
  readonly profile?: string;
  readonly headline: readonly HeadlineFigure[];
}

export type Verdict = 'met' | 'missed' | 'not measured' | 'no bound';

export function verdict(figure: HeadlineFigure): Verdict {
  if (figure.value === null) return 'not measured';
  const bound = figure.bound;
  if (bound === undefined) return 'no bound';
  const ok =
    bound.op === 'max'
      ? figure.value <= bound.value
      : bound.op === 'min'
        ? figure.value >= bound.value
        : figure.value === bound.value;
  return ok ? 'met' : 'missed';
}

const plural = (n: number, one: string, many: string) => (n === 1 ? one : many);
const grouped = (n: number) => Math.round(n).toLocaleString('en-US');

/** A value in its unit for people: "836 ms", "4.2 s", "1,800 events", "3 replicas". */
export function formatValue(value: number | null | undefined, unit: Unit): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  switch (unit) {
    case 'ms':
      if (Math.abs(value) < 1000) return `${value.toFixed(0)} ms`;
      if (Math.abs(value) >= 10_000 && value % 1000 === 0) return `${value / 1000} s`;
      return `${(value / 1000).toFixed(Math.abs(value) < 10_000 ? 2 : 1)} s`;
    case 's':
      return `${value.toFixed(value < 10 ? 1 : 0)} s`;
    case 'count':
      return grouped(value);
    case 'events':
      return `${grouped(value)} ${plural(Math.round(value), 'event', 'events')}`;
    case 'replicas':
      return `${grouped(value)} ${plural(Math.round(value), 'replica', 'replicas')}`;
    case 'events/s':
      return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} events/s`;
    case 'percent':
      return `${value.toFixed(0)} %`;
  }
}

/** "≤ 60 s", "≥ 2 replicas", "= 600 events". */
export function formatBound(bound: Bound | undefined, unit: Unit): string {
  if (bound === undefined) return '—';
  const op = bound.op === 'max' ? '≤' : bound.op === 'min' ? '≥' : '=';
  return `${op} ${formatValue(bound.value, unit)}`;
}

/** This run's figure next to the previous run's: the change, and whether it is better or worse. */
export function compareFigure(
  figure: HeadlineFigure,
  previous: HeadlineFigure | undefined,
): { previous: string; delta: string; direction: 'better' | 'worse' | 'same' | 'n/a' } {
  if (previous === undefined) return { previous: '(not in that run)', delta: '—', direction: 'n/a' };
  const before = previous.value;
  if (before === null || figure.value === null) {
    return { previous: formatValue(before, previous.unit), delta: '—', direction: 'n/a' };
  }
  const change = figure.value - before;
  const sign = change > 0 ? '+' : change < 0 ? '−' : '±';
  const magnitude = formatValue(
    Math.abs(change),
    figure.unit === 'events' || figure.unit === 'replicas' ? 'count' : figure.unit,
  );
  const relative = before !== 0 && change !== 0 ? ` (${sign}${Math.abs((change / before) * 100).toFixed(0)} %)` : '';
  const direction =
    change === 0 || figure.better === 'none' ? 'same' : change < 0 === (figure.better === 'lower') ? 'better' : 'worse';
  return {
    previous: formatValue(before, previous.unit),
    delta: change === 0 ? 'no change' : `${sign}${magnitude}${relative}`,
    direction: change !== 0 && figure.better === 'none' ? 'n/a' : direction,
  };
}

/** The line that introduces a comparison in the terminal. */
export function previousRunLine(previous: PreviousRun, profile: string): string {
  const other = previous.profile !== undefined && previous.profile !== profile;
  return `compared with ${previous.file} (${previous.startedAt}${previous.profile ? `, profile ${previous.profile}` : ''})${other ? ` — another profile than this ${profile} run: a different load, not directly comparable` : ''}`;
}

/** The headline as plain-text lines (the terminal summary). */
export function headlineLines(headline: readonly HeadlineFigure[], previous?: PreviousRun): string[] {
  const width = Math.max(...headline.map((f) => f.label.length), 10);
  return headline.map((figure) => {
    const v = verdict(figure);
    const mark = v === 'met' ? '✔' : v === 'missed' ? (figure.bound?.advisory ? '△' : '✘') : ' ';
    const bound = figure.bound
      ? `  (${figure.bound.advisory ? 'target' : 'bound'} ${formatBound(figure.bound, figure.unit)})`
      : '';
    let line = `${mark} ${figure.label.padEnd(width)}  ${formatValue(figure.value, figure.unit)}${bound}`;
    if (previous) {
      const c = compareFigure(
        figure,
        previous.headline.find((p) => p.key === figure.key),
      );
      line += `  · previous ${c.previous}${c.delta === '—' ? '' : `, ${c.delta}${c.direction === 'better' || c.direction === 'worse' ? ` ${c.direction}` : ''}`}`;
    }
    return line;
  });
}

// ---------------------------------------------------------------------------------------------
// Charts

/**
 * One series of a chart. `step` for sampled gauges (replicas, held events: the value holds until
 * the next sample), `line` for a continuous quantity, `dots` for one mark per event.
 */
export interface ChartSeries {
  readonly name: string;
  readonly kind: 'step' | 'line' | 'dots';
  /** `[t, value]`, t in ms on the report's clock (the chart shows it from `origin`). */
  readonly points: ReadonlyArray<readonly [number, number]>;
  /** Default: the next palette colour, dash pattern and marker. */
  readonly style?: SeriesStyle;
}

export interface SeriesStyle {
  readonly color: string;
  /** SVG `stroke-dasharray` ('' solid). */
  readonly dash: string;
  /** Marker of a `dots` series. */
  readonly marker: 'circle' | 'cross' | 'square' | 'triangle';
}

/** A moment on the time axis: a phase boundary, an injected fault, an event worth pointing at. */
export interface ChartMarker {
  readonly t: number;
  readonly label: string;
  /** `phase`: load start/end and the like; `fault`: a fault injected (chaos scenarios); `event`: anything else. */
  readonly kind: 'phase' | 'fault' | 'event';
}

/** A shaded span of the time axis (a phase of the run). */
export interface ChartSpan {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

/** A horizontal reference line (e.g. the work time each event asks for). */
export interface ChartReference {
  readonly value: number;
  readonly label: string;
}

export interface ChartSpec {
  /** Unique in the document; also the `<figure>`'s id. */
  readonly id: string;
  readonly title: string;
  /** The y axis, with its unit: "replicas", "events", "latency (ms)". */
  readonly yLabel: string;
  /** The t shown as 0 s (the scenario's or phase's start). */
  readonly origin: number;
  readonly series: readonly ChartSeries[];
  readonly spans?: readonly ChartSpan[];
  readonly markers?: readonly ChartMarker[];
  readonly references?: readonly ChartReference[];
  /** Whole-number y ticks (counts). */
  readonly integer?: boolean;
  /** How the table fallback groups a `dots` series (ms; default 1000). */
  readonly bucketMs?: number;
}

/** Series styles in order: colour, dash and marker all differ, so any one of them tells series apart. */
export const SERIES_STYLES: readonly SeriesStyle[] = [
  { color: PALETTE.blue, dash: '', marker: 'circle' },
  { color: PALETTE.vermillion, dash: '7 4', marker: 'cross' },
  { color: PALETTE.orange, dash: '2 3', marker: 'square' },
  { color: PALETTE.green, dash: '10 3 2 3', marker: 'triangle' },
  { color: PALETTE.purple, dash: '4 2', marker: 'circle' },
  { color: PALETTE.skyBlue, dash: '1 2', marker: 'cross' },
];

const MARKER_STYLE: Readonly<Record<ChartMarker['kind'], { color: string; dash: string }>> = {
  phase: { color: '#444444', dash: '4 3' },
  fault: { color: PALETTE.vermillion, dash: '' },
  event: { color: '#777777', dash: '1 3' },
};

const W = 900;
const H = 280;
const PAD = { left: 64, right: 16, top: 40, bottom: 40 };
/** Rough width of a 10 px label (no layout engine here). */
const labelWidth = (text: string) => text.length * 5.6 + 6;
const PLOT_W = W - PAD.left - PAD.right;
const PLOT_H = H - PAD.top - PAD.bottom;

/** Round tick steps: 1, 2, 2.5, 5 × 10^k, at most about `count` ticks over `span`. */
function niceStep(span: number, count: number, integer: boolean): number {
  const raw = Math.max(span, 1e-9) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  return integer ? Math.max(1, Math.ceil(step)) : step;
}

function ticks(min: number, max: number, count: number, integer = false): number[] {
  const step = niceStep(max - min, count, integer);
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 1 : 0));
const fixed = (v: number) => v.toFixed(1);

function markerShape(style: SeriesStyle, x: number, y: number, cls = 'point'): string {
  const fill = `fill="${style.color}"`;
  switch (style.marker) {
    case 'circle':
      return `<circle class="${cls}" cx="${fixed(x)}" cy="${fixed(y)}" r="2.5" ${fill}/>`;
    case 'square':
      return `<rect class="${cls}" x="${fixed(x - 2.5)}" y="${fixed(y - 2.5)}" width="5" height="5" ${fill}/>`;
    case 'triangle':
      return `<path class="${cls}" d="M${fixed(x)},${fixed(y - 3)}L${fixed(x + 3)},${fixed(y + 2.5)}L${fixed(x - 3)},${fixed(y + 2.5)}Z" ${fill}/>`;
    case 'cross':
      return `<path class="${cls}" d="M${fixed(x - 3)},${fixed(y - 3)}L${fixed(x + 3)},${fixed(y + 3)}M${fixed(x - 3)},${fixed(y + 3)}L${fixed(x + 3)},${fixed(y - 3)}" stroke="${style.color}" stroke-width="1.5" fill="none"/>`;
  }
}

/** A small legend swatch: the series' line (with its dash) or its marker. */
function swatch(kind: ChartSeries['kind'] | 'marker', style: SeriesStyle): string {
  const body =
    kind === 'dots'
      ? markerShape(style, 14, 6, 'swatch-point')
      : `<line x1="1" x2="27" y1="6" y2="6" stroke="${style.color}" stroke-width="${kind === 'marker' ? 1.5 : 2.5}"${style.dash ? ` stroke-dasharray="${style.dash}"` : ''}/>`;
  return `<svg class="swatch" width="28" height="12" viewBox="0 0 28 12" aria-hidden="true">${body}</svg>`;
}

/**
 * One chart: an inline SVG (series as `<g class="series" data-series data-kind data-points>`,
 * steps drawn with horizontal and vertical segments only), an HTML legend, and the same data as
 * a table in a `<details>`.
 */
export function svgChart(spec: ChartSpec): string {
  const series = spec.series.map((s, i) => ({
    ...s,
    points: [...s.points].sort((a, b) => a[0] - b[0]),
    style: s.style ?? (SERIES_STYLES[i % SERIES_STYLES.length] as SeriesStyle),
  }));
  const all = series.flatMap((s) => s.points);
  const markers = spec.markers ?? [];
  const spans = spec.spans ?? [];
  const references = spec.references ?? [];
  if (all.length === 0) {
    return `<figure class="chart empty" id="${escapeXml(spec.id)}"><figcaption>${escapeXml(spec.title)}</figcaption><p>No data.</p></figure>`;
  }
  const toS = (t: number) => (t - spec.origin) / 1000;
  const xs = [...all.map(([t]) => toS(t)), ...markers.map((m) => toS(m.t))];
  const minX = Math.min(0, ...xs);
  const maxX = Math.max(minX + 1, ...xs, ...spans.map((p) => toS(p.end)));
  const maxData = Math.max(0, ...all.map(([, v]) => v), ...references.map((r) => r.value));
  const step = niceStep(maxData > 0 ? maxData : 1, 5, spec.integer ?? false);
  const maxY = Math.max(step, Math.ceil(maxData / step) * step);
  const yTicks = ticks(0, maxY, 5, spec.integer ?? false);
  const x = (seconds: number) => PAD.left + ((seconds - minX) / (maxX - minX)) * PLOT_W;
  const y = (value: number) => PAD.top + PLOT_H - (value / maxY) * PLOT_H;
  const clampX = (seconds: number) => Math.min(Math.max(seconds, minX), maxX);

  const out: string[] = [];
  out.push(
    `<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${escapeXml(spec.id)}-title">`,
    `<title id="${escapeXml(spec.id)}-title">${escapeXml(spec.title)}</title>`,
  );
  spans.forEach((span, i) => {
    const x0 = x(clampX(toS(span.start)));
    const x1 = x(clampX(toS(span.end)));
    out.push(
      `<rect class="span" x="${fixed(x0)}" y="${PAD.top}" width="${fixed(Math.max(1, x1 - x0))}" height="${PLOT_H}" fill="${i % 2 ? '#f2f2f2' : '#e6e6e6'}"/>`,
    );
    // A span too narrow for its name goes unlabelled (the data table lists every phase).
    if (x1 - x0 >= labelWidth(span.name)) {
      out.push(
        `<text class="span-label" x="${fixed(x0 + 3)}" y="${PAD.top + PLOT_H - 4}" font-size="10" fill="#333">${escapeXml(span.name)}</text>`,
      );
    }
  });
  for (const v of yTicks) {
    out.push(
      `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${fixed(y(v))}" y2="${fixed(y(v))}" stroke="#ccc" stroke-width="0.5"/>`,
      `<text x="${PAD.left - 6}" y="${fixed(y(v) + 3.5)}" font-size="10" text-anchor="end">${num(v)}</text>`,
    );
  }
  for (const s of ticks(minX, maxX, 10)) {
    out.push(
      `<line x1="${fixed(x(s))}" x2="${fixed(x(s))}" y1="${PAD.top + PLOT_H}" y2="${PAD.top + PLOT_H + 4}" stroke="#000"/>`,
      `<text x="${fixed(x(s))}" y="${PAD.top + PLOT_H + 15}" font-size="10" text-anchor="middle">${num(s)}</text>`,
    );
  }
  out.push(
    `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${PAD.top + PLOT_H}" y2="${PAD.top + PLOT_H}" stroke="#000"/>`,
    `<line x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${PAD.top + PLOT_H}" stroke="#000"/>`,
    `<text x="${PAD.left + PLOT_W / 2}" y="${H - 6}" font-size="11" text-anchor="middle">seconds from the start</text>`,
    `<text x="14" y="${PAD.top + PLOT_H / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 14 ${PAD.top + PLOT_H / 2})">${escapeXml(spec.yLabel)}</text>`,
  );
  for (const ref of references) {
    out.push(
      `<g class="reference"><line x1="${PAD.left}" x2="${W - PAD.right}" y1="${fixed(y(ref.value))}" y2="${fixed(y(ref.value))}" stroke="#000" stroke-width="1" stroke-dasharray="1 3"/><text x="${W - PAD.right - 2}" y="${fixed(y(ref.value) - 3)}" font-size="10" text-anchor="end">${escapeXml(ref.label)}</text></g>`,
    );
  }
  for (const s of series) {
    const pts = s.points.map(([t, v]) => [x(toS(t)), y(v)] as const);
    let body: string;
    if (s.kind === 'dots') {
      body = pts.map(([px, py]) => markerShape(s.style, px, py)).join('');
    } else if (s.kind === 'step') {
      // The value holds until the next sample: a horizontal run, then a vertical jump.
      const d = pts
        .map(([px, py], i) => (i === 0 ? `M${fixed(px)},${fixed(py)}` : `H${fixed(px)}V${fixed(py)}`))
        .join('');
      body = `<path class="line" d="${d}" fill="none" stroke="${s.style.color}" stroke-width="2.5"${s.style.dash ? ` stroke-dasharray="${s.style.dash}"` : ''}/>`;
    } else {
      const d = pts.map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${fixed(px)},${fixed(py)}`).join('');
      body = `<path class="line" d="${d}" fill="none" stroke="${s.style.color}" stroke-width="2"${s.style.dash ? ` stroke-dasharray="${s.style.dash}"` : ''}/>`;
    }
    out.push(
      `<g class="series" data-series="${escapeXml(s.name)}" data-kind="${s.kind}" data-points="${s.points.length}">${body}</g>`,
    );
  }
  // Marker labels above the plot, in up to three rows, each in the first row where it overlaps nothing.
  const rowEnds = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
  const placed = markers
    .map((m) => ({ m, mx: x(clampX(toS(m.t))) }))
    .sort((a, b) => a.mx - b.mx)
    .map(({ m, mx }) => {
      const width = labelWidth(m.label);
      // Labels near the right edge run leftwards, so they stay inside the chart.
      const right = mx + width > W - PAD.right;
      const from = right ? mx - width : mx;
      let row = rowEnds.findIndex((end) => end < from);
      if (row === -1) row = rowEnds.indexOf(Math.min(...rowEnds));
      rowEnds[row] = from + width;
      return { m, mx, right, row };
    });
  for (const { m, mx, right, row } of placed) {
    const style = MARKER_STYLE[m.kind];
    out.push(
      `<g class="marker" data-kind="${m.kind}"><line x1="${fixed(mx)}" x2="${fixed(mx)}" y1="${PAD.top - 30 + row * 11}" y2="${PAD.top + PLOT_H}" stroke="${style.color}" stroke-width="1.5"${style.dash ? ` stroke-dasharray="${style.dash}"` : ''}/><text x="${fixed(right ? mx - 3 : mx + 3)}" y="${PAD.top - 30 + row * 11 + 8}" font-size="10"${right ? ' text-anchor="end"' : ''} fill="${style.color === PALETTE.vermillion ? '#a33f00' : '#222'}">${escapeXml(m.label)}</text></g>`,
    );
  }
  out.push('</svg>');

  const legend = [
    ...series.map((s) => `<li>${swatch(s.kind, s.style)} ${escapeXml(s.name)}</li>`),
    ...[...new Set(markers.map((m) => m.kind))].map((kind) => {
      const style = MARKER_STYLE[kind];
      const what = kind === 'phase' ? 'phase boundary' : kind === 'fault' ? 'fault injected' : 'event';
      return `<li>${swatch('marker', { color: style.color, dash: style.dash, marker: 'circle' })} ${what}</li>`;
    }),
  ].join('');
  return `<figure class="chart" id="${escapeXml(spec.id)}" data-series-count="${series.length}"><figcaption>${escapeXml(spec.title)}</figcaption>${out.join('')}<ul class="legend">${legend}</ul>${chartTable(spec, series)}</figure>`;
}

/**
 * The chart's data as a table: step and line series merged on their sample times, `dots` series
 * grouped per `bucketMs` (count, p50, max), markers listed after.
 */
function chartTable(spec: ChartSpec, series: ReadonlyArray<ChartSeries & { style: SeriesStyle }>): string {
  const toS = (t: number) => ((t - spec.origin) / 1000).toFixed(1);
  const parts: string[] = [];
  const lines = series.filter((s) => s.kind !== 'dots');
  if (lines.length > 0) {
    const times = [...new Set(lines.flatMap((s) => s.points.map(([t]) => t)))].sort((a, b) => a - b);
    const byT = lines.map((s) => new Map(s.points.map(([t, v]) => [t, v])));
    const head = `<tr><th scope="col">t (s)</th>${lines.map((s) => `<th scope="col">${escapeXml(s.name)}</th>`).join('')}</tr>`;
    const rows = times
      .map(
        (t) =>
          `<tr><td>${toS(t)}</td>${byT.map((m) => `<td>${m.has(t) ? num(m.get(t) as number) : ''}</td>`).join('')}</tr>`,
      )
      .join('');
    parts.push(`<table class="data"><thead>${head}</thead><tbody>${rows}</tbody></table>`);
  }
  const bucket = spec.bucketMs ?? 1000;
  for (const s of series.filter((d) => d.kind === 'dots')) {
    const groups = new Map<number, number[]>();
    for (const [t, v] of s.points) {
      const key = Math.floor((t - spec.origin) / bucket);
      const list = groups.get(key) ?? [];
      list.push(v);
      groups.set(key, list);
    }
    const rows = [...groups.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([key, values]) => {
        const sorted = [...values].sort((a, b) => a - b);
        const p50 = sorted[Math.max(0, Math.ceil(sorted.length / 2) - 1)] ?? 0;
        return `<tr><td>${((key * bucket) / 1000).toFixed(1)}–${(((key + 1) * bucket) / 1000).toFixed(1)}</td><td>${values.length}</td><td>${num(p50)}</td><td>${num(sorted.at(-1) ?? 0)}</td></tr>`;
      })
      .join('');
    parts.push(
      `<table class="data"><caption>${escapeXml(s.name)}, per ${num(bucket / 1000)} s</caption><thead><tr><th scope="col">t (s)</th><th scope="col">events</th><th scope="col">p50</th><th scope="col">max</th></tr></thead><tbody>${rows}</tbody></table>`,
    );
  }
  const marks = [
    ...(spec.spans ?? []).map((p) => [p.start, `${p.name} (phase, until ${toS(p.end)} s)`] as const),
    ...(spec.markers ?? []).map((m) => [m.t, `${m.label} (${m.kind})`] as const),
  ].sort((a, b) => a[0] - b[0]);
  if (marks.length > 0) {
    parts.push(
      `<table class="data"><caption>markers</caption><thead><tr><th scope="col">t (s)</th><th scope="col">what</th></tr></thead><tbody>${marks.map(([t, what]) => `<tr><td>${toS(t)}</td><td>${escapeXml(what)}</td></tr>`).join('')}</tbody></table>`,
    );
  }
  return `<details class="table-fallback"><summary>Data of this chart as a table</summary>${parts.join('')}</details>`;
}

/** One step of a cold start (the waterfall: webhook → revision → pod → ready → first reply). */
export interface WaterfallStep {
  readonly label: string;
  /** ms on the report's clock. */
  readonly start: number;
  readonly end: number;
}

export interface WaterfallSpec {
  readonly id: string;
  readonly title: string;
  /** The t shown as 0 ms. */
  readonly origin: number;
  readonly steps: readonly WaterfallStep[];
}

/** A cold-start waterfall: one bar per step on a common time axis, and its table. */
export function svgWaterfall(spec: WaterfallSpec): string {
  if (spec.steps.length === 0) return '';
  const rowH = 22;
  const height = PAD.top + spec.steps.length * rowH + 30;
  const labelW = 220;
  const end = Math.max(1, ...spec.steps.map((s) => s.end - spec.origin));
  // Room right of the longest bar for its duration label ("1.10 s").
  const valueW = 52;
  const x = (t: number) => labelW + ((t - spec.origin) / end) * (W - labelW - PAD.right - valueW);
  const bars = spec.steps
    .map((s, i) => {
      const y0 = PAD.top + i * rowH;
      return `<g class="step"><text x="${labelW - 6}" y="${y0 + 14}" font-size="11" text-anchor="end">${escapeXml(s.label)}</text><rect x="${fixed(x(s.start))}" y="${y0 + 3}" width="${fixed(Math.max(1, x(s.end) - x(s.start)))}" height="${rowH - 6}" fill="${PALETTE.blue}"/><text x="${fixed(x(s.end) + 4)}" y="${y0 + 14}" font-size="10">${formatValue(s.end - s.start, 'ms')}</text></g>`;
    })
    .join('');
  const rows = spec.steps
    .map(
      (s) =>
        `<tr><td>${escapeXml(s.label)}</td><td>${formatValue(s.start - spec.origin, 'ms')}</td><td>${formatValue(s.end - s.start, 'ms')}</td></tr>`,
    )
    .join('');
  return `<figure class="waterfall" id="${escapeXml(spec.id)}"><figcaption>${escapeXml(spec.title)}</figcaption><svg class="plot" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" role="img" aria-label="${escapeXml(spec.title)}">${bars}</svg><details class="table-fallback"><summary>Data of this chart as a table</summary><table class="data"><thead><tr><th scope="col">step</th><th scope="col">starts at</th><th scope="col">takes</th></tr></thead><tbody>${rows}</tbody></table></details></figure>`;
}

// ---------------------------------------------------------------------------------------------
// The document

export interface Fact {
  readonly label: string;
  readonly value: string;
}

export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail?: string;
  /** How to fix it (failed checks). */
  readonly fix?: string;
}

export interface ReportSection {
  readonly id: string;
  readonly title: string;
  readonly state: 'passed' | 'failed' | 'skipped';
  /** One line under the title (duration, what it did). */
  readonly summary?: string;
  readonly error?: string;
  readonly facts: readonly Fact[];
  readonly notes: readonly string[];
  readonly charts: readonly ChartSpec[];
  /** Why a time series is not charted, with its few samples as a table instead. */
  readonly uncharted?: { readonly reason: string; readonly table: readonly (readonly string[])[] };
  readonly waterfall?: WaterfallSpec;
}

export interface ReportDocument {
  /** "Afterlife conformance", "Afterlife demo". */
  readonly title: string;
  readonly passed: boolean;
  /** "14 passed, 0 failed, 0 skipped of 14". */
  readonly verdictLine: string;
  /** The profile's name (to warn when comparing with a run of another profile). */
  readonly profile?: string;
  /** Environment and versions, shown first. */
  readonly environment: readonly Fact[];
  readonly headline: readonly HeadlineFigure[];
  /** Under the headline table (e.g. the capacity the chosen maximum gives). */
  readonly headlineNotes?: readonly string[];
  readonly previous?: PreviousRun;
  readonly checksTitle?: string;
  readonly checks?: readonly Check[];
  readonly sections: readonly ReportSection[];
}

const VERDICT_TEXT: Readonly<Record<Verdict, string>> = {
  met: '✔ within',
  missed: '✘ outside',
  'not measured': '– not measured',
  'no bound': '',
};

function headlineTable(doc: ReportDocument): string {
  const previous = doc.previous;
  const head = `<tr><th scope="col">figure</th><th scope="col">this run</th><th scope="col">bound</th><th scope="col">verdict</th>${previous ? '<th scope="col">previous run</th><th scope="col">change</th>' : ''}</tr>`;
  const rows = doc.headline
    .map((f) => {
      const v = verdict(f);
      const advisory = f.bound?.advisory === true;
      const text =
        v === 'missed' && advisory ? '△ above target' : v === 'met' && advisory ? '✔ on target' : VERDICT_TEXT[v];
      const cls = v === 'missed' ? (advisory ? 'advisory' : 'missed') : v === 'met' ? 'met' : 'none';
      const bound = f.bound
        ? `${advisory ? 'target ' : ''}${formatBound(f.bound, f.unit)}${f.bound.note ? `<br><small>${escapeXml(f.bound.note)}</small>` : ''}`
        : '—';
      let cmp = '';
      if (previous) {
        const c = compareFigure(
          f,
          previous.headline.find((p) => p.key === f.key),
        );
        const word = c.direction === 'better' ? ' ▼ better' : c.direction === 'worse' ? ' ▲ worse' : '';
        cmp = `<td>${escapeXml(c.previous)}</td><td class="delta ${c.direction}">${escapeXml(c.delta)}${escapeXml(word)}</td>`;
      }
      return `<tr class="figure ${cls}" data-key="${escapeXml(f.key)}"><th scope="row">${escapeXml(f.label)}${f.source ? `<br><small>${escapeXml(f.source)}</small>` : ''}</th><td class="value">${escapeXml(formatValue(f.value, f.unit))}</td><td>${bound}</td><td class="verdict">${text}</td>${cmp}</tr>`;
    })
    .join('');
  const note = previous
    ? `<p class="compare">Compared with the run of ${escapeXml(previous.startedAt)}${previous.profile ? `, profile ${escapeXml(previous.profile)}` : ''} (<code>${escapeXml(previous.file)}</code>).${previous.profile && doc.profile && previous.profile !== doc.profile ? ` <strong>That run used another profile than this one (${escapeXml(doc.profile)}): its load was different, so its figures are not directly comparable.</strong>` : ''}</p>`
    : '';
  const notes = (doc.headlineNotes ?? []).map((n) => `<p class="note">${escapeXml(n)}</p>`).join('');
  return `<section id="headline"><h2>Headline</h2>${note}<table class="headline"><thead>${head}</thead><tbody>${rows}</tbody></table>${notes}</section>`;
}

function factsTable(facts: readonly Fact[], cls: string): string {
  if (facts.length === 0) return '';
  return `<table class="${cls}"><tbody>${facts.map((f) => `<tr><th scope="row">${escapeXml(f.label)}</th><td>${escapeXml(f.value)}</td></tr>`).join('')}</tbody></table>`;
}

const STATE_MARK: Readonly<Record<ReportSection['state'], string>> = { passed: '✔', failed: '✘', skipped: '–' };

function sectionHtml(section: ReportSection): string {
  const uncharted = section.uncharted
    ? `<p class="uncharted">${escapeXml(section.uncharted.reason)}</p><table class="data"><tbody>${section.uncharted.table
        .map(
          (row, i) =>
            `<tr>${row.map((cell) => (i === 0 ? `<th scope="col">${escapeXml(cell)}</th>` : `<td>${escapeXml(cell)}</td>`)).join('')}</tr>`,
        )
        .join('')}</tbody></table>`
    : '';
  return `<section class="scenario ${section.state}" id="${escapeXml(section.id)}" data-charts="${section.charts.length}">
<h2>${STATE_MARK[section.state]} ${escapeXml(section.title)} <span class="state">${section.state}</span></h2>
${section.summary ? `<p>${escapeXml(section.summary)}</p>` : ''}${section.error ? `<p class="error"><strong>${escapeXml(section.error)}</strong></p>` : ''}
${factsTable(section.facts, 'facts')}${section.notes.length ? `<details class="notes"><summary>Observed (${section.notes.length})</summary><ul>${section.notes.map((n) => `<li><code>${escapeXml(n)}</code></li>`).join('')}</ul></details>` : ''}
${section.charts.map(svgChart).join('\n')}${uncharted}${section.waterfall ? svgWaterfall(section.waterfall) : ''}</section>`;
}

const STYLE = `body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:62rem;padding:0 1rem;color:#111;line-height:1.4}
h1{margin-bottom:.25rem}h1 .result{padding:.1rem .5rem;border:2px solid currentColor;border-radius:4px}
.passed-run h1 .result{color:#00663d}.failed-run h1 .result{color:#b00020}
table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th[scope=row]{font-weight:600}small{color:#444;font-weight:400}
table.headline td.value{font-variant-numeric:tabular-nums;font-weight:600;white-space:nowrap}
tr.missed td.verdict,td.delta.worse{color:#b00020;font-weight:600}tr.met td.verdict,td.delta.better{color:#00663d}tr.advisory td.verdict{color:#8a5a00;font-weight:600}
section.scenario{margin:2rem 0;border-top:1px solid #999;padding-top:.5rem}section.scenario h2 .state{font-size:.8rem;font-weight:400;text-transform:uppercase;letter-spacing:.05em}
section.failed h2{color:#b00020}p.error{color:#b00020}
figure{margin:1.25rem 0}figcaption{font-weight:600;margin-bottom:.25rem}svg.plot{max-width:100%;height:auto;font-family:inherit}
ul.legend{list-style:none;padding:0;margin:.25rem 0;display:flex;flex-wrap:wrap;gap:.25rem 1.25rem;font-size:.9rem}ul.legend svg{vertical-align:middle}
details.table-fallback summary,details.notes summary{cursor:pointer;color:#333}table.data{font-size:.85rem;font-variant-numeric:tabular-nums}table.data caption{text-align:left;font-weight:600}
code{white-space:pre-wrap;word-break:break-word}.checks li{list-style:none}.checks .ok{color:#00663d}.checks .fail{color:#b00020}
@media print{body{margin:0;max-width:none}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}details.table-fallback{display:none}section.scenario,figure{break-inside:avoid}}`;

/** The whole report as one self-contained HTML page. */
export function renderReport(doc: ReportDocument): string {
  const checks = doc.checks?.length
    ? `<section id="checks"><h2>${escapeXml(doc.checksTitle ?? 'Checks')}</h2><ul class="checks">${doc.checks
        .map(
          (c) =>
            `<li class="${c.ok ? 'ok' : 'fail'}">${c.ok ? '✔' : '✘'} <strong>${escapeXml(c.name)}</strong>${c.detail ? ` — ${escapeXml(c.detail)}` : ''}${!c.ok && c.fix ? `<br><small>fix: <code>${escapeXml(c.fix)}</code></small>` : ''}</li>`,
        )
        .join('')}</ul></section>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${escapeXml(doc.title)} — ${doc.passed ? 'PASSED' : 'FAILED'}</title>
<style>${STYLE}</style>
</head><body class="${doc.passed ? 'passed-run' : 'failed-run'}">
<header><h1>${escapeXml(doc.title)} <span class="result">${doc.passed ? '✔ PASSED' : '✘ FAILED'}</span></h1>
<p class="verdict-line">${escapeXml(doc.verdictLine)}</p>
<section id="environment"><h2>Environment</h2>${factsTable(doc.environment, 'environment')}</section></header>
${headlineTable(doc)}
${checks}
${doc.sections.map(sectionHtml).join('\n')}
</body></html>
`;
}
