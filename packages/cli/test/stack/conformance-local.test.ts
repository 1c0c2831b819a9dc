import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { access, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ConformanceResult, LOCAL_NAMESPACE } from '@afterlife/conformance';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Reports a person can open after the test: `<repo>/reports/test-artifacts/` (git-ignored with /reports/). */
const ARTIFACTS = join(packageDir, '..', '..', 'reports', 'test-artifacts');

/**
 * Runs `afterlife conformance` from source (tsx) and returns its exit code and output; interrupted (SIGINT) after
 * `timeoutMs`, or as soon as its output matches `interruptOn`.
 */
function runCli(
  args: string[],
  timeoutMs: number,
  interruptOn?: RegExp,
  beforeInterrupt: (output: string) => Promise<void> = async () => {},
): Promise<{ code: number | null; output: string; beforeInterruptError?: unknown }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(packageDir, 'src/main.ts'), 'conformance', ...args],
      {
        cwd: packageDir,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    let beforeInterruptError: unknown;
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      // Echoed for the CI log, marked so the nested run's own summary is not counted as ours.
      process.stdout.write(chunk.toString().replace(/^(?=.)/gm, '    [child] '));
      if (interruptOn?.test(output) && child.exitCode === null && !interrupted) {
        interrupted = true;
        beforeInterrupt(output)
          .catch((error: unknown) => {
            beforeInterruptError = error;
          })
          .finally(() => child.kill('SIGINT'));
      }
    };
    let interrupted = false;
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ...(beforeInterruptError === undefined ? {} : { beforeInterruptError }) });
    });
  });
}

