import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, kubeRequest } from '@afterlife/core';
import {
  AFTERLIFE_NAMESPACE,
  freePort,
  type LocalAfterlife,
  startLocalAfterlife,
  waitFor,
} from '@afterlife/devcluster';
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoreV1Api,
  NodeV1Api,
  type V1MutatingWebhookConfiguration,
  type V1RuntimeClass,
} from '@kubernetes/client-node';
import type { ScenarioRecord, SuiteContext } from '../../src/context.ts';
import { formatPreflight, type PreflightResult, runPreflight } from '../../src/preflight.ts';
import { PROFILES } from '../../src/profile.ts';
import type { ConformanceResult } from '../../src/report.ts';
import { SCENARIOS } from '../../src/scenarios.ts';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Scales one of the chart's Deployments (`kubectl scale`) and waits until it has that many ready
 * replicas: a component down the way it is down on a cluster.
 */
async function scaleComponent(local: LocalAfterlife, component: string, replicas: number): Promise<void> {
  const apps = local.kubeConfig.makeApiClient(AppsV1Api);
  const [deployment] = (
    await apps.listNamespacedDeployment({
      namespace: AFTERLIFE_NAMESPACE,
      labelSelector: `app.kubernetes.io/component=${component}`,
    })
  ).items;
  const name = deployment?.metadata?.name ?? assert.fail(`no ${component} Deployment`);
  await kubeRequest(
    local.kubeConfig,
    'PATCH',
    `/apis/apps/v1/namespaces/${AFTERLIFE_NAMESPACE}/deployments/${name}`,
    { spec: { replicas } },
    'application/merge-patch+json',
  );
  await waitFor(
    `${name} at ${replicas} ready replicas`,
    async () => {
      const d = await apps.readNamespacedDeployment({ name, namespace: AFTERLIFE_NAMESPACE });
      const pods = await local.kubeConfig.makeApiClient(CoreV1Api).listNamespacedPod({
        namespace: AFTERLIFE_NAMESPACE,
        labelSelector: `app.kubernetes.io/component=${component}`,
      });
      return (d.status?.readyReplicas ?? 0) === replicas && pods.items.length === replicas ? true : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 250 },
  );
}

describe('broken setups fail with the right message', function () {
  this.timeout(300_000);
  const logger = createLogger('conformance-test', { level: 'warn' });
  let local: LocalAfterlife | undefined;

  before(async function () {
    this.timeout(900_000);
    local = await startLocalAfterlife({ name: `conformance-broken-${process.pid}`, logger, print: () => {} });
  });
  after(async () => {
    await local?.stop();
  });

  const stack = () => local ?? assert.fail('local stack not started');
  const preflight = async (): Promise<PreflightResult[]> => {
    const { gatewayUrl, gatewayAdminUrl, scalerAddress, kubeConfig } = stack();
    return runPreflight(kubeConfig, { gatewayUrl, gatewayAdminUrl, scalerAddress, timeoutMs: 1500 });
  };
  const check = (results: PreflightResult[], name: string) =>
    results.find((r) => r.name === name) ?? assert.fail(`no check ${name}`);
  const failedNames = (results: PreflightResult[]) => results.filter((r) => !r.ok).map((r) => r.name);

  /** Runs the injection scenario in a fresh namespace; returns its error message. */
  let attempt = 0;
  const injectionError = async (): Promise<string> => {
    const { kubeConfig, image, gatewayUrl } = stack();
    const namespace = `conformance-broken-${++attempt}`;
    await kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
    const ctx: SuiteContext = {
      kubeConfig,
      local: true,
      faults: false,
      afterlifeNamespace: AFTERLIFE_NAMESPACE,
      namespace,
      gatewayUrl,
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
          stack().kubeconfigPath,
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
      assert.match(output, /How to fix:\n\s+gateway: kubectl -n afterlife-system port-forward svc\/afterlife-gateway/);
      assert.match(output, /✘ preflight failed/);
      assert.doesNotMatch(output, /▸ scenarios/);
      const xml = await readFile(join(reportDir, 'junit.xml'), 'utf8');
      assert.match(xml, /<testsuites name="afterlife-conformance" tests="10" failures="1" /);
      assert.match(
        xml,
        /<testcase classname="preflight" name="gateway" time="0.000">\n\s+<failure message="gateway http:\/\/127\.0\.0\.1:\d+ unreachable/,
      );
      const result = JSON.parse(await readFile(join(reportDir, 'conformance.json'), 'utf8')) as ConformanceResult;
      assert.equal(result.passed, false);
      assert.equal(result.mode, 'cluster');
      assert.deepEqual(result.scenarios, []);
      assert.deepEqual(
        result.preflight.filter((p) => !p.ok).map((p) => p.name),
        ['gateway'],
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
          // The chart made it: its labels and helm's annotations go back too.
          metadata: {
            name: 'wasmedge',
            labels: saved.metadata?.labels ?? {},
            annotations: saved.metadata?.annotations ?? {},
          },
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
    const saved: V1MutatingWebhookConfiguration =
      (await admission.listMutatingWebhookConfiguration({ labelSelector: 'app.kubernetes.io/name=afterlife' }))
        .items[0] ?? assert.fail('the chart made no MutatingWebhookConfiguration');
    const name = saved.metadata?.name ?? '';
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
          metadata: { name, labels: saved.metadata?.labels ?? {}, annotations: saved.metadata?.annotations ?? {} },
          webhooks: saved.webhooks ?? [],
        },
      });
    }
    assert.deepEqual(failedNames(await preflight()), []);
  });

  it('webhook scaled to 0: preflight says it has no ready endpoints; opted-in Services are rejected naming it', async () => {
    await scaleComponent(stack(), 'webhook', 0);
    try {
      const results = await preflight();
      assert.ok(failedNames(results).includes('webhook'), formatPreflight(results));
      assert.match(
        check(results, 'webhook').message,
        /MutatingWebhookConfiguration afterlife\S* → Service afterlife-system\/afterlife-webhook has no ready endpoints/,
      );
      assert.match(
        check(results, 'webhook').fix,
        /kubectl -n afterlife-system get pods -l app\.kubernetes\.io\/component=webhook/,
      );
      assert.match(
        await injectionError(),
        /failed at the Afterlife webhook: .*failed calling webhook \\"runtime\.webhook\.afterlife\.dev\\"/,
      );
    } finally {
      await scaleComponent(stack(), 'webhook', 1);
    }
    await waitFor('preflight healthy again', async () => ((await preflight()).every((r) => r.ok) ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 1000,
    });
  });

  it('scaler scaled to 0: preflight says the scaler is unreachable', async () => {
    await scaleComponent(stack(), 'scaler', 0);
    try {
      const results = await preflight();
      assert.ok(failedNames(results).includes('scaler'), formatPreflight(results));
      assert.match(check(results, 'scaler').message, /^scaler unreachable at [\d.]+:\d+: /);
      assert.match(check(results, 'scaler').fix, /start the Afterlife scaler/);
    } finally {
      await scaleComponent(stack(), 'scaler', 1);
    }
  });
});
