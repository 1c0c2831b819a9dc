import { errorMessage, functionKey, type Logger } from '@afterlife/core';
import type { Endpoint, FunctionRef } from './endpoints.ts';
import { GatewayError, TransportError } from './errors.ts';
import type { AcceptedEvent } from './held-queue.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { Reply } from './transport.ts';

/** How a delivery attempt that got no reply ended. */
export interface AttemptEnd {
  /** The gateway is shutting down (deliveries were aborted). */
  readonly shuttingDown: boolean;
  /** The delivery timeout aborted it. */
  readonly timedOut: boolean;
  /** When it ended (epoch ms). */
  readonly at: number;
}

/**
 * Whether a failed attempt may be tried again: nothing reached the function (connection refused,
 * or a reset of a reused keep-alive socket before any reply), the gateway is not shutting down
 * and the event's cold-start window is still open.
 */
export function isRetryable(error: unknown, event: AcceptedEvent, end: AttemptEnd): boolean {
  return error instanceof TransportError && error.safeToRetry && !end.shuttingDown && end.at < event.deadline;
}

/** What the sender of an event whose delivery to `key` failed with `error` (and is not retried) gets. */
export function deliveryFailure(
  key: string,
  error: unknown,
  end: Pick<AttemptEnd, 'shuttingDown' | 'timedOut'>,
  deliveryTimeoutMs: number,
): GatewayError {
  if (end.shuttingDown) {
    return new GatewayError('SHUTTING_DOWN', 'the gateway shut down during delivery', { cause: error });
  }
  if (end.timedOut) {
    return new GatewayError('DELIVERY_TIMEOUT', `${key} did not answer within ${deliveryTimeoutMs} ms`, {
      cause: error,
    });
  }
  return new GatewayError('DELIVERY_FAILED', `delivery to ${key} failed: ${errorMessage(error)}`, { cause: error });
}

/**
 * The gateway's side of one cold start of a function (epoch ms, this gateway's clock): served at
 * `/v1/cold-starts`, read by the conformance suite's and the demo's cold-start trace and by
 * `afterlife status`.
 */
export interface ColdStartRecord {
  readonly namespace: string;
  readonly name: string;
  /** The first event was held with no ready endpoint. */
  readonly heldAt: number;
  /** The endpoint the first held event went to was listed (not ready yet, when `via` is `probe`). */
  readonly endpointSeenAt: number | null;
  /** Its queue-proxy answered the activator probe (`via` `probe` only). */
  readonly endpointAnsweredAt: number | null;
  /** `probe`: delivered once queue-proxy answered, before kubelet marked the pod Ready; `ready`: the EndpointSlice said ready. */
  readonly via: 'probe' | 'ready';
  readonly endpoint: string;
  /** The first held event's delivery started. */
  readonly deliveredAt: number;
  /** Its reply (any status) arrived; null while in flight or when it got none. */
  readonly repliedAt: number | null;
  readonly status: number | null;
  /** heldAt → deliveredAt: what the `afterlife_gateway_cold_start_seconds` histogram observes. */
  readonly durationMs: number;
}

/** Metric children bound to one function's labels: plain numbers, read at scrape time (see series-metrics.ts). */
interface BoundMetrics {
  readonly accepted: { inc(value?: number): void };
  readonly delivered: { inc(value?: number): void };
  readonly hold: { observe(value: number): void };
  readonly delivery: { observe(value: number): void };
}

export interface DeliveryOutcomeOptions {
  readonly ref: FunctionRef;
  readonly deliveryTimeoutMs: number;
  readonly metrics?: GatewayMetrics | undefined;
  readonly logger?: Logger | undefined;
}

/**
 * How the events of one function end: answers each sender with the function's reply or a
 * `GatewayError` (mapping transport errors, deciding retries), keeps the in-flight, delivered and
 * failed counts and the metrics, and measures and logs the first delivery after a cold start.
 */
export class DeliveryOutcome {
  readonly #key: string;
  readonly #labels: { namespace: string; function: string };
  readonly #deliveryTimeoutMs: number;
  readonly #metrics: GatewayMetrics | undefined;
  readonly #bound: BoundMetrics | undefined;
  readonly #logger: Logger | undefined;
  #inFlight = 0;
  #delivered = 0;
  #failed = 0;
  /** When the first event was held with no ready endpoint (cold start begins). */
  #coldSince: number | undefined;
  /** The last cold start, and the event that ended it (until its reply). */
  #lastColdStart: ColdStartRecord | undefined;
  #coldEvent: AcceptedEvent | undefined;

