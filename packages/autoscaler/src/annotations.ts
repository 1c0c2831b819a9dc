import { closestMatch } from '@afterlife/core';
import type { ScalingDefaults } from './config.ts';

/**
 * The scaling settings of one revision, read from its PodAutoscaler's annotations (Knative
 * copies the revision template's annotations to the Revision and on to the PA).
 */

/** What the scaler reports per revision; `concurrency` = pending + in flight. */
export const METRICS = ['concurrency', 'pending', 'rate'] as const;
export type ScalingMetric = (typeof METRICS)[number];

const KNATIVE = 'autoscaling.knative.dev/';
const AFTERLIFE = 'afterlife.dev/';

/** Knative's keys this autoscaler honours, with the camelCase aliases Knative still accepts. */
export const ANNOTATION_MIN_SCALE = `${KNATIVE}min-scale`;
export const ANNOTATION_MAX_SCALE = `${KNATIVE}max-scale`;
export const ANNOTATION_INITIAL_SCALE = `${KNATIVE}initial-scale`;
export const ANNOTATION_TARGET = `${KNATIVE}target`;
export const ANNOTATION_METRIC = `${KNATIVE}metric`;
/** Afterlife's own keys: KEDA settings Knative has no word for. */
export const ANNOTATION_COOLDOWN = `${AFTERLIFE}cooldown-seconds`;
export const ANNOTATION_POLLING_INTERVAL = `${AFTERLIFE}polling-interval-seconds`;
/** Held + in-flight events below which a revision at zero stays at zero (the scaler's `activationThreshold`). */
export const ANNOTATION_ACTIVATION_THRESHOLD = `${AFTERLIFE}activation-threshold`;

const ALIASES: Readonly<Record<string, readonly string[]>> = {
  [ANNOTATION_MIN_SCALE]: [ANNOTATION_MIN_SCALE, `${KNATIVE}minScale`],
  [ANNOTATION_MAX_SCALE]: [ANNOTATION_MAX_SCALE, `${KNATIVE}maxScale`],
  [ANNOTATION_INITIAL_SCALE]: [ANNOTATION_INITIAL_SCALE, `${KNATIVE}initialScale`],
};

/**
 * Every `autoscaling.knative.dev/` key Knative defines (serving pkg/apis/autoscaling/register.go);
 * those not honoured above are accepted and ignored, anything else is a typo.
 */
const KNATIVE_KEYS: readonly string[] = [
  'class',
  'metric',
  'target',
  'min-scale',
  'minScale',
  'max-scale',
  'maxScale',
  'initial-scale',
  'initialScale',
  'scale-down-delay',
  'scaleDownDelay',
  'scale-to-zero-pod-retention-period',
  'scaleToZeroPodRetentionPeriod',
  'metric-aggregation-algorithm',
  'metricAggregationAlgorithm',
  'window',
  'target-utilization-percentage',
  'targetUtilizationPercentage',
  'target-burst-capacity',
  'targetBurstCapacity',
  'panic-window-percentage',
  'panicWindowPercentage',
  'panic-threshold-percentage',
  'panicThresholdPercentage',
  'activation-scale',
  // knative-extensions/autoscaler-keda's key; written by the Afterlife webhook's other route.
  'scaled-object-override',
].map((key) => `${KNATIVE}${key}`);
/** `afterlife.dev/` annotation keys that may sit on a revision (the autoscaler's and the webhook's). */
const AFTERLIFE_KEYS: readonly string[] = [
  ANNOTATION_COOLDOWN,
  ANNOTATION_POLLING_INTERVAL,
  ANNOTATION_ACTIVATION_THRESHOLD,
  `${AFTERLIFE}target-value`,
];

/** A metric name in `autoscaling.knative.dev/metric`; Knative's `rps` means our `rate`. */
const METRIC_NAMES: Readonly<Record<string, ScalingMetric>> = {
  concurrency: 'concurrency',
  pending: 'pending',
  rate: 'rate',
  rps: 'rate',
};

export interface RevisionScaling {
  /** KEDA `minReplicaCount` once the revision is initialized (0 when the revision receives no traffic). */
  readonly minScale: number;
  readonly maxScale: number;
  /** Ready replicas the revision needs once before it counts as initialized (Knative's initial scale). */
  readonly initialScale: number;
  readonly target: number;
  readonly metric: ScalingMetric;
  readonly cooldownSeconds: number;
  readonly pollingIntervalSeconds: number;
  /** Trigger `activationThreshold` (0 = any held event wakes the revision). */
  readonly activationThreshold: number;
}

