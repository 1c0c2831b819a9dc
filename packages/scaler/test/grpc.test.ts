import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { type RunningScaler, startScaler } from '../src/scaler.ts';
import {
  call,
  counts,
  FakeGateway,
  healthClientConstructor,
  ref,
  scalerClientConstructor,
  silentLogger,
  testConfig,
  type WireHealthClient,
  type WireScalerClient,
  waitFor,
} from './helpers.ts';

const ScalerClient = scalerClientConstructor();
const HealthClient = healthClientConstructor();

describe('gRPC contract (real server, client from the same proto)', function () {
  this.timeout(20_000);
  const cleanups: (() => unknown)[] = [];
  let gatewayA: FakeGateway;
  let gatewayB: FakeGateway;
  let scaler: RunningScaler;
  let client: WireScalerClient;

  beforeEach(async () => {
    gatewayA = await FakeGateway.start('gw-a', { heartbeatMs: 200 });
    gatewayB = await FakeGateway.start('gw-b', { heartbeatMs: 200 });
    cleanups.push(
      () => gatewayA.close(),
      () => gatewayB.close(),
    );
    scaler = await startScaler(testConfig([gatewayA.url, gatewayB.url]), {
      logger: silentLogger,
      defaultMetrics: false,
    });
    cleanups.push(() => scaler.close());
    client = new ScalerClient(`127.0.0.1:${scaler.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    await waitFor('both gateways fresh', () => scaler.aggregator.freshGatewayCount() === 2);
  });

  afterEach(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    cleanups.length = 0;
  });

  it('GetMetricSpec fills both targetSize and targetSizeFloat and never returns an empty list', async () => {
    const spec = await call(
      client.GetMetricSpec,
      client,
      ref({ function: 'ns/f', targetValue: '2.5', scalerAddress: 'x' }),
    );
    assert.deepEqual(spec.metricSpecs, [
      { metricName: 'afterlife-concurrency-ns-f', targetSize: 3, targetSizeFloat: 2.5 },
    ]);
    const defaults = await call(client.GetMetricSpec, client, ref({ function: 'g', metric: 'pending' }, 'so', 'team'));
    assert.deepEqual(defaults.metricSpecs, [
      { metricName: 'afterlife-pending-team-g', targetSize: 10, targetSizeFloat: 10 },
    ]);
  });

  it('GetMetrics and IsActive aggregate every gateway (int rounded up + float)', async () => {
    const md = { function: 'ns/f', metric: 'concurrency' };
    assert.deepEqual((await call(client.IsActive, client, ref(md))).result, false);
    let metrics = await call(client.GetMetrics, client, {
      scaledObjectRef: ref(md),
      metricName: 's0-afterlife-concurrency-ns-f',
    });
    assert.deepEqual(metrics.metricValues, [
      { metricName: 's0-afterlife-concurrency-ns-f', metricValue: 0, metricValueFloat: 0 },
    ]);

    gatewayA.set([counts('ns', 'f', { pending: 2, inFlight: 1, ratePerSecond: 0.5 })]);
    gatewayB.set([
      counts('ns', 'f', { pending: 1, inFlight: 3, ratePerSecond: 0.75 }),
      counts('ns', 'other', { pending: 9 }),
    ]);
    await waitFor(
      'aggregate',
      () => scaler.aggregator.totals('ns/f').gateways === 2 && scaler.aggregator.totals('ns/f').pending === 3,
    );

    metrics = await call(client.GetMetrics, client, { scaledObjectRef: ref(md), metricName: '' });
    assert.deepEqual(metrics.metricValues, [
      { metricName: 'afterlife-concurrency-ns-f', metricValue: 7, metricValueFloat: 7 },
    ]);
    const rate = await call(client.GetMetrics, client, {
      scaledObjectRef: ref({ function: 'ns/f', metric: 'rate' }),
      metricName: 'afterlife-rate-ns-f',
    });
    assert.deepEqual(rate.metricValues, [
      { metricName: 'afterlife-rate-ns-f', metricValue: 2, metricValueFloat: 1.25 },
    ]);
    assert.equal((await call(client.IsActive, client, ref(md))).result, true);
    assert.equal((await call(client.IsActive, client, ref({ ...md, activationThreshold: '7' }))).result, false);
    assert.equal((await call(client.IsActive, client, ref({ ...md, activationThreshold: '6.5' }))).result, true);
  });

  it('a gateway going away expires its counts', async () => {
    gatewayA.set([counts('ns', 'f', { pending: 2 })]);
    gatewayB.set([counts('ns', 'f', { pending: 5 })]);
    await waitFor('7 pending', () => scaler.aggregator.totals('ns/f').pending === 7);
    await gatewayB.close();
    // STALE_AFTER is 2 s in the test config.
    await waitFor('gateway b expired', () => scaler.aggregator.totals('ns/f').pending === 2, 5000, 50);
    const metrics = await call(client.GetMetrics, client, {
      scaledObjectRef: ref({ function: 'ns/f', metric: 'pending' }),
      metricName: 'm',
    });
    assert.equal(metrics.metricValues[0]?.metricValueFloat, 2);
  });

  it('answers INVALID_ARGUMENT naming the key for bad metadata, on every RPC', async () => {
    const bad = ref({ function: 'ns/f', targetValu: '5' });
    for (const rpc of [client.IsActive, client.GetMetricSpec] as const) {
      await assert.rejects(call(rpc as typeof client.IsActive, client, bad), (error: grpc.ServiceError) => {
        assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
        assert.match(
          error.details,
          /ScaledObject default\/so-1: .*unknown key "targetValu"; did you mean "targetValue"\?/,
        );
        return true;
      });
    }
    await assert.rejects(
      call(client.GetMetrics, client, { scaledObjectRef: ref({ function: 'f', metric: 'queue' }), metricName: '' }),
      {
        code: grpc.status.INVALID_ARGUMENT,
        details: /"metric" must be one of pending, concurrency, rate/,
      },
    );
    await assert.rejects(
      call(client.GetMetrics, client, { scaledObjectRef: ref({ function: 'f', targetValue: '0' }), metricName: '' }),
      {
        code: grpc.status.INVALID_ARGUMENT,
        details: /"targetValue" must be greater than 0/,
      },
    );
    const stream = client.StreamIsActive(ref({ metric: 'pending' }));
    const error = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
    assert.match(error.details, /exactly one of "function" or "revision" is required/);
  });

  it('answers UNIMPLEMENTED for StreamMetricSpec (newer KEDA versions probe it)', async () => {
    const stream = client.makeServerStreamRequest(
      '/externalscaler.ExternalScaler/StreamMetricSpec',
      (value: unknown) => Buffer.alloc(0, value as string),
      (buffer: Buffer) => buffer,
      {},
    );
    const error = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    assert.equal(error.code, grpc.status.UNIMPLEMENTED);
  });

  it('StreamIsActive pushes true within milliseconds of a gateway reporting pending, re-sends it while active, and is quiet while idle', async () => {
    const stream = client.StreamIsActive(ref({ function: 'ns/f', metric: 'pending' }));
    cleanups.push(() => stream.cancel());
    const messages: { result: boolean; at: number }[] = [];
    stream.on('data', (message: { result: boolean }) =>
      messages.push({ result: message.result, at: performance.now() }),
    );
    stream.on('error', () => undefined);
    await waitFor('initial state', () => messages.length >= 1);
    assert.equal(messages[0]?.result, false);
    // Idle: nothing more on the stream (KEDA drops a streamed false; a thousand idle streams would
    // otherwise cost a thousand messages per interval). The stream interval is 200 ms here.
    await sleep(700);
    assert.equal(messages.length, 1, 'no re-send while idle');
    const sent = performance.now();
    const sentEpoch = Date.now();
    gatewayA.set([counts('ns', 'f', { pending: 1 })]);
    const pushed = await waitFor('true pushed', () => messages.find((m) => m.result && m.at >= sent), 1000, 1);
    const latency = pushed.at - sent;
    console.log(`      StreamIsActive push latency: ${latency.toFixed(1)} ms (stream interval 200 ms)`);
    assert.ok(latency < 150, `push took ${latency} ms`);
    // The push is on record for the cold-start trace, with the ScaledObject and its function.
    const served = (await (await fetch(`http://127.0.0.1:${scaler.metricsPort}/v1/activations`)).json()) as {
      activations: { function: string; scaledObject: string; pushedAt: number }[];
    };
    const activation = served.activations.find((entry) => entry.function === 'ns/f');
    assert.equal(activation?.scaledObject, 'default/so-1');
    assert.ok(
      (activation?.pushedAt ?? 0) >= sentEpoch && (activation?.pushedAt ?? 0) <= Date.now(),
      JSON.stringify(activation),
    );
    const count = messages.length;
    await waitFor('periodic re-sends', () => messages.length >= count + 2, 2000);
    assert.ok(messages.slice(count).every((m) => m.result));
    gatewayA.set([counts('ns', 'f', { pending: 0 })]);
    await waitFor('false sent once it turned idle', () => messages.at(-1)?.result === false, 2000);
    const idleCount = messages.length;
    await sleep(700);
    assert.equal(messages.length, idleCount, 'quiet again while idle');
  });

  it('StreamIsActive pushes to every stream of the function that changed and to no other', async () => {
    const open = (fn: string, name: string) => {
      const stream = client.StreamIsActive(ref({ function: fn, metric: 'pending' }, name));
      const results: boolean[] = [];
      stream.on('data', (message: { result: boolean }) => results.push(message.result));
      stream.on('error', () => undefined);
      cleanups.push(() => stream.cancel());
      return { stream, results };
    };
    // Two ScaledObjects of one function (two triggers KEDA streams separately), one of another.
    const first = open('ns/shared', 'so-a');
    const second = open('ns/shared', 'so-b');
    const other = open('ns/other', 'so-c');
    await waitFor('initial state on all three', () => [first, second, other].every((s) => s.results.length === 1));
    gatewayA.set([counts('ns', 'shared', { pending: 2 })]);
    await waitFor('true on both streams of ns/shared', () => first.results.at(-1) && second.results.at(-1), 1000, 1);
    assert.deepEqual(other.results, [false], 'the other function heard nothing');
    // One stream of the function closing leaves the other pushed to.
    first.stream.cancel();
    const gauge = async () => (await scaler.metrics.activeStreams.get()).values[0]?.value ?? 0;
    await waitFor('2 open streams', async () => (await gauge()) === 2);
    gatewayA.set([counts('ns', 'shared', { pending: 0 })]);
    await waitFor('false on the remaining stream', () => second.results.at(-1) === false, 2000);
    assert.deepEqual(other.results, [false]);
  });

  it('StreamIsActive streams close on cancel (no leaked streams)', async () => {
    const gauge = async () => (await scaler.metrics.activeStreams.get()).values[0]?.value ?? 0;
    const streams = Array.from({ length: 5 }, (_, i) => client.StreamIsActive(ref({ function: `ns/f${i}` })));
    for (const s of streams) s.on('error', () => undefined);
    await waitFor('5 open streams', async () => (await gauge()) === 5);
    for (const s of streams) s.cancel();
    await waitFor('0 open streams', async () => (await gauge()) === 0);
  });

  it('StreamIsActive works again after the scaler restarts on the same port', async () => {
    const port = scaler.port;
    const first = client.StreamIsActive(ref({ function: 'ns/f' }));
    const firstEnded = new Promise<void>((resolve) => {
      first.on('error', () => resolve());
      first.on('end', () => resolve());
    });
    first.on('data', () => undefined);
    await scaler.close();
    await firstEnded;
    scaler = await startScaler(testConfig([gatewayA.url, gatewayB.url], { AFTERLIFE_SCALER_PORT: String(port) }), {
      logger: silentLogger,
      defaultMetrics: false,
    });
    cleanups.push(() => scaler.close());
    // What KEDA does: open the stream again after an error, with a back-off, on the same target.
    const results: boolean[] = [];
    let current: grpc.ClientReadableStream<{ result: boolean }> | undefined;
    let reopened = 0;
    let stopped = false;
    const open = (): void => {
      if (stopped) return;
      reopened++;
      current = client.StreamIsActive(ref({ function: 'ns/f' }));
      current.on('data', (m: { result: boolean }) => results.push(m.result));
      current.on('error', () => setTimeout(open, 200));
    };
    open();
    cleanups.push(() => {
      stopped = true;
      const last = current;
      current = undefined;
      last?.removeAllListeners('error');
      last?.on('error', () => undefined);
      last?.cancel();
    });
    await waitFor('stream re-opened', () => results.length >= 1, 5000);
    await waitFor('restarted scaler follows the gateways', () => scaler.aggregator.freshGatewayCount() === 2);
    gatewayB.set([counts('ns', 'f', { pending: 4 })]);
    await waitFor('true after restart', () => results.at(-1) === true, 1000, 1);
    console.log(`      stream opened ${reopened} time(s) until the restarted scaler answered`);
  });

  it('grpc.health.v1: SERVING while counts are fresh, NOT_SERVING when every gateway is stale', async () => {
    const health: WireHealthClient = new HealthClient(`127.0.0.1:${scaler.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => health.close());
    assert.equal((await call(health.Check, health, { service: '' })).status, 'SERVING');
    assert.equal((await call(health.Check, health, { service: 'externalscaler.ExternalScaler' })).status, 'SERVING');
    await assert.rejects(call(health.Check, health, { service: 'nope' }), { code: grpc.status.NOT_FOUND });

    const watch = health.Watch({ service: '' });
    cleanups.push(() => watch.cancel());
    watch.on('error', () => undefined);
    const statuses: string[] = [];
    watch.on('data', (m: { status: string }) => statuses.push(m.status));
    await waitFor('first watch status', () => statuses[0] === 'SERVING');

    await gatewayA.close();
    await gatewayB.close();
    await waitFor('NOT_SERVING pushed on Watch', () => statuses.at(-1) === 'NOT_SERVING', 5000, 20);
    assert.equal((await call(health.Check, health, { service: '' })).status, 'NOT_SERVING');

    const unknown = health.Watch({ service: 'nope' });
    cleanups.push(() => unknown.cancel());
    unknown.on('error', () => undefined);
    const first = await new Promise<{ status: string }>((resolve) => unknown.once('data', resolve));
    assert.equal(first.status, 'SERVICE_UNKNOWN');
  });

  it('on shutdown, health Watch streams get NOT_SERVING and end', async () => {
    const health: WireHealthClient = new HealthClient(`127.0.0.1:${scaler.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => health.close());
    const watch = health.Watch({ service: 'externalscaler.ExternalScaler' });
    const statuses: string[] = [];
    watch.on('data', (m: { status: string }) => statuses.push(m.status));
    const ended = new Promise<void>((resolve) => {
      watch.on('end', () => resolve());
      watch.on('error', () => resolve());
    });
    await waitFor('SERVING', () => statuses[0] === 'SERVING');
    await scaler.close();
    await ended;
    assert.deepEqual(statuses, ['SERVING', 'NOT_SERVING']);
  });

  it('serves /metrics, /healthz and /readyz', async () => {
    await call(client.IsActive, client, ref({ function: 'ns/f' }));
    await call(client.IsActive, client, ref({ function: 'ns/f', oops: '1' })).catch(() => undefined);
    const base = `http://127.0.0.1:${scaler.metricsPort}`;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /afterlife_scaler_grpc_requests_total\{method="IsActive",code="OK",component="scaler"\} 1/);
    assert.match(
      metrics,
      /afterlife_scaler_grpc_requests_total\{method="IsActive",code="INVALID_ARGUMENT",component="scaler"\} 1/,
    );
    assert.match(metrics, /afterlife_scaler_gateways\{state="fresh",component="scaler"\} 2/);
    assert.match(metrics, /afterlife_scaler_gateway_snapshots_total\{via="stream",result="accepted"/);
    const healthz = await fetch(`${base}/healthz`);
    assert.equal(healthz.status, 200);
    const body = (await healthz.json()) as { countsFresh: boolean; gateways: unknown[] };
    assert.equal(body.countsFresh, true);
    assert.equal(body.gateways.length, 2);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  });
});
