// The cold-start chain on the local real node, hop by hop: two opted-in Knative Services of the
// reference Wasm function, one as the webhook leaves it (no service account token) and one that
// keeps the token (`afterlife.dev/service-account-token: mount`, the baseline), woken from zero in
// alternating rounds. Each round is traced (trace.ts): the gateway's, the scaler's and the API
// server's times for every hop. Printed: the median offset of every hop, first event → reply
// against the baseline Service, and against "endpoint ready in the EndpointSlice" of the same
// cold start (when a gateway that waits for kubelet Ready could have delivered).
// Needs root (a real node) and the cached binaries (run the tests or `afterlife-devcluster build`).
import { setTimeout as sleep } from 'node:timers/promises';
import { functionService } from '@afterlife/core';
import { type BenchRow, benchRow, writeBenchResult } from '@afterlife/devcluster/testing';
import { AppsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { formatTrace, type HopId, traceOffsets } from '../src/trace.ts';
import { print, tracedColdStart, withBenchStack } from './stack.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const NAMESPACE = 'bench-cold';
const VARIANTS = [
  { name: 'no-token', labels: {} },
  { name: 'with-token', labels: { 'afterlife.dev/service-account-token': 'mount' } },
] as const;

const median = (values: readonly number[]): number => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(250);
  }
}

await withBenchStack('bench-cold', async (local) => {
  const { kubeConfig } = local;
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  for (const variant of VARIANTS) {
    await custom.createNamespacedCustomObject({
      group: 'serving.knative.dev',
      version: 'v1',
      namespace: NAMESPACE,
      plural: 'services',
      body: functionService({
        name: variant.name,
        namespace: NAMESPACE,
        image: local.image,
        labels: variant.labels,
        annotations: { 'afterlife.dev/cooldown-seconds': '3', 'afterlife.dev/polling-interval-seconds': '1' },
      }),
    });
  }
  // A round starts only once every Service is at zero with no pod left anywhere in the namespace:
  // a pod still stopping on the node slows the next one's start (measured: 1.7 s instead of 0.8 s).
  const allAtZero = async () =>
    until(
      'every Service routed, at 0 replicas, no pod left',
      async () => {
        const [pods, ...services] = await Promise.all([
          core.listNamespacedPod({ namespace: NAMESPACE }),
          ...VARIANTS.map(async ({ name }) => {
            const revision = `${name}-00001`;
            const [deployment, route] = await Promise.all([
              apps.readNamespacedDeployment({ name: `${revision}-deployment`, namespace: NAMESPACE }),
              custom.getNamespacedCustomObject({
                group: 'serving.knative.dev',
                version: 'v1',
                namespace: NAMESPACE,
                plural: 'routes',
                name,
              }) as Promise<{ status?: { traffic?: { revisionName?: string; percent?: number }[] } }>,
            ]);
            const routed = route.status?.traffic?.some((t) => t.revisionName === revision && (t.percent ?? 0) > 0);
            return routed === true && (deployment.spec?.replicas ?? 1) === 0;
          }),
        ]);
        return pods.items.length === 0 && services.every(Boolean) ? true : undefined;
      },
      180_000,
    );

  const offsets = new Map<string, Partial<Record<HopId, number>>[]>();
  const probeDelivered = new Map<string, number>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const variant of VARIANTS) {
      await allAtZero();
      const { outcome, trace } = await tracedColdStart(local, NAMESPACE, variant.name);
      print(`\nround ${round}, ${variant.name}: first event → reply ${outcome.latencyMs.toFixed(0)} ms`);
      for (const line of formatTrace(trace)) print(`  ${line}`);
      offsets.set(variant.name, [...(offsets.get(variant.name) ?? []), traceOffsets(trace)]);
      if (trace.via === 'probe') probeDelivered.set(variant.name, (probeDelivered.get(variant.name) ?? 0) + 1);
    }
  }

  const hop = (variant: string, id: HopId) => median((offsets.get(variant) ?? []).map((o) => o[id] ?? Number.NaN));
  const rows: BenchRow[] = [];
  const reply = hop('no-token', 'reply');
  rows.push(
    benchRow('first event → reply (median)', reply, 'ms', 'lower', {
      name: 'same, keeping the service account token',
      value: hop('with-token', 'reply'),
    }),
    benchRow('first event → delivered (median)', hop('no-token', 'delivered'), 'ms', 'lower', {
      name: 'first event → endpoint ready in EndpointSlice, same cold starts',
      value: hop('no-token', 'endpoint-ready'),
    }),
  );
  for (const id of [
    'held',
    'scaler-pushed',
    'keda-scaled',
    'pod-created',
    'pod-scheduled',
    'sandbox-ready',
    'endpoint-listed',
    'probe-answered',
    'pod-ready',
    'endpoint-ready',
  ] as const) {
    rows.push(benchRow(`hop ${id} at (median)`, hop('no-token', id), 'ms', 'lower'));
  }
  const replies = (offsets.get('no-token') ?? []).map((o) => o.reply ?? Number.NaN).sort((a, b) => a - b);
  rows.push(
    benchRow('first event → reply (best)', replies[0] ?? Number.NaN, 'ms', 'lower'),
    benchRow('first event → reply (worst)', replies.at(-1) ?? Number.NaN, 'ms', 'lower'),
    benchRow('cold starts delivered on the probe', probeDelivered.get('no-token') ?? 0, 'count', 'higher'),
  );
  print(`\ncold-start chain, ${ROUNDS} rounds per Service (median ms after the event was sent):`);
  for (const row of rows) {
    const baseline =
      row.baseline === null ? '' : `  vs ${row.baseline}: ${row.baselineValue?.toFixed(0)} (${row.ratio?.toFixed(2)}×)`;
    print(`  ${row.name.padEnd(40)} ${row.value.toFixed(0).padStart(6)} ${row.unit}${baseline}`);
  }
  writeBenchResult('cold-start', rows);
});
