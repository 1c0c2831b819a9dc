import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { BatchedCounter, BucketHistogram } from '../src/series-metrics.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const A = { namespace: 'demo', function: 'a' };
const B = { namespace: 'demo', function: 'b' };

/** The same metric exposed by prom-client's class and by ours, each on a registry of its own. */
function pair() {
  const theirs = new Registry();
  const ours = new Registry();
  for (const registry of [theirs, ours]) registry.setDefaultLabels({ component: 'gateway' });
  const options = { help: 'help text', labelNames: ['namespace', 'function'] as const };
  return {
    theirs,
    ours,
    histograms: [
      new Histogram({ name: 'h_seconds', ...options, buckets: BUCKETS, registers: [theirs] }),
      new BucketHistogram({ name: 'h_seconds', ...options, buckets: BUCKETS, registers: [ours] }),
    ] as const,
    counters: [
      new Counter({ name: 'c_total', ...options, registers: [theirs] }),
      new BatchedCounter({ name: 'c_total', ...options, registers: [ours] }),
    ] as const,
  };
}

describe('series metrics (plain-number children, read at scrape time)', () => {
  it('expose exactly what prom-client exposes for the same observations', async () => {
    const { theirs, ours, histograms, counters } = pair();
    const [promHistogram, bucketHistogram] = histograms;
    const [promCounter, batchedCounter] = counters;
    const observedA = bucketHistogram.labels(A);
    const observedB = bucketHistogram.labels(B);
    for (const value of [0.0005, 0.001, 0.005, 0.05, 0.5, 5, 0]) {
      promHistogram.labels(A).observe(value);
      observedA.observe(value);
    }
    promHistogram.observe(B, 0.02);
    observedB.observe(0.02);
    const countedA = batchedCounter.child(A);
    batchedCounter.child(B); // never incremented: no series, as with prom-client
    promCounter.inc(A, 3);
    countedA.inc(2);
    countedA.inc();
    assert.equal(await ours.metrics(), await theirs.metrics());
    // Counted again after a scrape: added to what was exported.
    promCounter.inc(A);
    countedA.inc();
    assert.equal(await ours.metrics(), await theirs.metrics());
    // prom-client's objects also carry an (unset) exemplar per value.
    const withoutExemplars = async (metric: { get(): Promise<{ values: object[] }> }) => {
      const got = await metric.get();
      return { ...got, values: got.values.map(({ exemplar: _, ...value }: { exemplar?: unknown }) => value) };
    };
    assert.deepEqual(await withoutExemplars(bucketHistogram), await withoutExemplars(promHistogram));
    assert.deepEqual(await batchedCounter.get(), await promCounter.get());
  });

  it('exports nothing before the first observation, and forgets on reset', async () => {
    const { ours, histograms } = pair();
    const [, histogram] = histograms;
    const child = histogram.labels(A);
    assert.doesNotMatch(await ours.metrics(), /h_seconds_count/);
    child.observe(0.5);
    assert.match(await ours.metrics(), /h_seconds_count\{component="gateway",namespace="demo",function="a"\} 1\n/);
    histogram.reset();
    assert.doesNotMatch(await ours.metrics(), /h_seconds_count/);
    assert.throws(() => child.observe(Number.NaN), TypeError);
  });
});
