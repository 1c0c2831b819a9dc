import { ConfigError, type Environment, EnvReader, freezeConfig, LOG_LEVELS, type LogLevel } from '@afterlife/core';

const P = 'AFTERLIFE_SCALER_';

/** Every environment variable the scaler reads (the Helm chart test checks the chart against this list). */
export const SCALER_ENV_VARS = [
  'AFTERLIFE_SCALER_GATEWAY_SERVICE',
  'AFTERLIFE_SCALER_GATEWAY_URLS',
  'AFTERLIFE_SCALER_HOST',
  'AFTERLIFE_SCALER_LOG_LEVEL',
  'AFTERLIFE_SCALER_METRICS_PORT',
  'AFTERLIFE_SCALER_POLL_INTERVAL',
  'AFTERLIFE_SCALER_PORT',
  'AFTERLIFE_SCALER_STALE_AFTER',
  'AFTERLIFE_SCALER_STREAM_INTERVAL',
  'AFTERLIFE_SCALER_TLS_CA_FILE',
  'AFTERLIFE_SCALER_TLS_CERT_FILE',
  'AFTERLIFE_SCALER_TLS_KEY_FILE',
] as const;

export type ScalerEnvVar = (typeof SCALER_ENV_VARS)[number];

/** The Service whose EndpointSlices list the gateway replicas; their port named `admin` serves the counts. */
export interface GatewayServiceRef {
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
}

/** Server TLS; with `caFile` the scaler also requires client certificates signed by that CA (mutual TLS). */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string | undefined;
}

export interface ScalerConfig {
  /** Address the gRPC and metrics servers bind to. */
  host: string;
  /** gRPC port (KEDA's `scalerAddress` points here); 0 picks a free port. */
  port: number;
  /** HTTP port for /metrics, /healthz and /readyz; 0 picks a free port. */
  metricsPort: number;
  /** Static gateway admin base URLs (e.g. http://10.0.0.5:9090); empty when discovered from a Service. */
  gatewayUrls: readonly string[];
  gatewayService: GatewayServiceRef | undefined;
  /** A gateway whose last data is older than this is dropped from the aggregate. */
  staleAfterMs: number;
  /** How often `/v1/counts` is polled while a gateway's stream is down. */
  pollIntervalMs: number;
  /** How often StreamIsActive re-sends the current state (events push at once regardless). */
  streamIntervalMs: number;
  tls: TlsFiles | undefined;
  logLevel: LogLevel;
}

export const DEFAULT_SCALER_PORT = 9090;
export const DEFAULT_METRICS_PORT = 9091;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function loadConfig(envInput: Environment): Readonly<ScalerConfig> {
  const env = new EnvReader(envInput);
  const host = env.string(`${P}HOST`, '0.0.0.0');
  const port = env.integer(`${P}PORT`, DEFAULT_SCALER_PORT, { min: 0, max: 65_535 });
  const metricsPort = env.integer(`${P}METRICS_PORT`, DEFAULT_METRICS_PORT, { min: 0, max: 65_535 });
  if (port !== 0 && port === metricsPort) {
    throw new ConfigError(`${P}METRICS_PORT`, `must differ from ${P}PORT (both are ${port})`);
  }

  const gatewayUrls = env.list(`${P}GATEWAY_URLS`).map((raw) => parseGatewayUrl(`${P}GATEWAY_URLS`, raw));
  const serviceRaw = env.string(`${P}GATEWAY_SERVICE`);
  const gatewayService = serviceRaw === undefined ? undefined : parseServiceRef(`${P}GATEWAY_SERVICE`, serviceRaw);
  if (gatewayUrls.length === 0 && gatewayService === undefined) {
    throw new ConfigError(
      `${P}GATEWAY_URLS`,
      `set either ${P}GATEWAY_URLS (comma-separated gateway admin URLs) or ${P}GATEWAY_SERVICE (namespace/name)`,
    );
  }
  if (gatewayUrls.length > 0 && gatewayService !== undefined) {
    throw new ConfigError(`${P}GATEWAY_SERVICE`, `set only one of ${P}GATEWAY_URLS and ${P}GATEWAY_SERVICE`);
  }

  const staleAfterMs = env.duration(`${P}STALE_AFTER`, 5000, { min: 100 });
  const pollIntervalMs = env.duration(`${P}POLL_INTERVAL`, 500, { min: 10 });
  const streamIntervalMs = env.duration(`${P}STREAM_INTERVAL`, 1000, { min: 10 });
  if (pollIntervalMs >= staleAfterMs) {
    throw new ConfigError(
      `${P}POLL_INTERVAL`,
      `must be shorter than ${P}STALE_AFTER (${staleAfterMs} ms), got ${pollIntervalMs} ms`,
    );
  }

  const certFile = env.string(`${P}TLS_CERT_FILE`);
  const keyFile = env.string(`${P}TLS_KEY_FILE`);
  const caFile = env.string(`${P}TLS_CA_FILE`);
  let tls: TlsFiles | undefined;
  if (certFile !== undefined || keyFile !== undefined) {
    if (certFile === undefined) throw new ConfigError(`${P}TLS_CERT_FILE`, `is required when ${P}TLS_KEY_FILE is set`);
    if (keyFile === undefined) throw new ConfigError(`${P}TLS_KEY_FILE`, `is required when ${P}TLS_CERT_FILE is set`);
    tls = { certFile, keyFile, caFile };
  } else if (caFile !== undefined) {
    throw new ConfigError(
      `${P}TLS_CA_FILE`,
      `needs ${P}TLS_CERT_FILE and ${P}TLS_KEY_FILE (mutual TLS requires server TLS)`,
    );
  }

  const logLevel = env.oneOf(`${P}LOG_LEVEL`, LOG_LEVELS, 'info');
  return freezeConfig({
    host,
    port,
    metricsPort,
    gatewayUrls,
    gatewayService,
    staleAfterMs,
    pollIntervalMs,
    streamIntervalMs,
    tls,
    logLevel,
  });
}

/** Normalises a gateway admin base URL (no trailing slash); names the variable when it is not http(s). */
export function parseGatewayUrl(variable: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new ConfigError(variable, `"${raw}" is not a URL (expected e.g. http://10.0.0.5:9090)`, { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(variable, `"${raw}" must be an http:// or https:// URL`);
  }
  if (url.search !== '' || url.hash !== '')
    throw new ConfigError(variable, `"${raw}" must not have a query or fragment`);
  return url.href.replace(/\/+$/, '');
}

function parseServiceRef(variable: string, raw: string): GatewayServiceRef {
  const parts = raw.split('/');
  const [namespace, name] = parts;
  if (parts.length !== 2 || namespace === undefined || name === undefined) {
    throw new ConfigError(variable, `must be namespace/name, got "${raw}"`);
  }
  for (const part of [namespace, name]) {
    if (!DNS_LABEL.test(part) || part.length > 63) {
      throw new ConfigError(variable, `"${part}" in "${raw}" is not a valid Kubernetes name`);
    }
  }
  return { namespace, name, portName: 'admin' };
}
