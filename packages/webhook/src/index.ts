export {
  type AdmissionAllowed,
  type AdmissionRequest,
  type AdmitContext,
  type AdmitOutcome,
  type AdmitResult,
  ANNOTATION_AUTOSCALING_CLASS,
  ANNOTATION_MIN_SCALE,
  ANNOTATION_SCALED_OBJECT_OVERRIDE,
  ANNOTATION_SERVICE_ACCOUNT_TOKEN,
  ANNOTATION_TARGET,
  ANNOTATION_TARGET_VALUE,
  admit,
  HPA_CLASS,
  type ImageInspector,
  type JsonPatchOperation,
  KNATIVE_GROUP,
  LABEL_RUNTIME,
  LABEL_SCALING,
  RUNTIME_DISABLED,
  RUNTIME_WASMEDGE,
  SCALING_EVENTS,
  SERVICE_ACCOUNT_TOKEN_MOUNT,
  scaledObjectOverride,
} from './admit.ts';
export {
  DEFAULT_MUTATION_CONFIG,
  loadConfig,
  type MutationConfig,
  SCALING_ROUTES,
  type ScalingRoute,
  WASM_VARIANTS,
  type WasmVariant,
  WEBHOOK_ENV_VARS,
  type WebhookConfig,
  type WebhookEnvVar,
} from './config.ts';
export { WebhookError, type WebhookErrorCode } from './errors.ts';
export {
  documentIsWasm,
  type InspectionResult,
  RegistryImageInspector,
  type RegistryImageInspectorOptions,
  WASM_CONFIG_MEDIA_TYPES,
  WASM_LAYER_MEDIA_TYPES,
} from './image.ts';
export { createWebhookMetrics, type WebhookMetrics } from './metrics.ts';
export {
  ADMISSION_API_VERSION,
  type AdmissionOutcome,
  type AdmissionResponse,
  type AdmissionReviewResponse,
  type AdmissionStatus,
  answerReview,
  decodeReview,
  errorAnswer,
  type ReviewAnswer,
  reviewUid,
} from './review.ts';
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
