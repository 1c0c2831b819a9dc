import {
  AFTERLIFE_AUTOSCALER_CLASS,
  ANNOTATION_AUTOSCALING_CLASS,
  ANNOTATION_SCALED_OBJECT_OVERRIDE,
  CONFIG_DEPLOYMENT,
  CONFIG_FEATURES,
  enableFlagCommand,
  HPA_CLASS,
  isRecord,
  type KnativeFeatures,
  knativeRuntimeClassFor,
  LABEL_RUNTIME,
  LABEL_SCALING,
  RUNTIME_CLASS_FLAG,
  RUNTIME_CLASS_NAME_KEY,
  RUNTIME_WASMEDGE,
  runtimeClassFieldAllowed,
  SCALING_EVENTS,
  WASM_VARIANT_ANNOTATION,
} from '@afterlife/core';
import type { MutationConfig } from './config.ts';
import { WebhookError } from './errors.ts';

// The opt-in contract (labels, classes) is core's; the webhook's package exports it too.
export {
  ANNOTATION_AUTOSCALING_CLASS,
  ANNOTATION_SCALED_OBJECT_OVERRIDE,
  HPA_CLASS,
  LABEL_RUNTIME,
  LABEL_SCALING,
  RUNTIME_WASMEDGE,
  SCALING_EVENTS,
};

export const KNATIVE_GROUP = 'serving.knative.dev';

/**
 * Labels and annotations the webhook reads (on the Service/Configuration) and writes (on its
 * template); crun's variant annotation is core's `WASM_VARIANT_ANNOTATION`.
 */
export const RUNTIME_DISABLED = 'disabled';
export const ANNOTATION_TARGET_VALUE = 'afterlife.dev/target-value';
export const ANNOTATION_MIN_SCALE = 'autoscaling.knative.dev/min-scale';
const MIN_SCALE_ALIASES = [ANNOTATION_MIN_SCALE, 'autoscaling.knative.dev/minScale'];
/** Knative's per-replica target; the Afterlife autoscaler turns it into the KEDA trigger's targetValue. */
export const ANNOTATION_TARGET = 'autoscaling.knative.dev/target';
/**
 * `mount` on the Service (label or annotation) or its template keeps the service account token;
 * by default the webhook sets `automountServiceAccountToken: false` (see step 4 of `mutation`).
 */
export const ANNOTATION_SERVICE_ACCOUNT_TOKEN = 'afterlife.dev/service-account-token';
export const SERVICE_ACCOUNT_TOKEN_MOUNT = 'mount';
const LABEL_KNATIVE_SERVICE = 'serving.knative.dev/service';

export interface JsonPatchOperation {
  op: 'add';
  path: string;
  value: unknown;
}

/**
 * The part of an AdmissionReview `request` the policy reads (admission.k8s.io/v1
 * AdmissionRequest); untrusted JSON, so every field is checked before use.
 */
export type AdmissionRequest = Readonly<Record<string, unknown>>;

/** What the policy answers for an allowed request: an AdmissionResponse without the uid (the HTTP layer echoes it). */
export interface AdmissionAllowed {
  readonly allowed: true;
  readonly patchType?: 'JSONPatch';
  /** The JSON Patch, base64-encoded, as AdmissionResponse carries it. */
  readonly patch?: string;
  readonly warnings?: readonly string[];
}

/** Decides whether a container image is a Wasm image (see image.ts); must not throw. */
export interface ImageInspector {
  isWasmImage(image: string): Promise<boolean>;
}

export interface AdmitContext {
  readonly config: Readonly<MutationConfig>;
  /** Snapshot of Knative Serving's `config-features` / `config-deployment`. */
  readonly features: KnativeFeatures;
  /** True when the request came through the namespaceSelector webhook (the namespace opted in). */
  readonly namespaceOptIn?: boolean;
  /** Labels of a namespace, from an informer, when the webhook watches namespaces. */
  readonly namespaceLabels?: (namespace: string) => Readonly<Record<string, string>> | undefined;
  /** Present when Wasm-image detection is enabled. */
  readonly imageInspector?: ImageInspector;
}

/**
 * `mutated`: allowed with a patch; `unchanged`: opted in, nothing left to do; `skipped`: not ours
 * (not opted in, opted out, other kind or operation). Denials are thrown (`ADMISSION_DENIED`).
 */
