import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { WASM_VARIANT_ANNOTATION } from '@afterlife/core';
import { CoreV1Api, type KubeConfig, type V1Container, type V1Pod } from '@kubernetes/client-node';
import {
  applyObjects,
  ensureNodeTools,
  kubeRequest,
  pushStaticBinaryImage,
  pushWasmImage,
  REAL_NODE_LABEL,
  waitFor,
  wasmRuntimeClass,
} from '../src/index.ts';
import { useCluster } from '../src/testing.ts';

const run = promisify(execFile);
const RUNTIME_CLASS = 'afterlife-node-test';

/** A core Wasm module whose `_start` executes `unreachable`: a trap, as WasmEdge would report one. */
const TRAP_MODULE = Buffer.from([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00, // magic, version 1
  0x01,
  0x04,
  0x01,
  0x60,
  0x00,
  0x00, // type section: () -> ()
  0x03,
  0x02,
  0x01,
  0x00, // function section: one function of type 0
  0x07,
  0x0a,
  0x01,
  0x06,
  0x5f,
  0x73,
  0x74,
  0x61,
  0x72,
  0x74,
  0x00,
  0x00, // export "_start"
  0x0a,
  0x05,
  0x01,
  0x03,
  0x00,
  0x00,
  0x0b, // code: unreachable; end
]);

function pod(
  name: string,
  namespace: string,
  containers: V1Container[],
  wasm: boolean,
  extra: Partial<V1Pod['spec']> = {},
): V1Pod {
  return {
    metadata: {
      name,
      namespace,
      labels: { app: name },
      ...(wasm ? { annotations: { [WASM_VARIANT_ANNOTATION]: 'compat-smart' } } : {}),
    },
    spec: {
      ...(wasm ? { runtimeClassName: RUNTIME_CLASS } : { nodeSelector: { [REAL_NODE_LABEL]: 'node-0' } }),
      containers,
      terminationGracePeriodSeconds: 5,
      ...extra,
    },
  };
}

function server(name: string, image: string, port: number, extra: Partial<V1Container> = {}): V1Container {
  return {
    name,
    image,
    env: [{ name: 'PORT', value: String(port) }],
    ports: [{ containerPort: port }],
    readinessProbe: { httpGet: { path: '/healthz', port }, periodSeconds: 1 },
    ...extra,
  };
}

async function readyPod(kubeConfig: KubeConfig, namespace: string, name: string, timeoutMs = 90_000): Promise<V1Pod> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return waitFor(
    `pod ${name} Ready`,
    async () => {
      const current = await core.readNamespacedPod({ name, namespace });
      const ready = current.status?.conditions?.find((c) => c.type === 'Ready');
      if (ready?.status === 'True' && current.status?.podIP) return current;
      const waiting = current.status?.containerStatuses
        ?.map((s) => s.state?.waiting?.message ?? s.state?.waiting?.reason)
        .filter(Boolean);
      throw new Error(`phase ${current.status?.phase}; ${waiting?.join('; ') ?? ''}`);
    },
    { timeoutMs, intervalMs: 100 },
  );
}

async function postEvent(url: string, id: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'ce-id': id,
      'ce-source': '/test',
      'ce-type': 'dev.afterlife.test',
      'ce-specversion': '1.0',
      'content-type': 'application/json',
    },
    body: JSON.stringify({ hello: 'node' }),
    signal: AbortSignal.timeout(5000),
  });
}

