import { hostname } from 'node:os';
import {
  AFTERLIFE_AUTOSCALER_CLASS,
  ConfigError,
  type Environment,
  EnvReader,
  freezeConfig,
  LOG_LEVELS,
  type LogLevel,
} from '@afterlife/core';
import { METRICS, type ScalingMetric } from './annotations.ts';

const P = 'AFTERLIFE_AUTOSCALER_';

/** Every environment variable `loadConfig` reads (the Helm chart test checks the chart against this list). */
export const AUTOSCALER_ENV_VARS = [
  'AFTERLIFE_AUTOSCALER_ADMIN_PORT',
  'AFTERLIFE_AUTOSCALER_CLASS',
  'AFTERLIFE_AUTOSCALER_DEFAULT_COOLDOWN',
  'AFTERLIFE_AUTOSCALER_DEFAULT_MAX_SCALE',
  'AFTERLIFE_AUTOSCALER_DEFAULT_METRIC',
  'AFTERLIFE_AUTOSCALER_DEFAULT_POLLING_INTERVAL',
  'AFTERLIFE_AUTOSCALER_DEFAULT_TARGET',
  'AFTERLIFE_AUTOSCALER_HOST',
  'AFTERLIFE_AUTOSCALER_IDENTITY',
  'AFTERLIFE_AUTOSCALER_LEASE_DURATION',
  'AFTERLIFE_AUTOSCALER_LEASE_NAME',
  'AFTERLIFE_AUTOSCALER_LEASE_NAMESPACE',
  'AFTERLIFE_AUTOSCALER_LEASE_RENEW_DEADLINE',
  'AFTERLIFE_AUTOSCALER_LEASE_RETRY_PERIOD',
  'AFTERLIFE_AUTOSCALER_LOG_LEVEL',
  'AFTERLIFE_AUTOSCALER_NAMESPACES',
  'AFTERLIFE_AUTOSCALER_RESYNC',
  'AFTERLIFE_AUTOSCALER_SCALER_ADDRESS',
  'AFTERLIFE_AUTOSCALER_SCALER_TLS_AUTHENTICATION',
  'AFTERLIFE_AUTOSCALER_WORKERS',
] as const;

/** Defaults for revisions that do not set the matching annotation. */
export interface ScalingDefaults {
  /** `maxReplicaCount` when `max-scale` is unset or 0 (KEDA needs a bound). */
  readonly maxScale: number;
  /** Trigger `targetValue`: events (pending + in flight) per replica. */
  readonly target: number;
  readonly metric: ScalingMetric;
  /** KEDA `cooldownPeriod`: idle time before scaling to zero. */
  readonly cooldownSeconds: number;
  /** KEDA `pollingInterval`: how often KEDA asks the scaler (scale up from zero is pushed, not polled). */
  readonly pollingIntervalSeconds: number;
}

