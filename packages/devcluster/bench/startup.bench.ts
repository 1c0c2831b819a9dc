// Warm start-up of a full devcluster against a minimal one (etcd, kube-apiserver, controllers,
// one kwok node) measured in the same run, so the ratio shows what KEDA, Knative CRDs and the
// registry add. Binaries must already be cached (run the tests or `afterlife-devcluster build`).
import { benchRow, writeBenchResult } from '../src/bench.ts';
import { DevCluster } from '../src/index.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

async function timeStart(label: string, options: Parameters<typeof DevCluster.start>[0]): Promise<number[]> {
  const samples: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    const cluster = await DevCluster.start({ ...options, name: `bench-${label}-${process.pid}-${round}` });
    samples.push(performance.now() - started);
    await cluster.stop();
  }
  return samples;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

const minimal = await timeStart('minimal', { keda: false, knative: false, registry: false, nodes: 1, realNodes: 0 });
const full = await timeStart('full', {});
console.log(`devcluster warm start over ${ROUNDS} rounds (median):`);
console.log(`  minimal (etcd + apiserver + controllers + 1 kwok node): ${(median(minimal) / 1000).toFixed(2)} s`);
console.log(`  full (+ KEDA, Knative CRDs, registry, 2 kwok + 1 real node): ${(median(full) / 1000).toFixed(2)} s`);
console.log(`  ratio full / minimal: ${(median(full) / median(minimal)).toFixed(2)}`);
writeBenchResult('devcluster', [
  benchRow('warm start, full cluster', median(full) / 1000, 's', 'lower', {
    name: 'minimal control plane',
    value: median(minimal) / 1000,
  }),
]);
