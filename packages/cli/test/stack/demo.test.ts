import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DemoReport } from '../../src/index.ts';
import { CHROMIUM, drawnCharts, headlineRows, screenshot, withChromium } from './browser.ts';

const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/** Runs the README's demo command in its short (CI) profile and returns its report. */
function runShortDemo(reportDir: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'demo', '--short', '--report-dir', reportDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), 540_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('afterlife demo --short (the main job, end to end)', function () {
  this.timeout(600_000);
  const reportDir = mkdtempSync(join(tmpdir(), 'afterlife-demo-'));
  let report: DemoReport;
  let output = '';

  before(async () => {
    const result = await runShortDemo(reportDir);
    output = result.output;
    assert.equal(result.code, 0, `demo exited ${result.code}:\n${output.slice(-4000)}`);
    report = JSON.parse(readFileSync(join(reportDir, 'demo-report.json'), 'utf8')) as DemoReport;
  });
  after(() => rmSync(reportDir, { recursive: true, force: true }));

  it('passes every check it reports', () => {
    for (const [check, ok] of Object.entries(report.checks)) assert.ok(ok, `check failed: ${check}`);
    assert.ok(Object.keys(report.checks).length >= 7);
    assert.equal(report.mode, 'short');
    assert.ok(report.headline?.every((figure) => figure.label && !/[a-z][A-Z]/.test(figure.label)));
  });

  it('went 0 → 1 on the first event, up under the burst and back to 0', () => {
    const phase = (name: string) => report.phases.find((p) => p.name === name);
    const oneEvent = phase('one-event');
    const burst = phase('burst');
    const coolDown = phase('cool-down');
    assert.ok(oneEvent && burst && coolDown);
    assert.ok(report.samples.filter((s) => s.t < oneEvent.start).every((s) => s.readyReplicas === 0));
    assert.ok(report.samples.some((s) => s.t >= oneEvent.start && s.readyReplicas >= 1));
    assert.ok(report.samples.some((s) => s.t >= burst.start && s.t <= coolDown.start && s.readyReplicas >= 2));
    const last = report.samples.at(-1);
    assert.equal(last?.readyReplicas, 0);
    assert.equal(last?.desiredReplicas, 0);
    assert.ok(report.summary.zeroToOneMs > 0 && report.summary.zeroToOneMs < 60_000);
    // KEDA runs as processes here: its version comes from the label it writes on the HPA it made.
    assert.match(report.environment?.keda ?? '', /^\d+\.\d+\.\d+ \(label KEDA writes on the HPAs it makes\)$/);
    assert.match(report.environment?.kubernetes ?? '', /^v1\.\d+/);
  });

  it('lost no event: delivered = sent and every id was echoed by the Wasm function', () => {
    assert.equal(report.summary.sent, report.events.length);
    assert.equal(report.summary.delivered, report.summary.sent);
    assert.equal(report.summary.failed, 0);
    assert.ok(report.events.every((event) => event.status === 200 && event.echoedId === event.id));
    assert.equal(new Set(report.events.map((event) => event.id)).size, report.events.length);
    assert.equal(report.summary.lost, 0);
    assert.equal(report.summary.refused, 0);
  });

  it('printed live progress and a summary in the terminal', () => {
    assert.match(output, /phase burst/);
    assert.match(output, /replicas \d+\/\d+ +pending/);
    assert.match(output, /Summary/);
    assert.match(output, /At most 4 replicas × 10 events at a time each ÷ 500 ms of work = 80 events\/s/);
    assert.match(output, /✔ events lost +0 events +\(bound = 0 events\)/);
    assert.match(output, /report: .*demo-report\.html/);
  });

  it('renders the HTML report in headless Chromium: headline, every series with all its points, steps; a screenshot', async function () {
    if (!CHROMIUM) {
      // The test command installs Debian's chromium; without it this cannot be checked.
      this.skip();
    }
    await withChromium(async (browser) => {
      const page = await browser.newPage({ viewport: { width: 1000, height: 1000 } });
      await page.goto(`file://${join(reportDir, 'demo-report.html')}`);
      const rows = await headlineRows(page);
      for (const key of ['first-event-reply', 'time-to-n-replicas', 'back-to-zero', 'events-sent', 'events-lost']) {
        assert.ok(rows[key], `headline row ${key}`);
      }
      assert.equal(rows['events-lost']?.[1], '0 events');
      const charts = await drawnCharts(page);
      const n = report.samples.length;
      const answered = report.events.filter((e) => e.status === 200);
      const seconds = new Set(answered.filter((e) => e.phase === 'burst').map((e) => Math.floor(e.sentAt / 1000))).size;
      const expected: Record<string, Array<[string, number]>> = {
        'replicas-chart': [
          ['step', n],
          ['step', n],
        ],
        'gateway-chart': [
          ['step', n],
          ['step', n],
        ],
        'latency-chart': [
          ['dots', answered.length],
          ['line', seconds],
        ],
      };
      assert.deepEqual(
        charts.map((c) => c.id),
        Object.keys(expected),
      );
      for (const chart of charts) {
        assert.ok(chart.width > 500 && chart.height > 150, `${chart.id} has no size`);
        assert.deepEqual(
          chart.series.map((s) => [s.kind, s.points]),
          expected[chart.id],
          chart.id,
        );
        for (const s of chart.series) {
          assert.equal(s.drawn, s.points, `${chart.id} / ${s.name}: one mark or corner per point`);
          assert.ok(s.visible, `${chart.id} / ${s.name} drew nothing visible`);
          if (s.kind === 'step') assert.ok(s.stepShaped, `${chart.id} / ${s.name} is not drawn as steps`);
        }
      }
      assert.ok((await screenshot(page, 'demo-report.png')) > 10_000, 'screenshot is suspiciously small');
    });
  });
});
