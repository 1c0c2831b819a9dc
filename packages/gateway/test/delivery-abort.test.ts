import assert from 'node:assert/strict';
import type { Gateway } from '../src/server.ts';
import { counts, type Receiver, sendBinary, startReceiver, startTestGateway, waitFor } from './helpers.ts';

const FN = { namespace: 'demo', name: 'slow' };
const PATH = '/ns/demo/fn/slow';

describe('deliveries cut short (the transport aborts them)', function () {
  this.timeout(20_000);
  let gateway: Gateway | undefined;
  let target: Receiver | undefined;

  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    await target?.close();
  });

  it('answers 504 delivery_timeout when the function does not answer in time, and counts it failed', async () => {
    target = await startReceiver({ delayMs: 2000 });
    gateway = await startTestGateway({ AFTERLIFE_GATEWAY_DELIVERY_TIMEOUT: '150ms' });
    gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
    const started = Date.now();
    const res = await sendBinary(gateway.eventsPort, PATH, 'late-reply');
    assert.equal(res.status, 504);
    assert.equal(((await res.json()) as { error: string }).error, 'delivery_timeout');
    assert.ok(Date.now() - started < 1500, 'answered at the timeout, not when the function replied');
    const snapshot = await counts(gateway.adminPort);
    assert.deepEqual(
      { inFlight: snapshot.functions[0]?.inFlight, failed: snapshot.functions[0]?.failed },
      { inFlight: 0, failed: 1 },
    );
  });

  it('answers 503 shutting_down to a delivery still running when the drain times out', async () => {
    target = await startReceiver({ delayMs: 3000 });
    gateway = await startTestGateway({ AFTERLIFE_GATEWAY_DRAIN_TIMEOUT: '200ms' });
    gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
    const reply = sendBinary(gateway.eventsPort, PATH, 'in-flight');
    const receiver = target;
    await waitFor(() => receiver.received.length === 1, 5000, 'delivery started');
    await gateway.close();
    gateway = undefined;
    const res = await reply;
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: string }).error, 'shutting_down');
  });
});
