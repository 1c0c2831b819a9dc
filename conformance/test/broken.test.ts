import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '@afterlife/core';
import { freePort } from '@afterlife/devcluster';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  NodeV1Api,
  type V1MutatingWebhookConfiguration,
  type V1RuntimeClass,
} from '@kubernetes/client-node';
import type { ScenarioRecord, SuiteContext } from '../src/context.ts';
import { type LocalAfterlife, startLocalAfterlife } from '../src/local.ts';
import { formatPreflight, type PreflightResult, runPreflight } from '../src/preflight.ts';
import { PROFILES } from '../src/profile.ts';
import type { ConformanceResult } from '../src/report.ts';
import { SCENARIOS } from '../src/scenarios.ts';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Pid listening on 127.0.0.1:port, only if it descends from this test process. */
function ourListener(port: number): number {
  const out = execFileSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' });
  const pid = Number(/pid=(\d+)/.exec(out)?.[1] ?? Number.NaN);
  assert.ok(Number.isInteger(pid), `a process listens on ${port}: ${out}`);
  for (let p = pid; p > 1; ) {
    if (p === process.pid) return pid;
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  assert.fail(`pid ${pid} on port ${port} was not started by this test`);
}

describe('broken setups fail with the right message', function () {
  this.timeout(180_000);
  const logger = createLogger('conformance-test', { level: 'warn' });
  let local: LocalAfterlife | undefined;

  before(async () => {
    local = await startLocalAfterlife({ name: `conformance-broken-${process.pid}`, logger, print: () => {} });
  });
  after(async () => {
    await local?.stop();
  });

  const stack = () => local ?? assert.fail('local stack not started');
  const preflight = async (): Promise<PreflightResult[]> => {
    const { ports, kubeConfig } = stack();
    return runPreflight(kubeConfig, {
      gatewayUrl: `http://127.0.0.1:${ports.gateway}`,
      gatewayAdminUrl: `http://127.0.0.1:${ports.gatewayAdmin}`,
      scalerAddress: `127.0.0.1:${ports.scaler}`,
      timeoutMs: 1500,
    });
  };
  const check = (results: PreflightResult[], name: string) =>
    results.find((r) => r.name === name) ?? assert.fail(`no check ${name}`);
  const failedNames = (results: PreflightResult[]) => results.filter((r) => !r.ok).map((r) => r.name);

  /** Runs the injection scenario in a fresh namespace; returns its error message. */
  let attempt = 0;
  const injectionError = async (): Promise<string> => {
    const { kubeConfig, image, ports } = stack();
    const namespace = `conformance-broken-${++attempt}`;
    await kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
    const ctx: SuiteContext = {
      kubeConfig,
      local: true,
      namespace,
      gatewayUrl: `http://127.0.0.1:${ports.gateway}`,
      gatewayAdminUrl: undefined,
      scalerAdminUrl: undefined,
      image,
      runtimeClassName: 'wasmedge',
      profile: PROFILES.short,
      logger,
      print: () => {},
      clock: () => 0,
      records: new Map(),
      samples: [],
      fn: undefined,
      watched: new Set(),
    };
    const rec: ScenarioRecord = {
      id: 'injection',
      start: 0,
      end: 0,
      deployment: '',
      metrics: {},
      events: [],
      notes: [],
      markers: [],
      waterfall: [],
    };
    const injection = SCENARIOS.find((s) => s.id === 'injection') ?? assert.fail('no injection scenario');
    try {
      await injection.run(ctx, rec);
    } catch (error) {
      return (error as Error).message;
    }
    return assert.fail('the injection scenario passed on a broken setup');
  };

  it('passes every check on the healthy stack', async () => {
    const results = await preflight();
    assert.deepEqual(failedNames(results), [], formatPreflight(results));
  });

  it('the CLI against a cluster stops at preflight with a table, exit 1 and failed JUnit cases', async () => {
    const reportDir = await mkdtemp(join(tmpdir(), 'afterlife-conformance-preflight-'));
    try {
      const cli = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          join(packageDir, 'src/main.ts'),
          '--kubeconfig',
          stack().cluster.kubeconfigPath,
          '--gateway-url',
          `http://127.0.0.1:${await freePort()}`,
          '--report-dir',
          reportDir,
        ],
        { cwd: packageDir, encoding: 'utf8', timeout: 60_000 },
      );
      const output = `${cli.stdout}${cli.stderr}`;
      assert.equal(cli.status, 1, output);
      assert.match(output, /CHECK\s+RESULT\s+DETAIL/);
      assert.match(
        output,
        /gateway\s+FAILED\s+gateway http:\/\/127\.0\.0\.1:\d+ unreachable: fetch failed \(.*ECONNREFUSED.*\)/,
      );
      assert.match(
        output,
        /scaler\s+FAILED\s+scaler unreachable: no Service labelled app\.kubernetes\.io\/component=scaler/,
      );
      assert.match(output, /How to fix:\n\s+gateway: kubectl -n afterlife-system port-forward svc\/afterlife-gateway/);
      assert.match(output, /✘ preflight failed/);
      assert.doesNotMatch(output, /▸ scenarios/);
      const xml = await readFile(join(reportDir, 'junit.xml'), 'utf8');
      assert.match(xml, /<testsuites name="afterlife-conformance" tests="10" failures="2" /);
      assert.match(
        xml,
        /<testcase classname="preflight" name="scaler" time="0.000">\n\s+<failure message="scaler unreachable/,
      );
      const result = JSON.parse(await readFile(join(reportDir, 'conformance.json'), 'utf8')) as ConformanceResult;
      assert.equal(result.passed, false);
      assert.equal(result.mode, 'cluster');
      assert.deepEqual(result.scenarios, []);
      assert.deepEqual(
        result.preflight.filter((p) => !p.ok).map((p) => p.name),
        ['gateway', 'scaler'],
      );
    } finally {
      await rm(reportDir, { recursive: true, force: true });
    }
  });

  it('RuntimeClass missing: names it and says how to create it', async () => {
    const node = stack().kubeConfig.makeApiClient(NodeV1Api);
    const saved: V1RuntimeClass = await node.readRuntimeClass({ name: 'wasmedge' });
    await node.deleteRuntimeClass({ name: 'wasmedge' });
    try {
      const results = await preflight();
      assert.deepEqual(failedNames(results), ['runtime-class', 'wasm-nodes']);
      const rc = check(results, 'runtime-class');
      assert.equal(rc.message, 'RuntimeClass wasmedge not found');
      assert.match(rc.fix, /kind: RuntimeClass\nmetadata: \{ name: wasmedge \}\nhandler: crun/);
      assert.match(formatPreflight(results), /runtime-class\s+FAILED\s+RuntimeClass wasmedge not found/);
    } finally {
      await node.createRuntimeClass({
        body: {
          apiVersion: 'node.k8s.io/v1',
          kind: 'RuntimeClass',
          metadata: { name: 'wasmedge' },
          handler: saved.handler,
          ...(saved.scheduling ? { scheduling: saved.scheduling } : {}),
        },
      });
    }
    assert.deepEqual(failedNames(await preflight()), []);
  });

  it('feature flag off: names the ConfigMap key and gives the patch command', async () => {
    const core = stack().kubeConfig.makeApiClient(CoreV1Api);
    const name = 'config-features';
    const namespace = 'knative-serving';
    const setFlag = async (value: string) => {
      const cm = await core.readNamespacedConfigMap({ name, namespace });
      cm.data = { ...cm.data, 'kubernetes.podspec-runtimeclassname': value };
      await core.replaceNamespacedConfigMap({ name, namespace, body: cm });
    };
    await setFlag('disabled');
    try {
      const results = await preflight();
      assert.deepEqual(failedNames(results), ['runtime-class-flag']);
      const flag = check(results, 'runtime-class-flag');
      assert.match(
        flag.message,
        /ConfigMap knative-serving\/config-features key kubernetes\.podspec-runtimeclassname is "disabled"/,
      );
      assert.match(flag.message, /knative-serving\/config-deployment key runtime-class-name/);
      assert.match(
        flag.fix,
        /kubectl patch configmap\/config-features -n knative-serving .*"kubernetes.podspec-runtimeclassname":"enabled"/,
      );
    } finally {
      await setFlag('enabled');
    }
    assert.deepEqual(failedNames(await preflight()), []);
  });

  it('webhook configuration deleted: preflight and the injection scenario name the webhook', async () => {
    const admission = stack().kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    const name = stack().webhookConfigurationName;
    const saved: V1MutatingWebhookConfiguration = await admission.readMutatingWebhookConfiguration({ name });
    await admission.deleteMutatingWebhookConfiguration({ name });
    try {
      const results = await preflight();
      assert.deepEqual(failedNames(results), ['webhook']);
      assert.match(check(results, 'webhook').message, /no Afterlife MutatingWebhookConfiguration/);
      assert.match(check(results, 'webhook').fix, /helm upgrade --install afterlife charts\/afterlife/);
      assert.match(
        await injectionError(),
        /the Afterlife webhook did not inject runtimeClassName wasmedge .*MutatingWebhookConfiguration/,
      );
    } finally {
      await admission.createMutatingWebhookConfiguration({
        body: {
          metadata: { name, ...(saved.metadata?.labels ? { labels: saved.metadata.labels } : {}) },
          webhooks: saved.webhooks ?? [],
        },
      });
    }
    assert.deepEqual(failedNames(await preflight()), []);
  });

  it('webhook process down: preflight says it is not serving; opted-in Services are rejected naming it', async () => {
    process.kill(ourListener(stack().ports.webhook), 'SIGTERM');
    const results = await preflight();
    assert.ok(failedNames(results).includes('webhook'), formatPreflight(results));
    assert.match(
      check(results, 'webhook').message,
      /MutatingWebhookConfiguration afterlife-conformance-broken-\d+ points at https:\/\/127\.0\.0\.1:\d+\/mutate, which is not serving/,
    );
    assert.match(check(results, 'webhook').fix, /start the Afterlife webhook/);
    assert.match(await injectionError(), /failed at the Afterlife webhook: .*services\.webhook\.afterlife\.dev/);
  });

  it('scaler down: preflight says the scaler is unreachable', async () => {
    process.kill(ourListener(stack().ports.scaler), 'SIGTERM');
    const results = await preflight();
    assert.ok(failedNames(results).includes('scaler'), formatPreflight(results));
    assert.match(check(results, 'scaler').message, /^scaler unreachable at 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    assert.match(check(results, 'scaler').fix, /start the Afterlife scaler/);
  });
});
