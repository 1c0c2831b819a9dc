/**
 * GetMetrics latency with 1,000 ScaledObjects (distinct functions, all reported by 3 gateways)
 * against a baseline: an empty unary handler on the same gRPC server, same client, same run.
 * Then the heap one open StreamIsActive costs (KEDA holds one per external-push ScaledObject)
 * against a baseline server-streaming handler that writes one message and holds the call.
 * Bounded: a fixed number of sequential calls per phase (no timing assertions).
 */
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { benchRow, writeBenchResult } from '@afterlife/devcluster/testing';
import * as grpc from '@grpc/grpc-js';
import { GetMetricsRequest, GetMetricsResponse, IsActiveResponse, ScaledObjectRef } from '../src/gen/externalscaler.ts';
import { type RunningScaler, startScaler } from '../src/scaler.ts';
import {
  counts,
  FakeGateway,
  ref,
  scalerClientConstructor,
  silentLogger,
  testConfig,
  type WireRef,
  waitFor,
} from '../test/helpers.ts';

const FUNCTIONS = 1000;
const GATEWAYS = 3;
const WARMUP = 500;
const CALLS = 5000;
const CONCURRENCY = 4;
const ROUNDS = 10;
const STREAMS = 1000;
const STREAM_ROUNDS = 5;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

type Once = (i: number) => Promise<unknown>;

/** Runs `calls` calls with CONCURRENCY in flight and appends each latency (ms) to `samples`. */
async function batch(once: Once, calls: number, samples: number[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < calls) {
        const i = next++;
        const t0 = performance.now();
        await once(i);
        samples.push(performance.now() - t0);
      }
    }),
  );
}

/**
 * Baseline and subject alternate in ROUNDS batches, so background load on a shared machine hits
 * both alike; returns p50/p99 of each.
 */
async function compare(
  subjects: readonly { label: string; once: Once }[],
): Promise<{ label: string; p50: number; p99: number; perSecond: number }[]> {
  for (const { once } of subjects) await batch(once, WARMUP, []);
  const samples = subjects.map(() => [] as number[]);
  const elapsed = subjects.map(() => 0);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [index, { once }] of subjects.entries()) {
      const t0 = performance.now();
      await batch(once, CALLS / ROUNDS, samples[index] as number[]);
      elapsed[index] = (elapsed[index] ?? 0) + performance.now() - t0;
    }
  }
  return subjects.map(({ label }, index) => {
    const sorted = (samples[index] as number[]).sort((a, b) => a - b);
    const result = {
      label,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      perSecond: Math.round((sorted.length / (elapsed[index] ?? 1)) * 1000),
    };
    console.log(
      `${label.padEnd(34)} p50 ${result.p50.toFixed(3)} ms  p99 ${result.p99.toFixed(3)} ms  ` +
        `${result.perSecond} calls/s (${sorted.length} calls, ${CONCURRENCY} in flight)`,
    );
    return result;
  });
}