export type AdmitOutcome = 'mutated' | 'unchanged' | 'skipped';

export interface AdmitResult {
  readonly response: AdmissionAllowed;
  readonly outcome: AdmitOutcome;
  /** Short machine-friendly reason for logs. */
  readonly reason: string;
  /** The patch operations (also base64-encoded in the response). */
  readonly patch: readonly JsonPatchOperation[];
}

/** Escapes one JSON Pointer reference token (RFC 6901). */
export function pointerToken(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** The JSON written to `autoscaling.knative.dev/scaled-object-override` (a KEDA ScaledObject fragment). */
export function scaledObjectOverride(scalerAddress: string, fn: string, targetValue: number): string {
  return JSON.stringify({
    spec: {
      minReplicaCount: 0,
      triggers: [
        {
          type: 'external-push',
          metadata: {
            scalerAddress,
            function: fn,
            metric: 'concurrency',
            targetValue: String(targetValue),
            activationThreshold: '0',
          },
        },
      ],
    },
  });
}

/** The one way the policy says no: an `ADMISSION_DENIED` WebhookError with a short reason. */
function denial(reason: string, message: string): WebhookError {
  return new WebhookError('ADMISSION_DENIED', message, { reason });
}

function allow(outcome: 'skipped' | 'unchanged', reason: string, warnings: string[]): AdmitResult {
  return {
    response: { allowed: true, ...(warnings.length > 0 ? { warnings } : {}) },
    outcome,
    reason,
    patch: [],
  };
}

function stringMap(value: unknown): Record<string, string> {
  if (!isRecord(value)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}

type OptIn = { readonly via: 'label' | 'namespace' | 'image' } | { readonly via: 'none'; readonly reason: string };

async function decideOptIn(
  object: Record<string, unknown>,
  namespace: string,
  context: AdmitContext,
  warnings: string[],
): Promise<OptIn> {
  const metadata = isRecord(object.metadata) ? object.metadata : {};
  const labels = stringMap(metadata.labels);
  const value = labels[LABEL_RUNTIME];
  if (value === RUNTIME_DISABLED) return { via: 'none', reason: 'opted-out' };
  if (value === RUNTIME_WASMEDGE) return { via: 'label' };
  if (value !== undefined) {
    warnings.push(
      `afterlife: label ${LABEL_RUNTIME}="${value}" is not "${RUNTIME_WASMEDGE}" or "${RUNTIME_DISABLED}"; Service left unchanged`,
    );
    return { via: 'none', reason: 'unknown-runtime-label' };
  }
  if (context.namespaceOptIn === true) return { via: 'namespace' };
  if (namespace !== '' && context.namespaceLabels?.(namespace)?.[LABEL_RUNTIME] === RUNTIME_WASMEDGE) {
    return { via: 'namespace' };
  }
  if (context.imageInspector !== undefined) {
    const images = containerImages(object);
    if (images.length > 0) {
      const results = await Promise.all(images.map((image) => context.imageInspector?.isWasmImage(image)));
      if (results.some((wasm) => wasm === true)) return { via: 'image' };
    }
  }
  return { via: 'none', reason: 'not-opted-in' };
}

function containerImages(object: Record<string, unknown>): string[] {
  const spec = isRecord(object.spec) ? object.spec : undefined;
  const template = spec !== undefined && isRecord(spec.template) ? spec.template : undefined;
  const podSpec = template !== undefined && isRecord(template.spec) ? template.spec : undefined;
  const containers = podSpec !== undefined && Array.isArray(podSpec.containers) ? podSpec.containers : [];
  const images: string[] = [];
  for (const container of containers) {
    if (isRecord(container) && typeof container.image === 'string' && container.image !== '') {
      images.push(container.image);
    }
  }
  return [...new Set(images)];
}

/**
 * The policy (knative/pkg's `Admit`): decides one admission request. It knows nothing of the
 * AdmissionReview envelope (apiVersion, uid): `answerReview` decodes it and echoes the uid.
 * Pure apart from the optional image inspector. Throws a WebhookError for what it refuses
 * (`ADMISSION_DENIED`, or `REVIEW_INVALID` for an unusable object), and returns a patch only when
 * something must change (so admitting its own output, e.g. on reinvocation, returns no patch).
 */
export async function admit(request: AdmissionRequest, context: AdmitContext): Promise<AdmitResult> {
  const operation = request.operation;
  if (operation !== 'CREATE' && operation !== 'UPDATE') {
    return allow('skipped', 'operation', []);
  }
  const kind = isRecord(request.kind) ? request.kind : {};
  if (
    kind.group !== KNATIVE_GROUP ||
    (kind.kind !== 'Service' && kind.kind !== 'Configuration') ||
    (typeof request.subResource === 'string' && request.subResource !== '')
  ) {
    return allow('skipped', 'foreign-kind', []);
  }
  const object = request.object;
  if (!isRecord(object)) {
    throw new WebhookError('REVIEW_INVALID', 'AdmissionReview request.object must be an object', {
      reason: 'no-object',
    });
  }
  const metadata = isRecord(object.metadata) ? object.metadata : {};
  const namespace =
    typeof request.namespace === 'string' && request.namespace !== ''
      ? request.namespace
      : typeof metadata.namespace === 'string'
        ? metadata.namespace
        : '';

  const warnings: string[] = [];
  const optIn = await decideOptIn(object, namespace, context, warnings);
  if (optIn.via === 'none') return allow('skipped', optIn.reason, warnings);

  const patch = mutation(object, kind.kind, namespace, optIn.via, context, warnings);
  if (patch.length === 0) return allow('unchanged', `opted-in-by-${optIn.via}`, warnings);
  return {
    response: {
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
      ...(warnings.length > 0 ? { warnings } : {}),
    },
    outcome: 'mutated',
    reason: `opted-in-by-${optIn.via}`,
    patch,
  };
}

function mutation(
  object: Record<string, unknown>,
  kind: 'Service' | 'Configuration',
  namespace: string,
  via: 'label' | 'namespace' | 'image',
  context: AdmitContext,
  warnings: string[],
): JsonPatchOperation[] {
  const { config, features } = context;
  const by = via === 'label' ? `label ${LABEL_RUNTIME}` : via === 'namespace' ? 'its namespace' : 'its Wasm image';
  const what = `${kind} opted in to RuntimeClass ${config.runtimeClass} (by ${by})`;
  if (!isRecord(object.spec)) throw denial('no-spec', `${what}: spec must be an object with a template`);
  const template = object.spec.template;
  if (!isRecord(template)) {
    throw denial(
      'template-not-object',
      `${what}: spec.template must be an object (got ${template === undefined ? 'nothing' : JSON.stringify(template)?.slice(0, 40)})`,
    );
  }
  const objectMeta = isRecord(object.metadata) ? object.metadata : {};
  const objectLabels = stringMap(objectMeta.labels);
  const objectAnnotations = stringMap(objectMeta.annotations);

  if (template.metadata !== undefined && template.metadata !== null && !isRecord(template.metadata)) {
    throw denial('template-metadata-not-object', `${what}: spec.template.metadata must be an object`);
  }
  const templateMeta = isRecord(template.metadata) ? template.metadata : undefined;
  for (const field of ['annotations', 'labels'] as const) {
    const value = templateMeta?.[field];
    if (value !== undefined && value !== null && !isRecord(value)) {
      throw denial(`template-${field}-not-object`, `${what}: spec.template.metadata.${field} must be an object`);
    }
  }
  if (template.spec !== undefined && template.spec !== null && !isRecord(template.spec)) {
    throw denial('template-spec-not-object', `${what}: spec.template.spec must be an object`);
  }
  const podSpec = isRecord(template.spec) ? template.spec : undefined;
  const annotations = stringMap(templateMeta?.annotations);
  const labels = stringMap(templateMeta?.labels);

  const addAnnotations: Record<string, string> = {};
  const addLabels: Record<string, string> = {};
  const wantAnnotation = (key: string, value: string, aliases: readonly string[] = [key]): void => {
    const existingKey = aliases.find((alias) => annotations[alias] !== undefined);
    const existing = existingKey === undefined ? undefined : annotations[existingKey];
    if (existing === undefined) addAnnotations[key] = value;
    else if (existing !== value) {
      warnings.push(
        `afterlife: kept your annotation ${existingKey}="${truncate(existing)}" (Afterlife would set "${truncate(value)}")`,
      );
    }
  };

  // 1. Run the Wasm entrypoint under WasmEdge and everything else (queue-proxy) natively.
  wantAnnotation(WASM_VARIANT_ANNOTATION, config.wasmVariant);

  // 2. Event scaling through the Afterlife scaler, when asked for.
  const scaling = objectLabels[LABEL_SCALING] ?? objectAnnotations[LABEL_SCALING];
  if (scaling === SCALING_EVENTS) {
    const name = typeof objectMeta.name === 'string' ? objectMeta.name : '';
    const fnName = kind === 'Configuration' ? (objectLabels[LABEL_KNATIVE_SERVICE] ?? name) : name;
    if (fnName === '' || namespace === '') {
      warnings.push('afterlife: event scaling needs metadata.name and a namespace; autoscaling annotations not added');
    } else {
      const rawTarget = objectAnnotations[ANNOTATION_TARGET_VALUE];
      let target = config.defaultTargetValue;
      if (rawTarget !== undefined) {
        if (!/^\d+$/.test(rawTarget) || Number(rawTarget) < 1) {
          throw denial(
            'bad-target-value',
            `${what}: annotation ${ANNOTATION_TARGET_VALUE} must be a whole number >= 1, got "${truncate(rawTarget)}"`,
          );
        }
        target = Number(rawTarget);
      }
      if (config.scalingRoute === 'afterlife') {
        wantAnnotation(ANNOTATION_AUTOSCALING_CLASS, AFTERLIFE_AUTOSCALER_CLASS);
        wantAnnotation(ANNOTATION_MIN_SCALE, '0', MIN_SCALE_ALIASES);
        // The autoscaler falls back to its own default target; only an explicit one is carried over.
        if (rawTarget !== undefined) wantAnnotation(ANNOTATION_TARGET, String(target));
      } else {
        wantAnnotation(ANNOTATION_AUTOSCALING_CLASS, HPA_CLASS);
        wantAnnotation(ANNOTATION_MIN_SCALE, '0', MIN_SCALE_ALIASES);
        wantAnnotation(
          ANNOTATION_SCALED_OBJECT_OVERRIDE,
          scaledObjectOverride(config.scalerAddress, `${namespace}/${fnName}`, target),
        );
      }
    }
  } else if (scaling !== undefined) {
    warnings.push(
      `afterlife: ${LABEL_SCALING}="${truncate(scaling)}" is not "${SCALING_EVENTS}"; Knative's own autoscaling applies`,
    );
  }

  // 3. The RuntimeClass, the way this Knative installation accepts it.
  let setRuntimeClass = false;
  const existing = podSpec?.runtimeClassName;
  if (existing !== undefined && existing !== null && existing !== '') {
    if (existing !== config.runtimeClass) {
      warnings.push(
        `afterlife: kept spec.template.spec.runtimeClassName="${truncate(String(existing))}"; Wasm needs "${config.runtimeClass}"`,
      );
    } else if (!runtimeClassFieldAllowed(features) && features.synced) {
      warnings.push(
        `afterlife: Knative rejects runtimeClassName while ${CONFIG_FEATURES} ${RUNTIME_CLASS_FLAG} is disabled; see ${enableFlagCommand(config.knativeNamespace)}`,
      );
    }
  } else if (!features.synced) {
    throw denial(
      'knative-config-not-synced',
      `${what}: the webhook has not read Knative's ${CONFIG_FEATURES}/${CONFIG_DEPLOYMENT} ConfigMaps yet; retry shortly`,
    );
  } else if (runtimeClassFieldAllowed(features)) {
    setRuntimeClass = true;
  } else {
    routeThroughDeploymentConfig(what, config, features, labels, addLabels);
  }

  // 4. No service account token unless asked for: its projected volume makes kubelet wait for
  // the volume manager (≈ 300 ms measured on the local node) before it creates the sandbox, in
  // every cold start; a Wasm function rarely calls the Kubernetes API. Knative accepts only
  // `false` here, so `mount` is said with our annotation.
  const tokenWanted =
    [objectLabels, objectAnnotations, annotations].some(
      (map) => map[ANNOTATION_SERVICE_ACCOUNT_TOKEN] === SERVICE_ACCOUNT_TOKEN_MOUNT,
    ) || podSpec?.automountServiceAccountToken !== undefined;
  const dropToken = !tokenWanted;

  // Build the smallest patch that adds exactly what is missing.
  const ops: JsonPatchOperation[] = [];
  const metaAdditions: Record<string, Record<string, string>> = {};
  if (Object.keys(addAnnotations).length > 0) metaAdditions.annotations = addAnnotations;
  if (Object.keys(addLabels).length > 0) metaAdditions.labels = addLabels;
  if (Object.keys(metaAdditions).length > 0) {
    if (templateMeta === undefined) {
      ops.push({ op: 'add', path: '/spec/template/metadata', value: metaAdditions });
    } else {
      for (const [field, additions] of Object.entries(metaAdditions)) {
        if (!isRecord(templateMeta[field])) {
          ops.push({ op: 'add', path: `/spec/template/metadata/${field}`, value: additions });
          continue;
        }
        for (const [key, value] of Object.entries(additions)) {
          ops.push({ op: 'add', path: `/spec/template/metadata/${field}/${pointerToken(key)}`, value });
        }
      }
    }
  }
  const specAdditions: Record<string, unknown> = {
    ...(setRuntimeClass ? { runtimeClassName: config.runtimeClass } : {}),
    ...(dropToken ? { automountServiceAccountToken: false } : {}),
  };
  if (Object.keys(specAdditions).length > 0) {
    if (podSpec === undefined) {
      ops.push({ op: 'add', path: '/spec/template/spec', value: specAdditions });
    } else {
      for (const [field, value] of Object.entries(specAdditions)) {
        ops.push({ op: 'add', path: `/spec/template/spec/${field}`, value });
      }
    }
  }
  return ops;
}

/** Knative >= 1.15 route: label the revision so `config-deployment` `runtime-class-name` selects our class. */
function routeThroughDeploymentConfig(
  what: string,
  config: Readonly<MutationConfig>,
  features: KnativeFeatures,
  labels: Readonly<Record<string, string>>,
  addLabels: Record<string, string>,
): void {
  const entry = features.runtimeClassNames.get(config.runtimeClass);
  const enable = `Enable the flag with: ${enableFlagCommand(config.knativeNamespace)}`;
  if (entry === undefined) {
    const broken =
      features.runtimeClassNamesError === undefined
        ? ''
        : ` (${CONFIG_DEPLOYMENT} ${RUNTIME_CLASS_NAME_KEY} is invalid: ${features.runtimeClassNamesError})`;
    throw denial(
      'runtimeclass-flag-disabled',
      `${what}: Knative Serving rejects spec.template.spec.runtimeClassName because ${CONFIG_FEATURES} key ${RUNTIME_CLASS_FLAG} is not "enabled" in namespace ${config.knativeNamespace}${broken}. ${enable} (or, on Knative >= 1.15, map "${config.runtimeClass}" to a revision label selector in ${CONFIG_DEPLOYMENT} key ${RUNTIME_CLASS_NAME_KEY})`,
    );
  }
  const merged: Record<string, string> = { ...labels };
  for (const [key, value] of Object.entries(entry.selector ?? {})) {
    const current = labels[key];
    if (current !== undefined && current !== value) {
      throw denial(
        'runtimeclass-selector-conflict',
        `${what}: ${CONFIG_DEPLOYMENT} ${RUNTIME_CLASS_NAME_KEY} selects "${config.runtimeClass}" by template label ${key}="${value}", but the template has ${key}="${truncate(current)}". Remove that label or ${enable}`,
      );
    }
    merged[key] = value;
    if (current === undefined) addLabels[key] = value;
  }
  const chosen = knativeRuntimeClassFor(features.runtimeClassNames, merged);
  if (chosen !== config.runtimeClass) {
    throw denial(
      'runtimeclass-selector-shadowed',
      `${what}: ${CONFIG_DEPLOYMENT} ${RUNTIME_CLASS_NAME_KEY} would give this revision RuntimeClass "${chosen ?? '(none)'}" (a more specific selector wins). Make the "${config.runtimeClass}" selector more specific or ${enable}`,
    );
  }
}

function truncate(text: string, max = 60): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
