export {
  ADMISSION_API_VERSION,
  type AdmissionOutcome,
  type AdmissionResponse,
  type AdmissionReviewResponse,
  type AdmitContext,
  type AdmitResult,
  ANNOTATION_AUTOSCALING_CLASS,
  ANNOTATION_MIN_SCALE,
  ANNOTATION_SCALED_OBJECT_OVERRIDE,
  ANNOTATION_TARGET_VALUE,
  ANNOTATION_WASM_VARIANT,
  admit,
  enableFlagCommand,
  HPA_CLASS,
  type ImageInspector,
  type JsonPatchOperation,
  KNATIVE_GROUP,
  LABEL_RUNTIME,
  LABEL_SCALING,
  RUNTIME_DISABLED,
  RUNTIME_WASMEDGE,
  SCALING_EVENTS,
  scaledObjectOverride,
} from './admit.ts';
export {
  DEFAULT_MUTATION_CONFIG,
  loadConfig,
  type MutationConfig,
  WASM_VARIANTS,
  type WasmVariant,
  WEBHOOK_ENV_VARS,
  type WebhookConfig,
  type WebhookEnvVar,
} from './config.ts';
export { WEBHOOK_ERROR_CODES, WebhookError, type WebhookErrorCode } from './errors.ts';
export {
  CONFIG_DEPLOYMENT,
  CONFIG_FEATURES,
  featuresFromConfigMaps,
  type KnativeFeatures,
  knativeRuntimeClassFor,
  parseRuntimeClassNames,
  RUNTIME_CLASS_FLAG,
  RUNTIME_CLASS_NAME_KEY,
  type RuntimeClassSelector,
  runtimeClassFieldAllowed,
  UNSYNCED_FEATURES,
} from './features.ts';
export {
  documentIsWasm,
  type ImageReference,
  type InspectionResult,
  parseImageReference,
  RegistryImageInspector,
  type RegistryImageInspectorOptions,
  WASM_CONFIG_MEDIA_TYPES,
  WASM_LAYER_MEDIA_TYPES,
} from './image.ts';
export { createWebhookMetrics, type WebhookMetrics } from './metrics.ts';
export {
  createWebhookApp,
  MUTATE_NAMESPACE_PATH,
  MUTATE_PATH,
  type ServerConfig,
  startWebhookServer,
  type WebhookAppOptions,
  type WebhookServer,
} from './server.ts';
export { loadTlsMaterial, TlsFileWatcher, type TlsMaterial } from './tls.ts';
export { KnativeConfigWatcher, NamespaceLabelWatcher } from './watch.ts';