export type ScalingResult =
  | { readonly ok: true; readonly scaling: RevisionScaling }
  | { readonly ok: false; readonly problems: readonly string[] };

export interface ScalingInput {
  readonly annotations: Readonly<Record<string, string>>;
  /** PA `spec.reachability`: an unreachable revision (no traffic routed to it) ignores min-scale, as in Knative. */
  readonly reachability?: string;
}

/** Reads and checks every scaling annotation; all problems are reported at once, each naming its key. */
export function parseScaling(input: ScalingInput, defaults: ScalingDefaults): ScalingResult {
  const { annotations } = input;
  const problems: string[] = [];
  for (const key of Object.keys(annotations)) {
    const known = key.startsWith(KNATIVE) ? KNATIVE_KEYS : key.startsWith(AFTERLIFE) ? AFTERLIFE_KEYS : undefined;
    if (known === undefined || known.includes(key)) continue;
    const suggestion = closestMatch(key, known);
    problems.push(
      suggestion === undefined
        ? `annotation ${key} is not a known scaling setting`
        : `annotation ${key} is not a known scaling setting; did you mean ${suggestion}?`,
    );
  }
  const value = (key: string): [string, string] | undefined => {
    for (const alias of ALIASES[key] ?? [key]) {
      const raw = annotations[alias]?.trim();
      // Knative writes `metric: ""` on every PA of a class it does not know: empty means unset.
      if (raw !== undefined && raw !== '') return [alias, raw];
    }
    return undefined;
  };
  const wholeNumber = (key: string, fallback: number, min: number): number => {
    const found = value(key);
    if (found === undefined) return fallback;
    const [alias, raw] = found;
    if (!/^\d+$/.test(raw) || Number(raw) < min) {
      problems.push(`annotation ${alias} must be a whole number >= ${min}, got "${raw}"`);
      return fallback;
    }
    return Number(raw);
  };

  const reachable = input.reachability !== 'Unreachable';
  const configuredMin = wholeNumber(ANNOTATION_MIN_SCALE, 0, 0);
  // max-scale 0 means "unbounded" in Knative; KEDA needs a bound, so the default applies.
  const maxScale = wholeNumber(ANNOTATION_MAX_SCALE, 0, 0) || defaults.maxScale;
  const initialScale = wholeNumber(ANNOTATION_INITIAL_SCALE, 1, 0);
  if (configuredMin > maxScale) {
    const maxKey = value(ANNOTATION_MAX_SCALE)?.[0] ?? `the default max scale (${defaults.maxScale})`;
    problems.push(`${value(ANNOTATION_MIN_SCALE)?.[0]} (${configuredMin}) must not exceed ${maxKey} (${maxScale})`);
  }

  let target = defaults.target;
  const rawTarget = value(ANNOTATION_TARGET);
  if (rawTarget !== undefined) {
    const parsed = Number(rawTarget[1]);
    if (rawTarget[1] === '' || !Number.isFinite(parsed) || parsed < 0.01) {
      problems.push(`annotation ${ANNOTATION_TARGET} must be a number >= 0.01, got "${rawTarget[1]}"`);
    } else target = parsed;
  }

  let metric = defaults.metric;
  const rawMetric = value(ANNOTATION_METRIC);
  if (rawMetric !== undefined) {
    const known = METRIC_NAMES[rawMetric[1]];
    if (known === undefined) {
      problems.push(
        `annotation ${ANNOTATION_METRIC} must be one of ${Object.keys(METRIC_NAMES).join(', ')}, got "${rawMetric[1]}"`,
      );
    } else metric = known;
  }

  const cooldownSeconds = wholeNumber(ANNOTATION_COOLDOWN, defaults.cooldownSeconds, 0);
  const pollingIntervalSeconds = wholeNumber(ANNOTATION_POLLING_INTERVAL, defaults.pollingIntervalSeconds, 1);
  const activationThreshold = wholeNumber(ANNOTATION_ACTIVATION_THRESHOLD, 0, 0);

  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    scaling: {
      minScale: reachable ? configuredMin : 0,
      maxScale,
      initialScale: Math.min(initialScale, maxScale),
      target,
      metric,
      cooldownSeconds,
      pollingIntervalSeconds,
      activationThreshold,
    },
  };
}
