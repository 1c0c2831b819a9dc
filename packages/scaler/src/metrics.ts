import { createMetricsRegistry, LATENCY_BUCKETS_SECONDS } from '@afterlife/core';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The scaler's Prometheus metrics (one registry per scaler instance). */
export interface ScalerMetrics {
  readonly registry: Registry;
  readonly grpcRequests: Counter<'method' | 'code'>;
  readonly grpcDuration: Histogram<'method'>;
  readonly activeStreams: Gauge;
  readonly streamPushes: Counter<'reason'>;
  readonly snapshots: Counter<'via' | 'result'>;
  readonly gatewayStreams: Gauge;
  readonly gateways: Gauge<'state'>;
}

export function createScalerMetrics(
  sample: () => { fresh: number; stale: number; streaming: number },
  options: { defaultMetrics?: boolean } = {},
): ScalerMetrics {
  const registry = createMetricsRegistry('scaler', options);
  return {
    registry,
    grpcRequests: new Counter({
      name: 'afterlife_scaler_grpc_requests_total',
      help: 'KEDA external scaler RPCs answered, by method and gRPC status code',
      labelNames: ['method', 'code'],
      registers: [registry],
    }),
    grpcDuration: new Histogram({
      name: 'afterlife_scaler_grpc_request_duration_seconds',
      help: 'Time to answer a unary KEDA external scaler RPC',
      labelNames: ['method'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers: [registry],
    }),
    activeStreams: new Gauge({
      name: 'afterlife_scaler_stream_is_active_streams',
      help: 'Open StreamIsActive streams (one per external-push trigger KEDA watches)',
      registers: [registry],
    }),
    streamPushes: new Counter({
      name: 'afterlife_scaler_stream_is_active_pushes_total',
      help: 'IsActive messages sent on StreamIsActive: "event" = pushed at once on a gateway update, "periodic" = keep-alive re-send',
      labelNames: ['reason'],
      registers: [registry],
    }),
    snapshots: new Counter({
      name: 'afterlife_scaler_gateway_snapshots_total',
      help: 'Counts snapshots read from gateways, by transport and outcome (accepted, refreshed, reordered, invalid)',
      labelNames: ['via', 'result'],
      registers: [registry],
    }),
    gatewayStreams: new Gauge({
      name: 'afterlife_scaler_gateway_streams_up',
      help: 'Gateways whose counts stream (SSE) is connected',
      registers: [registry],
      collect() {
        this.set(sample().streaming);
      },
    }),
    gateways: new Gauge({
      name: 'afterlife_scaler_gateways',
      help: 'Known gateways by data freshness (stale ones are left out of the aggregate)',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const { fresh, stale } = sample();
        this.set({ state: 'fresh' }, fresh);
        this.set({ state: 'stale' }, stale);
      },
    }),
  };
}
