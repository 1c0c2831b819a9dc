/**
 * The scaler against the REAL @afterlife/gateway (its exported startGateway, no cluster): an event
 * held for a function with no ready endpoint makes StreamIsActive push `true`; delivering it
 * brings the function back to inactive. With discovery `knative` the gateway counts per revision
 * and a `revision` trigger reads exactly that revision.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Gateway, loadConfig as loadGatewayConfig, startGateway } from '@afterlife/gateway';
import * as grpc from '@grpc/grpc-js';
import { type RunningScaler, startScaler } from '../src/scaler.ts';
import { call, ref, scalerClientConstructor, silentLogger, testConfig, waitFor } from './helpers.ts';

const FN = { namespace: 'demo', name: 'echo' };

describe('with the real gateway (startGateway)', function () {
  this.timeout(30_000);
  let gateway: Gateway | undefined;
  let scaler: RunningScaler | undefined;
  let receiver: Server | undefined;
  let client: InstanceType<ReturnType<typeof scalerClientConstructor>> | undefined;

  afterEach(async () => {
    client?.close();
    await scaler?.close();
    await gateway?.close();
    if (receiver) {
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver?.close(resolve));
    }
    [client, scaler, gateway, receiver] = [undefined, undefined, undefined, undefined];
  });

  async function startReceiver(): Promise<number> {
    receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    });
    await new Promise<void>((resolve) => receiver?.listen(0, '127.0.0.1', resolve));
    return (receiver.address() as AddressInfo).port;
  }

  const event = (id: string) => ({
    method: 'POST',
    headers: {
      'ce-id': id,
      'ce-source': '/scaler-test',
      'ce-type': 'dev.afterlife.test',
      'ce-specversion': '1.0',
      'content-type': 'application/json',
    },
    body: '{"hello":"scaler"}',
  });

  it('pushes true within milliseconds of the first held event, and goes inactive once it is delivered', async () => {
    gateway = await startGateway(
      loadGatewayConfig({
        AFTERLIFE_GATEWAY_PORT: '0',
        AFTERLIFE_GATEWAY_ADMIN_PORT: '0',
        AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
        AFTERLIFE_GATEWAY_ID: 'gateway-for-scaler-test',
        AFTERLIFE_GATEWAY_LOG_LEVEL: 'silent',
        AFTERLIFE_GATEWAY_DRAIN_TIMEOUT: '1s',
        AFTERLIFE_GATEWAY_DISCOVERY: 'service', // a plain function fed through gateway.endpoints
      }),
      { logger: silentLogger, defaultMetrics: false },
    );
    gateway.endpoints.setFunction(FN, []); // known function, scaled to zero
    scaler = await startScaler(testConfig([`http://127.0.0.1:${gateway.adminPort}`]), {
      logger: silentLogger,
      defaultMetrics: false,
    });
    const running = scaler;
    await waitFor('gateway stream followed', () => running.aggregator.freshGatewayCount() === 1);

    const ScalerClient = scalerClientConstructor();
    client = new ScalerClient(`127.0.0.1:${scaler.port}`, grpc.credentials.createInsecure());
    const md = { function: 'demo/echo', metric: 'pending', scalerAddress: 'x:1' };
    const stream = client.StreamIsActive(ref(md));
    const messages: { result: boolean; at: number }[] = [];
    stream.on('data', (m: { result: boolean }) => messages.push({ result: m.result, at: performance.now() }));
    stream.on('error', () => undefined);
    await waitFor('initial false', () => messages[0]?.result === false);

    const sent = performance.now();
    const reply = fetch(`http://127.0.0.1:${gateway.eventsPort}/ns/demo/fn/echo`, event('evt-1'));
    const pushed = await waitFor('true pushed', () => messages.find((m) => m.result && m.at >= sent), 2000, 1);
    console.log(`      real gateway: event sent → StreamIsActive true in ${(pushed.at - sent).toFixed(1)} ms`);
    const c = client;
    assert.equal((await call(c.IsActive, c, ref(md))).result, true);
    const metrics = await call(c.GetMetrics, c, {
      scaledObjectRef: ref(md),
      metricName: 'afterlife-pending-demo-echo',
    });
    assert.deepEqual(metrics.metricValues, [
      { metricName: 'afterlife-pending-demo-echo', metricValue: 1, metricValueFloat: 1 },
    ]);

    // An endpoint becomes ready: the held event is delivered, the sender gets the reply.
    gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: await startReceiver() }]);
    const response = await reply;
    assert.equal(response.status, 200);
    await waitFor('inactive again', async () => !(await call(c.IsActive, c, ref(md))).result, 5000, 20);
    stream.cancel();
  });

  it('activates the `revision` trigger of the revision the Knative Route sent the event to, and only that one', async () => {
    gateway = await startGateway(
      loadGatewayConfig({
        AFTERLIFE_GATEWAY_PORT: '0',
        AFTERLIFE_GATEWAY_ADMIN_PORT: '0',
        AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
        AFTERLIFE_GATEWAY_ID: 'gateway-for-scaler-test',
        AFTERLIFE_GATEWAY_LOG_LEVEL: 'silent',
        AFTERLIFE_GATEWAY_DRAIN_TIMEOUT: '1s',
        AFTERLIFE_GATEWAY_DISCOVERY: 'knative',
      }),
      { logger: silentLogger, defaultMetrics: false },
    );
    // A Knative Service mid-rollout: the old revision keeps a tag, the new one takes all traffic.
    gateway.endpoints.setFunction({ namespace: 'demo', name: 'echo-00001' }, []);
    gateway.endpoints.setFunction({ namespace: 'demo', name: 'echo-00002' }, []);
    gateway.routes.setRoute(FN, [
      { revisionName: 'echo-00001', percent: 0, tag: 'previous' },
      { revisionName: 'echo-00002', percent: 100, latestRevision: true },
    ]);
    scaler = await startScaler(testConfig([`http://127.0.0.1:${gateway.adminPort}`]), {
      logger: silentLogger,
      defaultMetrics: false,
    });
    const running = scaler;
    await waitFor('gateway stream followed', () => running.aggregator.freshGatewayCount() === 1);
    const ScalerClient = scalerClientConstructor();
    client = new ScalerClient(`127.0.0.1:${scaler.port}`, grpc.credentials.createInsecure());
    const c = client;
    const active = async (metadata: Record<string, string>) =>
      (await call(c.IsActive, c, ref({ ...metadata, metric: 'pending', scalerAddress: 'x:1' }, 'so-1', 'demo'))).result;

    const reply = fetch(`http://127.0.0.1:${gateway.eventsPort}/ns/demo/fn/echo`, event('evt-rev'));
    await waitFor('the new revision active', () => active({ revision: 'echo-00002' }), 5000, 20);
    assert.equal(await active({ revision: 'demo/echo-00002' }), true);
    assert.equal(await active({ revision: 'other/echo-00002' }), false);
    assert.equal(await active({ revision: 'echo-00001' }), false, 'the old revision got nothing');
    assert.equal(await active({ function: 'echo' }), false, 'nothing is counted under the Knative Service');

    gateway.endpoints.setFunction({ namespace: 'demo', name: 'echo-00002' }, [
      { ip: '127.0.0.1', port: await startReceiver() },
    ]);
    assert.equal((await reply).status, 200);
    await waitFor('inactive again', async () => !(await active({ revision: 'echo-00002' })), 5000, 20);
  });
});
