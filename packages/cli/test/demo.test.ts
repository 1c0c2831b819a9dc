import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DemoReport } from '../src/index.ts';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));

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
  });

  it('lost no event: delivered = sent and every id was echoed by the Wasm function', () => {
    assert.equal(report.summary.sent, report.events.length);
    assert.equal(report.summary.delivered, report.summary.sent);
    assert.equal(report.summary.failed, 0);
    assert.ok(report.events.every((event) => event.status === 200 && event.echoedId === event.id));
    assert.equal(new Set(report.events.map((event) => event.id)).size, report.events.length);
  });

  it('printed live progress and a summary in the terminal', () => {
    assert.match(output, /phase burst/);
    assert.match(output, /replicas \d+\/\d+ +pending/);
    assert.match(output, /Summary/);
    assert.match(output, /report: .*demo-report\.html/);
  });

  it('renders both charts of the HTML report in headless Chromium', async function () {
    if (!CHROMIUM) {
      // The test command installs Debian's chromium; without it this cannot be checked.
      this.skip();
    }
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 1000 } });
      await page.goto(`file://${join(reportDir, 'demo-report.html')}`);
      for (const chart of ['#replicas-chart', '#latency-chart']) {
        const drawn = await page.$eval(chart, (svg) => {
          const marks = [...svg.querySelectorAll('path.series, circle.point')] as SVGGraphicsElement[];
          const box = svg.getBoundingClientRect();
          return {
            marks: marks.length,
            visible: marks.filter((mark) => mark.getBBox().width + mark.getBBox().height > 0).length,
            width: box.width,
            height: box.height,
          };
        });
        assert.ok(drawn.width > 500 && drawn.height > 200, `${chart} has no size`);
        assert.ok(drawn.marks > 0 && drawn.visible > 0, `${chart} drew no data (${JSON.stringify(drawn)})`);
      }
      const screenshot = await page.screenshot({ fullPage: true, path: join(reportDir, 'demo-report.png') });
      assert.ok(screenshot.length > 10_000, 'screenshot is suspiciously small');
    } finally {
      await browser.close();
    }
  });
});
