import type { RevisionScaling } from './annotations.ts';

/**
 * The objects one revision's PodAutoscaler owns, and its status — pure functions of what was
 * observed, so every rule (model: Knative Serving pkg/reconciler/autoscaling/hpa) is tested
 * without a cluster.
 */

export const PA_API = { group: 'autoscaling.internal.knative.dev', version: 'v1alpha1', plural: 'podautoscalers' };
export const SKS_API = { group: 'networking.internal.knative.dev', version: 'v1alpha1', plural: 'serverlessservices' };
export const SCALED_OBJECT_API = { group: 'keda.sh', version: 'v1alpha1', plural: 'scaledobjects' };

export const CLASS_ANNOTATION = 'autoscaling.knative.dev/class';
/** Knative labels every revision Deployment (and its pods) with the revision name. */
export const REVISION_LABEL = 'serving.knative.dev/revision';
/** On every ScaledObject this controller writes (its informer selects by it). */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'afterlife-autoscaler';

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  deletionTimestamp?: string | Date;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** A Knative condition (knative.dev/pkg/apis.Condition). */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  severity?: string;
  lastTransitionTime?: string;
  reason?: string;
  message?: string;
}

export interface ObjectReference {
  apiVersion?: string;
  kind?: string;
  name?: string;
}

export interface PodAutoscaler {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    scaleTargetRef: ObjectReference;
    protocolType?: string;
    reachability?: string;
    containerConcurrency?: number;
  };
  status?: PodAutoscalerStatus;
}

export interface PodAutoscalerStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  serviceName?: string;
  metricsServiceName?: string;
  desiredScale?: number;
  actualScale?: number;
}

export interface ServerlessService {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: { mode: 'Serve' | 'Proxy'; objectRef: ObjectReference; protocolType: string; numActivators: number };
  status?: { serviceName?: string; privateServiceName?: string; conditions?: Condition[] };
}

export interface ScaledObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: {
    scaleTargetRef: { apiVersion: string; kind: string; name: string };
    minReplicaCount: number;
    maxReplicaCount: number;
    pollingInterval: number;
    cooldownPeriod: number;
    triggers: {
      type: string;
      metadata: Record<string, string>;
      authenticationRef?: { name: string; kind?: string };
    }[];
  };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

/** A condition as the autoscaler reads it (no timestamps or severity). */
function conditionRead<C extends { type: string; status: string; reason?: string; message?: string }>(condition: C): C {
  return {
    type: condition.type,
    status: condition.status,
    ...(condition.reason === undefined ? {} : { reason: condition.reason }),
    ...(condition.message === undefined ? {} : { message: condition.message }),
  } as C;
}

/**
 * What the autoscaler caches of an SKS: all but its status, of which only what `computeStatus`
 * reads. A replace sent from it leaves the status as it is (SKS status is a subresource).
 */
export function serverlessServiceRead<T extends ServerlessService>(sks: T): T {
  if (sks.status === undefined) return sks;
  const { serviceName, privateServiceName, conditions } = sks.status;
  return {
    ...sks,
    status: {
      ...(serviceName === undefined ? {} : { serviceName }),
      ...(privateServiceName === undefined ? {} : { privateServiceName }),
      ...(conditions === undefined ? {} : { conditions: conditions.map(conditionRead) }),
    },
  };
}

/**
 * What the autoscaler caches of a ScaledObject: all but its status, of which only the conditions
 * (KEDA's status, a subresource, also lists metric names, health and the HPA's name).
 */
export function scaledObjectRead<T extends ScaledObject>(scaledObject: T): T {
  if (scaledObject.status === undefined) return scaledObject;
  const { conditions } = scaledObject.status;
  return { ...scaledObject, status: conditions === undefined ? {} : { conditions: conditions.map(conditionRead) } };
}

/** What the autoscaler reads of the revision's Deployment. */
export interface ScaleTarget {
  /** `spec.replicas`: what KEDA (through its HPA) asked for. */
  readonly desired: number;
  /** `status.readyReplicas`. */
  readonly ready: number;
}

