import { LATENCY_BUCKETS_SECONDS } from '@afterlife/core';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface WebhookMetrics {
  readonly admissions: Counter<'result' | 'kind' | 'operation'>;
  readonly admissionDuration: Histogram<'result'>;
  readonly rejectedRequests: Counter<'reason'>;
  readonly imageInspections: Counter<'result'>;
  readonly tlsReloads: Counter<'result'>;
  readonly runtimeClassFlag: Gauge;
  readonly ready: Gauge;
}

/** Registers the webhook's metrics on a registry (one per process; tests create their own). */
export function createWebhookMetrics(registry: Registry): WebhookMetrics {
  const registers = [registry];
  return {
    admissions: new Counter({
      name: 'afterlife_webhook_admissions_total',
      help: 'AdmissionReviews answered, by result (mutated, unchanged, skipped, denied, invalid, error, timeout)',
      labelNames: ['result', 'kind', 'operation'],
      registers,
    }),
    admissionDuration: new Histogram({
      name: 'afterlife_webhook_admission_duration_seconds',
      help: 'Time from a complete request body to the AdmissionReview answer, by result',
      labelNames: ['result'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    }),
    rejectedRequests: new Counter({
      name: 'afterlife_webhook_rejected_requests_total',
      help: 'HTTP requests to /mutate answered without an AdmissionReview (bad JSON, too large, ...), by reason',
      labelNames: ['reason'],
      registers,
    }),
    imageInspections: new Counter({
      name: 'afterlife_webhook_image_inspections_total',
      help: 'Wasm image detections, by result (wasm, not-wasm, error, cached)',
      labelNames: ['result'],
      registers,
    }),
    tlsReloads: new Counter({
      name: 'afterlife_webhook_tls_reloads_total',
      help: 'Serving certificate reloads after the files changed, by result (ok, error)',
      labelNames: ['result'],
      registers,
    }),
    runtimeClassFlag: new Gauge({
      name: 'afterlife_webhook_knative_runtimeclass_flag_enabled',
      help: '1 when Knative config-features kubernetes.podspec-runtimeclassname is enabled, else 0',
      registers,
    }),
    ready: new Gauge({
      name: 'afterlife_webhook_ready',
      help: '1 once the Knative ConfigMaps have been read and the webhook answers admissions',
      registers,
    }),
  };
}
