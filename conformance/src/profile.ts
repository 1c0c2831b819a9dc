import { UsageError } from '@afterlife/core';

/** How hard and how long the scenarios push. `short` fits CI; `full` is for real clusters. */
export interface Profile {
  readonly name: 'short' | 'full';
  /** Scale-up load: events per second, for how long, at most how many outstanding. */
  readonly load: { readonly ratePerSecond: number; readonly durationSeconds: number; readonly concurrency: number };
  /** Simulated work per event in the function (ms, the echo function's `ce-workms`). */
  readonly workMs: number;
  /** Ready replicas the load must reach. */
  readonly expectedReplicas: number;
  /** KEDA cooldownPeriod the suite gives the ScaledObjects it creates (local). */
  readonly cooldownSeconds: number;
  /** Extra time allowed past cooldown + HPA scale-down window before scale to zero fails. */
  readonly scaleToZeroMarginSeconds: number;
  /** Events sent (at once, from zero) by the no-loss scenario. */
  readonly lossEvents: number;
  readonly lossConcurrency: number;
  /** Activation scenario: threshold set on its ScaledObject, events/s sent below it, for how long. */
  readonly activationThreshold: number;
  readonly activationRatePerSecond: number;
  readonly activationObserveSeconds: number;
  /** Bound for a cold start (first event answered, Deployment ready). */
  readonly coldStartTimeoutSeconds: number;
}

export const PROFILES: Readonly<Record<Profile['name'], Profile>> = {
  short: {
    name: 'short',
    load: { ratePerSecond: 40, durationSeconds: 12, concurrency: 60 },
    workMs: 250,
    expectedReplicas: 2,
    cooldownSeconds: 5,
    scaleToZeroMarginSeconds: 40,
    lossEvents: 60,
    lossConcurrency: 30,
    activationThreshold: 50,
    activationRatePerSecond: 2,
    activationObserveSeconds: 8,
    coldStartTimeoutSeconds: 60,
  },
  full: {
    name: 'full',
    load: { ratePerSecond: 60, durationSeconds: 30, concurrency: 100 },
    workMs: 500,
    expectedReplicas: 3,
    cooldownSeconds: 15,
    scaleToZeroMarginSeconds: 90,
    lossEvents: 500,
    lossConcurrency: 100,
    activationThreshold: 100,
    activationRatePerSecond: 2,
    activationObserveSeconds: 30,
    coldStartTimeoutSeconds: 120,
  },
};

/** A profile with command-line overrides applied (undefined keeps the profile's value). */
export function withLoad(
  profile: Profile,
  overrides: {
    ratePerSecond?: number | undefined;
    durationSeconds?: number | undefined;
    concurrency?: number | undefined;
    expectedReplicas?: number | undefined;
  },
): Profile {
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined && (!Number.isFinite(value) || value <= 0)) {
      throw new UsageError(`--${key} must be a positive number, got ${value}`);
    }
  }
  return {
    ...profile,
    load: {
      ratePerSecond: overrides.ratePerSecond ?? profile.load.ratePerSecond,
      durationSeconds: overrides.durationSeconds ?? profile.load.durationSeconds,
      concurrency: overrides.concurrency ?? profile.load.concurrency,
    },
    expectedReplicas: overrides.expectedReplicas ?? profile.expectedReplicas,
  };
}
