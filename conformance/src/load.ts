import { randomUUID } from 'node:crypto';

/** One event the load generator sent and what became of it. */
export interface EventOutcome {
  readonly id: string;
  readonly phase: string;
  /** ms since the run started. */
  readonly sentAt: number;
  readonly latencyMs: number;
  readonly status: number;
  /** The id the function echoed back (`ce-echoid`), '' when none. */
  readonly echoedId: string;
  /** The `Retry-After` of a refusal (503 beyond the gateway's pending limit, 504), when there was one. */
  readonly retryAfter?: string;
  readonly error?: string;
  /** Sends of this event (same `ce-id`) by a retrying sender; absent for a single send. */
  readonly attempts?: number;
  /** Attempts that failed before the last (ms since the run started, and why). */
  readonly failures?: readonly { readonly at: number; readonly status: number; readonly error?: string }[];
}

/** Answered 2xx: the function got it and replied. */
export const isDelivered = (e: EventOutcome): boolean => e.status >= 200 && e.status < 300;
/** Refused with 503 + Retry-After: the gateway said "not now, retry" instead of taking it (a sender can retry it). */
export const isRefused = (e: EventOutcome): boolean => e.status === 503 && e.retryAfter !== undefined;

export interface LoadTarget {
  /** `http://127.0.0.1:PORT/ns/<namespace>/fn/<name>` on the gateway. */
  readonly url: string;
  /** Simulated work per event in the function (ms). */
  readonly workMs: number;
}

/** Sends one binary-mode CloudEvent and waits for the function's reply (no ack before delivery). */
export async function sendEvent(
  target: LoadTarget,
  phase: string,
  clock: () => number,
  id: string = randomUUID(),
): Promise<EventOutcome> {
  const sentAt = clock();
  const started = performance.now();
  try {
    const response = await fetch(target.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'ce-specversion': '1.0',
        'ce-id': id,
        'ce-source': '/afterlife/load',
        'ce-type': 'dev.afterlife.load.ping',
        'ce-workms': String(target.workMs),
      },
      body: JSON.stringify({ phase, at: new Date().toISOString() }),
      signal: AbortSignal.timeout(120_000),
    });
    await response.arrayBuffer();
    const retryAfter = response.headers.get('retry-after');
    return {
      id,
      phase,
      sentAt,
      latencyMs: performance.now() - started,
      status: response.status,
      echoedId: response.headers.get('ce-echoid') ?? '',
      ...(retryAfter === null ? {} : { retryAfter }),
    };
  } catch (error) {
    return {
      id,
      phase,
      sentAt,
      latencyMs: performance.now() - started,
      status: 0,
      echoedId: '',
      error: error instanceof Error ? error.message : String(error),
    };
  }
}

/** Answers a sender retries: no connection or reset (0), and the gateway's or a proxy's "not now". */
export const isRetryable = (e: EventOutcome): boolean =>
  e.status === 0 || e.status === 502 || e.status === 503 || e.status === 504;

/**
 * What a CloudEvents sender with retries does (Knative Eventing's delivery spec: exponential
 * backoff): sends the event, and again with the same `ce-id` on a retryable answer — 100 ms
 * doubling to 2 s, honouring Retry-After — until acknowledged or `deadlineMs` after the first
 * send. The outcome is the last attempt's, with the attempts and the failures before it.
 */
export async function sendWithRetry(
  target: LoadTarget,
  phase: string,
  clock: () => number,
  deadlineMs = 60_000,
): Promise<EventOutcome> {
  const id = randomUUID();
  const first = clock();
  const failures: { at: number; status: number; error?: string }[] = [];
  let backoffMs = 100;
  for (let attempt = 1; ; attempt++) {
    const outcome = await sendEvent(target, phase, clock, id);
    if (!isRetryable(outcome) || clock() - first + backoffMs > deadlineMs) {
      return { ...outcome, sentAt: first, latencyMs: clock() - first, attempts: attempt, failures };
    }
    failures.push({ at: outcome.sentAt, status: outcome.status, ...(outcome.error ? { error: outcome.error } : {}) });
    const retryAfterMs = Number(outcome.retryAfter ?? Number.NaN) * 1000;
    await new Promise((resolve) =>
      setTimeout(resolve, Number.isFinite(retryAfterMs) ? Math.max(retryAfterMs, backoffMs) : backoffMs),
    );
    backoffMs = Math.min(backoffMs * 2, 2000);
  }
}

/**
 * Sends `count` events at `ratePerSecond`, at most `concurrency` outstanding. Bounded by the
 * count: it always ends once every event has an outcome.
 */
export async function sendBurst(
  target: LoadTarget,
  options: { phase: string; count: number; ratePerSecond: number; concurrency: number },
  clock: () => number,
  onOutcome: (outcome: EventOutcome) => void,
): Promise<EventOutcome[]> {
  const outcomes: EventOutcome[] = [];
  const inFlight = new Set<Promise<void>>();
  const gapMs = 1000 / options.ratePerSecond;
  const started = performance.now();
  for (let index = 0; index < options.count; index++) {
    const due = started + index * gapMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    while (inFlight.size >= options.concurrency) await Promise.race(inFlight);
    const task = sendEvent(target, options.phase, clock).then((outcome) => {
      outcomes.push(outcome);
      onOutcome(outcome);
    });
    const tracked = task.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  }
  await Promise.all(inFlight);
  return outcomes;
}

/** The p-th percentile (0–100) of a list, nearest-rank; NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}
