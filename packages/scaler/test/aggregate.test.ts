import assert from 'node:assert/strict';
import type { CountsSnapshot } from '@afterlife/core';
import { CountsAggregator, isActive, metricValue, ZERO_TOTALS } from '../src/aggregate.ts';
import { parseTriggerMetadata } from '../src/metadata.ts';
import { counts } from './helpers.ts';

function snapshot(gateway: string, sequence: number, atMs: number, fns: CountsSnapshot['functions']): CountsSnapshot {
  return { gateway, sequence, at: new Date(atMs).toISOString(), functions: fns };
}

describe('counts aggregation', () => {
  let now = 1_000_000;
  const clock = () => now;
  beforeEach(() => {
    now = 1_000_000;
  });

  it('sums a function over every fresh gateway', () => {
    const agg = new CountsAggregator({ staleAfterMs: 5000, now: clock });
    agg.accept('http://a', snapshot('a', 1, now, [counts('ns', 'f', { pending: 2, inFlight: 1, ratePerSecond: 1.5 })]));
    agg.accept(
      'http://b',
      snapshot('b', 7, now, [counts('ns', 'f', { pending: 3, inFlight: 4, ratePerSecond: 2 }), counts('ns', 'g')]),
    );
    assert.deepEqual(agg.totals('ns/f'), { pending: 5, inFlight: 5, ratePerSecond: 3.5, gateways: 2 });
    assert.deepEqual(agg.totals('ns/g'), { pending: 0, inFlight: 0, ratePerSecond: 0, gateways: 1 });
    assert.equal(agg.totals('ns/unknown'), ZERO_TOTALS);
    assert.deepEqual([...agg.functionKeys()].sort(), ['ns/f', 'ns/g']);
  });

  it('expires a gateway whose data is stale and brings it back on new data', () => {
    const agg = new CountsAggregator({ staleAfterMs: 5000, now: clock });
    agg.accept('http://a', snapshot('a', 1, now, [counts('ns', 'f', { pending: 2 })]));
    now += 3000;
    agg.accept('http://b', snapshot('b', 1, now, [counts('ns', 'f', { pending: 3 })]));
    assert.equal(agg.totals('ns/f').pending, 5);
    now += 2001; // a is 5001 ms old
    assert.deepEqual(agg.totals('ns/f'), { pending: 3, inFlight: 0, ratePerSecond: 0, gateways: 1 });
    assert.equal(agg.freshGatewayCount(), 1);
    assert.deepEqual(
      agg.gateways().map((g) => [g.source, g.fresh]),
      [
        ['http://a', false],
        ['http://b', true],
      ],
    );
    now += 4000; // both stale
    assert.equal(agg.totals('ns/f'), ZERO_TOTALS);
    assert.equal(agg.freshGatewayCount(), 0);
    assert.equal(agg.functionKeys().size, 0);
    agg.accept('http://a', snapshot('a', 2, now, [counts('ns', 'f', { pending: 1 })]));
    assert.equal(agg.totals('ns/f').pending, 1);
  });

  it('drops reordered snapshots but refreshes on a repeated sequence (heartbeat)', () => {
    const agg = new CountsAggregator({ staleAfterMs: 5000, now: clock });
    const t0 = now;
    assert.equal(agg.accept('http://a', snapshot('a', 5, t0 + 50, [counts('ns', 'f', { pending: 4 })])), 'accepted');
    assert.equal(agg.accept('http://a', snapshot('a', 4, t0 + 40, [counts('ns', 'f', { pending: 9 })])), 'reordered');
    assert.equal(agg.totals('ns/f').pending, 4);
    now += 4000;
    assert.equal(agg.accept('http://a', snapshot('a', 5, t0 + 50, [counts('ns', 'f', { pending: 4 })])), 'refreshed');
    now += 4000; // 8 s after the first accept, 4 s after the refresh: still fresh
    assert.equal(agg.totals('ns/f').pending, 4);
  });

  it('accepts a lower sequence with a newer timestamp (the gateway restarted)', () => {
    const agg = new CountsAggregator({ staleAfterMs: 5000, now: clock });
    agg.accept('http://a', snapshot('a', 900, now, [counts('ns', 'f', { pending: 4 })]));
    assert.equal(agg.accept('http://a', snapshot('a', 1, now + 10, [counts('ns', 'f', { pending: 1 })])), 'accepted');
    assert.equal(agg.totals('ns/f').pending, 1);
  });

  it('treats a different gateway id at the same address as new data', () => {
    const agg = new CountsAggregator({ staleAfterMs: 5000, now: clock });
    agg.accept('http://a', snapshot('pod-1', 900, now, [counts('ns', 'f', { pending: 4 })]));
    assert.equal(
      agg.accept('http://a', snapshot('pod-2', 1, now - 10, [counts('ns', 'f', { pending: 2 })])),
      'accepted',
    );
    assert.equal(agg.totals('ns/f').pending, 2);
  });

  it('tells listeners which functions changed, and forgets removed gateways', () => {
    const agg = new CountsAggregator({ staleAfterMs: 5000, now: clock });
    const seen: string[][] = [];
    const off = agg.onUpdate((changed) => seen.push([...changed].sort()));
    agg.accept('http://a', snapshot('a', 1, now, [counts('ns', 'f'), counts('ns', 'g')]));
    agg.accept('http://a', snapshot('a', 2, now, [counts('ns', 'f', { pending: 1 }), counts('ns', 'g')]));
    agg.accept('http://a', snapshot('a', 3, now, [counts('ns', 'f', { pending: 1 }), counts('ns', 'g')]));
    agg.accept('http://a', snapshot('a', 4, now, [counts('ns', 'g')]));
    agg.remove('http://a');
    agg.remove('http://never-seen');
    off();
    agg.accept('http://a', snapshot('a', 5, now, [counts('ns', 'x')]));
    assert.deepEqual(seen, [['ns/f', 'ns/g'], ['ns/f'], ['ns/f'], ['ns/g']]);
    assert.equal(agg.totals('ns/g'), ZERO_TOTALS);
  });

  it('derives metric values and activity', () => {
    const totals = { pending: 2, inFlight: 3, ratePerSecond: 0.25, gateways: 1 };
    assert.equal(metricValue('pending', totals), 2);
    assert.equal(metricValue('concurrency', totals), 5);
    assert.equal(metricValue('rate', totals), 0.25);
    const spec = (md: Record<string, string>) =>
      parseTriggerMetadata({ name: 's', namespace: 'ns', scalerMetadata: md });
    assert.equal(isActive(spec({ function: 'f' }), totals), true);
    assert.equal(isActive(spec({ function: 'f' }), ZERO_TOTALS), false);
    assert.equal(isActive(spec({ function: 'f', activationThreshold: '5' }), totals), false);
    assert.equal(isActive(spec({ function: 'f', activationThreshold: '4.5' }), totals), true);
    assert.equal(isActive(spec({ function: 'f', metric: 'pending', activationThreshold: '2' }), totals), false);
  });
});
