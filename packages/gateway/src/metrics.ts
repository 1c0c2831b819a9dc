import { createMetricsRegistry, LATENCY_BUCKETS_SECONDS } from '@afterlife/core';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { BatchedCounter, BucketHistogram } from './series-metrics.ts';

/** `function` is the function's name, or in discovery `knative` the revision's (the unit held and counted). */
const FN_LABELS = ['namespace', 'function'] as const;

/** Cold starts take seconds to minutes, not milliseconds. */
export const COLD_START_BUCKETS_SECONDS: readonly number[] = [
  0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300,
];

export interface GaugeSource {
  /** Current pending / in-flight / ready endpoints per function, read at scrape time. */
  gauges(): Iterable<{ namespace: string; name: string; pending: number; inFlight: number; readyEndpoints: number }>;
}

/** The gateway's Prometheus metrics (one registry per gateway instance). */
export class GatewayMetrics {
  readonly registry: Registry;
  /** Per event: counted in plain numbers by each function's child (`child(labels)`), read at scrape time. */
  readonly accepted: BatchedCounter<'namespace' | 'function'>;
  readonly delivered: BatchedCounter<'namespace' | 'function'>;
  readonly failed: Counter<'namespace' | 'function' | 'reason'>;
  readonly rejected: Counter<'reason'>;
  readonly coldStart: Histogram<'namespace' | 'function'>;
  readonly hold: BucketHistogram<'namespace' | 'function'>;
  readonly delivery: BucketHistogram<'namespace' | 'function'>;
  readonly subscribers: Gauge;
  #source: GaugeSource | undefined;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    this.registry = createMetricsRegistry('gateway', options);
    const registers = [this.registry];
    this.accepted = new BatchedCounter({
      name: 'afterlife_gateway_events_accepted_total',
      help: 'Events accepted for delivery (held or sent at once).',
      labelNames: FN_LABELS,
      registers,
    });
    this.delivered = new BatchedCounter({
      name: 'afterlife_gateway_events_delivered_total',
      help: 'Events the function answered with a status below 500.',
      labelNames: FN_LABELS,
      registers,
    });
    this.failed = new Counter({
      name: 'afterlife_gateway_events_failed_total',
      help: 'Accepted events that were not delivered successfully; the sender got an error.',
      labelNames: [...FN_LABELS, 'reason'],
      registers,
    });
    this.rejected = new Counter({
      name: 'afterlife_gateway_events_rejected_total',
      help: 'Requests refused before acceptance (invalid event, unknown function, no routable revision, pending limit, shutting down).',
      labelNames: ['reason'],
      registers,
    });
    this.coldStart = new Histogram({
      name: 'afterlife_gateway_cold_start_seconds',
      help: 'First event held with no ready endpoint → that function’s first delivery.',
      labelNames: FN_LABELS,
      buckets: [...COLD_START_BUCKETS_SECONDS],
      registers,
    });
    this.hold = new BucketHistogram({
      name: 'afterlife_gateway_hold_seconds',
      help: 'How long each held event waited for an endpoint.',
      labelNames: FN_LABELS,
      buckets: [...LATENCY_BUCKETS_SECONDS, 60, 120],
      registers,
    });
    this.delivery = new BucketHistogram({
      name: 'afterlife_gateway_delivery_seconds',
      help: 'One delivery: request sent to the function → full reply read.',
      labelNames: FN_LABELS,
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    });
    this.subscribers = new Gauge({
      name: 'afterlife_gateway_counts_subscribers',
      help: 'Open /v1/counts/stream connections (scalers).',
      registers,
    });
    const self = this;
    const gauge = (name: string, help: string, pick: 'pending' | 'inFlight' | 'readyEndpoints') =>
      new Gauge({
        name,
        help,
        labelNames: FN_LABELS,
        registers,
        collect(this: Gauge<'namespace' | 'function'>) {
          this.reset();
          for (const fn of self.#source?.gauges() ?? [])
            this.set({ namespace: fn.namespace, function: fn.name }, fn[pick]);
        },
      });
    gauge('afterlife_gateway_pending', 'Events held right now.', 'pending');
    gauge('afterlife_gateway_in_flight', 'Events being delivered right now.', 'inFlight');
    gauge('afterlife_gateway_ready_endpoints', 'Ready endpoints per function.', 'readyEndpoints');
  }

  bind(source: GaugeSource): void {
    this.#source = source;
  }
}
