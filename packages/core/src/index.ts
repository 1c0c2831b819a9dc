export { CLI_EXIT_CODES, type CliOptions, isUsageError, parseFlags, runCli } from './cli.ts';
export {
  type Environment,
  EnvReader,
  formatSize,
  freezeConfig,
  parseDuration,
  parseSize,
} from './config.ts';
export {
  type CountsSnapshot,
  countsOf,
  type FunctionCounts,
  fetchCounts,
  functionKey,
  parseCountsSnapshot,
} from './counts.ts';
export {
  AfterlifeError,
  ConfigError,
  CoreError,
  type CoreErrorCode,
  errorMessage,
  hasCode,
  UsageError,
} from './errors.ts';
export {
  fetchAllCounts,
  GATEWAY_POD_SELECTOR,
  type GatewayAdmin,
  type GatewayColdStart,
  gatewayAdmins,
  parseColdStarts,
  sumCounts,
} from './gateway-admin.ts';
export { Grouping } from './grouping.ts';
export {
  type AdminRoutes,
  type AdminServer,
  type AdminServerOptions,
  adminHandler,
  closeServer,
  listen,
  type MetricsSource,
  type ProbeAnswer,
  type ProbeOptions,
  type ProbeTarget,
  probeOk,
  probeStatus,
  type RequestHandler,
  sendAnswer,
  startAdminServer,
} from './http.ts';
export {
  INFORMER_RESTART_DELAYS_MS,
  InformerRunner,
  type InformerRunnerOptions,
  makeLeanInformer,
  type RestartableInformer,
  withoutManagedFields,
} from './informer.ts';
export {
  AFTERLIFE_AUTOSCALER_CLASS,
  ANNOTATION_AUTOSCALING_CLASS,
  ANNOTATION_SCALED_OBJECT_OVERRIDE,
  CONFIG_DEPLOYMENT,
  CONFIG_FEATURES,
  enableFlagCommand,
  type FunctionServiceSpec,
  featuresFromConfigMaps,
  functionService,
  HPA_CLASS,
  isRecord,
  type KnativeFeatures,
  knativeRuntimeClassFor,
  LABEL_RUNTIME,
  LABEL_SCALING,
  parseRuntimeClassNames,
  RUNTIME_CLASS_FLAG,
  RUNTIME_CLASS_NAME_KEY,
  RUNTIME_WASMEDGE,
  type RuntimeClassSelector,
  runtimeClassFieldAllowed,
  SCALING_EVENTS,
  UNSYNCED_FEATURES,
} from './knative.ts';
export { KubeRequestError, kubeRequest, PooledKubeConfig } from './kube.ts';
export { createLogger, LOG_LEVELS, type Logger, type LogLevel } from './logger.ts';
export { createMetricsRegistry, LATENCY_BUCKETS_SECONDS } from './metrics.ts';
export {
  DOCKER_HUB_REGISTRY,
  formatImageReference,
  type ImageReference,
  isValidDigest,
  MEDIA_TYPES,
  parseImageReference,
  RUN_OCI_HANDLER_ANNOTATION,
  WASM_VARIANT_ANNOTATION,
} from './oci.ts';
export { type PodStart, type PodStartTracker, trackPodStarts } from './pod-starts.ts';
export { EXIT_CODES, exitAfterFlush, type MainOptions, runMain, type Stoppable } from './process.ts';
export { closestMatch, editDistance } from './suggest.ts';
