import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { ConformanceResult } from '../src/report.ts';
import { LOCAL_NAMESPACE } from '../src/scenarios.ts';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Runs the CLI from source (tsx) and returns its exit code and output; interrupted (SIGINT) after
 * `timeoutMs`, or as soon as its output matches `interruptOn`.
 */
function runCli(
  args: string[],
  timeoutMs: number,
  interruptOn?: RegExp,
  beforeInterrupt: (output: string) => Promise<void> = async () => {},
): Promise<{ code: number | null; output: string; beforeInterruptError?: unknown }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(packageDir, 'src/main.ts'), ...args], {
      cwd: packageDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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

describe('afterlife-conformance CLI', function () {
  this.timeout(300_000);
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
    ['while the local stack starts', /▸ starting Afterlife: webhook/],
    ['during the scenarios', /▸ scenarios in namespace/],
  ] as const) {
    it(`Ctrl-C ${when} cleans up the stack and exits 130`, async () => {
      const { code, output } = await runCli(['--local', '--report-dir', reportDir], 120_000, at);
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
    // --keep: after the run the stack and the labelled namespace are still there until Ctrl-C.
    let keptNamespaceLabels: Record<string, string> | undefined;
    const { code, output, beforeInterruptError } = await runCli(
      ['--local', '--keep', '--profile', 'short', '--report-dir', reportDir],
      280_000,
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
    assert.match(output, /✔ PASSED: 14 passed, 0 failed, 0 skipped of 14/);

    const xml = await readFile(join(reportDir, 'junit.xml'), 'utf8');
    const totals =
      /<testsuites name="afterlife-conformance" tests="(\d+)" failures="(\d+)" errors="0" skipped="(\d+)"/.exec(xml);
    assert.ok(totals, 'a <testsuites> element with totals');
    assert.deepEqual(totals.slice(1), ['14', '0', '0']);
    const cases = [...xml.matchAll(/<testcase classname="([^"]+)" name="([^"]+)"/g)].map((m) => `${m[1]}: ${m[2]}`);
    assert.equal(cases.length, 14);
    assert.equal(cases.filter((c) => c.startsWith('preflight: ')).length, 8);
    assert.ok(!xml.includes('<failure'));

    const result = JSON.parse(await readFile(join(reportDir, 'conformance.json'), 'utf8')) as ConformanceResult;
    assert.equal(result.passed, true);
    assert.deepEqual(result.counts, { tests: 14, passed: 14, failed: 0, skipped: 0 });
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
      ],
    );
    const metrics = Object.fromEntries(result.scenarios.map((s) => [s.id, s.metrics]));
    const num = (id: string, key: string) => {
      const value = metrics[id]?.[key];
      assert.equal(typeof value, 'number', `${id}.${key} is a number (got ${value})`);
      return value as number;
    };
    assert.ok(num('scale-from-zero', 'firstEventLatencyMs') > 0);
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

    const html = await readFile(join(reportDir, 'conformance.html'), 'utf8');
    assert.match(html, /Afterlife conformance — PASSED/);
    assert.equal(html.match(/<section /g)?.length, 6);
    assert.ok((html.match(/<svg /g)?.length ?? 0) >= 6, 'replica and latency charts');
  });
});
