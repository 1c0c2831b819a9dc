import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { useCluster } from '@afterlife/devcluster/testing';
import { AppsV1Api, CoordinationV1Api, CoreV1Api, NodeV1Api, type V1Pod } from '@kubernetes/client-node';
import { after, before, describe, it } from 'mocha';
import {
  MEDIA_TYPES,
  type PushedImage,
  pushEchoImage,
  pushImage,
  pushWasmImage,
  startWasmNode,
  TRAP_EXIT_CODE,
  type WasmNode,
  wasmRuntimeClass,
  writeTar,
} from '../src/index.ts';
import { eventually, trapModule } from './helpers.ts';

const RUNTIME_CLASS = 'wasmedge';

function isReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function ownNetns(): string[] {
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns').filter((name) => name.startsWith(`afterlife-${process.pid}-wasm-`));
}

describe('wasm-node on the devcluster', function () {
  this.timeout(240_000);
  const cluster = useCluster({ namespacePrefix: 'wasm-node' });
  const nodeName = `wasm-test-${process.pid}-${randomBytes(3).toString('hex')}`;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let node: WasmNode | undefined;
  let stateDir: string;
  let createdRuntimeClass = false;
  let echo: PushedImage;
  let trap: PushedImage;
  let linux: PushedImage;

  before(async () => {
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
    const nodeApi = cluster.kubeConfig.makeApiClient(NodeV1Api);
    try {
      await nodeApi.createRuntimeClass({ body: wasmRuntimeClass(RUNTIME_CLASS) });
      createdRuntimeClass = true;
    } catch (error) {
      if ((error as { code?: number }).code !== 409) throw error;
    }
    echo = await pushEchoImage(cluster.registry, { repository: 'afterlife/echo', tag: 'test' });
    trap = await pushWasmImage(`${cluster.registry}/afterlife/trap:test`, trapModule(), { entrypoint: '/trap.wasm' });
    linux = await pushImage(`${cluster.registry}/afterlife/linux:test`, {
      config: { architecture: 'amd64', os: 'linux', config: { Entrypoint: ['node', '/server.js'] } },
      layers: [
        {
          mediaType: MEDIA_TYPES.ociLayerTarGzip,
          data: gzipSync(writeTar([{ path: 'server.js', data: Buffer.from('') }])),
        },
      ],
    });
    stateDir = await mkdtemp(join(tmpdir(), 'wasm-node-state-'));
    node = await startWasmNode({
      kubeConfig: cluster.kubeConfig,
      config: {
        nodeName,
        stateDir,
        metricsPort: 0,
        restartBackoffMs: 300,
        restartBackoffMaxMs: 1000,
        deleteNodeOnExit: true,
        logLevel: (process.env.WASM_NODE_TEST_LOG_LEVEL ?? 'warn') as 'warn',
      },
    });
  });

  after(async () => {
    await node?.close();
    if (createdRuntimeClass) {
      await cluster.kubeConfig
        .makeApiClient(NodeV1Api)
        .deleteRuntimeClass({ name: RUNTIME_CLASS })
        .catch(() => undefined);
    }
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
    assert.deepEqual(ownNetns(), [], 'every pod network namespace is removed');
  });

  const podSpec = (image: string) => ({
    runtimeClassName: RUNTIME_CLASS,
    nodeSelector: { 'kubernetes.io/hostname': nodeName },
    terminationGracePeriodSeconds: 5,
    containers: [{ name: 'fn', image, ports: [{ containerPort: 8080 }] }],
  });

  const pods = async (selector: string): Promise<V1Pod[]> =>
    (await core.listNamespacedPod({ namespace: cluster.namespace, labelSelector: selector })).items;

  it('registers a Ready node with the Wasm label and taint, and keeps its Lease', async () => {
    const registered = await core.readNode({ name: nodeName });
    assert.equal(registered.metadata?.labels?.['afterlife.dev/wasm'], 'true');
    assert.equal(registered.metadata?.annotations?.['kwok.x-k8s.io/node'], undefined);
    assert.ok(registered.spec?.taints?.some((t) => t.key === 'afterlife.dev/wasm' && t.effect === 'NoSchedule'));
    assert.ok(registered.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    const lease = await cluster.kubeConfig
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: nodeName, namespace: 'kube-node-lease' });
    assert.equal(lease.spec?.holderIdentity, nodeName);
  });

  it('runs a Deployment of the reference function: Ready pods that answer CloudEvents at podIP:8080', async () => {
    await apps.createNamespacedDeployment({
      namespace: cluster.namespace,
      body: {
        metadata: { name: 'echo' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'echo' } },
          template: { metadata: { labels: { app: 'echo' } }, spec: podSpec(echo.reference) },
        },
      },
    });
    const ready = await eventually(
      'two Ready echo pods',
      async () => {
        const list = await pods('app=echo');
        return list.length === 2 && list.every(isReady) ? list : undefined;
      },
      120_000,
    );
    for (const pod of ready) {
      assert.equal(pod.spec?.nodeName, nodeName, 'the real scheduler bound it to the Wasm node');
      assert.equal(pod.status?.phase, 'Running');
      const ip = pod.status?.podIP ?? '';
      assert.match(ip, /^10\.213\./);
      assert.deepEqual(
        pod.status?.podIPs?.map((entry) => entry.ip),
        [ip],
      );
      const status = pod.status?.containerStatuses?.[0];
      assert.equal(status?.ready, true);
      assert.equal(status?.started, true);
      assert.equal(status?.restartCount, 0);
      assert.ok(status?.state?.running);
      const types = pod.status?.conditions
        ?.filter((c) => c.status === 'True')
        .map((c) => c.type)
        .sort();
      assert.deepEqual(types, ['ContainersReady', 'Initialized', 'PodReadyToStartContainers', 'PodScheduled', 'Ready']);
      const reply = await fetch(`http://${ip}:8080/`, {
        method: 'POST',
        headers: {
          'ce-id': `evt-${pod.metadata?.name}`,
          'ce-source': '/wasm-node-test',
          'ce-type': 'dev.afterlife.test',
          'ce-specversion': '1.0',
          'content-type': 'application/json',
        },
        body: JSON.stringify({ hello: 'wasm' }),
      });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers.get('ce-type'), 'dev.afterlife.echo.reply');
      assert.equal(reply.headers.get('ce-source'), '/afterlife/echo');
      assert.equal(reply.headers.get('ce-echoid'), `evt-${pod.metadata?.name}`);
      assert.deepEqual(((await reply.json()) as { data: unknown }).data, { hello: 'wasm' });
    }
    assert.equal(ownNetns().length, 2);
    const metrics = await (await fetch(node?.metricsUrl ?? '')).text();
    const count = /afterlife_wasm_node_pod_bound_to_ready_seconds_count\{[^}]*\} (\d+)/.exec(metrics);
    assert.ok(Number(count?.[1]) >= 2, metrics.slice(0, 500));
  });

  it('stops instances and removes their network namespaces when the pods are deleted', async () => {
    const local =
      node?.pods().filter((pod) => pod.namespace === cluster.namespace && pod.name.startsWith('echo-')) ?? [];
    assert.equal(local.length, 2);
    const pids = local.flatMap((pod) => pod.pids);
    assert.equal(pids.length, 2);
    const scale = await apps.readNamespacedDeploymentScale({ name: 'echo', namespace: cluster.namespace });
    scale.spec = { replicas: 0 };
    await apps.replaceNamespacedDeploymentScale({ name: 'echo', namespace: cluster.namespace, body: scale });
    await eventually('echo pods gone', async () => ((await pods('app=echo')).length === 0 ? true : undefined), 60_000);
    assert.deepEqual(ownNetns(), []);
    assert.deepEqual(
      node?.pods().filter((pod) => pod.name.startsWith('echo-')),
      [],
    );
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `pod host ${pid} has stopped`);
  });

  it('reports a non-Wasm sidecar (queue-proxy-like) as not run locally, and still runs the Wasm container', async () => {
    const spec = podSpec(echo.reference);
    spec.containers.push({
      name: 'queue-proxy',
      image: 'gcr.io/knative-releases/queue:v1',
      ports: [{ containerPort: 8012 }],
    });
    await core.createNamespacedPod({
      namespace: cluster.namespace,
      body: { metadata: { name: 'sidecar', labels: { app: 'sidecar' } }, spec },
    });
    const pod = await eventually('the sidecar pod Ready', async () => {
      const current = await core.readNamespacedPod({ name: 'sidecar', namespace: cluster.namespace });
      return isReady(current) ? current : undefined;
    });
    const statuses = Object.fromEntries((pod.status?.containerStatuses ?? []).map((s) => [s.name, s]));
    assert.equal(statuses.fn?.ready, true);
    assert.equal(statuses['queue-proxy']?.ready, true);
    const reply = await fetch(`http://${pod.status?.podIP}:8080/healthz`);
    assert.equal(reply.status, 200);
    const events = await core.listNamespacedEvent({
      namespace: cluster.namespace,
      fieldSelector: 'involvedObject.name=sidecar',
    });
    assert.ok(events.items.some((e) => e.reason === 'SidecarNotRun' && /queue-proxy/.test(e.message ?? '')));
    await core.deleteNamespacedPod({ name: 'sidecar', namespace: cluster.namespace });
    await eventually(
      'sidecar pod gone',
      async () => ((await pods('app=sidecar')).length === 0 ? true : undefined),
      60_000,
    );
  });

  it('shows a trapping module as a terminated container with its exit code, restarted with back-off', async () => {
    await core.createNamespacedPod({
      namespace: cluster.namespace,
      body: { metadata: { name: 'trap', labels: { app: 'trap' } }, spec: podSpec(trap.reference) },
    });
    const pod = await eventually(
      'the trap pod restarted after exit 134',
      async () => {
        const current = await core.readNamespacedPod({ name: 'trap', namespace: cluster.namespace });
        const status = current.status?.containerStatuses?.[0];
        return (status?.restartCount ?? 0) >= 1 && status?.lastState?.terminated?.exitCode === TRAP_EXIT_CODE
          ? current
          : undefined;
      },
      60_000,
    );
    const status = pod.status?.containerStatuses?.[0];
    assert.equal(status?.ready, false);
    assert.equal(status?.lastState?.terminated?.reason, 'Error');
    assert.match(status?.lastState?.terminated?.message ?? '', /unreachable|trapped/);
    assert.ok(!isReady(pod));
    const events = await core.listNamespacedEvent({
      namespace: cluster.namespace,
      fieldSelector: 'involvedObject.name=trap',
    });
    assert.ok(events.items.some((e) => e.reason === 'BackOff' && /exited with code 134/.test(e.message ?? '')));
    await core.deleteNamespacedPod({ name: 'trap', namespace: cluster.namespace });
    await eventually('trap pod gone', async () => ((await pods('app=trap')).length === 0 ? true : undefined), 60_000);
  });

  it('refuses a non-Wasm image with a clear Warning event on the pod', async () => {
    await core.createNamespacedPod({
      namespace: cluster.namespace,
      body: { metadata: { name: 'linux', labels: { app: 'linux' } }, spec: podSpec(linux.reference) },
    });
    const event = await eventually('a NotWasmImage event', async () => {
      const events = await core.listNamespacedEvent({
        namespace: cluster.namespace,
        fieldSelector: 'involvedObject.name=linux',
      });
      return events.items.find((e) => e.reason === 'NotWasmImage');
    });
    assert.equal(event.type, 'Warning');
    assert.match(event.message ?? '', /is not a Wasm image: its manifest has no "module\.wasm\.image\/variant"/);
    const pod = await eventually('waiting CreateContainerError', async () => {
      const current = await core.readNamespacedPod({ name: 'linux', namespace: cluster.namespace });
      return current.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerError'
        ? current
        : undefined;
    });
    assert.equal(pod.status?.phase, 'Pending');
    assert.ok(!isReady(pod));
    await core.deleteNamespacedPod({ name: 'linux', namespace: cluster.namespace });
    await eventually('linux pod gone', async () => ((await pods('app=linux')).length === 0 ? true : undefined), 60_000);
  });
});
