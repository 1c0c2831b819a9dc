/**
 * The user's path, end to end on the devcluster: the images from the one image builder pushed to
 * the cluster's registry, `helm install` of the chart with their digests (every component a pod
 * on the real node, with the chart's Services, RBAC, certificate and webhook configuration), a
 * port-forward through the real kubelet to the gateway Service, and then `afterlife-conformance`
 * in cluster mode with only a kubeconfig and those URLs — exactly what a user runs.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { functionService } from '@afterlife/core';
import {
  type AfterlifeInstall,
  applyObjects,
  buildAppImages,
  installAfterlife,
  kubeRequest,
  localEndpoints,
  parseManifests,
  pushAppImages,
  sourceFacts,
} from '@afterlife/devcluster';
import { useCluster, useKnativeFeatures, useKnativeServing } from '@afterlife/devcluster/testing';
import { CoreV1Api } from '@kubernetes/client-node';
import { type EventOutcome, sendWithRetry } from '../src/load.ts';
import type { ConformanceResult } from '../src/report.ts';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

/** `kubectl port-forward` to local ports it picks; resolves with them once it forwards. */
function portForward(
  kubectl: string,
  kubeconfig: string,
  target: string,
  ports: readonly number[],
): Promise<{ child: ChildProcess; local: number[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      kubectl,
      ['--kubeconfig', kubeconfig, '-n', 'afterlife-system', 'port-forward', target, ...ports.map((p) => `:${p}`)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`port-forward ${target} did not start: ${output}`));
    }, 30_000);
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      const local = [...output.matchAll(/Forwarding from 127\.0\.0\.1:(\d+) ->/g)].map((m) => Number(m[1]));
      if (local.length === ports.length) {
        clearTimeout(timer);
        resolve({ child, local });
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`port-forward ${target} exited ${code}: ${output}`));
    });
  });
}