export function controllerRef(pa: PodAutoscaler): OwnerReference {
  return {
    apiVersion: `${PA_API.group}/${PA_API.version}`,
    kind: 'PodAutoscaler',
    name: pa.metadata.name ?? '',
    uid: pa.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** True when `object` is controlled by the PA (same uid). */
export function isControlledBy(object: { metadata: ObjectMeta }, pa: PodAutoscaler): boolean {
  return (object.metadata.ownerReferences ?? []).some((ref) => ref.controller === true && ref.uid === pa.metadata.uid);
}

/**
 * The ServerlessService, always in `Serve` mode: the public `<revision>` Service then mirrors the
 * revision's own pods whenever there are any. At zero, Knative's SKS reconciler falls back to the
 * activator on its own; Afterlife never needs that path, because the gateway is the buffer at zero
 * and delivers to the pods through the `<revision>-private` Service, so `Proxy` mode (which puts the
 * activator in front of live pods too) would only add a hop.
 */
export function desiredServerlessService(pa: PodAutoscaler): ServerlessService {
  return {
    apiVersion: `${SKS_API.group}/${SKS_API.version}`,
    kind: 'ServerlessService',
    metadata: {
      name: pa.metadata.name ?? '',
      namespace: pa.metadata.namespace ?? '',
      labels: { ...pa.metadata.labels },
      ownerReferences: [controllerRef(pa)],
    },
    spec: {
      mode: 'Serve',
      objectRef: { ...pa.spec.scaleTargetRef },
      protocolType: pa.spec.protocolType ?? 'http1',
      // 0 means "all activators" to Knative; none run in the Afterlife path.
      numActivators: 0,
    },
  };
}

export interface ScaledObjectInput {
  readonly pa: PodAutoscaler;
  readonly scaling: RevisionScaling;
  readonly scalerAddress: string;
  /** ClusterTriggerAuthentication with the scaler's CA (and client cert); '' = plaintext. */
  readonly scalerTlsAuthentication?: string;
  /** Until the revision first reached its initial scale, KEDA must not scale it below that. */
  readonly initialized: boolean;
}

/** The trigger metadata key the scaler reads to find a revision's counts. */
export const TRIGGER_REVISION_KEY = 'revision';

export function desiredScaledObject(input: ScaledObjectInput): ScaledObject {
  const { pa, scaling } = input;
  const name = pa.metadata.name ?? '';
  const minReplicaCount = input.initialized ? scaling.minScale : Math.max(scaling.minScale, scaling.initialScale);
  return {
    apiVersion: `${SCALED_OBJECT_API.group}/${SCALED_OBJECT_API.version}`,
    kind: 'ScaledObject',
    metadata: {
      name,
      namespace: pa.metadata.namespace ?? '',
      labels: { ...pa.metadata.labels, [MANAGED_BY_LABEL]: MANAGED_BY },
      ownerReferences: [controllerRef(pa)],
    },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: pa.spec.scaleTargetRef.name ?? '' },
      minReplicaCount,
      maxReplicaCount: scaling.maxScale,
      pollingInterval: scaling.pollingIntervalSeconds,
      cooldownPeriod: scaling.cooldownSeconds,
      triggers: [
        {
          type: 'external-push',
          metadata: {
            scalerAddress: input.scalerAddress,
            [TRIGGER_REVISION_KEY]: name,
            metric: scaling.metric,
            targetValue: String(scaling.target),
            ...(scaling.activationThreshold > 0 ? { activationThreshold: String(scaling.activationThreshold) } : {}),
            ...(input.scalerTlsAuthentication ? { enableTLS: 'true' } : {}),
          },
          ...(input.scalerTlsAuthentication
            ? { authenticationRef: { name: input.scalerTlsAuthentication, kind: 'ClusterTriggerAuthentication' } }
            : {}),
        },
      ],
    },
  };
}

/** True when the fields this controller owns differ (KEDA and the API server add others). */
export function scaledObjectDiffers(current: ScaledObject, desired: ScaledObject): boolean {
  return (
    JSON.stringify(pick(current.spec)) !== JSON.stringify(pick(desired.spec)) ||
    Object.entries(desired.metadata.labels ?? {}).some(([key, value]) => current.metadata.labels?.[key] !== value)
  );
}

function pick(spec: ScaledObject['spec']): unknown {
  return {
    scaleTargetRef: {
      apiVersion: spec.scaleTargetRef?.apiVersion,
      kind: spec.scaleTargetRef?.kind,
      name: spec.scaleTargetRef?.name,
    },
    minReplicaCount: spec.minReplicaCount,
    maxReplicaCount: spec.maxReplicaCount,
    pollingInterval: spec.pollingInterval,
    cooldownPeriod: spec.cooldownPeriod,
    triggers: (spec.triggers ?? []).map((t) => ({
      type: t.type,
      metadata: sortKeys(t.metadata ?? {}),
      authenticationRef:
        t.authenticationRef === undefined
          ? null
          : { name: t.authenticationRef.name, kind: t.authenticationRef.kind ?? 'TriggerAuthentication' },
    })),
  };
}

function sortKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}

export function serverlessServiceDiffers(current: ServerlessService, desired: ServerlessService): boolean {
  const spec = (s: ServerlessService['spec']) => ({
    mode: s.mode,
    objectRef: { apiVersion: s.objectRef?.apiVersion, kind: s.objectRef?.kind, name: s.objectRef?.name },
    protocolType: s.protocolType,
    numActivators: s.numActivators ?? 0,
  });
  return JSON.stringify(spec(current.spec)) !== JSON.stringify(spec(desired.spec));
}

export const CONDITION_READY = 'Ready';
export const CONDITION_ACTIVE = 'Active';
export const CONDITION_SKS_READY = 'SKSReady';
export const CONDITION_INITIALIZED = 'ScaleTargetInitialized';

export interface StatusInput {
  readonly pa: PodAutoscaler;
  /** Parsed settings, or the problems that stop the revision from being scaled. */
  readonly scaling: RevisionScaling | { readonly problems: readonly string[] };
  readonly sks: ServerlessService | undefined;
  readonly target: ScaleTarget | undefined;
  readonly scaledObject: ScaledObject | undefined;
  /** A failure to own or write an object, reported on Active (e.g. an SKS someone else controls). */
  readonly failure?: { readonly reason: string; readonly message: string };
  readonly now: Date;
}

type ConditionState = Pick<Condition, 'status' | 'reason' | 'message'>;

/**
 * The PA status Knative's revision reconciler reads. Rules that keep a revision healthy:
 * `ScaleTargetInitialized` is sticky and needs `serviceName`; before it is True nothing is ever
 * False (PA Ready False before initialization fails the revision); at zero replicas Active is
 * False/NoTraffic as with Knative's own autoscaler, and the Revision stays Ready.
 */
export function computeStatus(input: StatusInput): PodAutoscalerStatus {
  const { pa, sks, target } = input;
  const previous = pa.status?.conditions ?? [];
  const wasInitialized = previous.some((c) => c.type === CONDITION_INITIALIZED && c.status === 'True');
  const serviceName = sks?.status?.serviceName ?? '';
  const ready = target?.ready ?? 0;
  const desired = target?.desired ?? 0;
  const states = new Map<string, ConditionState>();

  if ('problems' in input.scaling) {
    states.set(CONDITION_ACTIVE, {
      status: 'False',
      reason: 'InvalidAnnotations',
      message: input.scaling.problems.join('; '),
    });
    states.set(CONDITION_SKS_READY, { status: 'Unknown', reason: 'InvalidAnnotations', message: 'not reconciled' });
    states.set(
      CONDITION_INITIALIZED,
      wasInitialized
        ? { status: 'True' }
        : { status: 'Unknown', reason: 'InvalidAnnotations', message: 'not reconciled' },
    );
  } else {
    const scaling = input.scaling;
    const sksReady = sks?.status?.conditions?.find((c) => c.type === CONDITION_READY);
    states.set(
      CONDITION_SKS_READY,
      sksReady?.status === 'True'
        ? { status: 'True' }
        : { status: 'Unknown', reason: 'NotReady', message: 'SKS Services are not ready yet' },
    );
    const needed = Math.max(scaling.minScale, scaling.initialScale);
    const initialized = wasInitialized || (serviceName !== '' && ready >= needed);
    states.set(
      CONDITION_INITIALIZED,
      initialized
        ? { status: 'True' }
        : {
            status: 'Unknown',
            reason: 'Initializing',
            message: `waiting for ${needed} ready replica(s) (initial scale), ${ready} ready`,
          },
    );
    if (input.failure !== undefined) {
      // Before initialization a False Ready would fail the revision for good ("Initial scale was
      // never achieved"); Unknown keeps it waiting with the message until the cause is removed.
      states.set(CONDITION_ACTIVE, { status: initialized ? 'False' : 'Unknown', ...input.failure });
    } else if (ready > 0) {
      states.set(CONDITION_ACTIVE, { status: 'True' });
    } else if (!initialized) {
      states.set(CONDITION_ACTIVE, {
        status: 'Unknown',
        reason: 'Queued',
        message: 'Requests to the target are being buffered as resources are provisioned.',
      });
    } else if (desired > 0) {
      states.set(CONDITION_ACTIVE, {
        status: 'Unknown',
        reason: 'Activating',
        message: `scaling from zero: ${desired} replica(s) requested, none ready yet`,
      });
    } else {
      const keda = kedaProblem(input.scaledObject);
      states.set(CONDITION_ACTIVE, {
        status: 'False',
        reason: 'NoTraffic',
        message:
          keda === undefined
            ? 'The target is not receiving traffic; scaled to zero (the Afterlife gateway holds events and wakes it).'
            : `The target is scaled to zero and KEDA reports a problem: ${keda}`,
      });
    }
  }

  const conditions: Condition[] = [];
  for (const type of [CONDITION_ACTIVE, CONDITION_INITIALIZED, CONDITION_SKS_READY]) {
    conditions.push(withTransition(type, states.get(type) ?? { status: 'Unknown' }, previous, input.now));
  }
  conditions.push(withTransition(CONDITION_READY, summarize(conditions), previous, input.now));
  conditions.sort((a, b) => a.type.localeCompare(b.type));

  const status: PodAutoscalerStatus = { conditions };
  if (pa.metadata.generation !== undefined) status.observedGeneration = pa.metadata.generation;
  if (serviceName !== '') status.serviceName = serviceName;
  const metricsServiceName = sks?.status?.privateServiceName ?? '';
  if (metricsServiceName !== '') status.metricsServiceName = metricsServiceName;
  if (target !== undefined) {
    status.desiredScale = desired;
    status.actualScale = ready;
  }
  return status;
}

