import { ConfigError, type Environment, EnvReader, freezeConfig, LOG_LEVELS, type LogLevel } from '@afterlife/core';

/** Every environment variable the webhook reads (the Helm chart test checks the chart against this list). */
export const WEBHOOK_ENV_VARS = [
  'AFTERLIFE_WEBHOOK_BIND_ADDRESS',
  'AFTERLIFE_WEBHOOK_BODY_LIMIT',
  'AFTERLIFE_WEBHOOK_DEFAULT_TARGET_VALUE',
  'AFTERLIFE_WEBHOOK_IMAGE_CACHE_SIZE',
  'AFTERLIFE_WEBHOOK_IMAGE_CACHE_TTL',
  'AFTERLIFE_WEBHOOK_IMAGE_DETECTION',
  'AFTERLIFE_WEBHOOK_IMAGE_TIMEOUT',
  'AFTERLIFE_WEBHOOK_INSECURE_REGISTRIES',
  'AFTERLIFE_WEBHOOK_KEEPALIVE_TIMEOUT',
  'AFTERLIFE_WEBHOOK_KNATIVE_NAMESPACE',
  'AFTERLIFE_WEBHOOK_LOG_LEVEL',
  'AFTERLIFE_WEBHOOK_PORT',
  'AFTERLIFE_WEBHOOK_REQUEST_TIMEOUT',
  'AFTERLIFE_WEBHOOK_RUNTIME_CLASS',
  'AFTERLIFE_WEBHOOK_SCALER_ADDRESS',
  'AFTERLIFE_WEBHOOK_SCALING_ROUTE',
  'AFTERLIFE_WEBHOOK_SHUTDOWN_TIMEOUT',
  'AFTERLIFE_WEBHOOK_TLS_CERT_FILE',
  'AFTERLIFE_WEBHOOK_TLS_KEY_FILE',
  'AFTERLIFE_WEBHOOK_TLS_RELOAD_INTERVAL',
  'AFTERLIFE_WEBHOOK_WASM_VARIANT',
  'AFTERLIFE_WEBHOOK_WATCH_NAMESPACES',
] as const;

export type WebhookEnvVar = (typeof WEBHOOK_ENV_VARS)[number];

/**
 * Who scales an event-scaled revision: `afterlife` = the Afterlife autoscaler (class
 * `afterlife.dev`, scales from and to zero); `autoscaler-keda` = knative-extensions/autoscaler-keda
 * (HPA class plus a ScaledObject override; for clusters that already run it).
 */
export const SCALING_ROUTES = ['afterlife', 'autoscaler-keda'] as const;
export type ScalingRoute = (typeof SCALING_ROUTES)[number];

export const WASM_VARIANTS = ['compat-smart', 'compat'] as const;
export type WasmVariant = (typeof WASM_VARIANTS)[number];

/** What `admit()` needs; a subset of the full config so tests can build it directly. */
export interface MutationConfig {
  /** RuntimeClass the opted-in revisions run under. */
  runtimeClass: string;
  /** Value of the `module.wasm.image/variant` template annotation crun reads. */
  wasmVariant: WasmVariant;
  /** Who scales event-scaled revisions. */
  scalingRoute: ScalingRoute;
  /** `host:port` of the Afterlife scaler's gRPC endpoint, written into the KEDA trigger (route `autoscaler-keda`). */
  scalerAddress: string;
  /** Default concurrency target per replica for event-scaled functions. */
  defaultTargetValue: number;
  /** Namespace of Knative Serving's ConfigMaps (used in the messages that tell what to change). */
  knativeNamespace: string;
}

export interface WebhookConfig extends MutationConfig {
  bindAddress: string;
  port: number;
  tlsCertFile: string;
  tlsKeyFile: string;
  tlsReloadIntervalMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  bodyLimitBytes: number;
  shutdownTimeoutMs: number;
  imageDetection: boolean;
  imageTimeoutMs: number;
  imageCacheSize: number;
  imageCacheTtlMs: number;
  insecureRegistries: readonly string[];
  watchNamespaces: boolean;
  logLevel: LogLevel;
}

export const DEFAULT_MUTATION_CONFIG: Readonly<MutationConfig> = freezeConfig({
  runtimeClass: 'wasmedge',
  wasmVariant: 'compat-smart',
  scalingRoute: 'afterlife',
  scalerAddress: 'afterlife-scaler.afterlife-system.svc:9090',
  defaultTargetValue: 10,
  knativeNamespace: 'knative-serving',
});

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/;
const P = 'AFTERLIFE_WEBHOOK_';

