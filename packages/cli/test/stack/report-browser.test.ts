import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ConformanceResult,
  type EventOutcome,
  PROFILES,
  type ReplicaSample,
  renderConformanceHtml,
  type ScenarioReport,
} from '@afterlife/conformance';
import { LOCAL_GATEWAY } from '@afterlife/devcluster';
import type { Page } from 'playwright-core';
import {
  capacityOf,
  DEMO_PROFILES,
  type DemoReport,
  demoHeadline,
  renderHtml,
  type Sample,
  summarize,
} from '../../src/index.ts';
import {
  ARTIFACTS,
  CHROMIUM,
  type DrawnChart,
  drawnCharts,
  headlineRows,
  screenshot,
  withChromium,
} from './browser.ts';

/** A demo timeline shaped like a real short run: idle, one event, a burst that scales 1 → 4, cool-down to 0. */
function demoReport(): DemoReport {
  const profile = DEMO_PROFILES.short;
  const phases = [
    { name: 'idle', start: 0, end: 3000 },
    { name: 'one-event', start: 3000, end: 4000 },
    { name: 'burst', start: 4000, end: 19_000 },
    { name: 'cool-down', start: 19_000, end: 26_000 },
  ];
  const samples: Sample[] = [];
  for (let t = 0; t <= 26_000; t += 250) {
    const ready = t < 3800 ? 0 : t < 8000 ? 1 : t < 9500 ? 2 : t < 24_000 ? 4 : 0;
    const pending = t >= 4000 && t < 11_000 ? Math.round(80 - Math.abs(t - 8000) / 50) : 0;
    samples.push({
      t,
      desiredReplicas: t >= 6000 && t < 24_000 ? 4 : ready,
      readyReplicas: ready,
      pending,
      inFlight: t >= 4000 && t < 19_000 ? Math.min(10 * ready, 20) : 0,
      delivered: 0,
    });
  }
  const events: EventOutcome[] = [
    { id: 'first', phase: 'one-event', sentAt: 3000, latencyMs: 900, status: 200, echoedId: 'first' },
  ];
  for (let i = 0; i < 600; i++) {
    const sentAt = 4000 + i * 25;
    const latencyMs = sentAt < 11_000 ? 500 + (11_000 - sentAt) / 3 : 505;
    events.push({ id: `e${i}`, phase: 'burst', sentAt, latencyMs, status: 200, echoedId: `e${i}` });
  }
  const capacity = capacityOf(profile, LOCAL_GATEWAY.replicaConcurrency);
  const summary = summarize(samples, events, {
    firstEventLatencyMs: 900,
    zeroToOneMs: 800,
    backToZeroMs: 5000,
    wasmColdStartsMs: [1500, 1700],
    burst: phases[2] as (typeof phases)[number],
    expectedReplicas: capacity.neededReplicas,
  });
  const base: DemoReport = {
    startedAt: '2026-12-01T10:00:00.000Z',
    finishedAt: '2026-12-01T10:01:00.000Z',
    mode: 'short',
    profile,
    capacity,
    gateway: { ...LOCAL_GATEWAY, pendingLimit: profile.pendingLimit },
    environment: {
      kubernetes: 'v1.35.4 (linux/amd64)',
      knative: 'knative.dev/serving v0.50.0 (devcluster build from source)',
      keda: '2.20.2 (label KEDA writes on the HPAs it makes)',
      wasmNodes: '1 node (node-0): containerd://2.4.2',
      runner: 'Node.js v24 on linux x64',
    },
    function: { namespace: 'afterlife-demo', name: 'echo', image: '127.0.0.1:5000/afterlife/echo:latest' },
    checks: { 'a check': true },
    summary,
    phases,
    markers: [
      { t: 4000, label: 'burst start: 40 events/s', kind: 'phase' },
      { t: 19_000, label: 'last event sent', kind: 'phase' },
    ],
    samples,
    events,
  };
  return { ...base, headline: demoHeadline(base) };
}

const replicaSamples = (from: number, replicas: readonly number[]): ReplicaSample[] =>
  replicas.map((n, i) => ({
    t: from + i * 500,
    deployment: 'd',
    desiredReplicas: n,
    readyReplicas: n,
    pending: i < 2 ? 1 : 0,
  }));
const answered = (phase: string, count: number, from: number): EventOutcome[] =>
  Array.from({ length: count }, (_, i) => ({
    id: `${phase}${i}`,
    phase,
    sentAt: from + i * 50,
    latencyMs: 300 + i,
    status: 200,
    echoedId: `${phase}${i}`,
  }));