function runConformance(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(packageDir, 'src/main.ts'), ...args], {
      cwd: packageDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk.toString().replace(/^(?=.)/gm, '    [conformance] '));
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGINT'), 420_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('cluster mode against the chart installed with helm (images from the builder, pods on the real node)', function () {
  this.timeout(600_000);
  const cluster = useCluster({ namespacePrefix: 'inst' });
  useKnativeServing(cluster, { hpa: false });
  useKnativeFeatures(cluster, { 'kubernetes.podspec-runtimeclassname': 'enabled' });
  let install: AfterlifeInstall | undefined;
  let forward: ChildProcess | undefined;
  let gatewayUrl = '';
  let gatewayAdminUrl = '';
  let reportDir = '';

  before(async function () {
    if (!cluster.state?.images.coredns) this.skip();
    install = await installAfterlife({
      kubeConfig: cluster.kubeConfig,
      kubeconfigPath: cluster.kubeconfigPath,
      helm: cluster.binary('helm'),
      registry: cluster.registry,
      values: {
        // Short windows so scale-to-zero scenarios fit the test's time.
        autoscaler: { defaults: { cooldownSeconds: 5, pollingIntervalSeconds: 1 } },
      },
    });
    const services = (await kubeRequest(
      cluster.kubeConfig,
      'GET',
      '/api/v1/namespaces/afterlife-system/services?labelSelector=app.kubernetes.io/component%3Dgateway',
    )) as { items: { metadata: { name: string }; spec: { ports: { name: string; port: number }[] } }[] };
    const gateway = services.items[0];
    assert.ok(gateway, 'the chart made a gateway Service');
    const ports = gateway.spec.ports.map((p) => p.port);
    const { child, local } = await portForward(
      cluster.binary('kubectl'),
      cluster.kubeconfigPath,
      `svc/${gateway.metadata.name}`,
      ports,
    );
    forward = child;
    const admin = gateway.spec.ports.findIndex((p) => p.name === 'admin');
    const events = gateway.spec.ports.findIndex((p) => p.name !== 'admin');
    gatewayUrl = `http://127.0.0.1:${local[events]}`;
    gatewayAdminUrl = `http://127.0.0.1:${local[admin]}`;
    reportDir = await mkdtemp(join(tmpdir(), 'afterlife-installed-'));
  });

  after(async function () {
    this.timeout(180_000);
    forward?.kill();
    await install?.uninstall();
    if (reportDir) await rm(reportDir, { recursive: true, force: true });
  });

  /** The gateway pods' image digests (ready containers only). */
  const gatewayDigests = async (): Promise<string[]> => {
    const pods = (await kubeRequest(
      cluster.kubeConfig,
      'GET',
      '/api/v1/namespaces/afterlife-system/pods?labelSelector=app.kubernetes.io/component%3Dgateway',
    )) as {
      items: {
        metadata: { deletionTimestamp?: string };
        status: { containerStatuses?: { imageID: string; ready: boolean }[] };
      }[];
    };
    return pods.items
      .filter((p) => !p.metadata.deletionTimestamp)
      .flatMap((p) =>
        (p.status.containerStatuses ?? []).filter((c) => c.ready).map((c) => c.imageID.split('@')[1] ?? ''),
      );
  };

  it('every component runs as a pod from the pushed image digests', async () => {
    const pods = (await kubeRequest(cluster.kubeConfig, 'GET', '/api/v1/namespaces/afterlife-system/pods')) as {
      items: {
        metadata: { name: string };
        spec: { nodeName?: string };
        status: { containerStatuses?: { imageID: string; ready: boolean }[] };
      }[];
    };
    const digests = Object.values(install?.images ?? {}).map((ref: string) => ref.split('@')[1]);
    assert.equal(digests.length, 4);
    for (const digest of digests) {
      const running = pods.items.filter((pod) =>
        pod.status.containerStatuses?.some((c) => c.ready && c.imageID.endsWith(digest ?? '')),
      );
      assert.ok(running.length > 0, `a ready pod runs ${digest}`);
      for (const pod of running) assert.match(pod.spec.nodeName ?? '', /^node-/, `${pod.metadata.name} on a real node`);
    }
  });

  it('each component serves its metrics through the pod proxy (kubeRequest answers a text body as text)', async () => {
    const pods = (await kubeRequest(cluster.kubeConfig, 'GET', '/api/v1/namespaces/afterlife-system/pods')) as {
      items: {
        metadata: { name: string; labels?: Record<string, string> };
        spec: { containers: { ports?: { name?: string; containerPort: number }[] }[] };
        status: { phase?: string };
      }[];
    };
    const metricsPort: Record<string, string> = { gateway: 'admin', scaler: 'metrics', autoscaler: 'admin' };
    for (const [component, portName] of Object.entries(metricsPort)) {
      const pod = pods.items.find(
        (p) => p.metadata.labels?.['app.kubernetes.io/component'] === component && p.status.phase === 'Running',
      );
      const port = pod?.spec.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === portName)?.containerPort;
      assert.ok(pod && port, `a running ${component} pod with a ${portName} port`);
      const text = await kubeRequest(
        cluster.kubeConfig,
        'GET',
        `/api/v1/namespaces/afterlife-system/pods/${pod.metadata.name}:${port}/proxy/metrics`,
      );
      assert.equal(typeof text, 'string', `${component} /metrics is text`);
      assert.match(
        String(text),
        /^afterlife_nodejs_heap_size_used_bytes\{component="[a-z]+"\} \d+/m,
        `${component} reports its heap`,
      );
    }
  });

  it('afterlife-conformance passes in cluster mode with only a kubeconfig and the port-forward', async () => {
    const image = cluster.state?.images.echoWasm ?? '';
    const result = await runConformance([
      '--kubeconfig',
      cluster.kubeconfigPath,
      '--gateway-url',
      gatewayUrl,
      '--gateway-admin-url',
      gatewayAdminUrl,
      '--workload-image',
      image,
      '--profile',
      'short',
      '--report-dir',
      reportDir,
    ]);
    const report = JSON.parse(await readFile(join(reportDir, 'conformance.json'), 'utf8')) as ConformanceResult;
    await writeFile(join(reportDir, 'output.txt'), result.output);
    const failed = [
      ...report.preflight.filter((p) => !p.ok).map((p) => `preflight ${p.name}: ${p.message} (fix: ${p.fix})`),
      ...report.scenarios.filter((t) => t.state === 'failed').map((t) => `${t.title}: ${t.error}`),
    ];
    assert.deepEqual(failed, [], 'no preflight check or scenario failed');
    assert.equal(result.code, 0, result.output.slice(-2000));
  });

  it('the suite runs in the cluster as a Job (docs/conformance-job.yaml) and passes', async function () {
    this.timeout(900_000);
    const [image] = await buildAppImages({ only: ['conformance'] });
    assert.ok(image, 'a conformance image');
    const [pushed] = await pushAppImages([image], cluster.registry);
    const objects = parseManifests(await readFile(join(packageDir, '..', 'docs', 'conformance-job.yaml'), 'utf8'));
    const job = objects.find((o) => o.kind === 'Job') as unknown as {
      spec: { template: { spec: { containers: { image: string; args: string[] }[] } } };
    };
    const container = job.spec.template.spec.containers[0] ?? assert.fail('a container');
    // What a user edits: the runner image and the workload image, both in the cluster's registry here.
    container.image = pushed?.pinned ?? assert.fail('pushed');
    container.args = container.args.map((arg) =>
      arg.startsWith('--workload-image=') ? `--workload-image=${cluster.state?.images.echoWasm ?? ''}` : arg,
    );
    await applyObjects(cluster.kubeConfig, objects);
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    try {
      const deadline = Date.now() + 840_000;
      let state: { succeeded?: number; failed?: number } = {};
      while (Date.now() < deadline) {
        state =
          (
            (await kubeRequest(
              cluster.kubeConfig,
              'GET',
              '/apis/batch/v1/namespaces/afterlife-system/jobs/afterlife-conformance',
            )) as { status?: { succeeded?: number; failed?: number } }
          ).status ?? {};
        if (state.succeeded || state.failed) break;
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
      const [pod] = (
        await core.listNamespacedPod({ namespace: 'afterlife-system', labelSelector: 'job-name=afterlife-conformance' })
      ).items;
      const log = pod?.metadata?.name
        ? await core.readNamespacedPodLog({ name: pod.metadata.name, namespace: 'afterlife-system' })
        : '';
      process.stdout.write(log.replace(/^(?=.)/gm, '    [job] '));
      assert.equal(state.succeeded, 1, `the Job succeeded (status ${JSON.stringify(state)})`);
      assert.match(log, /✔ PASSED: \d+ passed, 0 failed/);
      assert.match(log, /▸ scenarios in namespace afterlife-conformance-[0-9a-f]{6}/);
    } finally {
      for (const path of [
        '/apis/batch/v1/namespaces/afterlife-system/jobs/afterlife-conformance?propagationPolicy=Background',
        '/api/v1/namespaces/afterlife-system/serviceaccounts/afterlife-conformance',
        '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/afterlife-conformance',
      ]) {
        await kubeRequest(cluster.kubeConfig, 'DELETE', path).catch(() => undefined);
      }
    }
  });

  it('helm upgrade to a new gateway digest under load: every event acknowledged with its own id', async () => {
    // The same sources with another revision label: a new digest, as a release would bring.
    const [image] = await buildAppImages({
      only: ['gateway'],
      compile: false,
      facts: { ...sourceFacts(), revision: `upgrade-test-${process.pid}` },
    });
    assert.ok(image, 'a gateway image');
    const [pushed] = await pushAppImages([image], cluster.registry);
    const digest = pushed?.digest ?? assert.fail('pushed');
    assert.notEqual(`${cluster.registry}/afterlife-gateway@${digest}`, install?.images.gateway, 'a different digest');
    // A function to send to, kept warm by the load (its revision at 1 while events flow).
    const namespace = `upgrade-${process.pid}`;
    await kubeRequest(cluster.kubeConfig, 'POST', '/api/v1/namespaces', { metadata: { name: namespace } });
    await kubeRequest(
      cluster.kubeConfig,
      'POST',
      `/apis/serving.knative.dev/v1/namespaces/${namespace}/services`,
      functionService({
        name: 'echo',
        namespace,
        image: cluster.state?.images.echoWasm ?? '',
        annotations: { 'afterlife.dev/cooldown-seconds': '30' },
      }),
    );
    // Sent once Knative's Route sends traffic to the revision (before that the gateway rightly
    // answers 404: no such function). The Service itself never turns Ready here: no ingress.
    const routed = Date.now() + 180_000;
    for (;;) {
      const route = (await kubeRequest(
        cluster.kubeConfig,
        'GET',
        `/apis/serving.knative.dev/v1/namespaces/${namespace}/routes/echo`,
      ).catch(() => ({}))) as { status?: { traffic?: { revisionName?: string; percent?: number }[] } };
      if (route.status?.traffic?.some((t) => (t.percent ?? 0) > 0)) break;
      assert.ok(Date.now() < routed, `the Route of ${namespace}/echo sends traffic: ${JSON.stringify(route.status)}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    // Through the gateway Service (a port-forward would end with the pod it forwards to).
    const url = `${(await localEndpoints(cluster.kubeConfig)).gatewayUrl}/ns/${namespace}/fn/echo`;
    const clock = () => performance.now();
    const events: EventOutcome[] = [];
    let sending = true;
    const inFlight = new Set<Promise<void>>();
    const load = (async () => {
      while (sending) {
        const task = sendWithRetry({ url, workMs: 10 }, 'upgrade', clock, 120_000).then((o) => {
          events.push(o);
        });
        const tracked = task.finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await Promise.all(inFlight);
    })();
    try {
      // Load flowing (the function woke), then the upgrade rolls the gateway pods one by one.
      const deadline = Date.now() + 120_000;
      while (events.filter((e) => e.status === 200).length < 10 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await install?.upgrade({
        gateway: { image: { repository: `${cluster.registry}/afterlife-gateway`, digest, tag: '' } },
      });
      await new Promise((resolve) => setTimeout(resolve, 3000));
    } finally {
      sending = false;
      await load;
      await kubeRequest(cluster.kubeConfig, 'DELETE', `/api/v1/namespaces/${namespace}`).catch(() => undefined);
    }
    const lost = events.filter((e) => e.status !== 200 || e.echoedId !== e.id);
    const retried = events.filter((e) => (e.attempts ?? 1) > 1).length;
    process.stdout.write(
      `    upgrade under load: ${events.length} events, ${events.length - lost.length} acknowledged, ${retried} after a retry\n`,
    );
    assert.ok(events.length >= 50, `enough load across the upgrade (${events.length})`);
    assert.deepEqual(
      lost.slice(0, 3).map((e) => `${e.id}: ${e.status} ${e.error ?? ''} echoed ${e.echoedId}`),
      [],
      'no event lost',
    );
    const digests = await gatewayDigests();
    assert.ok(
      digests.length >= 1 && digests.every((d) => d === digest),
      `gateway pods run ${digest}: ${digests.join(', ')}`,
    );
  });

  it('helm uninstall leaves nothing cluster-scoped behind', async () => {
    // Every cluster-scoped kind the API server serves (discovery), before and after.
    const clusterScoped = async (): Promise<string[]> => {
      const found: string[] = [];
      const groups = (await kubeRequest(cluster.kubeConfig, 'GET', '/apis')) as {
        groups: { preferredVersion: { groupVersion: string } }[];
      };
      for (const base of ['/api/v1', ...groups.groups.map((g) => `/apis/${g.preferredVersion.groupVersion}`)]) {
        const list = (await kubeRequest(cluster.kubeConfig, 'GET', base)) as {
          resources: { name: string; kind: string; namespaced: boolean; verbs: string[] }[];
        };
        for (const r of list.resources) {
          if (r.namespaced || r.name.includes('/') || !r.verbs.includes('list')) continue;
          const items =
            (
              (await kubeRequest(cluster.kubeConfig, 'GET', `${base}/${r.name}`).catch(() => ({ items: [] }))) as {
                items?: {
                  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
                }[];
              }
            ).items ?? [];
          for (const item of items) {
            const ours =
              item.metadata.annotations?.['meta.helm.sh/release-name'] === release ||
              item.metadata.labels?.['app.kubernetes.io/instance'] === release;
            if (ours) found.push(`${r.kind}/${item.metadata.name}`);
          }
        }
      }
      return found.sort();
    };
    const release = install?.release ?? assert.fail('installed');
    const before = await clusterScoped();
    assert.ok(
      before.some((k) => k.startsWith('MutatingWebhookConfiguration/')),
      `the release made cluster-scoped objects: ${before.join(', ')}`,
    );
    await install?.uninstall();
    install = undefined;
    assert.deepEqual(await clusterScoped(), [], 'nothing of the release is left cluster-scoped');
  });
});