/** Reads and validates the webhook's settings once at start-up. Throws ConfigError naming the variable. */
export function loadConfig(environment: Environment): Readonly<WebhookConfig> {
  const env = new EnvReader(environment);
  const runtimeClass = env.string(`${P}RUNTIME_CLASS`, DEFAULT_MUTATION_CONFIG.runtimeClass);
  if (runtimeClass.length > 253 || !DNS1123_SUBDOMAIN.test(runtimeClass)) {
    throw new ConfigError(
      `${P}RUNTIME_CLASS`,
      `must be a DNS-1123 subdomain (a RuntimeClass name), got "${runtimeClass}"`,
    );
  }
  const scalerAddress = env.string(`${P}SCALER_ADDRESS`, DEFAULT_MUTATION_CONFIG.scalerAddress);
  if (!HOST_PORT.test(scalerAddress)) {
    throw new ConfigError(`${P}SCALER_ADDRESS`, `must be host:port, got "${scalerAddress}"`);
  }
  const knativeNamespace = env.string(`${P}KNATIVE_NAMESPACE`, DEFAULT_MUTATION_CONFIG.knativeNamespace);
  if (!DNS1123_LABEL.test(knativeNamespace)) {
    throw new ConfigError(`${P}KNATIVE_NAMESPACE`, `must be a namespace name, got "${knativeNamespace}"`);
  }
  const bodyLimitBytes = env.size(`${P}BODY_LIMIT`, '4mib', { min: 1024, max: 64 * 1024 * 1024 });
  const insecureRegistries = env.list(`${P}INSECURE_REGISTRIES`);
  for (const registry of insecureRegistries) {
    if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(registry)) {
      throw new ConfigError(
        `${P}INSECURE_REGISTRIES`,
        `must be a comma-separated list of host[:port], got "${registry}"`,
      );
    }
  }
  const config: WebhookConfig = {
    bindAddress: env.string(`${P}BIND_ADDRESS`, '0.0.0.0'),
    port: env.integer(`${P}PORT`, 8443, { min: 0, max: 65535 }),
    tlsCertFile: env.string(`${P}TLS_CERT_FILE`, '/etc/afterlife/webhook/tls/tls.crt'),
    tlsKeyFile: env.string(`${P}TLS_KEY_FILE`, '/etc/afterlife/webhook/tls/tls.key'),
    tlsReloadIntervalMs: env.duration(`${P}TLS_RELOAD_INTERVAL`, 10_000, { min: 50, max: 3_600_000 }),
    requestTimeoutMs: env.duration(`${P}REQUEST_TIMEOUT`, 10_000, { min: 100, max: 30_000 }),
    keepAliveTimeoutMs: env.duration(`${P}KEEPALIVE_TIMEOUT`, 95_000, { min: 1000, max: 600_000 }),
    bodyLimitBytes,
    shutdownTimeoutMs: env.duration(`${P}SHUTDOWN_TIMEOUT`, 10_000, { min: 0, max: 300_000 }),
    runtimeClass,
    wasmVariant: env.oneOf(`${P}WASM_VARIANT`, WASM_VARIANTS, DEFAULT_MUTATION_CONFIG.wasmVariant),
    scalingRoute: env.oneOf(`${P}SCALING_ROUTE`, SCALING_ROUTES, DEFAULT_MUTATION_CONFIG.scalingRoute),
    scalerAddress,
    defaultTargetValue: env.integer(`${P}DEFAULT_TARGET_VALUE`, DEFAULT_MUTATION_CONFIG.defaultTargetValue, {
      min: 1,
      max: 1_000_000,
    }),
    knativeNamespace,
    imageDetection: env.boolean(`${P}IMAGE_DETECTION`, false),
    imageTimeoutMs: env.duration(`${P}IMAGE_TIMEOUT`, 2_000, { min: 50, max: 25_000 }),
    imageCacheSize: env.integer(`${P}IMAGE_CACHE_SIZE`, 1000, { min: 1, max: 1_000_000 }),
    imageCacheTtlMs: env.duration(`${P}IMAGE_CACHE_TTL`, 600_000, { min: 0, max: 86_400_000 }),
    insecureRegistries,
    watchNamespaces: env.boolean(`${P}WATCH_NAMESPACES`, false),
    logLevel: env.oneOf(`${P}LOG_LEVEL`, LOG_LEVELS, 'info'),
  };
  return freezeConfig(config);
}
