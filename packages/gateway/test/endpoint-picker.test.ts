import assert from 'node:assert/strict';
import { EndpointPicker, type EndpointPickerOptions } from '../src/endpoint-picker.ts';
import { waitFor } from './helpers.ts';

const A = { ip: '10.0.0.1', port: 8080 };
const B = { ip: '10.0.0.2', port: 8080 };
const C = { ip: 'fd00::3', port: 8080 };

function picker(options: Partial<EndpointPickerOptions> = {}): EndpointPicker {
  return new EndpointPicker({ replicaConcurrency: 0, ejectMs: 10_000, onReturn: () => false, ...options });
}

describe('EndpointPicker', () => {
  it('has nothing to pick without endpoints', () => {
    const endpoints = picker();
    assert.equal(endpoints.pick(Date.now()), undefined);
    assert.equal(endpoints.size, 0);
    assert.equal(endpoints.readyCount(Date.now()), 0);
  });

  it('rotates over idle endpoints (round robin)', () => {
    const endpoints = picker();
    endpoints.setEndpoints([A, B, C]);
    assert.deepEqual(endpoints.keys(), ['10.0.0.1:8080', '10.0.0.2:8080', '[fd00::3]:8080']);
    const now = Date.now();
    const picks = Array.from({ length: 6 }, () => endpoints.pick(now)?.key);
    assert.deepEqual(picks, [
      '10.0.0.1:8080',
      '10.0.0.2:8080',
      '[fd00::3]:8080',
      '10.0.0.1:8080',
      '10.0.0.2:8080',
      '[fd00::3]:8080',
    ]);
  });

  it('picks the least-loaded endpoint; among equals, the next in rotation', () => {
    const endpoints = picker();
    endpoints.setEndpoints([A, B, C]);
    const now = Date.now();
    const [a, b, c] = [endpoints.pick(now), endpoints.pick(now), endpoints.pick(now)];
    assert.ok(a && b && c);
    endpoints.acquire(a);
    endpoints.acquire(a);
    endpoints.acquire(b);
    assert.equal(endpoints.pick(now), c, 'the idle one');
    endpoints.acquire(c);
    assert.equal(endpoints.pick(now), b, 'b and c carry one each; b comes first after c');
    endpoints.release(a);
    endpoints.release(a);
    assert.equal(endpoints.pick(now), a, 'a is idle again');
  });

  it('never goes above the per-replica concurrency limit', () => {
    const endpoints = picker({ replicaConcurrency: 2 });
    endpoints.setEndpoints([A, B]);
    const now = Date.now();
    const taken = [];
    for (let picked = endpoints.pick(now); picked !== undefined; picked = endpoints.pick(now)) {
      endpoints.acquire(picked);
      taken.push(picked.key);
    }
    assert.deepEqual(taken.sort(), ['10.0.0.1:8080', '10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.2:8080']);
    assert.equal(endpoints.readyCount(now), 2, 'busy endpoints are still ready');
  });

  it('keeps in-flight counts and ejections of endpoints that stay; drops those that go', () => {
    const endpoints = picker({ replicaConcurrency: 1 });
    endpoints.setEndpoints([A]);
    const now = Date.now();
    const a = endpoints.pick(now);
    assert.ok(a);
    endpoints.acquire(a);
    endpoints.setEndpoints([A, B]);
    assert.equal(endpoints.size, 2);
    assert.equal(endpoints.pick(now)?.key, '10.0.0.2:8080', 'A is still busy');
    const b = endpoints.pick(now);
    assert.ok(b);
    endpoints.eject(b, now);
    endpoints.setEndpoints([B, C]);
    endpoints.release(a); // a delivery to an endpoint that left ends
    assert.deepEqual(endpoints.keys(), ['10.0.0.2:8080', '[fd00::3]:8080']);
    assert.equal(endpoints.pick(now)?.key, '[fd00::3]:8080', 'B is still ejected');
    assert.equal(endpoints.readyCount(now), 1);
    endpoints.setEndpoints([A]);
    assert.equal(endpoints.pick(now)?.inFlight, 0, 'A came back as a new endpoint');
    endpoints.setEndpoints([]);
    assert.equal(endpoints.pick(now), undefined);
    endpoints.close();
  });

  it('skips an endpoint that refused a connection until its ejection ends, then calls onReturn', async () => {
    let returns = 0;
    const endpoints = picker({
      ejectMs: 60,
      onReturn: () => {
        returns += 1;
        return false;
      },
    });
    endpoints.setEndpoints([A, B]);
    const at = Date.now();
    const a = endpoints.pick(at);
    assert.equal(a?.key, '10.0.0.1:8080');
    assert.ok(a);
    endpoints.eject(a, at);
    assert.equal(a.ejectedUntil, at + 60);
    assert.equal(endpoints.readyCount(at), 1);
    assert.deepEqual([endpoints.pick(at)?.key, endpoints.pick(at)?.key], ['10.0.0.2:8080', '10.0.0.2:8080']);
    endpoints.eject(a, at); // a second ejection does not arm a second timer
    await waitFor(() => returns > 0, 2000, 'the ejection to end');
    assert.ok(Date.now() >= at + 55);
    assert.equal(endpoints.readyCount(at + 60), 2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(returns, 1, 'onReturn returned false: no re-arm');
    endpoints.close();
  });

  it('watches the next ejection while onReturn says events still wait', async () => {
    const calls: number[] = [];
    const endpoints = picker({
      ejectMs: 30,
      onReturn: () => {
        calls.push(Date.now());
        return true;
      },
    });
    endpoints.setEndpoints([A, B]);
    const now = Date.now();
    const a = endpoints.pick(now);
    const b = endpoints.pick(now);
    assert.ok(a && b);
    endpoints.eject(a, now);
    endpoints.eject(b, now + 100);
    // Timers may fire a millisecond early; the picker then re-arms until the ejection is over.
    await waitFor(() => calls.some((at) => at >= now + 129), 2000, 'the later ejection to end');
    assert.ok(calls.length >= 2, 'one call per ejection end');
    await new Promise((resolve) => setTimeout(resolve, 60));
    const settled = calls.length;
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(calls.length, settled, 'nothing ejected any more: no timer');
    endpoints.close();
  });

  it('close stops the ejection timer', async () => {
    let returns = 0;
    const endpoints = picker({ ejectMs: 20, onReturn: () => ++returns > 0 });
    endpoints.setEndpoints([A]);
    const a = endpoints.pick(Date.now());
    assert.ok(a);
    endpoints.eject(a, Date.now());
    endpoints.close();
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(returns, 0);
  });
});