function scenario(id: string, over: Partial<ScenarioReport>): ScenarioReport {
  return {
    id,
    title: id,
    state: 'passed',
    durationMs: 1000,
    metrics: {},
    notes: [],
    deployment: 'd',
    start: 10_000,
    end: 20_000,
    samples: [],
    events: [],
    markers: [],
    ...over,
  };
}

/** A conformance result with a two-sample scenario next to ones with a time series. */
function conformanceResult(): ConformanceResult {
  return {
    startedAt: '2026-12-01T10:00:00.000Z',
    finishedAt: '2026-12-01T10:01:00.000Z',
    mode: 'local',
    profile: 'short',
    settings: PROFILES.short,
    namespace: 'ns',
    image: 'img',
    passed: true,
    counts: { tests: 2, passed: 2, failed: 0, skipped: 0 },
    preflight: [],
    scenarios: [
      scenario('scale-from-zero', {
        metrics: { firstEventLatencyMs: 836, zeroToReadyMs: 900 },
        samples: replicaSamples(10_000, [0, 1]),
        events: answered('first', 1, 10_000),
      }),
      scenario('scale-up', {
        metrics: { timeToExpectedReplicasMs: 5500, maxReadyReplicas: 3, p50Ms: 400, p99Ms: 900 },
        samples: replicaSamples(10_000, [1, 1, 2, 3, 3, 3, 2]),
        events: answered('load', 40, 10_000),
        markers: [{ t: 10_000, label: 'load start', kind: 'phase' }],
      }),
      scenario('activation-threshold', { samples: replicaSamples(10_000, [0, 0, 0, 0]) }),
    ],
  };
}

/** Every chart of a page drawn in full: one mark or corner per point, steps for step series, visible. */
function expectDrawn(charts: readonly DrawnChart[]): void {
  for (const chart of charts) {
    assert.ok(chart.width > 500 && chart.height > 150, `${chart.id} has no size`);
    assert.ok(chart.series.length > 0, `${chart.id} has no series`);
    for (const s of chart.series) {
      assert.equal(s.drawn, s.points, `${chart.id} / ${s.name}: one mark or corner per point`);
      assert.ok(s.points >= 3 || s.kind === 'line', `${chart.id} / ${s.name}: a chart of ${s.points} points`);
      if (s.kind === 'step') assert.ok(s.stepShaped, `${chart.id} / ${s.name} is not drawn as steps`);
    }
    assert.ok(chart.tableRows > 0, `${chart.id} has no table fallback`);
  }
}

function expectChart(charts: readonly DrawnChart[], id: string, series: ReadonlyArray<[string, number]>): DrawnChart {
  const chart = charts.find((c) => c.id === id) ?? assert.fail(`no chart ${id}: ${charts.map((c) => c.id).join(', ')}`);
  assert.ok(chart.width > 500 && chart.height > 150, `${id} has no size`);
  assert.deepEqual(
    chart.series.map((s) => [s.kind, s.points]),
    series,
    `${id}: kind and points of each series`,
  );
  for (const s of chart.series) {
    assert.equal(s.drawn, s.points, `${id} / ${s.name}: one mark or corner per point`);
    assert.ok(s.visible, `${id} / ${s.name} is not visible`);
    if (s.kind === 'step') assert.ok(s.stepShaped, `${id} / ${s.name} is not drawn as steps`);
  }
  const lines = chart.series.filter((s) => s.kind !== 'dots').map((s) => s.dash);
  assert.equal(new Set(lines).size, lines.length, `${id}: lines told apart by dash pattern, not colour alone`);
  const dots = chart.series.filter((s) => s.kind === 'dots').map((s) => s.marker);
  assert.equal(new Set(dots).size, dots.length, `${id}: dots told apart by marker shape`);
  assert.ok(chart.tableRows > 0, `${id} has no table fallback`);
  return chart;
}

async function open(page: Page, html: string, dir: string, name: string): Promise<void> {
  const file = join(dir, name);
  writeFileSync(file, html);
  await page.goto(`file://${file}`);
}

/** The real report of `test/stack/conformance-local.test.ts` (it runs before this file: mocha takes the files in order). */
const CONFORMANCE_RUN = join(ARTIFACTS, 'conformance.html');

