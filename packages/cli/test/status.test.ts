/**
 * `afterlife status` against the devcluster with Afterlife installed by helm (every component a
 * pod; counts read through the API server's pod proxy, as with only a kubeconfig): a healthy
 * function at zero and after an event, and functions broken the ways an operator meets them.
 */
import assert from 'node:assert/strict';
import { type AfterlifeInstall, installAfterlife, kubeRequest, waitFor } from '@afterlife/devcluster';
import { useCluster, useKnativeFeatures, useKnativeServing } from '@afterlife/devcluster/testing';
import { parse } from 'yaml';
import {
  collectStatus,
  explainFunction,
  formatAge,
  formatStatusTable,
  runStatusCommand,
  type StatusSnapshot,
} from '../src/status.ts';

describe('afterlife status (flags, no cluster)', () => {
  const io = { print: () => undefined, kubeConfig: () => assert.fail('no cluster needed') };
  for (const [argv, message] of [
    [['-o', 'wide'], /-o must be one of table, json, yaml/],
    [['fn'], /say its namespace: -n/],
    [['a', 'b', '-n', 'x'], /one FUNCTION at most/],
    [['--interval', '0'], /--interval must be a positive number/],
    [['--bogus'], /bogus/],
  ] as const) {
    it(`refuses ${argv.join(' ')} with a usage error`, async () => {
      await assert.rejects(runStatusCommand([...argv], io), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'USAGE');
        assert.match(error.message, message);
        return true;
      });
    });
  }

  it('shows the last cold start as its duration and age, kubectl style', () => {
    assert.deepEqual([0, 45_000, 119_999, 120_000, 7_199_000, 7_200_000, 172_800_000].map(formatAge), [
      '0s',
      '45s',
      '119s',
      '2m',
      '119m',
      '2h',
      '2d',
    ]);
    const now = Date.parse('2026-12-01T12:00:00Z');
    const revision = {
      name: 'echo-00001',
      percent: 100,
      desired: 0,
      ready: 0,
      pending: 0,
      inFlight: 0,
      ratePerSecond: 0,
      delivered: 3,
      failed: 0,
      autoscalingClass: 'afterlife.dev',
      conditions: { podAutoscaler: [], scaledObject: [], hpa: [] },
      podProblems: [],
      lastColdStart: { at: '2026-12-01T11:57:00Z', durationMs: 812.4, via: 'probe' as const },
    };
    const snapshot: StatusSnapshot = {
      functions: [
        { namespace: 'demo', name: 'echo', ready: true, readyMessage: '', revisions: [revision] },
        {
          namespace: 'demo',
          name: 'fresh',
          ready: true,
          readyMessage: '',
          revisions: [{ ...revision, name: 'fresh-00001', lastColdStart: null }],
        },
      ],
      gateways: { answered: ['g'], unreachable: [] },
    };
    const [header, echo, fresh] = formatStatusTable(snapshot, now).split('\n');
    assert.match(header ?? '', /DELIVERED\s+LAST COLD START$/);
    assert.match(echo ?? '', /\s3\s+812ms, 3m ago$/);
    assert.match(fresh ?? '', /\s3\s+-$/);
  });
});