export interface LeaseSettings {
  readonly namespace: string;
  readonly name: string;
  /** This replica's holder identity. */
  readonly identity: string;
  readonly durationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

export interface AutoscalerConfig {
  readonly class: string;
  /** `host:port` of the Afterlife scaler's gRPC service, written into every ScaledObject trigger. */
  readonly scalerAddress: string;
  /**
   * A KEDA ClusterTriggerAuthentication whose parameters give `caCert` (and, for mutual TLS,
   * `tlsClientCert`/`tlsClientKey`) for a scaler serving TLS; empty = plaintext gRPC.
   */
  readonly scalerTlsAuthentication: string;
  /** Namespaces to watch; empty = all. */
  readonly namespaces: readonly string[];
  readonly defaults: ScalingDefaults;
  readonly lease: LeaseSettings;
  /** Every PodAutoscaler is reconciled again this often even without a change (ms). */
  readonly resyncMs: number;
  /** Revisions reconciled in parallel. */
  readonly workers: number;
  readonly host: string;
  /** `/healthz`, `/readyz`, `/metrics`; 0 picks a free port. */
  readonly adminPort: number;
  readonly logLevel: LogLevel;
}

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function loadConfig(env: Environment): AutoscalerConfig {
  const read = new EnvReader(env);
  const scalerAddress = read.string(`${P}SCALER_ADDRESS`, 'afterlife-scaler.afterlife-system.svc:9090');
  if (!HOST_PORT.test(scalerAddress)) {
    throw new ConfigError(`${P}SCALER_ADDRESS`, `must be host:port, got "${scalerAddress}"`);
  }
  const scalerTlsAuthentication = read.string(`${P}SCALER_TLS_AUTHENTICATION`, '');
  if (scalerTlsAuthentication !== '' && !DNS_SUBDOMAIN.test(scalerTlsAuthentication)) {
    throw new ConfigError(
      `${P}SCALER_TLS_AUTHENTICATION`,
      `must be the name of a ClusterTriggerAuthentication, got "${scalerTlsAuthentication}"`,
    );
  }
  const namespaces = read.list(`${P}NAMESPACES`);
  for (const namespace of namespaces) {
    if (!DNS_LABEL.test(namespace)) throw new ConfigError(`${P}NAMESPACES`, `"${namespace}" is not a namespace name`);
  }
  const leaseNamespace = read.string(`${P}LEASE_NAMESPACE`, 'afterlife-system');
  if (!DNS_LABEL.test(leaseNamespace)) {
    throw new ConfigError(`${P}LEASE_NAMESPACE`, `"${leaseNamespace}" is not a namespace name`);
  }
  const durationMs = read.duration(`${P}LEASE_DURATION`, 15_000, { min: 1000 });
  const renewDeadlineMs = read.duration(`${P}LEASE_RENEW_DEADLINE`, 10_000, { min: 500 });
  const retryPeriodMs = read.duration(`${P}LEASE_RETRY_PERIOD`, 2000, { min: 100 });
  if (renewDeadlineMs >= durationMs) {
    throw new ConfigError(`${P}LEASE_RENEW_DEADLINE`, `must be shorter than ${P}LEASE_DURATION (${durationMs}ms)`);
  }
  if (retryPeriodMs >= renewDeadlineMs) {
    throw new ConfigError(
      `${P}LEASE_RETRY_PERIOD`,
      `must be shorter than ${P}LEASE_RENEW_DEADLINE (${renewDeadlineMs}ms)`,
    );
  }
  const seconds = (name: string, fallbackMs: number, minMs: number): number => {
    const ms = read.duration(name, fallbackMs, { min: minMs });
    if (ms % 1000 !== 0) throw new ConfigError(name, `must be whole seconds (KEDA counts seconds), got ${ms}ms`);
    return ms / 1000;
  };
  return freezeConfig({
    class: read.string(`${P}CLASS`, AFTERLIFE_AUTOSCALER_CLASS),
    scalerAddress,
    scalerTlsAuthentication,
    namespaces,
    defaults: {
      maxScale: read.integer(`${P}DEFAULT_MAX_SCALE`, 10, { min: 1 }),
      target: read.number(`${P}DEFAULT_TARGET`, 10, { min: 0.01 }),
      metric: read.oneOf(`${P}DEFAULT_METRIC`, METRICS, 'concurrency'),
      cooldownSeconds: seconds(`${P}DEFAULT_COOLDOWN`, 30_000, 0),
      pollingIntervalSeconds: seconds(`${P}DEFAULT_POLLING_INTERVAL`, 5000, 1000),
    },
    lease: {
      namespace: leaseNamespace,
      name: read.string(`${P}LEASE_NAME`, 'afterlife-autoscaler'),
      identity: read.string(`${P}IDENTITY`, `${hostname()}_${process.pid}`),
      durationMs,
      renewDeadlineMs,
      retryPeriodMs,
    },
    resyncMs: read.duration(`${P}RESYNC`, 300_000, { min: 1000 }),
    workers: read.integer(`${P}WORKERS`, 4, { min: 1, max: 64 }),
    host: read.string(`${P}HOST`, '0.0.0.0'),
    adminPort: read.integer(`${P}ADMIN_PORT`, 9090, { min: 0, max: 65535 }),
    logLevel: read.oneOf(`${P}LOG_LEVEL`, LOG_LEVELS, 'info'),
  });
}
