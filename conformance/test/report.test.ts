import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCode } from '@afterlife/core';
import { readPreviousRun } from '../src/compare.ts';
import type { EventOutcome } from '../src/load.ts';
import { PROFILES } from '../src/profile.ts';
import {
  type ConformanceResult,
  conformanceHeadline,
  renderConformanceHtml,
  type ScenarioReport,
  scenarioCharts,
  writeReports,
} from '../src/report.ts';

const events = (phase: string, count: number, from: number, latency = 300): EventOutcome[] =>
  Array.from({ length: count }, (_, i) => ({
    id: `${phase}-${i}`,
    phase,
    sentAt: from + i * 100,
    latencyMs: latency + i,
    status: 200,
    echoedId: `${phase}-${i}`,
  }));

const samples = (deployment: string, from: number, replicas: readonly number[]) =>
  replicas.map((n, i) => ({
    t: from + i * 500,
    deployment,
    desiredReplicas: n,
    readyReplicas: n,
    pending: i === 1 ? 3 : 0,
  }));

function scenario(id: string, over: Partial<ScenarioReport> = {}): ScenarioReport {
  return {
    id,
    title: `${id} title`,
    state: 'passed',
    durationMs: 1000,
    metrics: {},
    notes: [],
    deployment: 'conformance-echo-00001-deployment',
    start: 10_000,
    end: 20_000,
    samples: [],
    events: [],
    markers: [],
    ...over,
  };
}

/** A run shaped like a real one: a two-sample scenario, a scale-up with a time series. */
function result(): ConformanceResult {
  return {
    startedAt: '2026-12-01T10:00:00.000Z',
    finishedAt: '2026-12-01T10:01:00.000Z',
    mode: 'local',
    profile: 'short',
    settings: PROFILES.short,
    namespace: 'afterlife-conformance-local',
    image: '127.0.0.1:5000/afterlife/echo:latest',
    passed: true,
    counts: { tests: 14, passed: 14, failed: 0, skipped: 0 },
    environment: {
      kubernetes: 'v1.35.4 (linux/amd64)',
      knative: 'knative.dev/serving v0.50.0 (devcluster build from source)',
      keda: '2.20.2 (label KEDA writes on the HPAs it makes)',
      wasmNodes: '1 node (afterlife-node-0): containerd://2.4.2',
      runner: 'Node.js v24 on linux x64',
    },
    preflight: [{ name: 'keda', ok: true, message: 'KEDA 2.20.2', fix: '' }],
    scenarios: [
      scenario('injection', { metrics: { variant: 'compat-smart', deployment: 'd' } }),
      scenario('scale-from-zero', {
        metrics: { firstEventLatencyMs: 836, zeroToReadyMs: 910, podsWithRuntimeClass: 1 },
        samples: samples('d', 10_000, [0, 1]),
        events: events('scale-from-zero', 1, 10_000, 836),
      }),
      scenario('scale-up', {
        metrics: {
          loadEndedAtMs: 26_720,
          sent: 30,
          delivered: 30,
          maxReadyReplicas: 3,
          maxDesiredReplicas: 4,
          timeToExpectedReplicasMs: 5500,
          p50Ms: 1100,
          p99Ms: 4300,
        },
        samples: samples('d', 10_000, [1, 1, 2, 3, 3, 2]),
        events: events('scale-up', 30, 10_000),
        markers: [
          { t: 10_000, label: 'load start: 40/s', kind: 'phase' },
          { t: 13_000, label: 'load end', kind: 'phase' },
        ],
      }),
      scenario('scale-to-zero', { metrics: { idleToZeroMs: 4200, boundMs: 50_000 } }),
      scenario('no-loss', {
        metrics: { sent: 60, acknowledged: 60, echoed: 60 },
        events: events('no-loss', 60, 30_000, 50),
      }),
    ],
  };
}

