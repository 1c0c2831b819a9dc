import { createMetricsRegistry, LATENCY_BUCKETS_SECONDS } from '@afterlife/core';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The autoscaler's Prometheus metrics (one registry per instance). */
export interface AutoscalerMetrics {
  readonly registry: Registry;
  readonly reconciles: Counter<'result'>;
  readonly reconcileDuration: Histogram;
  readonly leader: Gauge;
  readonly queueDepth: Gauge;
  readonly podAutoscalers: Gauge;
}

export interface MetricsSample {
  readonly leading: boolean;
  readonly queueDepth: number;
  readonly podAutoscalers: number;
}

export function createAutoscalerMetrics(
  sample: () => MetricsSample,
  options: { defaultMetrics?: boolean } = {},
): AutoscalerMetrics {
  const registry = createMetricsRegistry('autoscaler', options);
  return {
    registry,
    reconciles: new Counter({
      name: 'afterlife_autoscaler_reconciles_total',
      help: 'PodAutoscaler reconciles, by result (updated, unchanged, invalid = bad annotations, ignored = other class, gone, error = retried)',
      labelNames: ['result'],
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: 'afterlife_autoscaler_reconcile_duration_seconds',
      help: 'Time to reconcile one PodAutoscaler (API writes included)',
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'afterlife_autoscaler_leader',
      help: '1 while this replica holds the leader Lease and reconciles',
      registers: [registry],
      collect() {
        this.set(sample().leading ? 1 : 0);
      },
    }),
    queueDepth: new Gauge({
      name: 'afterlife_autoscaler_work_queue_depth',
      help: 'PodAutoscalers waiting to be reconciled',
      registers: [registry],
      collect() {
        this.set(sample().queueDepth);
      },
    }),
    podAutoscalers: new Gauge({
      name: 'afterlife_autoscaler_pod_autoscalers',
      help: 'PodAutoscalers of the Afterlife class in the cache',
      registers: [registry],
      collect() {
        this.set(sample().podAutoscalers);
      },
    }),
  };
}
