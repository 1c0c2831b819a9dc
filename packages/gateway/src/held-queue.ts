import { GatewayError } from './errors.ts';
import type { EventMessage } from './events.ts';
import type { Reply } from './transport.ts';

/** One accepted event, from acceptance until its sender is answered (exactly once). */
export interface AcceptedEvent {
  readonly message: EventMessage;
  readonly acceptedAt: number;
  /** End of its cold-start window: held past it, it is answered 504; a retry is not tried past it. */
  readonly deadline: number;
  readonly resolve: (reply: Reply) => void;
  readonly reject: (error: GatewayError) => void;
  /** Settled or removed from the queue. */
  done: boolean;
  /** Waiting in a queue (not in flight). */
  held: boolean;
  attempts: number;
  /** Detaches the sender's abort listener. */
  cleanup: (() => void) | undefined;
  /** Aborted when the sender goes away; watched while the event is held (see `acceptForDelivery`). */
  sender?: AbortSignal | undefined;
}

/** What the queue needs from its owner. */
export interface HeldQueueHooks {
  /**
   * Answers `event` with `error` (and counts it failed) and marks it `done`; the queue has
   * already let go of it (a sender-gone event stays in the array until then, skipped once done).
   */
  fail(event: AcceptedEvent, error: GatewayError): void;
  /**
   * The queue dropped events on its own (cold-start timeout, sender gone); `changed` is false
   * when an expiry timer fired with nothing to expire.
   */
  dropped(changed: boolean): void;
}

export interface HeldQueueOptions {
  /** `namespace/name` of the function, for messages. */
  readonly key: string;
  readonly coldStartTimeoutMs: number;
}

/**
 * Why a batch of `count` events cannot be accepted for a function that already holds `pending`
 * (undefined: a function not seen yet), or undefined when it can: admission is all or nothing.
 */
export function pendingLimitError(
  key: string,
  pending: number | undefined,
  count: number,
  limit: number,
): GatewayError | undefined {
  if (pending !== undefined && pending + count > limit) {
    return new GatewayError('PENDING_LIMIT', `function ${key} already holds ${pending} events (limit ${limit})`);
  }
  if (pending === undefined && count > limit) {
    return new GatewayError('PENDING_LIMIT', `batch of ${count} exceeds the pending limit`);
  }
  return undefined;
}

/**
 * The events of one function waiting for a ready endpoint, in deadline order: new events join at
 * the back, an event whose delivery did not reach the function goes back to the front (it is the
 * oldest). Answers 504 to events still held at their deadline and 499 to those whose sender went
 * away, and releases them all on request.
 */
export class HeldQueue {
  readonly #options: HeldQueueOptions;
  readonly #hooks: HeldQueueHooks;
  /** FIFO of held events; `head` skips consumed slots without shifting the array. */
  #queue: AcceptedEvent[] = [];
  #head = 0;
  #pending = 0;
  #expiryTimer: NodeJS.Timeout | undefined;

  constructor(options: HeldQueueOptions, hooks: HeldQueueHooks) {
    this.#options = options;
    this.#hooks = hooks;
  }

  /** Events held now. */
  get pending(): number {
    return this.#pending;
  }

  /** A new accepted event (not held yet), watched for its sender going away while it is held. */
  accept(
    message: EventMessage,
    acceptedAt: number,
    resolve: (reply: Reply) => void,
    reject: (error: GatewayError) => void,
    signal: AbortSignal | undefined,
  ): AcceptedEvent {
    const event = this.acceptForDelivery(message, acceptedAt, resolve, reject, signal);
    this.#watch(event);
    return event;
  }

