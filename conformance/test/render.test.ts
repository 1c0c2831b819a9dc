import assert from 'node:assert/strict';
import {
  type ChartSpec,
  compareFigure,
  formatBound,
  formatValue,
  type HeadlineFigure,
  headlineLines,
  renderReport,
  svgChart,
  svgWaterfall,
  verdict,
} from '../src/render.ts';

const figure = (over: Partial<HeadlineFigure> = {}): HeadlineFigure => ({
  key: 'first-event-reply',
  label: 'first event → reply',
  value: 836,
  unit: 'ms',
  bound: { op: 'max', value: 60_000 },
  better: 'lower',
  ...over,
});

/** The `d` commands of every step series path (SVG `M x,y H x V y …`). */
function stepCommands(svg: string): string[] {
  return [...svg.matchAll(/data-kind="step"[^>]*><path class="line" d="([^"]+)"/g)].map((m) => m[1] as string);
}

describe('report values for people', () => {
  it('formats each unit with its name, never a raw number', () => {
    assert.equal(formatValue(836.4, 'ms'), '836 ms');
    assert.equal(formatValue(4210, 'ms'), '4.21 s');
    assert.equal(formatValue(26_720, 'ms'), '26.7 s');
    assert.equal(formatValue(1800, 'events'), '1,800 events');
    assert.equal(formatValue(1, 'events'), '1 event');
    assert.equal(formatValue(1, 'replicas'), '1 replica');
    assert.equal(formatValue(4, 'replicas'), '4 replicas');
    assert.equal(formatValue(80, 'events/s'), '80 events/s');
    assert.equal(formatValue(null, 'ms'), '—');
    assert.equal(formatValue(Number.NaN, 'ms'), '—');
    assert.equal(formatBound({ op: 'max', value: 60_000 }, 'ms'), '≤ 60 s');
    assert.equal(formatValue(60_500, 'ms'), '60.5 s');
    assert.equal(formatBound({ op: 'min', value: 2 }, 'replicas'), '≥ 2 replicas');
    assert.equal(formatBound({ op: 'equal', value: 0 }, 'events'), '= 0 events');
  });

  it('judges a figure against its bound', () => {
    assert.equal(verdict(figure()), 'met');
    assert.equal(verdict(figure({ value: 61_000 })), 'missed');
    assert.equal(verdict(figure({ value: null })), 'not measured');
    const { bound: _bound, ...unbounded } = figure();
    assert.equal(verdict(unbounded), 'no bound');
    assert.equal(verdict(figure({ unit: 'events', value: 0, bound: { op: 'equal', value: 0 } })), 'met');
    assert.equal(verdict(figure({ unit: 'replicas', value: 1, bound: { op: 'min', value: 2 } })), 'missed');
  });

  it('compares with a previous run: the change, signed, and whether it is better', () => {
    const slower = compareFigure(figure({ value: 1000 }), figure({ value: 800 }));
    assert.deepEqual(slower, { previous: '800 ms', delta: '+200 ms (+25 %)', direction: 'worse' });
    const faster = compareFigure(figure({ value: 600 }), figure({ value: 800 }));
    assert.equal(faster.direction, 'better');
    assert.equal(faster.delta, '−200 ms (−25 %)');
    const more = compareFigure(
      figure({ unit: 'replicas', value: 4, better: 'higher' }),
      figure({ unit: 'replicas', value: 3, better: 'higher' }),
    );
    assert.equal(more.direction, 'better');
    assert.equal(more.delta, '+1 (+33 %)');
    assert.equal(compareFigure(figure(), undefined).previous, '(not in that run)');
    assert.equal(compareFigure(figure(), figure()).delta, 'no change');
  });

  it('prints the headline for the terminal, with the previous run when comparing', () => {
    const lines = headlineLines(
      [
        figure(),
        figure({ key: 'lost', label: 'events lost', value: 1, unit: 'events', bound: { op: 'equal', value: 0 } }),
      ],
      {
        file: 'before.json',
        startedAt: 'then',
        headline: [figure({ value: 900 })],
      },
    );
    assert.match(
      lines[0] ?? '',
      /^✔ first event → reply +836 ms +\(bound ≤ 60 s\) +· previous 900 ms, −64 ms \(−7 %\) better$/,
    );
    assert.match(lines[1] ?? '', /^✘ events lost +1 event .*previous \(not in that run\)$/);
  });
});

