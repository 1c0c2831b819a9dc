// Pod start on a real node, one pod at a time, in one run: the reference function as a static
// native Go binary (the baseline) against the same function as a Wasm module under the
// `wasmedge` handler, with an empty and with a warm compiled-module cache, and as a Node.js
// program on the app images' base (the runtime start Wasm is meant to beat). Prints created →
// scheduled → sandbox ready → containers started → Ready → first HTTP answer, and idle CPU and
// memory per pod (from the pod's cgroup), then the ratios to the native baseline.
// Binaries must be cached (run the tests or `afterlife-devcluster build` first).
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { trackPodStarts, WASM_VARIANT_ANNOTATION } from '@afterlife/core';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { pushNodeFunctionImage } from '../src/app-images.ts';
import { type BenchRow, benchRow, writeBenchResult } from '../src/bench.ts';
import { applyObjects, DevCluster, wasmRuntimeClass } from '../src/index.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 5);
const NAMESPACE = 'default';

interface Phases {
  scheduled: number;
  sandboxReady: number;
  started: number;
  ready: number;
  firstAnswer: number;
}
interface Sample extends Phases {
  idleCpuPercent: number;
  memoryMiB: number;
}

type Variant = { label: string; image: string; wasm: boolean; emptyCache: boolean };

function podBody(name: string, variant: Variant): V1Pod {
  return {
    metadata: {
      name,
      namespace: NAMESPACE,
      ...(variant.wasm ? { annotations: { [WASM_VARIANT_ANNOTATION]: 'compat-smart' } } : {}),
    },
    spec: {
      ...(variant.wasm ? { runtimeClassName: 'wasmedge' } : { nodeSelector: { 'afterlife.dev/wasm': 'true' } }),
      containers: [
        {
          name: 'fn',
          image: variant.image,
          env: [{ name: 'PORT', value: '8080' }],
          readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
        },
      ],
      terminationGracePeriodSeconds: 1,
    },
  };
}

/** Creates the pod with a watch already open, then polls its IP until the server answers. */
async function startPod(
  kubeConfig: KubeConfig,
  name: string,
  variant: Variant,
): Promise<{ phases: Phases; pod: V1Pod }> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const tracker = await trackPodStarts(kubeConfig, NAMESPACE, { fieldSelector: `metadata.name=${name}` });
  const created = performance.now();
  try {
    await core.createNamespacedPod({ namespace: NAMESPACE, body: podBody(name, variant) });
    const ip = await tracker.podIp(name, 60_000);
    let firstAnswer: number | undefined;
    for (let attempt = 0; attempt < 12_000 && firstAnswer === undefined; attempt++) {
      try {
        const response = await fetch(`http://${ip}:8080/healthz`, { signal: AbortSignal.timeout(500) });
        await response.arrayBuffer();
        if (response.ok) firstAnswer = performance.now();
      } catch {
        await sleep(5);
      }
    }
    const seen = () => tracker.starts().find((start) => start.name === name);
    for (let attempt = 0; attempt < 600 && seen()?.ready === undefined; attempt++) await sleep(50);
    const start = seen();
    if (firstAnswer === undefined || start?.ready === undefined) throw new Error(`${name}: never answered/Ready`);
    const since = (t: number | undefined) => (t === undefined ? Number.NaN : t - created);
    return {
      phases: {
        scheduled: since(start.scheduled),
        sandboxReady: since(start.sandboxReady),
        started: since(start.started),
        ready: since(start.ready),
        firstAnswer: since(firstAnswer),
      },
      pod: start.pod,
    };
  } finally {
    tracker.stop();
  }
}

function podCgroup(cluster: DevCluster, pod: V1Pod, hierarchy: string): string {
  const node = cluster.state.realNodes[0];
  const uid = pod.metadata?.uid ?? '';
  const qos = (pod.status?.qosClass ?? 'BestEffort').toLowerCase();
  const base = join('/sys/fs/cgroup', hierarchy, node?.cgroup ?? '', 'pods', 'kubepods');
  const path = qos === 'guaranteed' ? join(base, `pod${uid}`) : join(base, qos, `pod${uid}`);
  if (!existsSync(path)) throw new Error(`pod cgroup ${path} not found`);
  return path;
}

async function idleCost(cluster: DevCluster, pod: V1Pod): Promise<{ idleCpuPercent: number; memoryMiB: number }> {
  await sleep(1000);
  const cpu = join(podCgroup(cluster, pod, 'cpuacct'), 'cpuacct.usage');
  const before = Number(readFileSync(cpu, 'utf8'));
  const started = performance.now();
  await sleep(IDLE_SECONDS * 1000);
  const usedNs = Number(readFileSync(cpu, 'utf8')) - before;
  const elapsedNs = (performance.now() - started) * 1e6;
  const stat = readFileSync(join(podCgroup(cluster, pod, 'memory'), 'memory.stat'), 'utf8');
  const rss = Number(/^total_rss (\d+)$/m.exec(stat)?.[1] ?? Number.NaN);
  return { idleCpuPercent: (usedNs / elapsedNs) * 100, memoryMiB: rss / 2 ** 20 };
}

