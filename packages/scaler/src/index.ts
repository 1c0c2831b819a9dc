export {
  type AcceptResult,
  CountsAggregator,
  type FunctionTotals,
  type GatewayStatus,
  isActive,
  metricValue,
  ZERO_TOTALS,
} from './aggregate.ts';
export {
  DEFAULT_METRICS_PORT,
  DEFAULT_SCALER_PORT,
  type GatewayServiceRef,
  loadConfig,
  SCALER_ENV_VARS,
  type ScalerConfig,
  type ScalerEnvVar,
  type TlsFiles,
} from './config.ts';
export { endpointSliceDiscovery, type GatewayDiscovery, gatewayUrlsFromSlices, staticDiscovery } from './discovery.ts';
export { ScalerError, type ScalerErrorCode } from './errors.ts';
export { GatewayWatcher, SseParser } from './gateways.ts';
export {
  DEFAULT_ACTIVATION_THRESHOLD,
  DEFAULT_METRIC,
  DEFAULT_TARGET_VALUE,
  METADATA_KEYS,
  METRICS,
  MetadataError,
  type MetricKind,
  metricNameFor,
  parseTriggerMetadata,
  TARGET_KEYS,
  type TriggerSpec,
} from './metadata.ts';
export { createScalerMetrics, type ScalerMetrics } from './metrics.ts';
export { type RunningScaler, type StartScalerOptions, startScaler } from './scaler.ts';