describe('svgChart', () => {
  const spec: ChartSpec = {
    id: 'replicas',
    title: 'Replicas <of> "echo"',
    yLabel: 'replicas',
    origin: 10_000,
    integer: true,
    markers: [
      { t: 11_000, label: 'load start', kind: 'phase' },
      { t: 14_000, label: 'node killed', kind: 'fault' },
    ],
    series: [
      {
        name: 'ready replicas',
        kind: 'step',
        points: [
          [10_000, 0],
          [10_500, 1],
          [11_000, 1],
          [12_000, 3],
          [15_000, 0],
        ],
      },
      {
        name: 'desired replicas',
        kind: 'step',
        points: [
          [10_000, 1],
          [11_000, 3],
          [15_000, 0],
        ],
      },
      {
        name: 'latency',
        kind: 'dots',
        points: [
          [10_100, 5],
          [10_600, 7],
        ],
      },
    ],
  };
  const svg = svgChart(spec);

  it('draws replica counts as steps: horizontal and vertical segments only, one corner per sample', () => {
    const paths = stepCommands(svg);
    assert.equal(paths.length, 2);
    for (const d of paths) assert.match(d, /^M[\d.]+,[\d.]+(H[\d.]+V[\d.]+)*$/, `not a step path: ${d}`);
    assert.equal(paths[0]?.match(/H/g)?.length, 4, 'five samples: four steps');
    assert.equal(paths[1]?.match(/H/g)?.length, 2);
  });

  it('labels every series with its number of points, and draws one mark per event', () => {
    assert.match(svg, /data-series-count="3"/);
    assert.match(svg, /data-series="ready replicas" data-kind="step" data-points="5"/);
    assert.match(svg, /data-series="latency" data-kind="dots" data-points="2"/);
    assert.equal(svg.match(/class="point"/g)?.length, 2);
  });

  it('puts time in seconds from the origin on the x axis and draws the markers', () => {
    assert.match(svg, />seconds from the start</);
    assert.match(svg, /text-anchor="middle">0<\/text>/);
    assert.match(svg, /text-anchor="middle">5<\/text>/);
    assert.equal(svg.match(/<g class="marker" data-kind="phase">/g)?.length, 1);
    assert.equal(svg.match(/<g class="marker" data-kind="fault">/g)?.length, 1);
    assert.match(svg, /fault injected/, 'the legend explains the fault marker');
  });

  it('tells series apart by dash pattern as well as colour, and escapes text', () => {
    const dashes = [...svg.matchAll(/data-kind="step"[^>]*><path [^>]*?(stroke-dasharray="([^"]+)")?\/>/g)].map(
      (m) => m[2] ?? 'solid',
    );
    assert.equal(new Set(dashes).size, 2);
    assert.ok(svg.includes('Replicas &lt;of&gt; &quot;echo&quot;'));
    assert.ok(!svg.includes('<of>'));
  });

  it('has the data as a table: one row per sample time, events grouped per second, the markers', () => {
    const table = svg.slice(svg.indexOf('<details class="table-fallback">'));
    const firstTable = table.slice(0, table.indexOf('</table>'));
    // sample times 0, 0.5, 1, 2, 5 s (merged from both step series)
    assert.equal(firstTable.match(/<tr><td>/g)?.length, 5);
    assert.match(table, /<caption>latency, per 1 s<\/caption>/);
    assert.match(table, /<td>0\.0–1\.0<\/td><td>2<\/td>/);
    assert.match(table, /<td>4\.0<\/td><td>node killed \(fault\)<\/td>/);
  });

  it('says so when there is no data', () => {
    assert.match(svgChart({ ...spec, series: [{ name: 'a', kind: 'step', points: [] }] }), /No data/);
  });

  it('draws a cold-start waterfall with its table (the hook other reports fill)', () => {
    const html = svgWaterfall({
      id: 'cold',
      title: 'Cold start',
      origin: 0,
      steps: [
        { label: 'event held', start: 0, end: 50 },
        { label: 'pod created → Ready', start: 50, end: 900 },
      ],
    });
    assert.equal(html.match(/<g class="step">/g)?.length, 2);
    // The longest bar leaves room for its duration label inside the drawing.
    const width = Number(/<svg class="plot"[^>]* width="(\d+)"/.exec(html)?.[1]);
    const label = [...html.matchAll(/<text x="([\d.]+)"[^>]*font-size="10">/g)].map((m) => Number(m[1]));
    assert.ok(Math.max(...label) + 45 <= width, `labels end inside ${width}: ${label.join(', ')}`);
    assert.match(html, /<td>pod created → Ready<\/td><td>50 ms<\/td><td>850 ms<\/td>/);
    assert.equal(svgWaterfall({ id: 'x', title: 'x', origin: 0, steps: [] }), '');
  });
});

describe('renderReport', () => {
  const html = renderReport({
    title: 'Afterlife demo',
    passed: false,
    verdictLine: '6 of 7 checks passed',
    environment: [{ label: 'KEDA', value: '2.20.2 (CRD label)' }],
    headline: [
      figure(),
      figure({ key: 'lost', label: 'events lost', unit: 'events', value: 2, bound: { op: 'equal', value: 0 } }),
    ],
    headlineNotes: ['At most 4 replicas × 10 events …'],
    previous: { file: 'prev.json', startedAt: '2026-11-30T10:00:00Z', headline: [figure({ value: 700 })] },
    checks: [{ name: 'a <check>', ok: false, fix: 'do it' }],
    sections: [],
  });

  it('opens with pass/fail, the environment and the headline table against bounds and the previous run', () => {
    assert.match(html, /<title>Afterlife demo — FAILED<\/title>/);
    assert.ok(html.indexOf('id="environment"') < html.indexOf('id="headline"'));
    assert.match(html, /<tr class="figure met" data-key="first-event-reply">/);
    assert.match(html, /<tr class="figure missed" data-key="lost">/);
    assert.match(html, /<th scope="col">previous run<\/th><th scope="col">change<\/th>/);
    assert.match(html, /<td>700 ms<\/td><td class="delta worse">\+136 ms \(\+19 %\) ▲ worse<\/td>/);
    assert.match(html, /Compared with the run of 2026-11-30T10:00:00Z/);
    assert.match(html, /a &lt;check&gt;/);
  });

  it('is self-contained: no script, no external asset', () => {
    assert.doesNotMatch(html, /<(script|link|img)\b/);
    assert.doesNotMatch(html, /https?:\/\/(?!www\.w3\.org)/);
  });
});