/** Knative's living condition set: any False → False, else any Unknown → Unknown, else True. */
function summarize(conditions: readonly Condition[]): ConditionState {
  const failed = conditions.find((c) => c.status === 'False');
  if (failed !== undefined) return { status: 'False', ...reasonAndMessage(failed) };
  const unknown = conditions.find((c) => c.status === 'Unknown');
  if (unknown !== undefined) return { status: 'Unknown', ...reasonAndMessage(unknown) };
  return { status: 'True' };
}

function reasonAndMessage(condition: Condition): { reason?: string; message?: string } {
  return {
    ...(condition.reason === undefined ? {} : { reason: condition.reason }),
    ...(condition.message === undefined ? {} : { message: condition.message }),
  };
}

function withTransition(type: string, state: ConditionState, previous: readonly Condition[], now: Date): Condition {
  const before = previous.find((c) => c.type === type);
  const lastTransitionTime =
    before !== undefined && before.status === state.status && before.lastTransitionTime !== undefined
      ? before.lastTransitionTime
      : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    type,
    status: state.status,
    lastTransitionTime,
    ...(state.reason === undefined ? {} : { reason: state.reason }),
    ...(state.message === undefined ? {} : { message: state.message }),
  };
}

/** KEDA's own complaint about the ScaledObject (e.g. the scaler unreachable), if any. */
function kedaProblem(scaledObject: ScaledObject | undefined): string | undefined {
  const ready = scaledObject?.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready === undefined || ready.status !== 'False') return undefined;
  return `ScaledObject ${scaledObject?.metadata.name} Ready=False (${ready.reason ?? 'no reason'}): ${ready.message ?? ''}`.trim();
}

/** True when two statuses say the same thing (ignoring condition order). */
export function sameStatus(a: PodAutoscalerStatus | undefined, b: PodAutoscalerStatus): boolean {
  const normalize = (status: PodAutoscalerStatus | undefined) =>
    JSON.stringify({
      observedGeneration: status?.observedGeneration,
      serviceName: status?.serviceName ?? '',
      metricsServiceName: status?.metricsServiceName ?? '',
      desiredScale: status?.desiredScale,
      actualScale: status?.actualScale,
      conditions: [...(status?.conditions ?? [])]
        .sort((x, y) => x.type.localeCompare(y.type))
        .map((c) => ({
          type: c.type,
          status: c.status,
          reason: c.reason ?? '',
          message: c.message ?? '',
          lastTransitionTime: c.lastTransitionTime ?? '',
        })),
    });
  return normalize(a) === normalize(b);
}
