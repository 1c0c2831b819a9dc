import { closestMatch, functionKey } from '@afterlife/core';
import { ScalerError } from './errors.ts';

/** What the scaler reports for a function. `concurrency` = pending + in-flight. */
export const METRICS = ['pending', 'concurrency', 'rate'] as const;
export type MetricKind = (typeof METRICS)[number];

/** Trigger metadata keys the scaler reads; exactly one of `function` and `revision` names what is scaled. */
export const METADATA_KEYS = ['function', 'revision', 'metric', 'targetValue', 'activationThreshold'] as const;
/** The keys naming what a trigger scales: a function (plain Service), or a Knative revision. */
export const TARGET_KEYS = ['function', 'revision'] as const;
/** Keys KEDA itself uses in the same `metadata` map; passed through to us, ignored. */
export const KEDA_METADATA_KEYS = ['scalerAddress', 'enableTLS', 'unsafeSsl'] as const;

export const DEFAULT_METRIC: MetricKind = 'concurrency';
export const DEFAULT_TARGET_VALUE = 10;
export const DEFAULT_ACTIVATION_THRESHOLD = 0;

/** The typed, validated form of one ScaledObject trigger. */
export interface TriggerSpec {
  readonly namespace: string;
  /** The function's name, or the revision's (the gateway counts Knative events per revision). */
  readonly name: string;
  /** `namespace/name`, the key the gateways' counts are aggregated by. */
  readonly key: string;
  readonly metric: MetricKind;
  readonly targetValue: number;
  readonly activationThreshold: number;
  /** The metric name reported in GetMetricSpec / GetMetrics. */
  readonly metricName: string;
}

/** Bad trigger metadata; the gRPC layer answers INVALID_ARGUMENT with this message. */
export class MetadataError extends ScalerError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('METADATA_INVALID', `invalid trigger metadata: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

export interface ScaledObjectRefLike {
  readonly name: string;
  readonly namespace: string;
  readonly scalerMetadata: Readonly<Record<string, string>>;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const KNOWN: readonly string[] = [...METADATA_KEYS, ...KEDA_METADATA_KEYS];

/**
 * Parses the trigger metadata KEDA passes as `scalerMetadata` into a frozen TriggerSpec.
 * Every problem names its key; an unknown key suggests the closest known one (typos).
 * KEDA resolves `<key>FromEnv` keys to the container's env value and keeps the key name,
 * so `functionFromEnv` etc. are read as `function` when `function` itself is absent.
 * `function` and `revision` exclude each other.
 */
export function parseTriggerMetadata(ref: ScaledObjectRefLike): TriggerSpec {
  const problems: string[] = [];
  const values = new Map<string, string>();
  for (const [rawKey, value] of Object.entries(ref.scalerMetadata)) {
    if ((KEDA_METADATA_KEYS as readonly string[]).includes(rawKey)) continue;
    if ((METADATA_KEYS as readonly string[]).includes(rawKey)) {
      values.set(rawKey, value);
      continue;
    }
    const base = rawKey.endsWith('FromEnv') ? rawKey.slice(0, -'FromEnv'.length) : undefined;
    if (base !== undefined && (METADATA_KEYS as readonly string[]).includes(base)) {
      if (!(base in ref.scalerMetadata)) values.set(base, value);
      continue;
    }
    problems.push(unknownKeyMessage(rawKey));
  }

  const { namespace, name } = readTarget(values, ref.namespace, problems);

  const metricRaw = values.get('metric')?.trim();
  let metric: MetricKind = DEFAULT_METRIC;
  if (metricRaw !== undefined && metricRaw !== '') {
    if ((METRICS as readonly string[]).includes(metricRaw)) metric = metricRaw as MetricKind;
    else problems.push(`"metric" must be one of ${METRICS.join(', ')}, got "${metricRaw}"`);
  }

  const targetValue = readNumber(values, 'targetValue', DEFAULT_TARGET_VALUE, problems, (n) =>
    n > 0 ? undefined : 'must be greater than 0',
  );
  const activationThreshold = readNumber(values, 'activationThreshold', DEFAULT_ACTIVATION_THRESHOLD, problems, (n) =>
    n >= 0 ? undefined : 'must be 0 or more',
  );

  if (problems.length > 0) throw new MetadataError(problems);
  return Object.freeze({
    namespace,
    name,
    key: functionKey({ namespace, name }),
    metric,
    targetValue,
    activationThreshold,
    metricName: metricNameFor(metric, namespace, name),
  });
}

/**
 * The trigger's target from `function` or `revision` (exactly one): `namespace/name`, or `name`
 * in the ScaledObject's namespace. Both give the same key: a revision is counted by the gateway
 * under `namespace/<revision>`.
 */
function readTarget(
  values: Map<string, string>,
  defaultNamespace: string,
  problems: string[],
): { namespace: string; name: string } {
  const given = TARGET_KEYS.flatMap((key) => {
    const raw = values.get(key)?.trim();
    return raw === undefined || raw === '' ? [] : [{ key, raw }];
  });
  const [target] = given;
  if (target === undefined || given.length > 1) {
    problems.push(
      target === undefined
        ? 'exactly one of "function" or "revision" is required, got neither: "namespace/name" or "name" (ScaledObject\'s namespace); "revision" names a Knative revision'
        : `exactly one of "function" or "revision" is required, got both ("${given[0]?.raw}" and "${given[1]?.raw}")`,
    );
    return { namespace: defaultNamespace, name: '' };
  }
  const { key, raw } = target;
  const parts = raw.split('/');
  if (parts.length > 2) {
    problems.push(`"${key}" must be "namespace/name" or "name", got "${raw}"`);
    return { namespace: defaultNamespace, name: '' };
  }
  const namespace = parts.length === 2 ? (parts[0] ?? '') : defaultNamespace;
  const name = parts.length === 2 ? (parts[1] ?? '') : raw;
  if (!DNS_LABEL.test(namespace) || namespace.length > 63) {
    problems.push(`"${key}" has an invalid namespace "${namespace}" (from "${raw}")`);
  }
  if (!DNS_SUBDOMAIN.test(name) || name.length > 253) {
    problems.push(`"${key}" has an invalid name "${name}" (from "${raw}")`);
  }
  return { namespace, name };
}

/** `afterlife-<metric>-<namespace>-<name>`, lower-case, only [a-z0-9-] (a valid external metric name). */
export function metricNameFor(metric: MetricKind, namespace: string, name: string): string {
  return `afterlife-${metric}-${namespace}-${name}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/-$/, '');
}

function readNumber(
  values: Map<string, string>,
  key: string,
  fallback: number,
  problems: string[],
  check: (n: number) => string | undefined,
): number {
  const raw = values.get(key)?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) {
    problems.push(`"${key}" must be a number, got "${raw}"`);
    return fallback;
  }
  const why = check(value);
  if (why !== undefined) {
    problems.push(`"${key}" ${why}, got ${raw}`);
    return fallback;
  }
  return value;
}

function unknownKeyMessage(key: string): string {
  const suggestion = closestKey(key);
  const known = `known keys: ${METADATA_KEYS.join(', ')}`;
  return suggestion === undefined
    ? `unknown key "${key}" (${known})`
    : `unknown key "${key}"; did you mean "${suggestion}"? (${known})`;
}

/** The known key nearest to `key`, if it is plausibly a typo. */
export function closestKey(key: string): string | undefined {
  return closestMatch(key, KNOWN);
}