const gateways: FakeGateway[] = [];
let scaler: RunningScaler | undefined;
let client: grpc.Client | undefined;
let held = 0;
try {
  for (let g = 0; g < GATEWAYS; g++) {
    const gateway = await FakeGateway.start(`gw-${g}`);
    gateway.set(
      Array.from({ length: FUNCTIONS }, (_, i) => counts('bench', `fn-${i}`, { pending: i % 3, inFlight: i % 5 })),
    );
    gateways.push(gateway);
  }
  // The baseline: an extra service on the same server whose handler does nothing.
  const baselineService = {
    noop: {
      path: '/bench.Baseline/Noop',
      requestStream: false,
      responseStream: false,
      requestSerialize: (value: GetMetricsRequest) => Buffer.from(GetMetricsRequest.encode(value).finish()),
      requestDeserialize: (value: Buffer) => GetMetricsRequest.decode(value),
      responseSerialize: (value: GetMetricsResponse) => Buffer.from(GetMetricsResponse.encode(value).finish()),
      responseDeserialize: (value: Buffer) => GetMetricsResponse.decode(value),
    },
    hold: {
      path: '/bench.Baseline/Hold',
      requestStream: false,
      responseStream: true,
      requestSerialize: (value: ScaledObjectRef) => Buffer.from(ScaledObjectRef.encode(value).finish()),
      requestDeserialize: (value: Buffer) => ScaledObjectRef.decode(value),
      responseSerialize: (value: IsActiveResponse) => Buffer.from(IsActiveResponse.encode(value).finish()),
      responseDeserialize: (value: Buffer) => IsActiveResponse.decode(value),
    },
  } satisfies grpc.ServiceDefinition;
  const config = testConfig(
    gateways.map((g) => g.url),
    { AFTERLIFE_SCALER_STALE_AFTER: '30s' },
  );
  scaler = await startScaler(config, {
    logger: silentLogger,
    defaultMetrics: false,
    extraServices: [
      {
        definition: baselineService,
        implementation: {
          noop: (_call: unknown, cb: grpc.sendUnaryData<GetMetricsResponse>) => cb(null, { metricValues: [] }),
          // Holds the stream open like StreamIsActive, with nothing of the scaler behind it.
          hold: (call: grpc.ServerWritableStream<ScaledObjectRef, IsActiveResponse>) => {
            held++;
            call.write({ result: false });
            call.on('cancelled', () => {
              held--;
              call.end();
            });
          },
        },
      },
    ],
  });
  const running = scaler;
  await waitFor(
    'all gateways',
    () => running.aggregator.freshGatewayCount() === GATEWAYS && running.aggregator.functionKeys().size === FUNCTIONS,
    10_000,
  );

  const ScalerClient = scalerClientConstructor();
  const scalerClient = new ScalerClient(`127.0.0.1:${scaler.port}`, grpc.credentials.createInsecure());
  client = scalerClient;
  const Baseline = grpc.makeGenericClientConstructor(baselineService, 'bench.Baseline');
  const baselineClient = new Baseline(
    `127.0.0.1:${scaler.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    noop(req: GetMetricsRequest, cb: (e: grpc.ServiceError | null, v: GetMetricsResponse) => void): void;
    hold(req: ScaledObjectRef): grpc.ClientReadableStream<IsActiveResponse>;
  };

  const requests = Array.from({ length: FUNCTIONS }, (_, i) => ({
    scaledObjectRef: ref(
      { function: `bench/fn-${i}`, metric: 'concurrency', targetValue: '5', scalerAddress: 'afterlife-scaler:9090' },
      `so-${i}`,
      'bench',
    ),
    metricName: `s0-afterlife-concurrency-bench-fn-${i}`,
  }));

  console.log(`scaler GetMetrics bench: ${FUNCTIONS} ScaledObjects (distinct functions), ${GATEWAYS} gateways`);
  let checked = 0;
  const [baseline, getMetrics] = await compare([
    {
      label: 'baseline (empty unary handler)',
      once: (i) =>
        new Promise((resolve, reject) =>
          baselineClient.noop(requests[i % FUNCTIONS] as GetMetricsRequest, (e, v) => (e ? reject(e) : resolve(v))),
        ),
    },
    {
      label: 'GetMetrics (1,000 ScaledObjects)',
      once: (i) =>
        new Promise((resolve, reject) =>
          scalerClient.GetMetrics(requests[i % FUNCTIONS] as never, (e, v) => {
            if (e) return reject(e);
            const n = i % FUNCTIONS;
            const expected = GATEWAYS * (n % 3) + GATEWAYS * (n % 5);
            if (v.metricValues[0]?.metricValueFloat !== expected) return reject(new Error(`wrong value for fn-${n}`));
            checked++;
            resolve(v);
          }),
        ),
    },
  ]);
  if (baseline === undefined || getMetrics === undefined) throw new Error('missing results');
  console.log(
    `ratio GetMetrics/baseline: p50 ${(getMetrics.p50 / baseline.p50).toFixed(2)}x  p99 ${(getMetrics.p99 / baseline.p99).toFixed(2)}x` +
      `  (${checked} answers checked against the gateways' counts)`,
  );

  // Heap per open stream: the same client opens STREAMS streams on each handler in turn; the heap
  // after a full GC, minus the heap before, over STREAMS. Both include the client's side alike.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const settledHeap = async (): Promise<number> => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    return process.memoryUsage().heapUsed;
  };
  const serverStreams = async (): Promise<number> => (await running.metrics.activeStreams.get()).values[0]?.value ?? 0;
  const heapPerStream = async (
    open: (i: number) => grpc.ClientReadableStream<unknown>,
    openOnServer: () => Promise<number>,
  ): Promise<number> => {
    const before = await settledHeap();
    const streams = Array.from({ length: STREAMS }, (_, i) => open(i));
    await Promise.all(streams.map((stream) => new Promise((resolve) => stream.once('data', resolve))));
    const after = await settledHeap();
    for (const stream of streams) {
      stream.on('error', () => undefined);
      stream.cancel();
    }
    await waitFor('streams closed on the server', async () => (await openOnServer()) === 0, 10_000);
    return (after - before) / STREAMS;
  };
  const perStream = { baseline: [] as number[], streamIsActive: [] as number[] };
  for (let round = 0; round < STREAM_ROUNDS; round++) {
    perStream.baseline.push(
      await heapPerStream(
        (i) => baselineClient.hold(requests[i % FUNCTIONS]?.scaledObjectRef as ScaledObjectRef),
        async () => held,
      ),
    );
    perStream.streamIsActive.push(
      await heapPerStream(
        (i) => scalerClient.StreamIsActive(requests[i % FUNCTIONS]?.scaledObjectRef as WireRef),
        serverStreams,
      ),
    );
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
  const baselineStream = median(perStream.baseline);
  const scalerStream = median(perStream.streamIsActive);
  console.log(
    `heap per open stream (${STREAMS} streams, median of ${STREAM_ROUNDS}): baseline ${(baselineStream / 1024).toFixed(1)} KiB` +
      `  StreamIsActive ${(scalerStream / 1024).toFixed(1)} KiB  ratio ${(scalerStream / baselineStream).toFixed(2)}x`,
  );

  const empty = { name: 'empty unary handler' };
  writeBenchResult('scaler', [
    benchRow(`heap per open StreamIsActive (${STREAMS} streams)`, scalerStream / 1024, 'KiB', 'lower', {
      name: 'server-streaming handler holding the call',
      value: baselineStream / 1024,
    }),
    benchRow(`GetMetrics p50 (${FUNCTIONS} ScaledObjects)`, getMetrics.p50, 'ms', 'lower', {
      ...empty,
      value: baseline.p50,
    }),
    benchRow(`GetMetrics p99 (${FUNCTIONS} ScaledObjects)`, getMetrics.p99, 'ms', 'lower', {
      ...empty,
      value: baseline.p99,
    }),
    benchRow(`GetMetrics calls/s (${CONCURRENCY} in flight)`, getMetrics.perSecond, 'calls/s', 'higher', {
      ...empty,
      value: baseline.perSecond,
    }),
  ]);
  baselineClient.close();
} finally {
  client?.close();
  await scaler?.close();
  for (const gateway of gateways) await gateway.close();
}