describe('devcluster: real nodes (kubelet + containerd + runc + CNI, wasmedge handler)', function () {
  this.timeout(240_000);
  const cluster = useCluster({ namespacePrefix: 'node' });
  let images: Readonly<Record<string, string>>;
  const kubectl = async (...args: string[]): Promise<string> =>
    (await run(cluster.binary('kubectl'), ['--kubeconfig', cluster.kubeconfigPath, ...args])).stdout;
  /** Creates a pod, waits until it is Ready and sends it one event; the pod and the reply. */
  const startAndPost = async (name: string, containers: V1Container[], wasm: boolean, port = 8080) => {
    const ns = cluster.namespace;
    await cluster.kubeConfig
      .makeApiClient(CoreV1Api)
      .createNamespacedPod({ namespace: ns, body: pod(name, ns, containers, wasm) });
    const ready = await readyPod(cluster.kubeConfig, ns, name);
    const response = await postEvent(`http://${ready.status?.podIP}:${port}/`, `${name}-1`);
    return { ready, response };
  };

  before(async function () {
    const state = cluster.state;
    if (!state || state.realNodes.length === 0) this.skip();
    images = state.images;
    // Its own RuntimeClass name: the chart tests own `wasmedge` on the shared cluster.
    await applyObjects(cluster.kubeConfig, [wasmRuntimeClass(RUNTIME_CLASS) as never]);
  });

  after(async () => {
    await kubeRequest(cluster.kubeConfig, 'DELETE', `/apis/node.k8s.io/v1/runtimeclasses/${RUNTIME_CLASS}`).catch(
      () => undefined,
    );
  });

  it('registers a Ready node with its pod CIDR address and serves kubelet HTTPS to the API server', async () => {
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    const node = await core.readNode({ name: 'node-0' });
    assert.equal(node.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    const address = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? '';
    assert.match(address, /^10\.214\.\d+\.1$/);
    assert.equal(node.metadata?.labels?.['afterlife.dev/wasm'], 'true');
    // The API server reaches the kubelet over TLS with its client certificate (authz by webhook).
    const stdout = await kubectl('get', '--raw', '/api/v1/nodes/node-0/proxy/healthz');
    assert.equal(stdout.trim(), 'ok');
  });

  it('runs a native static image, Running and answering on its pod IP', async () => {
    const { ready, response } = await startAndPost('native', [server('echo', images.echoNative ?? '', 8080)], false);
    assert.equal(ready.spec?.nodeName, 'node-0');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('ce-echoid'), 'native-1');
  });

  it('runs a compat-smart pod: the Wasm user container under the engine, a native sidecar untouched; kubectl logs shows the module', async () => {
    const ns = cluster.namespace;
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedPod({
      namespace: ns,
      body: pod(
        'wasm',
        ns,
        [
          server('user-container', images.echoWasm ?? '', 8080, {
            livenessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 2 },
          }),
          server('sidecar', images.echoNative ?? '', 8081),
        ],
        true,
      ),
    });
    const ready = await readyPod(cluster.kubeConfig, ns, 'wasm');
    const ip = ready.status?.podIP;
    const wasm = await postEvent(`http://${ip}:8080/`, 'wasm-1');
    assert.equal(wasm.status, 200);
    assert.equal(wasm.headers.get('ce-echoid'), 'wasm-1');
    const native = await postEvent(`http://${ip}:8081/`, 'sidecar-1');
    assert.equal(native.status, 200);
    // Which process serves each container: the engine for the .wasm entrypoint, the binary itself for the sidecar.
    const wasmCmd = await kubectl('-n', ns, 'get', 'pod', 'wasm', '-o', 'jsonpath={.status.containerStatuses[*].name}');
    assert.match(wasmCmd, /user-container/);
    const logs = await kubectl('-n', ns, 'logs', 'wasm', '-c', 'user-container');
    assert.match(logs, /listening|serving/i, `module output in kubectl logs: ${logs}`);
    const restarts = await kubectl(
      '-n',
      ns,
      'get',
      'pod',
      'wasm',
      '-o',
      'jsonpath={.status.containerStatuses[*].restartCount}',
    );
    assert.equal(restarts.trim(), '0 0', 'liveness and readiness probes pass, nothing restarts');
  });

  it('runs a compat-smart container with a native entrypoint natively', async () => {
    const { response } = await startAndPost('smart-native', [server('echo', images.echoNative ?? '', 8080)], true);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('ce-echoid'), 'smart-native-1');
  });

  it('reports a Wasm trap as a container exit code and restarts it with back-off', async () => {
    const ns = cluster.namespace;
    const trap = await pushWasmImage(`${cluster.registry}/afterlife/trap:${ns}`, TRAP_MODULE, {
      entrypoint: '/trap.wasm',
    });
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    // FallbackToLogsOnError: the engine's last words become the termination message, as with crun.
    await core.createNamespacedPod({
      namespace: ns,
      body: pod(
        'trap',
        ns,
        [{ name: 'trap', image: trap.reference, terminationMessagePolicy: 'FallbackToLogsOnError' }],
        true,
      ),
    });
    const status = await waitFor(
      'trap container restarted after a non-zero exit',
      async () => {
        const current = await core.readNamespacedPod({ name: 'trap', namespace: ns });
        const container = current.status?.containerStatuses?.[0];
        const last = container?.lastState?.terminated ?? container?.state?.terminated;
        if ((container?.restartCount ?? 0) >= 1 && last) return { container, last };
        return undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    assert.equal(status.last.exitCode, 134, 'a trap exits 134, like an abort');
    assert.match(status.last.message ?? '', /wasm trap/i);
    const later = await waitFor(
      'CrashLoopBackOff',
      async () => {
        const current = await core.readNamespacedPod({ name: 'trap', namespace: ns });
        const reason = current.status?.containerStatuses?.[0]?.state?.waiting?.reason;
        return reason === 'CrashLoopBackOff' ? reason : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    assert.equal(later, 'CrashLoopBackOff');
  });

  it('gives a non-Wasm file behind a .wasm entrypoint a clear container error', async () => {
    const ns = cluster.namespace;
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    // An ELF binary named like a module: compat-smart hands it to the engine, which refuses it by name.
    const tools = await ensureNodeTools();
    const fake = await pushStaticBinaryImage(`${cluster.registry}/afterlife/not-wasm:${ns}`, tools.echoNative, {
      name: 'fake.wasm',
    });
    await core.createNamespacedPod({
      namespace: ns,
      body: pod('not-wasm', ns, [{ name: 'app', image: fake.reference }], true),
    });
    const message = await waitFor(
      'not-wasm container terminated',
      async () => {
        const current = await core.readNamespacedPod({ name: 'not-wasm', namespace: ns });
        const container = current.status?.containerStatuses?.[0];
        const terminated = container?.lastState?.terminated ?? container?.state?.terminated;
        return terminated ? terminated : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    assert.notEqual(message.exitCode, 0);
    const logs = await kubectl('-n', ns, 'logs', 'not-wasm').catch(async () =>
      kubectl('-n', ns, 'logs', 'not-wasm', '--previous'),
    );
    assert.match(logs, /not a WebAssembly module/i);
  });

  it('deletes a pod within its grace period and frees its address', async () => {
    const ns = cluster.namespace;
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedPod({
      namespace: ns,
      body: pod('graceful', ns, [server('echo', images.echoWasm ?? '', 8080)], true, {
        terminationGracePeriodSeconds: 3,
      }),
    });
    const ready = await readyPod(cluster.kubeConfig, ns, 'graceful');
    const started = Date.now();
    await core.deleteNamespacedPod({ name: 'graceful', namespace: ns });
    await waitFor(
      'pod gone',
      async () => {
        try {
          await core.readNamespacedPod({ name: 'graceful', namespace: ns });
          return undefined;
        } catch {
          return true;
        }
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 3000 + 5000, `deleted in ${elapsed} ms (grace 3 s plus kubelet sync)`);
    await sleep(500);
    await assert.rejects(fetch(`http://${ready.status?.podIP}:8080/healthz`, { signal: AbortSignal.timeout(1000) }));
  });
});
