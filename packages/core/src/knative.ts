import { parse as parseYaml } from 'yaml';

/**
 * How Knative Serving reads the settings that decide whether a revision may carry a
 * RuntimeClass — pure parsing, shared by the webhook (which mutates Services by it) and the
 * conformance preflight / `afterlife doctor` (which check a cluster by it).
 */

/** The `config-features` key that lets Knative accept `runtimeClassName` in a Service's pod spec. */
export const RUNTIME_CLASS_FLAG = 'kubernetes.podspec-runtimeclassname';
/** The `config-deployment` key (Knative >= 1.15) that maps a RuntimeClass to revision-label selectors. */
export const RUNTIME_CLASS_NAME_KEY = 'runtime-class-name';
export const CONFIG_FEATURES = 'config-features';
/** The PodAutoscaler class the Afterlife autoscaler owns (`autoscaling.knative.dev/class` on a revision template). */
export const AFTERLIFE_AUTOSCALER_CLASS = 'afterlife.dev';
export const CONFIG_DEPLOYMENT = 'config-deployment';

/**
 * The opt-in contract a user writes on a Knative Service (read by the webhook, the conformance
 * suite, the CLI and the autoscaler): defined once here.
 */
export const LABEL_RUNTIME = 'afterlife.dev/runtime';
export const RUNTIME_WASMEDGE = 'wasmedge';
export const LABEL_SCALING = 'afterlife.dev/scaling';
export const SCALING_EVENTS = 'events';
export const ANNOTATION_AUTOSCALING_CLASS = 'autoscaling.knative.dev/class';
export const ANNOTATION_SCALED_OBJECT_OVERRIDE = 'autoscaling.knative.dev/scaled-object-override';
/** Knative's HPA class (the route through autoscaler-keda). */
export const HPA_CLASS = 'hpa.autoscaling.knative.dev';

/** One entry of `config-deployment` `runtime-class-name`; no selector matches every revision. */
export interface RuntimeClassSelector {
  readonly selector?: Readonly<Record<string, string>>;
}

/** What is known about Knative Serving's configuration at one moment. */
export interface KnativeFeatures {
  /** True once the ConfigMaps have been read at least once. */
  readonly synced: boolean;
  /** Raw value of `kubernetes.podspec-runtimeclassname` (undefined when unset: Knative's default is disabled). */
  readonly runtimeClassNameFlag: string | undefined;
  /** Parsed `runtime-class-name` of `config-deployment`; empty when unset or invalid. */
  readonly runtimeClassNames: ReadonlyMap<string, RuntimeClassSelector>;
  /** Why `runtime-class-name` could not be parsed, if it could not. */
  readonly runtimeClassNamesError?: string;
}

export const UNSYNCED_FEATURES: KnativeFeatures = Object.freeze({
  synced: false,
  runtimeClassNameFlag: undefined,
  runtimeClassNames: new Map(),
});

/** True for a plain object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Builds a features snapshot from the `data` of `config-features` and `config-deployment`
 * (either may be missing: Knative then uses its defaults).
 */
export function featuresFromConfigMaps(
  features: Readonly<Record<string, string>> | undefined,
  deployment: Readonly<Record<string, string>> | undefined,
): KnativeFeatures {
  const flag = features?.[RUNTIME_CLASS_FLAG]?.trim();
  const raw = deployment?.[RUNTIME_CLASS_NAME_KEY];
  const parsed = raw === undefined ? { map: new Map<string, RuntimeClassSelector>() } : parseRuntimeClassNames(raw);
  return {
    synced: true,
    runtimeClassNameFlag: flag === '' ? undefined : flag,
    runtimeClassNames: parsed.map,
    ...(parsed.error === undefined ? {} : { runtimeClassNamesError: parsed.error }),
  };
}