describe('HTML reports in headless Chromium', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'afterlife-reports-'));
  before(function () {
    if (!CHROMIUM) {
      // The test command installs Debian's chromium (scripts/ensure-chromium.sh); without it this cannot be checked.
      this.skip();
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('demo report: headline table, replicas as steps, every series with all its points, a screenshot', async () => {
    const report = demoReport();
    await withChromium(async (browser) => {
      const page = await browser.newPage({ viewport: { width: 1000, height: 1000 } });
      await open(page, renderHtml(report), dir, 'demo-report.html');
      const rows = await headlineRows(page);
      assert.deepEqual(rows['first-event-reply']?.slice(0, 3), [
        'first event → reply, from 0 replicas',
        '900 ms',
        '≤ 60 s',
      ]);
      assert.match(rows['time-to-n-replicas']?.[0] ?? '', /^time to 2 ready replicas in the burst/);
      assert.equal(rows['events-lost']?.[1], '0 events');
      assert.match(rows['scaled-p50']?.[2] ?? '', /^target ≤ 750 ms/);
      assert.match(
        (await page.textContent('#headline')) ?? '',
        /At most 4 replicas × 10 events at a time each ÷ 500 ms of work = 80 events\/s/,
      );
      const charts = await drawnCharts(page);
      const n = report.samples.length;
      const seconds = new Set(report.events.filter((e) => e.phase === 'burst').map((e) => Math.floor(e.sentAt / 1000)))
        .size;
      expectChart(charts, 'replicas-chart', [
        ['step', n],
        ['step', n],
      ]);
      expectChart(charts, 'gateway-chart', [
        ['step', n],
        ['step', n],
      ]);
      expectChart(charts, 'latency-chart', [
        ['dots', report.events.length],
        ['line', seconds],
      ]);
      assert.ok((await screenshot(page, 'demo-report-synthetic.png')) > 10_000);
    });
  });

  it('conformance report: no chart for a two-sample scenario, steps for replicas, the headline, a screenshot', async () => {
    const result = conformanceResult();
    await withChromium(async (browser) => {
      const page = await browser.newPage({ viewport: { width: 1000, height: 1000 } });
      await open(page, renderConformanceHtml(result), dir, 'conformance.html');
      const rows = await headlineRows(page);
      assert.deepEqual(rows['first-event-reply']?.slice(1, 4), ['836 ms', '≤ 60 s', '✔ within']);
      assert.equal(rows['events-lost']?.[1], '0 events');
      const charts = await drawnCharts(page);
      assert.deepEqual(
        charts.filter((c) => c.section === 'scenario-scale-from-zero'),
        [],
        'two replica samples and one event: nothing to draw',
      );
      assert.match(
        (await page.textContent('#scenario-scale-from-zero')) ?? '',
        /Only 2 replica samples in this scenario/,
      );
      expectChart(charts, 'scale-up-replicas', [
        ['step', 7],
        ['step', 7],
      ]);
      expectChart(charts, 'scale-up-held', [['step', 7]]);
      expectChart(charts, 'scale-up-latency', [['dots', 40]]);
      expectChart(charts, 'activation-threshold-replicas', [
        ['step', 4],
        ['step', 4],
      ]);
      assert.ok((await screenshot(page, 'conformance-report-synthetic.png')) > 10_000);
      // Printed: charts stay, the tables fold away, nothing depends on colour alone (dashes stay).
      await page.emulateMedia({ media: 'print' });
      const hidden = await page.$$eval('details.table-fallback', (els) =>
        els.every((el) => getComputedStyle(el).display === 'none'),
      );
      assert.ok(hidden, 'table fallbacks are not printed next to their charts');
    });
  });

  it('the report of the last real `conformance --local` test run: every chart drawn in full, a screenshot', async function () {
    if (!existsSync(CONFORMANCE_RUN)) {
      // Written by test/stack/conformance-local.test.ts; this file may run alone.
      this.skip();
    }
    await withChromium(async (browser) => {
      const page = await browser.newPage({ viewport: { width: 1000, height: 1000 } });
      await page.goto(`file://${CONFORMANCE_RUN}`);
      const rows = await headlineRows(page);
      for (const key of ['first-event-reply', 'time-to-n-replicas', 'back-to-zero', 'events-sent', 'events-lost']) {
        assert.ok(rows[key], `headline row ${key}`);
      }
      const charts = await drawnCharts(page);
      assert.ok(charts.length >= 4, `${charts.length} charts`);
      expectDrawn(charts);
      // A scenario whose samples are too few has its table instead of a chart.
      const uncharted = await page.$$eval('section.scenario', (sections) =>
        sections.filter((s) => s.querySelector('p.uncharted')).map((s) => s.querySelectorAll('figure.chart').length),
      );
      for (const count of uncharted) assert.equal(count, 0);
      assert.ok((await screenshot(page, 'conformance-report.png')) > 10_000);
    });
  });
});
