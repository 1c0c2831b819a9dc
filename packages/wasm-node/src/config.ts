import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError, type Environment, EnvReader, freezeConfig, LOG_LEVELS, type LogLevel } from '@afterlife/core';
import { defaultCacheDir } from './examples.ts';

/** Every setting of wasm-node (read once from AFTERLIFE_WASM_NODE_* and frozen). */
export interface WasmNodeConfig {
  /** Node object name. */
  readonly nodeName: string;
  /** kubeconfig file; empty = KUBECONFIG / in-cluster / ~/.kube/config. */
  readonly kubeconfig: string;
  /** Where pulled modules (by digest) and container logs are kept. */
  readonly stateDir: string;
  /** Node InternalIP (and pods' hostIP). */
  readonly nodeAddress: string;
  readonly metricsHost: string;
  /** 0 = any free port. */
  readonly metricsPort: number;
  readonly cpu: string;
  readonly memory: string;
  readonly maxPods: number;
  readonly leaseDurationSeconds: number;
  readonly leaseRenewMs: number;
  readonly statusIntervalMs: number;
  readonly restartBackoffMs: number;
  readonly restartBackoffMaxMs: number;
  /** Container port when the pod sets neither $PORT nor a containerPort. */
  readonly defaultPort: number;
  readonly readinessPath: string;
  /** Probe interval until the first success (then the pod's readinessProbe.periodSeconds, default 10s). */
  readonly startupProbeIntervalMs: number;
  /** Registry hosts (host:port) allowed in addition to loopback ones; never anything else. */
  readonly registries: readonly string[];
  readonly pullTimeoutMs: number;
  /** Worker threads per Wasm container (concurrent requests). */
  readonly concurrency: number;
  /** Delete the Node object (and its Lease) on shutdown. */
  readonly deleteNodeOnExit: boolean;
  readonly logLevel: LogLevel;
}

/** The env vars loadConfig reads (the Helm chart test checks these). */
export const WASM_NODE_ENV_VARS = [
  'AFTERLIFE_WASM_NODE_NAME',
  'AFTERLIFE_WASM_NODE_KUBECONFIG',
  'AFTERLIFE_WASM_NODE_STATE_DIR',
  'AFTERLIFE_WASM_NODE_ADDRESS',
  'AFTERLIFE_WASM_NODE_METRICS_HOST',
  'AFTERLIFE_WASM_NODE_METRICS_PORT',
  'AFTERLIFE_WASM_NODE_CPU',
  'AFTERLIFE_WASM_NODE_MEMORY',
  'AFTERLIFE_WASM_NODE_MAX_PODS',
  'AFTERLIFE_WASM_NODE_LEASE_DURATION',
  'AFTERLIFE_WASM_NODE_LEASE_RENEW',
  'AFTERLIFE_WASM_NODE_STATUS_INTERVAL',
  'AFTERLIFE_WASM_NODE_RESTART_BACKOFF',
  'AFTERLIFE_WASM_NODE_RESTART_BACKOFF_MAX',
  'AFTERLIFE_WASM_NODE_DEFAULT_PORT',
  'AFTERLIFE_WASM_NODE_READINESS_PATH',
  'AFTERLIFE_WASM_NODE_STARTUP_PROBE_INTERVAL',
  'AFTERLIFE_WASM_NODE_REGISTRIES',
  'AFTERLIFE_WASM_NODE_PULL_TIMEOUT',
  'AFTERLIFE_WASM_NODE_CONCURRENCY',
  'AFTERLIFE_WASM_NODE_DELETE_ON_EXIT',
  'AFTERLIFE_WASM_NODE_LOG_LEVEL',
] as const;

const QUANTITY = /^\d+(\.\d+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/;

export function loadConfig(env: Environment): Readonly<WasmNodeConfig> {
  const r = new EnvReader(env);
  const quantity = (name: string, fallback: string): string => {
    const value = r.string(name, fallback);
    if (!QUANTITY.test(value))
      throw new ConfigError(name, `must be a Kubernetes quantity like 4, 500m or 8Gi, got "${value}"`);
    return value;
  };
  const nodeName = r.string(
    'AFTERLIFE_WASM_NODE_NAME',
    `afterlife-wasm-${hostname()
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')}`,
  );
  const config: WasmNodeConfig = {
    nodeName,
    kubeconfig: r.string('AFTERLIFE_WASM_NODE_KUBECONFIG', ''),
    stateDir: r.string('AFTERLIFE_WASM_NODE_STATE_DIR', join(defaultCacheDir(), 'state')),
    nodeAddress: r.string('AFTERLIFE_WASM_NODE_ADDRESS', '127.0.0.1'),
    metricsHost: r.string('AFTERLIFE_WASM_NODE_METRICS_HOST', '127.0.0.1'),
    metricsPort: r.integer('AFTERLIFE_WASM_NODE_METRICS_PORT', 9464, { min: 0, max: 65535 }),
    cpu: quantity('AFTERLIFE_WASM_NODE_CPU', '4'),
    memory: quantity('AFTERLIFE_WASM_NODE_MEMORY', '8Gi'),
    maxPods: r.integer('AFTERLIFE_WASM_NODE_MAX_PODS', 110, { min: 1, max: 10_000 }),
    leaseDurationSeconds: Math.round(r.duration('AFTERLIFE_WASM_NODE_LEASE_DURATION', 40_000, { min: 1000 }) / 1000),
    leaseRenewMs: r.duration('AFTERLIFE_WASM_NODE_LEASE_RENEW', 10_000, { min: 100 }),
    statusIntervalMs: r.duration('AFTERLIFE_WASM_NODE_STATUS_INTERVAL', 60_000, { min: 1000 }),
    restartBackoffMs: r.duration('AFTERLIFE_WASM_NODE_RESTART_BACKOFF', 10_000, { min: 0 }),
    restartBackoffMaxMs: r.duration('AFTERLIFE_WASM_NODE_RESTART_BACKOFF_MAX', 300_000, { min: 0 }),
    defaultPort: r.integer('AFTERLIFE_WASM_NODE_DEFAULT_PORT', 8080, { min: 1, max: 65535 }),
    readinessPath: r.string('AFTERLIFE_WASM_NODE_READINESS_PATH', '/healthz'),
    startupProbeIntervalMs: r.duration('AFTERLIFE_WASM_NODE_STARTUP_PROBE_INTERVAL', 50, { min: 10 }),
    registries: r.list('AFTERLIFE_WASM_NODE_REGISTRIES', []),
    pullTimeoutMs: r.duration('AFTERLIFE_WASM_NODE_PULL_TIMEOUT', 30_000, { min: 100 }),
    concurrency: r.integer('AFTERLIFE_WASM_NODE_CONCURRENCY', 4, { min: 1, max: 256 }),
    deleteNodeOnExit: r.boolean('AFTERLIFE_WASM_NODE_DELETE_ON_EXIT', false),
    logLevel: r.oneOf('AFTERLIFE_WASM_NODE_LOG_LEVEL', LOG_LEVELS, 'info'),
  };
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(config.nodeName)) {
    throw new ConfigError('AFTERLIFE_WASM_NODE_NAME', `"${config.nodeName}" is not a valid node name`);
  }
  if (config.restartBackoffMaxMs < config.restartBackoffMs) {
    throw new ConfigError(
      'AFTERLIFE_WASM_NODE_RESTART_BACKOFF_MAX',
      'must be at least AFTERLIFE_WASM_NODE_RESTART_BACKOFF',
    );
  }
  return freezeConfig(config);
}
