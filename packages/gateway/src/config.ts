import { hostname } from 'node:os';
import { ConfigError, type Environment, EnvReader, freezeConfig, LOG_LEVELS, type LogLevel } from '@afterlife/core';

/**
 * How a function `namespace/name` is found: `knative` — a Knative Service, routed through its
 * Route's traffic to revisions (each revision is held, delivered to and counted on its own);
 * `service` / `label` — plain Kubernetes Services whose EndpointSlices are its endpoints.
 */
export type DiscoveryMode = 'knative' | 'service' | 'label';
export const DISCOVERY_MODES: readonly DiscoveryMode[] = ['knative', 'service', 'label'];

export interface GatewayConfig {
  /** Stable id of this replica in counts snapshots (pod name in a cluster). */
  readonly id: string;
  readonly host: string;
  /** Port for CloudEvents (`POST /ns/:namespace/fn/:name`). */
  readonly port: number;
  /** Port for `/v1/counts`, `/v1/counts/stream`, `/healthz`, `/readyz`, `/metrics`. */
  readonly adminPort: number;
  readonly logLevel: LogLevel;
  /** Held events per function before new ones get 503. */
  readonly pendingLimit: number;
  /** How long an event may be held waiting for a ready endpoint (ms) before its sender gets 504. */
  readonly coldStartTimeoutMs: number;
  /** Concurrent deliveries per endpoint (replica); 0 = unlimited. */
  readonly replicaConcurrency: number;
  /** Sliding window for `ratePerSecond` (ms, whole seconds). */
  readonly rateWindowMs: number;
  /** Upper bound of one delivery (request sent → full reply read), ms. */
  readonly deliveryTimeoutMs: number;
  /** On shutdown, how long held and in-flight events may take to finish (ms). */
  readonly drainTimeoutMs: number;
  /** Largest accepted request body, bytes. */
  readonly bodyLimitBytes: number;
  /** `Retry-After` (seconds) on 503/504 answers. */
  readonly retryAfterSeconds: number;
  /** How long an endpoint that refused a connection is skipped (ms). */
  readonly ejectMs: number;
  readonly discovery: DiscoveryMode;
  /** Label naming the function on a Service (discovery `label`). */
  readonly functionLabel: string;
  /** Extra label selector ANDed to the Service match (discovery `knative`: to the Route match). */
  readonly serviceSelector: string;
  /** Namespaces to watch; empty = all namespaces. */
  readonly namespaces: readonly string[];
  /**
   * Discovery `knative`: send queue-proxy's activator probe to a revision's pods that are not
   * Ready yet and deliver to them once it answers, as Knative's activator does.
   */
  readonly probeNotReady: boolean;
}

/** Every environment variable `loadConfig` reads (the Helm chart test checks it against the chart). */
export const GATEWAY_ENV_VARS: readonly string[] = [
  'AFTERLIFE_GATEWAY_ADMIN_PORT',
  'AFTERLIFE_GATEWAY_BODY_LIMIT',
  'AFTERLIFE_GATEWAY_COLD_START_TIMEOUT',
  'AFTERLIFE_GATEWAY_DELIVERY_TIMEOUT',
  'AFTERLIFE_GATEWAY_DISCOVERY',
  'AFTERLIFE_GATEWAY_DRAIN_TIMEOUT',
  'AFTERLIFE_GATEWAY_EJECT_TIME',
  'AFTERLIFE_GATEWAY_FUNCTION_LABEL',
  'AFTERLIFE_GATEWAY_HOST',
  'AFTERLIFE_GATEWAY_ID',
  'AFTERLIFE_GATEWAY_LOG_LEVEL',
  'AFTERLIFE_GATEWAY_NAMESPACES',
  'AFTERLIFE_GATEWAY_PENDING_LIMIT',
  'AFTERLIFE_GATEWAY_PORT',
  'AFTERLIFE_GATEWAY_PROBE_NOT_READY',
  'AFTERLIFE_GATEWAY_RATE_WINDOW',
  'AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY',
  'AFTERLIFE_GATEWAY_RETRY_AFTER',
  'AFTERLIFE_GATEWAY_SERVICE_SELECTOR',
];

const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function loadConfig(env: Environment): Readonly<GatewayConfig> {
  const read = new EnvReader(env);
  const port = read.integer('AFTERLIFE_GATEWAY_PORT', 8080, { min: 0, max: 65535 });
  const adminPort = read.integer('AFTERLIFE_GATEWAY_ADMIN_PORT', 9090, { min: 0, max: 65535 });
  if (port !== 0 && port === adminPort) {
    throw new ConfigError('AFTERLIFE_GATEWAY_ADMIN_PORT', `must differ from AFTERLIFE_GATEWAY_PORT (${port})`);
  }
  const bodyLimitBytes = read.size('AFTERLIFE_GATEWAY_BODY_LIMIT', '1mib', { min: 1 });
  const rateWindowMs = read.duration('AFTERLIFE_GATEWAY_RATE_WINDOW', 60_000, { min: 1000, max: 3_600_000 });
  if (rateWindowMs % 1000 !== 0) {
    throw new ConfigError('AFTERLIFE_GATEWAY_RATE_WINDOW', `must be whole seconds, got ${rateWindowMs}ms`);
  }
  const functionLabel = read.string('AFTERLIFE_GATEWAY_FUNCTION_LABEL', 'afterlife.dev/function');
  if (!LABEL_KEY.test(functionLabel)) {
    throw new ConfigError('AFTERLIFE_GATEWAY_FUNCTION_LABEL', `must be a label key, got "${functionLabel}"`);
  }
  return freezeConfig({
    id: read.string('AFTERLIFE_GATEWAY_ID', hostname()),
    host: read.string('AFTERLIFE_GATEWAY_HOST', '0.0.0.0'),
    port,
    adminPort,
    logLevel: read.oneOf('AFTERLIFE_GATEWAY_LOG_LEVEL', LOG_LEVELS, 'info'),
    pendingLimit: read.integer('AFTERLIFE_GATEWAY_PENDING_LIMIT', 1000, { min: 1 }),
    coldStartTimeoutMs: read.duration('AFTERLIFE_GATEWAY_COLD_START_TIMEOUT', 60_000, { min: 1 }),
    replicaConcurrency: read.integer('AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY', 10, { min: 0 }),
    rateWindowMs,
    deliveryTimeoutMs: read.duration('AFTERLIFE_GATEWAY_DELIVERY_TIMEOUT', 60_000, { min: 1 }),
    drainTimeoutMs: read.duration('AFTERLIFE_GATEWAY_DRAIN_TIMEOUT', 25_000, { min: 0 }),
    bodyLimitBytes,
    retryAfterSeconds: Math.ceil(read.duration('AFTERLIFE_GATEWAY_RETRY_AFTER', 2000, { min: 0 }) / 1000),
    ejectMs: read.duration('AFTERLIFE_GATEWAY_EJECT_TIME', 5000, { min: 10 }),
    discovery: read.oneOf('AFTERLIFE_GATEWAY_DISCOVERY', DISCOVERY_MODES, 'knative'),
    functionLabel,
    serviceSelector: read.string('AFTERLIFE_GATEWAY_SERVICE_SELECTOR', ''),
    namespaces: read.list('AFTERLIFE_GATEWAY_NAMESPACES'),
    probeNotReady: read.boolean('AFTERLIFE_GATEWAY_PROBE_NOT_READY', true),
  });
}