/** Parses the YAML mapping `class → { selector: { label: value } }` the way Knative does. */
export function parseRuntimeClassNames(text: string): { map: Map<string, RuntimeClassSelector>; error?: string } {
  const map = new Map<string, RuntimeClassSelector>();
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    return { map, error: `not valid YAML: ${(error as Error).message.split('\n')[0]}` };
  }
  if (document === null || document === undefined) return { map };
  if (!isRecord(document)) return { map, error: 'must be a YAML mapping of RuntimeClass name to {selector: {...}}' };
  for (const [name, entry] of Object.entries(document)) {
    if (entry === null || entry === undefined) {
      map.set(name, {});
      continue;
    }
    if (!isRecord(entry)) return { map: new Map(), error: `entry "${name}" must be a mapping` };
    const selector = entry.selector;
    if (selector === undefined || selector === null) {
      map.set(name, {});
      continue;
    }
    if (!isRecord(selector) || !Object.values(selector).every((v) => typeof v === 'string')) {
      return { map: new Map(), error: `entry "${name}" selector must map label names to string values` };
    }
    map.set(name, { selector: { ...(selector as Record<string, string>) } });
  }
  return { map };
}

/** Knative accepts `runtimeClassName` in the pod spec when the flag is `enabled` or `allowed` (any case). */
export function runtimeClassFieldAllowed(features: KnativeFeatures): boolean {
  const flag = features.runtimeClassNameFlag?.toLowerCase();
  return flag === 'enabled' || flag === 'allowed';
}

function specificity(entry: RuntimeClassSelector): number {
  return entry.selector === undefined ? 0 : Object.keys(entry.selector).length;
}

function matches(entry: RuntimeClassSelector, labels: Readonly<Record<string, string>>): boolean {
  if (entry.selector === undefined) return true;
  return Object.entries(entry.selector).every(([key, value]) => labels[key] === value);
}

/**
 * The RuntimeClass Knative's revision reconciler would pick for a revision with these labels
 * (most specific matching selector wins, ties go to the alphabetically first name; "" means none).
 */
export function knativeRuntimeClassFor(
  classes: ReadonlyMap<string, RuntimeClassSelector>,
  labels: Readonly<Record<string, string>>,
): string | undefined {
  let chosen = '';
  let best = -1;
  for (const [name, entry] of classes) {
    if (!matches(entry, labels)) continue;
    const s = specificity(entry);
    if (s > best || (s === best && name < chosen)) {
      chosen = name;
      best = s;
    }
  }
  return chosen === '' ? undefined : chosen;
}

/** The kubectl command that turns on Knative's runtimeClassName flag. */
export function enableFlagCommand(knativeNamespace: string): string {
  return `kubectl patch configmap/${CONFIG_FEATURES} -n ${knativeNamespace} --type merge -p '{"data":{"${RUNTIME_CLASS_FLAG}":"enabled"}}'`;
}

/** A Knative Service as the suite, the demo and the benches deploy a function. */
export interface FunctionServiceSpec {
  readonly name: string;
  readonly namespace: string;
  readonly image: string;
  /** Labels on the Service; the opt-in labels (runtime `wasmedge`, scaling `events`) unless `optIn` is false. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Annotations on the revision template (autoscaling settings). */
  readonly annotations?: Readonly<Record<string, string>>;
  /** Add the opt-in labels (default true). */
  readonly optIn?: boolean;
}

/**
 * The manifest of a function as a Knative Service (`serving.knative.dev/v1`), serving HTTP on
 * 8080 — the workload contract of the reference echo function. One builder for every caller.
 */
export function functionService(spec: FunctionServiceSpec) {
  const optIn = spec.optIn === false ? {} : { [LABEL_RUNTIME]: RUNTIME_WASMEDGE, [LABEL_SCALING]: SCALING_EVENTS };
  return {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: { name: spec.name, namespace: spec.namespace, labels: { ...optIn, ...spec.labels } },
    spec: {
      template: {
        metadata: { annotations: { ...spec.annotations } },
        spec: { containers: [{ image: spec.image, ports: [{ containerPort: 8080 }] }] },
      },
    },
  };
}
