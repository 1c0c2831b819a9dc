export {
  ANNOTATION_ACTIVATION_THRESHOLD,
  ANNOTATION_COOLDOWN,
  ANNOTATION_INITIAL_SCALE,
  ANNOTATION_MAX_SCALE,
  ANNOTATION_METRIC,
  ANNOTATION_MIN_SCALE,
  ANNOTATION_POLLING_INTERVAL,
  ANNOTATION_TARGET,
  METRICS,
  parseScaling,
  type RevisionScaling,
  type ScalingMetric,
  type ScalingResult,
} from './annotations.ts';
export { type Autoscaler, type AutoscalerOptions, startAutoscaler } from './autoscaler.ts';
export {
  AUTOSCALER_ENV_VARS,
  type AutoscalerConfig,
  type LeaseSettings,
  loadConfig,
  type ScalingDefaults,
} from './config.ts';
export { PodAutoscalerController } from './controller.ts';
export { AutoscalerError, type AutoscalerErrorCode } from './errors.ts';
export { LeaderElector } from './lease.ts';
export { WorkQueue } from './queue.ts';
export {
  CLASS_ANNOTATION,
  computeStatus,
  desiredScaledObject,
  desiredServerlessService,
  type PodAutoscaler,
  type PodAutoscalerStatus,
  type ScaledObject,
  type ServerlessService,
  TRIGGER_REVISION_KEY,
} from './resources.ts';