describe('conformance report', () => {
  it('has a headline against the suite bounds: first reply, time to N replicas, back to zero, events', () => {
    const headline = conformanceHeadline(result());
    const byKey = Object.fromEntries(headline.map((f) => [f.key, f]));
    assert.equal(byKey['first-event-reply']?.value, 836);
    assert.deepEqual(byKey['first-event-reply']?.bound?.value, 60_000);
    assert.equal(byKey['time-to-n-replicas']?.label, 'time to 2 ready replicas under load');
    assert.equal(byKey['time-to-n-replicas']?.bound?.value, 14_000);
    assert.equal(byKey['back-to-zero']?.bound?.value, 50_000);
    assert.equal(byKey['events-sent']?.value, 91);
    assert.equal(byKey['events-echoed']?.value, 91);
    assert.equal(byKey['events-lost']?.value, 0);
    for (const f of headline) assert.doesNotMatch(f.label, /[a-z][A-Z]|Ms\b/, `raw key as label: ${f.label}`);
  });

  it('counts an event answered without its own id as lost', () => {
    const r = result();
    const broken = {
      ...r,
      scenarios: [scenario('no-loss', { events: [{ ...events('x', 1, 0)[0], echoedId: '' } as EventOutcome] })],
    };
    const byKey = Object.fromEntries(conformanceHeadline(broken).map((f) => [f.key, f.value]));
    assert.equal(byKey['events-lost'], 1);
    assert.equal(byKey['first-event-reply'], null, 'a scenario that did not run is not measured');
  });

  it('charts only time series worth drawing: none for two samples, steps for replicas', () => {
    const r = result();
    const [, fromZero, scaleUp] = r.scenarios;
    assert.deepEqual(scenarioCharts(fromZero as ScenarioReport), []);
    const charts = scenarioCharts(scaleUp as ScenarioReport, 250);
    assert.deepEqual(
      charts.map((c) => c.id),
      ['scale-up-replicas', 'scale-up-held', 'scale-up-latency'],
    );
    assert.deepEqual(
      charts[0]?.series.map((s) => [s.kind, s.points.length]),
      [
        ['step', 6],
        ['step', 6],
      ],
    );
    assert.equal(charts[0]?.origin, 10_000, 'time from the scenario start');
    assert.equal(charts[2]?.references?.[0]?.value, 250, 'the work time as a reference line');
  });

  it('renders human labels and units, environment first, and the few samples of a short scenario as a table', () => {
    const html = renderConformanceHtml(result());
    assert.match(html, /Afterlife conformance <span class="result">✔ PASSED<\/span>/);
    assert.match(html, /<th scope="row">KEDA<\/th><td>2\.20\.2 \(label KEDA writes on the HPAs it makes\)<\/td>/);
    assert.match(html, /<th scope="row">first event → reply<\/th><td>836 ms<\/td>/);
    assert.match(html, /<th scope="row">time to the expected replicas<\/th><td>5\.50 s<\/td>/);
    for (const raw of ['firstEventLatencyMs', 'zeroToReadyMs', 'loadEndedAtMs', '26720', 'timeToExpectedReplicasMs']) {
      assert.ok(!html.includes(raw), `raw ${raw} in the HTML`);
    }
    assert.match(html, /Only 2 replica samples in this scenario: too few to draw over time/);
    const fromZero = html.slice(html.indexOf('id="scenario-scale-from-zero"'), html.indexOf('id="scenario-scale-up"'));
    assert.doesNotMatch(fromZero, /<svg class="plot"/);
    assert.match(html, /id="scale-up-replicas"/);
  });

  it('writes the headline into conformance.json, and --compare reads it back (or derives it from an older file)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'afterlife-report-'));
    try {
      await writeReports(dir, result(), []);
      const json = JSON.parse(await readFile(join(dir, 'conformance.json'), 'utf8')) as ConformanceResult;
      assert.ok(json.headline && json.headline.length >= 8);
      const previous = await readPreviousRun(join(dir, 'conformance.json'));
      assert.equal(previous.startedAt, '2026-12-01T10:00:00.000Z');
      assert.equal(previous.headline.find((f) => f.key === 'first-event-reply')?.value, 836);

      const { headline: _h, settings: _s, ...older } = json;
      await writeFile(join(dir, 'older.json'), JSON.stringify(older));
      const derived = await readPreviousRun(join(dir, 'older.json'));
      assert.equal(derived.headline.find((f) => f.key === 'back-to-zero')?.value, 4200);

      const faster = result();
      const html = renderConformanceHtml(
        {
          ...faster,
          scenarios: faster.scenarios.map((s) =>
            s.id === 'scale-from-zero' ? { ...s, metrics: { ...s.metrics, firstEventLatencyMs: 700 } } : s,
          ),
        },
        { previous },
      );
      assert.match(
        html,
        /data-key="first-event-reply">.*?<td>836 ms<\/td><td class="delta better">−136 ms \(−16 %\) ▼ better<\/td>/s,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a --compare file that is not a report, as a usage error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'afterlife-report-'));
    try {
      await writeFile(join(dir, 'bench.json'), JSON.stringify({ version: 1, results: [] }));
      await assert.rejects(readPreviousRun(join(dir, 'bench.json')), (e: unknown) => hasCode(e, 'USAGE'));
      await assert.rejects(
        readPreviousRun(join(dir, 'missing.json')),
        /--compare .*missing\.json: cannot read it as JSON/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
