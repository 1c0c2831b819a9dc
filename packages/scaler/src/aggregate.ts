import { type CountsSnapshot, type FunctionCounts, functionKey } from '@afterlife/core';
import type { MetricKind, TriggerSpec } from './metadata.ts';

/** A function's counts summed over every gateway whose data is fresh. */
export interface FunctionTotals {
  readonly pending: number;
  readonly inFlight: number;
  readonly ratePerSecond: number;
  /** How many fresh gateways reported this function. */
  readonly gateways: number;
}

export const ZERO_TOTALS: FunctionTotals = Object.freeze({ pending: 0, inFlight: 0, ratePerSecond: 0, gateways: 0 });

/** What happened to one snapshot offered to the aggregator. */
export type AcceptResult = 'accepted' | 'refreshed' | 'reordered';

export interface GatewayStatus {
  /** Where the data came from (the admin base URL). */
  readonly source: string;
  /** The gateway id from its last snapshot. */
  readonly gateway: string;
  readonly sequence: number;
  readonly ageMs: number;
  readonly fresh: boolean;
}

interface SourceState {
  gateway: string;
  sequence: number;
  at: number;
  receivedAt: number;
  functions: Map<string, FunctionCounts>;
}

export type UpdateListener = (changed: ReadonlySet<string>, source: string) => void;

/**
 * Keeps the latest counts from each gateway (keyed by source, its admin URL) and sums them per
 * function over the gateways whose data is fresher than `staleAfterMs` (by local receive time,
 * so gateway clock skew does not matter). A snapshot older than the last one from the same gateway
 * (lower `sequence`, not newer `at`) is dropped; a lower sequence with a newer `at` is a restarted
 * gateway and is accepted.
 */
export class CountsAggregator {
  readonly staleAfterMs: number;
  readonly #now: () => number;
  readonly #sources = new Map<string, SourceState>();
  readonly #listeners = new Set<UpdateListener>();

  constructor(options: { staleAfterMs: number; now?: () => number }) {
    this.staleAfterMs = options.staleAfterMs;
    this.#now = options.now ?? Date.now;
  }

  accept(source: string, snapshot: CountsSnapshot): AcceptResult {
    const now = this.#now();
    const at = Date.parse(snapshot.at);
    const previous = this.#sources.get(source);
    if (previous !== undefined && previous.gateway === snapshot.gateway) {
      if (snapshot.sequence < previous.sequence && !(at > previous.at)) return 'reordered';
      if (snapshot.sequence === previous.sequence && at <= previous.at) {
        previous.receivedAt = now;
        return 'refreshed';
      }
    }
    const functions = new Map<string, FunctionCounts>();
    for (const fn of snapshot.functions) functions.set(functionKey(fn), fn);
    const wasFresh = previous !== undefined && now - previous.receivedAt <= this.staleAfterMs;
    const changed = diffKeys(wasFresh ? previous.functions : new Map(), functions);
    this.#sources.set(source, {
      gateway: snapshot.gateway,
      sequence: snapshot.sequence,
      at,
      receivedAt: now,
      functions,
    });
    if (changed.size > 0) this.#emit(changed, source);
    return 'accepted';
  }

  /** Forgets a gateway (it left the EndpointSlice or the static list). */
  remove(source: string): void {
    const previous = this.#sources.get(source);
    if (previous === undefined) return;
    this.#sources.delete(source);
    if (previous.functions.size > 0) this.#emit(new Set(previous.functions.keys()), source);
  }

  totals(key: string): FunctionTotals {
    const now = this.#now();
    let pending = 0;
    let inFlight = 0;
    let ratePerSecond = 0;
    let gateways = 0;
    for (const state of this.#sources.values()) {
      if (now - state.receivedAt > this.staleAfterMs) continue;
      const fn = state.functions.get(key);
      if (fn === undefined) continue;
      pending += fn.pending;
      inFlight += fn.inFlight;
      ratePerSecond += fn.ratePerSecond;
      gateways++;
    }
    return gateways === 0 ? ZERO_TOTALS : { pending, inFlight, ratePerSecond, gateways };
  }

  /** Every function key any fresh gateway reports. */
  functionKeys(): Set<string> {
    const now = this.#now();
    const keys = new Set<string>();
    for (const state of this.#sources.values()) {
      if (now - state.receivedAt > this.staleAfterMs) continue;
      for (const key of state.functions.keys()) keys.add(key);
    }
    return keys;
  }

  gateways(): GatewayStatus[] {
    const now = this.#now();
    return [...this.#sources].map(([source, state]) => ({
      source,
      gateway: state.gateway,
      sequence: state.sequence,
      ageMs: now - state.receivedAt,
      fresh: now - state.receivedAt <= this.staleAfterMs,
    }));
  }

  freshGatewayCount(): number {
    const now = this.#now();
    let fresh = 0;
    for (const state of this.#sources.values()) if (now - state.receivedAt <= this.staleAfterMs) fresh++;
    return fresh;
  }

  /** Called synchronously with the function keys whose counts changed; returns an unsubscribe function. */
  onUpdate(listener: UpdateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(changed: ReadonlySet<string>, source: string): void {
    for (const listener of this.#listeners) listener(changed, source);
  }
}

function diffKeys(
  before: ReadonlyMap<string, FunctionCounts>,
  after: ReadonlyMap<string, FunctionCounts>,
): Set<string> {
  const changed = new Set<string>();
  for (const [key, fn] of after) {
    const old = before.get(key);
    if (
      old === undefined ||
      old.pending !== fn.pending ||
      old.inFlight !== fn.inFlight ||
      old.ratePerSecond !== fn.ratePerSecond
    ) {
      changed.add(key);
    }
  }
  for (const key of before.keys()) if (!after.has(key)) changed.add(key);
  return changed;
}

/** The metric value a trigger asks for, from a function's totals. */
export function metricValue(metric: MetricKind, totals: FunctionTotals): number {
  switch (metric) {
    case 'pending':
      return totals.pending;
    case 'concurrency':
      return totals.pending + totals.inFlight;
    case 'rate':
      return totals.ratePerSecond;
  }
}

/**
 * Active = the metric is above the trigger's activation threshold (KEDA does not apply
 * `activationThreshold` to external scalers, so the scaler does, here).
 */
export function isActive(spec: TriggerSpec, totals: FunctionTotals): boolean {
  return metricValue(spec.metric, totals) > spec.activationThreshold;
}
