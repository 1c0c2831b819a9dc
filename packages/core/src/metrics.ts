import { collectDefaultMetrics, Registry } from 'prom-client';

/** A fresh Prometheus registry per component (never the global one, so tests don't collide). */
export function createMetricsRegistry(component: string, options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'afterlife_' });
  return registry;
}

/** Histogram buckets in seconds for sub-millisecond to multi-second latencies. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