async function deletePod(kubeConfig: KubeConfig, name: string): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await core.deleteNamespacedPod({ name, namespace: NAMESPACE, gracePeriodSeconds: 0 });
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      await core.readNamespacedPod({ name, namespace: NAMESPACE });
      await sleep(100);
    } catch {
      return;
    }
  }
}

const median = (values: number[]): number => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

const cluster = await DevCluster.start({
  name: `bench-node-${process.pid}`,
  keda: false,
  knative: false,
  nodes: 0,
  realNodes: 1,
});
const results = new Map<string, Sample[]>();
try {
  const kubeConfig = cluster.kubeConfig();
  await applyObjects(kubeConfig, [wasmRuntimeClass() as never]);
  const images = cluster.state.images;
  const nodeImage = await pushNodeFunctionImage(`${cluster.state.registry}/afterlife/echo-node:latest`);
  const cacheDir = cluster.state.realNodes[0]?.wasmCacheDir ?? '';
  const variants: Variant[] = [
    { label: 'native static Go binary', image: images.echoNative ?? '', wasm: false, emptyCache: false },
    { label: 'Wasm, empty compile cache', image: images.echoWasm ?? '', wasm: true, emptyCache: true },
    { label: 'Wasm, warm compile cache', image: images.echoWasm ?? '', wasm: true, emptyCache: false },
    // The runtime-initialization baseline Wasm is meant to beat: the same function on Node.js.
    { label: 'Node.js (node:http)', image: nodeImage.pinned, wasm: false, emptyCache: false },
  ];
  // One unmeasured pod per image: pulls and unpacks it, as a node that ran it before would have.
  for (const [index, variant] of variants.entries()) {
    if (variant.emptyCache) continue;
    await startPod(kubeConfig, `warmup-${index}`, variant);
    await deletePod(kubeConfig, `warmup-${index}`);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [index, variant] of variants.entries()) {
      if (variant.emptyCache) await rm(cacheDir, { recursive: true, force: true });
      const name = `bench-${index}-${round}`;
      const { phases, pod } = await startPod(kubeConfig, name, variant);
      const idle = await idleCost(cluster, pod);
      await deletePod(kubeConfig, name);
      results.set(variant.label, [...(results.get(variant.label) ?? []), { ...phases, ...idle }]);
    }
  }
} finally {
  await cluster.stop();
}

const columns: Array<[keyof Sample, string]> = [
  ['scheduled', 'scheduled'],
  ['sandboxReady', 'sandbox'],
  ['started', 'started'],
  ['ready', 'Ready'],
  ['firstAnswer', 'first answer'],
  ['idleCpuPercent', 'idle CPU %'],
  ['memoryMiB', 'RSS MiB'],
];
const baseline = results.get('native static Go binary') ?? [];
console.log(
  `real-node pod start, ${ROUNDS} rounds each, medians in ms from pod created (idle over ${IDLE_SECONDS} s):`,
);
console.log(`${'variant'.padEnd(28)}${columns.map(([, h]) => h.padStart(14)).join('')}`);
for (const [label, samples] of results) {
  const cells = columns.map(([key]) =>
    median(samples.map((s) => s[key]))
      .toFixed(key === 'idleCpuPercent' ? 2 : 1)
      .padStart(14),
  );
  console.log(`${label.padEnd(28)}${cells.join('')}`);
}
const rows: BenchRow[] = [];
for (const [label, samples] of results) {
  if (samples === baseline) continue;
  const ratio = (key: keyof Sample) =>
    (median(samples.map((s) => s[key])) / median(baseline.map((s) => s[key]))).toFixed(2);
  console.log(
    `ratio ${label} / native: Ready ${ratio('ready')}×, first answer ${ratio('firstAnswer')}×, RSS ${ratio('memoryMiB')}×`,
  );
  const measures: Array<[keyof Sample, string, string]> = [
    ['ready', 'created → Ready', 'ms'],
    ['firstAnswer', 'created → first answer', 'ms'],
    ['memoryMiB', 'idle RSS', 'MiB'],
  ];
  for (const [key, measure, unit] of measures) {
    rows.push(
      benchRow(`${label}: ${measure}`, median(samples.map((s) => s[key])), unit, 'lower', {
        name: 'native static Go binary',
        value: median(baseline.map((s) => s[key])),
      }),
    );
  }
}
writeBenchResult('node', rows);