describe('afterlife conformance --local: a local cluster, helm install, then cluster mode and faults', function () {
  this.timeout(900_000);
  let reportDir = '';
  before(async () => {
    reportDir = await mkdtemp(join(tmpdir(), 'afterlife-conformance-'));
  });
  after(async () => {
    if (reportDir) await rm(reportDir, { recursive: true, force: true });
  });

  it('rejects bad usage with exit code 2', async () => {
    const bad = await runCli(['--profile', 'huge'], 30_000);
    assert.equal(bad.code, 2);
    assert.match(bad.output, /--profile must be short or full/);
    const noGateway = await runCli(['--kubeconfig', '/nonexistent/kubeconfig'], 30_000);
    assert.equal(noGateway.code, 2);
    assert.match(noGateway.output, /--gateway-url is required against a cluster: port-forward the gateway/);
  });

  for (const [when, at] of [
    ['while the local stack starts', /▸ helm install afterlife/],
    ['during the scenarios', /▸ scenarios in namespace/],
  ] as const) {
    it(`Ctrl-C ${when} cleans up the stack and exits 130`, async () => {
      const { code, output } = await runCli(['--local', '--report-dir', reportDir], 420_000, at);
      assert.equal(code, 130, output.slice(-2000));
      assert.match(output, /interrupted: cleaning up/);
      const stateDir = /kubeconfig (\S+)\/kubeconfig/.exec(output)?.[1] ?? assert.fail('no kubeconfig path printed');
      await assert.rejects(access(stateDir), 'the local cluster state directory is removed');
      const leftovers = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
        .split('\n')
        .filter((line) => line.includes(stateDir));
      assert.deepEqual(leftovers, [], 'no process of the stack survives');
    });
  }

  it('--local --profile short passes and writes JUnit XML, JSON and HTML', async () => {
    // A previous run to compare with: its first reply took 10 s.
    const previousFile = join(reportDir, 'previous.json');
    await writeFile(
      previousFile,
      JSON.stringify({
        startedAt: '2026-11-30T10:00:00.000Z',
        profile: 'short',
        headline: [
          { key: 'first-event-reply', label: 'first event → reply', value: 10_000, unit: 'ms', better: 'lower' },
        ],
      }),
    );
    // --keep: after the run the stack and the labelled namespace are still there until Ctrl-C.
    let keptNamespaceLabels: Record<string, string> | undefined;
    const { code, output, beforeInterruptError } = await runCli(
      ['--local', '--keep', '--profile', 'short', '--report-dir', reportDir, '--compare', previousFile],
      780_000,
      /--keep: the local stack keeps running \(KUBECONFIG=\S+\)/,
      async (text) => {
        const kubeconfig = /KUBECONFIG=(\S+)\)/.exec(text)?.[1] ?? '';
        const kc = new KubeConfig();
        kc.loadFromFile(kubeconfig);
        const ns = await kc.makeApiClient(CoreV1Api).readNamespace({ name: LOCAL_NAMESPACE });
        keptNamespaceLabels = ns.metadata?.labels;
      },
    );
    assert.equal(beforeInterruptError, undefined, String(beforeInterruptError));
    assert.equal(code, 0, `exit code ${code}; output tail:\n${output.slice(-3000)}`);
    assert.match(keptNamespaceLabels?.['afterlife.dev/conformance-run'] ?? '', /^[0-9a-f]{6}$/);
    const stateDir = /kubeconfig (\S+)\/kubeconfig/.exec(output)?.[1] ?? assert.fail('no kubeconfig path printed');
    await assert.rejects(access(stateDir), 'Ctrl-C after --keep stops the stack');
    assert.match(output, /✔ PASSED: 17 passed, 0 failed, 0 skipped of 17/);

    const xml = await readFile(join(reportDir, 'junit.xml'), 'utf8');
    const totals =
      /<testsuites name="afterlife-conformance" tests="(\d+)" failures="(\d+)" errors="0" skipped="(\d+)"/.exec(xml);
    assert.ok(totals, 'a <testsuites> element with totals');
    assert.deepEqual(totals.slice(1), ['17', '0', '0']);
    const cases = [...xml.matchAll(/<testcase classname="([^"]+)" name="([^"]+)"/g)].map((m) => `${m[1]}: ${m[2]}`);
    assert.equal(cases.length, 17);
    assert.equal(cases.filter((c) => c.startsWith('preflight: ')).length, 10);
    assert.ok(!xml.includes('<failure'));

    const result = JSON.parse(await readFile(join(reportDir, 'conformance.json'), 'utf8')) as ConformanceResult;
    assert.equal(result.passed, true);
    assert.deepEqual(result.counts, { tests: 17, passed: 17, failed: 0, skipped: 0 });
    assert.equal(result.mode, 'local');
    assert.ok(result.preflight.every((p) => p.ok));
    assert.deepEqual(
      result.scenarios.map((s) => [s.id, s.state]),
      [
        ['injection', 'passed'],
        ['scale-from-zero', 'passed'],
        ['scale-up', 'passed'],
        ['scale-to-zero', 'passed'],
        ['no-loss', 'passed'],
        ['activation-threshold', 'passed'],
        ['faults', 'passed'],
      ],
    );
    const metrics = Object.fromEntries(result.scenarios.map((s) => [s.id, s.metrics]));
    const num = (id: string, key: string) => {
      const value = metrics[id]?.[key];
      assert.equal(typeof value, 'number', `${id}.${key} is a number (got ${value})`);
      return value as number;
    };
    assert.ok(num('scale-from-zero', 'firstEventLatencyMs') > 0);
    // The cold start traced hop by hop, from the gateway's, the scaler's and the API server's records.
    const coldStart = result.scenarios.find((s) => s.id === 'scale-from-zero');
    for (const hop of ['held', 'scalerPushed', 'kedaScaled', 'podCreated', 'podReady', 'delivered', 'reply']) {
      const at = num('scale-from-zero', `trace.${hop}Ms`);
      assert.ok(at >= 0 && at <= num('scale-from-zero', 'firstEventLatencyMs') + 10_000, `${hop} at ${at} ms`);
    }
    assert.ok(
      num('scale-from-zero', 'trace.heldMs') <= num('scale-from-zero', 'trace.deliveredMs') &&
        num('scale-from-zero', 'trace.deliveredMs') <= num('scale-from-zero', 'trace.replyMs'),
      'held → delivered → reply in order',
    );
    assert.ok((coldStart?.waterfall?.length ?? 0) >= 8, 'a waterfall of the hops');
    assert.ok(num('scale-up', 'p50Ms') > 0);
    assert.ok(num('scale-up', 'p99Ms') >= num('scale-up', 'p50Ms'));
    assert.ok(num('scale-up', 'maxReadyReplicas') >= 2);
    assert.ok(num('scale-up', 'timeToExpectedReplicasMs') > 0);
    assert.ok(num('scale-to-zero', 'idleToZeroMs') <= num('scale-to-zero', 'boundMs'));
    assert.equal(num('no-loss', 'echoed'), num('no-loss', 'sent'));
    assert.equal(num('activation-threshold', 'maxDesiredReplicas'), 0);
    assert.ok(num('activation-threshold', 'maxPendingAtGateway') >= 1);
    const scaleUp = result.scenarios.find((s) => s.id === 'scale-up');
    assert.ok(scaleUp && scaleUp.events.length === num('scale-up', 'sent') && scaleUp.samples.length > 0);
    process.stdout.write(
      `  measured: first event ${num('scale-from-zero', 'firstEventLatencyMs')} ms; scale-up max ${num('scale-up', 'maxReadyReplicas')} replicas (≥2 after ${num('scale-up', 'timeToExpectedReplicasMs')} ms), p50 ${num('scale-up', 'p50Ms')} ms, p99 ${num('scale-up', 'p99Ms')} ms; idle → 0 in ${num('scale-to-zero', 'idleToZeroMs')} ms\n`,
    );

    // The environment names KEDA's version (KEDA runs as processes here: read from the HPAs it made).
    assert.match(
      result.environment?.keda ?? '',
      /^\d+\.\d+\.\d+ \(label KEDA writes on the HPAs it makes\)$/,
      `KEDA: ${result.environment?.keda}`,
    );
    assert.match(result.environment?.kubernetes ?? '', /^v1\.\d+/);
    assert.doesNotMatch(output, /version label missing/);
    const headline = Object.fromEntries((result.headline ?? []).map((f) => [f.key, f]));
    assert.equal(headline['events-lost']?.value, 0);
    assert.equal(headline['events-echoed']?.value, headline['events-sent']?.value);
    assert.match(output, /Headline, compared with .*previous\.json \(2026-11-30T10:00:00\.000Z, profile short\)/);
    assert.match(output, /first event → reply, from 0 replicas .* previous 10 s, −[\d.]+ (ms|s) \(−\d+ %\) better/);

    const html = await readFile(join(reportDir, 'conformance.html'), 'utf8');
    await mkdir(ARTIFACTS, { recursive: true });
    await copyFile(join(reportDir, 'conformance.html'), join(ARTIFACTS, 'conformance.html'));
    assert.match(html, /Afterlife conformance <span class="result">✔ PASSED<\/span>/);
    assert.match(html, /<table class="headline">/);
    assert.match(html, /<th scope="col">previous run<\/th>/);
    assert.equal(html.match(/<section class="scenario /g)?.length, 7);
    assert.match(html, /<figure class="waterfall" id="scale-from-zero-waterfall">/);
    assert.match(html, /KEDA scaled the Deployment 0 → 1/);
    for (const raw of ['firstEventLatencyMs', 'zeroToReadyMs', 'loadEndedAtMs', 'idleToZeroMs']) {
      assert.ok(!html.includes(raw), `raw metric key ${raw} in the HTML`);
    }
    // A chart only for a time series: replicas from ≥ 3 samples (held events when any), latency from ≥ 3 replies.
    for (const s of result.scenarios) {
      const section = html.slice(html.indexOf(`id="scenario-${s.id}"`)).split('</section>')[0] ?? '';
      const answered = s.events.filter((e) => e.status === 200).length;
      const expected =
        (s.samples.length >= 3 ? 1 + (s.samples.some((p) => p.pending > 0) ? 1 : 0) : 0) + (answered >= 3 ? 1 : 0);
      assert.equal(section.match(/<figure class="chart"/g)?.length ?? 0, expected, `charts of ${s.id}`);
      if (s.samples.length >= 3) {
        assert.match(
          section,
          new RegExp(
            `data-series="ready replicas" data-kind="step" data-points="${s.samples.length}"><path class="line" d="M[\\d.]+,[\\d.]+(H[\\d.]+V[\\d.]+)+"`,
          ),
          `${s.id}: replicas as steps, every sample`,
        );
      } else if (s.samples.length > 0) {
        assert.match(section, /too few to draw over time/, `${s.id}: its few samples as a table`);
      }
    }
  });
});