describe('afterlife status (devcluster, Afterlife installed with helm)', function () {
  this.timeout(600_000);
  const cluster = useCluster({ namespacePrefix: 'st' });
  useKnativeServing(cluster, { hpa: false });
  useKnativeFeatures(cluster, { 'kubernetes.podspec-runtimeclassname': 'enabled' });
  let install: AfterlifeInstall | undefined;
  const ns = () => cluster.namespace;
  const kubeConfig = () => cluster.kubeConfig;

  const createService = (name: string, annotations: Record<string, string>, labels: Record<string, string> = {}) =>
    kubeRequest(kubeConfig(), 'POST', `/apis/serving.knative.dev/v1/namespaces/${ns()}/services`, {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name, labels },
      spec: {
        template: {
          metadata: { annotations },
          spec: { containers: [{ image: cluster.state?.images.echoWasm, ports: [{ containerPort: 8080 }] }] },
        },
      },
    });
  const statusOf = async (name: string): Promise<StatusSnapshot> =>
    collectStatus(kubeConfig(), { namespace: ns(), name });
  const until = <T>(what: string, probe: () => Promise<T | undefined>) =>
    waitFor(what, probe, { timeoutMs: 120_000, intervalMs: 500 });

  before(async function () {
    if (!cluster.state?.images.coredns) this.skip();
    install = await installAfterlife({
      kubeConfig: kubeConfig(),
      kubeconfigPath: cluster.kubeconfigPath,
      helm: cluster.binary('helm'),
      registry: cluster.registry,
      values: { autoscaler: { defaults: { cooldownSeconds: 5, pollingIntervalSeconds: 1 } } },
    });
  });

  after(async function () {
    this.timeout(180_000);
    await install?.uninstall();
  });

  it('lists an opted-in function at zero, and after an event shows it delivered', async () => {
    // The chart's webhook opts Services in by this label (what a user sets).
    await createService('hello', {}, { 'afterlife.dev/runtime': 'wasmedge', 'afterlife.dev/scaling': 'events' });
    const atZero = await until('hello routed and at zero in status', async () => {
      const snapshot = await statusOf('hello');
      const fn = snapshot.functions[0];
      // The Service's own Ready waits for a Knative ingress, which events through the gateway do
      // not need (the devcluster runs none): the revision's state is what counts here.
      const revision = fn?.revisions[0];
      if (revision?.desired === 0 && revision.percent === 100 && revision.conditions.scaledObject) return snapshot;
      throw new Error(JSON.stringify(fn ?? snapshot));
    });
    const fn = atZero.functions[0];
    assert.ok(fn);
    assert.equal(fn.revisions[0]?.name, 'hello-00001');
    assert.equal(fn.revisions[0]?.percent, 100);
    assert.equal(fn.revisions[0]?.autoscalingClass, 'afterlife.dev');
    assert.ok(atZero.gateways.answered.length >= 1, 'the gateway pods answered through the pod proxy');
    assert.deepEqual(explainFunction(fn, atZero.gateways).slice(-1), ['  scaled to zero; the next event wakes it']);

    // One event through the gateway Service (ClusterIP, reachable from this machine on the devcluster).
    const service = (await kubeRequest(
      kubeConfig(),
      'GET',
      '/api/v1/namespaces/afterlife-system/services?labelSelector=app.kubernetes.io/component%3Dgateway',
    )) as { items: { spec: { clusterIP: string; ports: { name: string; port: number }[] } }[] };
    const gateway = service.items[0]?.spec;
    const port = gateway?.ports.find((p) => p.name === 'events')?.port;
    const reply = await fetch(`http://${gateway?.clusterIP}:${port}/ns/${ns()}/fn/hello`, {
      method: 'POST',
      headers: {
        'ce-id': 'status-1',
        'ce-source': '/status',
        'ce-type': 'dev.afterlife.test',
        'ce-specversion': '1.0',
      },
      body: '{}',
      signal: AbortSignal.timeout(90_000),
    });
    assert.equal(reply.status, 200);
    const after = await statusOf('hello');
    assert.ok((after.functions[0]?.revisions[0]?.delivered ?? 0) >= 1, JSON.stringify(after.functions[0]));
    // The wake-up is on record at the gateway: when, how long to the reply, how it was delivered.
    const cold = after.functions[0]?.revisions[0]?.lastColdStart;
    assert.ok(cold, JSON.stringify(after.functions[0]));
    assert.ok(cold.via === 'probe' || cold.via === 'ready', cold.via);
    assert.ok(cold.durationMs > 0 && cold.durationMs < 90_000, String(cold.durationMs));
    assert.ok(Date.now() - Date.parse(cold.at) < 120_000, cold.at);

    const lines: string[] = [];
    const io = { print: (text: string) => lines.push(text), kubeConfig: () => kubeConfig() };
    assert.equal(await runStatusCommand(['-n', ns()], io), 0);
    assert.match(lines.join('\n'), /NAMESPACE\s+FUNCTION\s+READY\s+REVISION.*LAST COLD START/);
    assert.match(lines.join('\n'), /\d+ms, \d+s ago/);
    assert.match(lines.join('\n'), new RegExp(`${ns()}\\s+hello\\s+(True|False)\\s+hello-00001\\s+100%`));
    lines.length = 0;
    assert.equal(await runStatusCommand(['-n', ns(), '-o', 'json'], io), 0);
    assert.equal((JSON.parse(lines.join('')) as StatusSnapshot).functions[0]?.name, 'hello');
    lines.length = 0;
    assert.equal(await runStatusCommand(['-n', ns(), '-o', 'yaml'], io), 0);
    assert.equal((parse(lines.join('\n')) as StatusSnapshot).functions[0]?.name, 'hello');

    // --watch renders again every interval until interrupted.
    lines.length = 0;
    const controller = new AbortController();
    const watching = runStatusCommand(['-n', ns(), '--watch', '--interval', '0.2'], {
      ...io,
      signal: controller.signal,
    });
    await until('two views', async () =>
      lines.filter((l) => l.startsWith('NAMESPACE')).length >= 2 ? true : undefined,
    );
    controller.abort();
    assert.equal(await watching, 0);
  });

  it('explains a bad annotation from the PodAutoscaler condition, with the fix', async () => {
    await createService(
      'typo',
      { 'autoscaling.knative.dev/max-scale': '1', 'afterlife.dev/cooldown-secnds': '5' },
      { 'afterlife.dev/runtime': 'wasmedge', 'afterlife.dev/scaling': 'events' },
    );
    const lines = await until('typo explained', async () => {
      const snapshot = await statusOf('typo');
      const fn = snapshot.functions[0];
      const explained = fn ? explainFunction(fn, snapshot.gateways) : [];
      return explained.some((l) => /InvalidAnnotations/.test(l)) ? explained : undefined;
    });
    assert.ok(
      lines.some((l) => /cooldown-seconds/.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /fix: fix the annotation/.test(l)),
      lines.join('\n'),
    );
  });

  it('says a function not opted in is not scaled by Afterlife', async () => {
    await createService('plain', { 'autoscaling.knative.dev/min-scale': '0' });
    const lines = await until('plain explained', async () => {
      const snapshot = await statusOf('plain');
      const fn = snapshot.functions[0];
      return fn?.revisions.length ? explainFunction(fn, snapshot.gateways) : undefined;
    });
    assert.ok(
      lines.some((l) => /not by Afterlife/.test(l)),
      lines.join('\n'),
    );
  });

  it('names the gateway when none answers, and KEDA’s condition when the scaler is gone', async () => {
    const scale = (component: string, replicas: number) =>
      kubeRequest(
        kubeConfig(),
        'PATCH',
        `/apis/apps/v1/namespaces/afterlife-system/deployments/afterlife-${component}/scale`,
        { spec: { replicas } },
        'application/merge-patch+json',
      );
    await scale('gateway', 0);
    await scale('scaler', 0);
    try {
      const lines = await until('outage explained', async () => {
        const snapshot = await statusOf('hello');
        const fn = snapshot.functions[0];
        const explained = fn ? explainFunction(fn, snapshot.gateways) : [];
        return explained.some((l) => /no gateway answered/.test(l)) &&
          explained.some((l) => /ScaledObject .* Ready=False/.test(l))
          ? explained
          : undefined;
      });
      assert.ok(
        lines.some((l) => /fix: .*component=scaler/.test(l)),
        lines.join('\n'),
      );
    } finally {
      await scale('gateway', 2);
      await scale('scaler', 1);
    }
  });
});
