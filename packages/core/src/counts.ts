import { AfterlifeError } from './errors.ts';

/**
 * What a gateway reports per function: the numbers the scaler turns into KEDA metrics.
 * The wire format of `GET /v1/counts` and of each `counts` event on `GET /v1/counts/stream`.
 */
export interface FunctionCounts {
  readonly namespace: string;
  readonly name: string;
  /** Events held because no endpoint is ready (or all are at their concurrency limit). */
  readonly pending: number;
  /** Events being delivered right now. */
  readonly inFlight: number;
  /** Totals since the gateway started. */
  readonly delivered: number;
  readonly failed: number;
  /** Events accepted per second over the gateway's sliding window. */
  readonly ratePerSecond: number;
}

export interface CountsSnapshot {
  /** Stable id of the gateway replica (pod name in a cluster). */
  readonly gateway: string;
  /** Increases with every snapshot a gateway produces; lets the scaler drop reordered data. */
  readonly sequence: number;
  /** When the gateway took the snapshot (ISO 8601). */
  readonly at: string;
  readonly functions: readonly FunctionCounts[];
}

/** The key a function is known by everywhere: `namespace/name`. */
export function functionKey(ref: { readonly namespace: string; readonly name: string }): string {
  return `${ref.namespace}/${ref.name}`;
}

/** Validates an untrusted counts document (from the network) into a CountsSnapshot. */
export function parseCountsSnapshot(value: unknown): CountsSnapshot {
  const fail = (why: string): never => {
    throw new AfterlifeError('COUNTS_INVALID', `invalid counts snapshot: ${why}`);
  };
  if (typeof value !== 'object' || value === null) return fail('not an object');
  const doc = value as Record<string, unknown>;
  if (typeof doc.gateway !== 'string' || doc.gateway === '') fail('"gateway" must be a non-empty string');
  if (typeof doc.sequence !== 'number' || !Number.isSafeInteger(doc.sequence)) fail('"sequence" must be an integer');
  if (typeof doc.at !== 'string' || Number.isNaN(Date.parse(doc.at))) fail('"at" must be an ISO timestamp');
  if (!Array.isArray(doc.functions)) fail('"functions" must be an array');
  const functions = (doc.functions as unknown[]).map((entry, index): FunctionCounts => {
    if (typeof entry !== 'object' || entry === null) return fail(`functions[${index}] is not an object`);
    const fn = entry as Record<string, unknown>;
    const text = (key: string): string =>
      typeof fn[key] === 'string' && fn[key] !== ''
        ? fn[key]
        : fail(`functions[${index}].${key} must be a non-empty string`);
    const count = (key: string): number =>
      typeof fn[key] === 'number' && Number.isFinite(fn[key]) && fn[key] >= 0
        ? fn[key]
        : fail(`functions[${index}].${key} must be a non-negative number`);
    return {
      namespace: text('namespace'),
      name: text('name'),
      pending: count('pending'),
      inFlight: count('inFlight'),
      delivered: count('delivered'),
      failed: count('failed'),
      ratePerSecond: count('ratePerSecond'),
    };
  });
  return { gateway: doc.gateway as string, sequence: doc.sequence as number, at: doc.at as string, functions };
}