  /**
   * A new accepted event about to be delivered at once (the hot path): its sender is watched
   * only if the event is ever held (a retry after a refused connection) — a sender leaving
   * while its event is in flight changes nothing anyway.
   */
  acceptForDelivery(
    message: EventMessage,
    acceptedAt: number,
    resolve: (reply: Reply) => void,
    reject: (error: GatewayError) => void,
    signal: AbortSignal | undefined,
  ): AcceptedEvent {
    return {
      message,
      acceptedAt,
      deadline: acceptedAt + this.#options.coldStartTimeoutMs,
      resolve,
      reject,
      done: false,
      held: false,
      attempts: 0,
      cleanup: undefined,
      sender: signal,
    };
  }

  /** Holds `event`: at the back, or at the `front` (a retry). Returns true when pending went 0 → 1. */
  hold(event: AcceptedEvent, front: boolean): boolean {
    event.held = true;
    this.#watch(event);
    if (front) {
      this.#compact();
      this.#queue.unshift(event);
      clearTimeout(this.#expiryTimer);
      this.#expiryTimer = undefined;
    } else {
      this.#queue.push(event);
    }
    this.#pending += 1;
    this.scheduleExpiry();
    return this.#pending === 1;
  }

  /** Takes the oldest held event out (to deliver or answer it); call `scheduleExpiry` after taking. */
  take(): AcceptedEvent | undefined {
    const event = this.#shift();
    if (event !== undefined) this.#pending -= 1;
    return event;
  }

  /** Answers every held event with `error`; returns how many. */
  releaseAll(error: GatewayError): number {
    let released = 0;
    for (let event = this.take(); event !== undefined; event = this.take()) {
      released += 1;
      this.#hooks.fail(event, error);
    }
    this.scheduleExpiry();
    return released;
  }

  /** Arms the cold-start timer for the oldest held event (or stops it when none is held). */
  scheduleExpiry(): void {
    const head = this.#peek();
    if (head === undefined) {
      clearTimeout(this.#expiryTimer);
      this.#expiryTimer = undefined;
      return;
    }
    if (this.#expiryTimer !== undefined) return;
    this.#expiryTimer = setTimeout(() => this.#expire(), Math.max(0, head.deadline - Date.now()));
  }

  /** Stops the cold-start timer. */
  close(): void {
    clearTimeout(this.#expiryTimer);
  }

  #expire(): void {
    this.#expiryTimer = undefined;
    const now = Date.now();
    let changed = false;
    for (let event = this.#peek(); event !== undefined && event.deadline <= now; event = this.#peek()) {
      this.take();
      changed = true;
      this.#hooks.fail(
        event,
        new GatewayError(
          'COLD_START_TIMEOUT',
          `no ready endpoint for ${this.#options.key} within ${this.#options.coldStartTimeoutMs} ms`,
        ),
      );
    }
    this.scheduleExpiry();
    this.#hooks.dropped(changed);
  }

  /** Listens for the event's sender going away (once per event). */
  #watch(event: AcceptedEvent): void {
    const signal = event.sender;
    if (signal === undefined || event.cleanup !== undefined) return;
    const onAbort = () => this.#senderGone(event);
    signal.addEventListener('abort', onAbort, { once: true });
    event.cleanup = () => signal.removeEventListener('abort', onAbort);
  }

  #senderGone(event: AcceptedEvent): void {
    if (event.done || !event.held) return; // in flight: let the delivery finish
    this.#pending -= 1;
    this.#hooks.fail(event, new GatewayError('SENDER_GONE', 'the sender disconnected while the event was held'));
    this.scheduleExpiry();
    this.#hooks.dropped(true);
  }

  #peek(): AcceptedEvent | undefined {
    while (this.#head < this.#queue.length) {
      const event = this.#queue[this.#head];
      if (event !== undefined && !event.done) return event;
      this.#head++;
    }
    this.#compact();
    return undefined;
  }

  #shift(): AcceptedEvent | undefined {
    const event = this.#peek();
    if (event !== undefined) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) this.#compact();
    return event;
  }

  #compact(): void {
    this.#queue = this.#queue.slice(this.#head).filter((event) => !event.done);
    this.#head = 0;
  }
}
