import { CoreError, errorMessage } from './errors.ts';

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
    throw new CoreError('COUNTS_INVALID', `invalid counts snapshot: ${why}`);
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

/** The counts of one function in a snapshot, if the gateway knows it. */
export function countsOf(
  snapshot: CountsSnapshot,
  ref: { readonly namespace: string; readonly name: string },
): FunctionCounts | undefined {
  return snapshot.functions.find((fn) => fn.namespace === ref.namespace && fn.name === ref.name);
}

/**
 * The one client of a gateway's `GET /v1/counts`: fetches and validates a snapshot from an admin
 * base URL (e.g. `http://10.0.0.5:9090`). Rejects with `COUNTS_UNAVAILABLE` (unreachable, timed
 * out, not 200) or `COUNTS_INVALID` (the body breaks the contract).
 */
export async function fetchCounts(
  adminUrl: string,
  options: { readonly signal?: AbortSignal; readonly timeoutMs?: number } = {},
): Promise<CountsSnapshot> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 2000);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
  const url = new URL('/v1/counts', adminUrl);
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, { signal, headers: { accept: 'application/json' } });
    text = await response.text();
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    const why = cause === undefined ? errorMessage(error) : `${errorMessage(error)} (${errorMessage(cause)})`;
    throw new CoreError('COUNTS_UNAVAILABLE', `GET ${url.href} failed: ${why}`, { cause: error });
  }
  if (!response.ok) throw new CoreError('COUNTS_UNAVAILABLE', `GET ${url.href} answered ${response.status}`);
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new CoreError('COUNTS_INVALID', `invalid counts snapshot: not JSON (${errorMessage(error)})`, {
      cause: error,
    });
  }
  return parseCountsSnapshot(document);
}