  constructor(options: DeliveryOutcomeOptions) {
    this.#key = functionKey(options.ref);
    this.#labels = { namespace: options.ref.namespace, function: options.ref.name };
    this.#deliveryTimeoutMs = options.deliveryTimeoutMs;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    const metrics = options.metrics;
    if (metrics !== undefined) {
      const labels = this.#labels;
      this.#bound = {
        accepted: metrics.accepted.child(labels),
        delivered: metrics.delivered.child(labels),
        hold: metrics.hold.labels(labels),
        delivery: metrics.delivery.labels(labels),
      };
    }
  }

  /** Being delivered now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Answered by the function with a status below 500. */
  get delivered(): number {
    return this.#delivered;
  }

  /** Accepted but not delivered successfully (function error, timeout, sender gone, shutdown …). */
  get failed(): number {
    return this.#failed;
  }

  /** A cold start is being timed. */
  get coldStarting(): boolean {
    return this.#coldSince !== undefined;
  }

  accepted(count: number): void {
    this.#bound?.accepted.inc(count);
  }

  /** An event accepted at `since` is held with no ready endpoint: a cold start begins (unless one already did). */
  coldStartFrom(since: number): void {
    this.#coldSince ??= since;
  }

  /** Nothing waits any more: no cold start to time. */
  coldStartOver(): void {
    this.#coldSince = undefined;
  }

  /** The last cold start this gateway saw for the function, if any. */
  get lastColdStart(): ColdStartRecord | undefined {
    return this.#lastColdStart;
  }

  /** A delivery of `event` to `endpoint` (known by `endpointKey`) starts at `now`. */
  started(event: AcceptedEvent, endpointKey: string, now: number, endpoint?: Endpoint): void {
    event.attempts += 1;
    this.#inFlight += 1;
    if (event.held) this.#bound?.hold.observe((now - event.acceptedAt) / 1000);
    event.held = false;
    if (this.#coldSince !== undefined) {
      this.#metrics?.coldStart.observe(this.#labels, (now - this.#coldSince) / 1000);
      this.#logger?.info(
        { function: this.#key, coldStartMs: now - this.#coldSince, endpoint: endpointKey },
        'first delivery after cold start',
      );
      const warm = endpoint?.warm;
      this.#lastColdStart = {
        namespace: this.#labels.namespace,
        name: this.#labels.function,
        heldAt: this.#coldSince,
        endpointSeenAt: warm?.seenAt ?? endpoint?.listedAt ?? null,
        endpointAnsweredAt: warm?.answeredAt ?? null,
        via: warm === undefined ? 'ready' : 'probe',
        endpoint: endpointKey,
        deliveredAt: now,
        repliedAt: null,
        status: null,
        durationMs: now - this.#coldSince,
      };
      this.#coldEvent = event;
      this.#coldSince = undefined;
    }
  }

  /** The function answered the delivery started at `startedAt`: the sender gets the reply as is (≥ 500 counts failed). */
  replied(event: AcceptedEvent, reply: Reply, startedAt: number): void {
    this.#inFlight -= 1;
    const at = Date.now();
    this.#bound?.delivery.observe((at - startedAt) / 1000);
    if (event === this.#coldEvent && this.#lastColdStart !== undefined) {
      this.#lastColdStart = { ...this.#lastColdStart, repliedAt: at, status: reply.status };
      this.#coldEvent = undefined;
    }
    event.done = true;
    event.cleanup?.();
    if (reply.status < 500) {
      this.#delivered += 1;
      this.#bound?.delivered.inc();
    } else {
      this.#failed += 1;
      this.#metrics?.failed.inc({ ...this.#labels, reason: 'function_error' });
    }
    event.resolve(reply);
  }

  /**
   * The delivery to `endpointKey` got no reply. Returns true when the event is to be held again
   * and retried (see `isRetryable`); otherwise answers its sender with the mapped error.
   */
  unanswered(event: AcceptedEvent, endpointKey: string, error: unknown, end: AttemptEnd): boolean {
    this.#inFlight -= 1;
    const fields = { function: this.#key, endpoint: endpointKey, err: errorMessage(error), eventId: event.message.id };
    if (isRetryable(error, event, end)) {
      this.#logger?.warn(
        fields,
        'the event did not reach the endpoint (connection refused or a stale keep-alive connection); retrying it',
      );
      return true;
    }
    const failure = deliveryFailure(this.#key, error, end, this.#deliveryTimeoutMs);
    this.#logger?.warn(fields, 'delivery failed');
    this.fail(event, failure);
    return false;
  }

  /** Answers `event` with `error` and counts it failed (once: a settled event is left alone). */
  fail(event: AcceptedEvent, error: GatewayError): void {
    if (event.done) return;
    if (event === this.#coldEvent) this.#coldEvent = undefined;
    event.done = true;
    event.cleanup?.();
    this.#failed += 1;
    this.#metrics?.failed.inc({ ...this.#labels, reason: error.code.toLowerCase() });
    if (event.held) this.#bound?.hold.observe((Date.now() - event.acceptedAt) / 1000);
    event.reject(error);
  }
}
