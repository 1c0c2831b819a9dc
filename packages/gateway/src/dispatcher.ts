import { EventEmitter } from 'node:events';
import type { CountsSnapshot, FunctionCounts, Logger } from '@afterlife/core';
import { errorMessage, functionKey } from '@afterlife/core';
import { type Endpoint, type EndpointTable, endpointKey, type FunctionRef } from './endpoints.ts';
import { GatewayError, TransportError } from './errors.ts';
import type { EventMessage } from './events.ts';
import type { GatewayMetrics } from './metrics.ts';
import { RateWindow } from './rate.ts';
import type { Reply, Transport } from './transport.ts';

export interface DispatcherOptions {
  readonly gatewayId: string;
  readonly pendingLimit: number;
  readonly coldStartTimeoutMs: number;
  /** 0 = unlimited. */
  readonly replicaConcurrency: number;
  readonly rateWindowMs: number;
  readonly deliveryTimeoutMs: number;
  readonly ejectMs: number;
}

export interface DispatcherEvents {
  /**
   * Counts changed. `urgent` when a function's pending went 0 → >0 or a new function appeared:
   * the scaler must hear about those at once (scale from zero).
   */
  counts: [urgent: boolean];
}

interface Job {
  readonly message: EventMessage;
  readonly acceptedAt: number;
  readonly deadline: number;
  readonly resolve: (reply: Reply) => void;
  readonly reject: (error: GatewayError) => void;
  /** Settled or removed from the queue. */
  done: boolean;
  held: boolean;
  attempts: number;
  cleanup: (() => void) | undefined;
}

interface EndpointState {
  readonly endpoint: Endpoint;
  readonly key: string;
  inFlight: number;
  ejectedUntil: number;
}

interface FunctionMetrics {
  readonly accepted: { inc(value?: number): void };
  readonly delivered: { inc(value?: number): void };
  readonly hold: { observe(value: number): void };
  readonly delivery: { observe(value: number): void };
}

class FunctionState {
  readonly ref: FunctionRef;
  readonly key: string;
  readonly rate: RateWindow;
  /** FIFO of held jobs; `head` skips consumed slots without shifting the array. */
  queue: Job[] = [];
  head = 0;
  pending = 0;
  inFlight = 0;
  delivered = 0;
  failed = 0;
  endpoints = new Map<string, EndpointState>();
  order: EndpointState[] = [];
  cursor = 0;
  /** When the first event was held with no ready endpoint (cold start begins). */
  coldSince: number | undefined;
  expiryTimer: NodeJS.Timeout | undefined;
  ejectTimer: NodeJS.Timeout | undefined;
  /** Metric children bound to this function's labels (label hashing once, not per event). */
  metrics: FunctionMetrics | undefined;

  constructor(ref: FunctionRef, rateWindowMs: number) {
    this.ref = { namespace: ref.namespace, name: ref.name };
    this.key = functionKey(ref);
    this.rate = new RateWindow(rateWindowMs / 1000);
  }

  peek(): Job | undefined {
    while (this.head < this.queue.length) {
      const job = this.queue[this.head];
      if (job !== undefined && !job.done) return job;
      this.head++;
    }
    this.compact();
    return undefined;
  }

  shift(): Job | undefined {
    const job = this.peek();
    if (job !== undefined) this.head++;
    if (this.head > 1024 && this.head * 2 > this.queue.length) this.compact();
    return job;
  }

  compact(): void {
    this.queue = this.queue.slice(this.head).filter((job) => !job.done);
    this.head = 0;
  }

  setEndpoints(endpoints: readonly Endpoint[]): void {
    const next = new Map<string, EndpointState>();
    for (const endpoint of endpoints) {
      const key = endpointKey(endpoint);
      next.set(key, this.endpoints.get(key) ?? { endpoint, key, inFlight: 0, ejectedUntil: 0 });
    }
    this.endpoints = next;
    this.order = [...next.values()];
    this.cursor = this.order.length === 0 ? 0 : this.cursor % this.order.length;
  }
}

/**
 * The gateway's core: accepts events for known functions, delivers each to the least-loaded
 * ready endpoint (per-replica concurrency limit), holds them while none is available (bounded
 * by the pending limit and the cold-start timeout), retries only when nothing reached the
 * function, and keeps the counts the scaler reads.
 */
export class Dispatcher extends EventEmitter<DispatcherEvents> {
  readonly #table: EndpointTable;
  readonly #transport: Transport;
  readonly #options: DispatcherOptions;
  readonly #metrics: GatewayMetrics | undefined;
  readonly #logger: Logger | undefined;
  readonly #functions = new Map<string, FunctionState>();
  readonly #abort = new AbortController();
  /** Controllers of the deliveries in flight (aborted together on a drain timeout). */
  readonly #deliveries = new Set<AbortController>();
  readonly #onTable: (ref: FunctionRef, endpoints: readonly Endpoint[] | undefined) => void;
  #sequence = 0;
  #draining = false;
  #idleWaiters: (() => void)[] = [];

  constructor(options: {
    table: EndpointTable;
    transport: Transport;
    options: DispatcherOptions;
    metrics?: GatewayMetrics;
    logger?: Logger;
  }) {
    super();
    this.#table = options.table;
    this.#transport = options.transport;
    this.#options = options.options;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#onTable = (ref, endpoints) => this.#endpointsChanged(ref, endpoints);
    this.#table.on('change', this.#onTable);
    this.#metrics?.bind({ gauges: () => this.#gauges() });
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Accepts events for one function, all or none: throws `GatewayError` (404 unknown function,
   * 503 pending limit or shutting down) before accepting anything. Each returned promise settles
   * with the function's reply or a `GatewayError` — never silently.
   */
  submit(ref: FunctionRef, messages: readonly EventMessage[], signal?: AbortSignal): Promise<Reply>[] {
    if (this.#draining) {
      this.#metrics?.rejected.inc({ reason: 'shutting_down' }, messages.length);
      throw new GatewayError('SHUTTING_DOWN', 'the gateway is shutting down; retry on another replica');
    }
    if (!this.#table.has(ref)) {
      this.#metrics?.rejected.inc({ reason: 'unknown_function' }, messages.length);
      throw new GatewayError('UNKNOWN_FUNCTION', `function ${functionKey(ref)} is not known to this gateway`);
    }
    let state = this.#functions.get(functionKey(ref));
    if (state !== undefined && state.pending + messages.length > this.#options.pendingLimit) {
      this.#metrics?.rejected.inc({ reason: 'pending_limit' }, messages.length);
      throw new GatewayError(
        'PENDING_LIMIT',
        `function ${state.key} already holds ${state.pending} events (limit ${this.#options.pendingLimit})`,
      );
    }
    if (state === undefined && messages.length > this.#options.pendingLimit) {
      this.#metrics?.rejected.inc({ reason: 'pending_limit' }, messages.length);
      throw new GatewayError('PENDING_LIMIT', `batch of ${messages.length} exceeds the pending limit`);
    }
    let urgent = false;
    if (state === undefined) {
      state = new FunctionState(ref, this.#options.rateWindowMs);
      state.setEndpoints(this.#table.endpoints(ref) ?? []);
      if (this.#metrics !== undefined) {
        const labels = { namespace: ref.namespace, function: ref.name };
        state.metrics = {
          accepted: this.#metrics.accepted.labels(labels),
          delivered: this.#metrics.delivered.labels(labels),
          hold: this.#metrics.hold.labels(labels),
          delivery: this.#metrics.delivery.labels(labels),
        };
      }
      this.#functions.set(state.key, state);
      urgent = true;
    }
    const now = Date.now();
    state.rate.add(now, messages.length);
    state.metrics?.accepted.inc(messages.length);
    const fn = state;
    const promises = messages.map(
      (message) =>
        new Promise<Reply>((resolve, reject) => {
          const job: Job = {
            message,
            acceptedAt: now,
            deadline: now + this.#options.coldStartTimeoutMs,
            resolve,
            reject,
            done: false,
            held: false,
            attempts: 0,
            cleanup: undefined,
          };
          if (signal !== undefined) {
            const onAbort = () => this.#senderGone(fn, job);
            signal.addEventListener('abort', onAbort, { once: true });
            job.cleanup = () => signal.removeEventListener('abort', onAbort);
          }
          const endpoint = fn.pending === 0 ? this.#pick(fn, now) : undefined;
          if (endpoint !== undefined) this.#start(fn, job, endpoint);
          else if (this.#hold(fn, job, now, false)) urgent = true;
        }),
    );
    this.emit('counts', urgent);
    return promises;
  }

  /** The counts snapshot served at `/v1/counts` (every call gets the next sequence number). */
  snapshot(): CountsSnapshot {
    const now = Date.now();
    const functions: FunctionCounts[] = [];
    for (const state of this.#functions.values()) {
      functions.push({
        namespace: state.ref.namespace,
        name: state.ref.name,
        pending: state.pending,
        inFlight: state.inFlight,
        delivered: state.delivered,
        failed: state.failed,
        ratePerSecond: Math.round(state.rate.perSecond(now) * 1000) / 1000,
      });
    }
    functions.sort((a, b) => functionKey(a).localeCompare(functionKey(b)));
    this.#sequence += 1;
    return { gateway: this.#options.gatewayId, sequence: this.#sequence, at: new Date(now).toISOString(), functions };
  }

  /** Sum of held and in-flight events over all functions. */
  outstanding(): number {
    let total = 0;
    for (const state of this.#functions.values()) total += state.pending + state.inFlight;
    return total;
  }

  /**
   * Graceful shutdown: refuse new events, let held and in-flight ones finish for up to
   * `timeoutMs`, then answer every remaining sender with an error (503) and abort deliveries.
   */
  async drain(timeoutMs: number): Promise<{ drained: boolean; abandoned: number }> {
    this.#draining = true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => {
      if (this.outstanding() === 0) {
        resolve(true);
        return;
      }
      this.#idleWaiters.push(() => resolve(true));
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const drained = await idle;
    clearTimeout(timer);
    let abandoned = 0;
    if (!drained) {
      for (const state of this.#functions.values()) {
        for (let job = state.shift(); job !== undefined; job = state.shift()) {
          state.pending -= 1;
          abandoned += 1;
          this.#fail(
            state,
            job,
            new GatewayError('SHUTTING_DOWN', 'the gateway shut down before an endpoint was ready'),
          );
        }
        abandoned += state.inFlight;
      }
      const reason = new GatewayError('SHUTTING_DOWN', 'the gateway shut down during delivery');
      this.#abort.abort(reason);
      for (const controller of this.#deliveries) controller.abort(reason);
      // Aborted deliveries settle on their own (their senders get 503).
      await new Promise<void>((resolve) => {
        if (this.outstanding() === 0) resolve();
        else this.#idleWaiters.push(resolve);
      });
    }
    this.close();
    return { drained, abandoned };
  }

  /**
   * Answers every event held for `ref` with `error` at once; deliveries in flight go on. For a
   * caller that can send those events elsewhere (the Knative router, when a revision is gone).
   */
  releaseHeld(ref: FunctionRef, error: GatewayError): number {
    const state = this.#functions.get(functionKey(ref));
    if (state === undefined) return 0;
    let released = 0;
    for (let job = state.shift(); job !== undefined; job = state.shift()) {
      state.pending -= 1;
      released += 1;
      this.#fail(state, job, error);
    }
    state.coldSince = undefined;
    this.#scheduleExpiry(state);
    this.#forgetIfGone(state);
    if (released > 0) this.#changed();
    return released;
  }

  /** Stops timers and listeners (does not settle outstanding events; use `drain` for that). */
  close(): void {
    this.#table.off('change', this.#onTable);
    for (const state of this.#functions.values()) {
      clearTimeout(state.expiryTimer);
      clearTimeout(state.ejectTimer);
    }
  }

  #labels(state: FunctionState): { namespace: string; function: string } {
    return { namespace: state.ref.namespace, function: state.ref.name };
  }

  *#gauges() {
    for (const state of this.#functions.values()) {
      yield {
        namespace: state.ref.namespace,
        name: state.ref.name,
        pending: state.pending,
        inFlight: state.inFlight,
        readyEndpoints: state.order.length,
      };
    }
  }

  /** Least in-flight endpoint under its limit and not ejected; ties rotate so bursts spread. */
  #pick(state: FunctionState, now: number): EndpointState | undefined {
    const limit = this.#options.replicaConcurrency;
    const count = state.order.length;
    let best: EndpointState | undefined;
    let bestIndex = 0;
    for (let offset = 0; offset < count; offset++) {
      const index = (state.cursor + offset) % count;
      const candidate = state.order[index];
      if (candidate === undefined || candidate.ejectedUntil > now) continue;
      if (limit > 0 && candidate.inFlight >= limit) continue;
      if (best === undefined || candidate.inFlight < best.inFlight) {
        best = candidate;
        bestIndex = index;
      }
    }
    if (best !== undefined) state.cursor = (bestIndex + 1) % count;
    return best;
  }

  /** Returns true when pending went 0 → 1 (urgent for the scaler). */
  #hold(state: FunctionState, job: Job, now: number, front: boolean): boolean {
    job.held = true;
    if (front) {
      state.compact();
      state.queue.unshift(job);
      clearTimeout(state.expiryTimer);
      state.expiryTimer = undefined;
    } else {
      state.queue.push(job);
    }
    state.pending += 1;
    if (state.coldSince === undefined && this.#readyCount(state, now) === 0) state.coldSince = job.acceptedAt;
    this.#scheduleExpiry(state);
    return state.pending === 1;
  }

  #readyCount(state: FunctionState, now: number): number {
    let ready = 0;
    for (const endpoint of state.order) if (endpoint.ejectedUntil <= now) ready += 1;
    return ready;
  }

  #scheduleExpiry(state: FunctionState): void {
    const head = state.peek();
    if (head === undefined) {
      clearTimeout(state.expiryTimer);
      state.expiryTimer = undefined;
      return;
    }
    if (state.expiryTimer !== undefined) return;
    state.expiryTimer = setTimeout(() => this.#expire(state), Math.max(0, head.deadline - Date.now()));
  }

  #expire(state: FunctionState): void {
    state.expiryTimer = undefined;
    const now = Date.now();
    let changed = false;
    for (let job = state.peek(); job !== undefined && job.deadline <= now; job = state.peek()) {
      state.shift();
      state.pending -= 1;
      changed = true;
      this.#fail(
        state,
        job,
        new GatewayError(
          'COLD_START_TIMEOUT',
          `no ready endpoint for ${state.key} within ${this.#options.coldStartTimeoutMs} ms`,
        ),
      );
    }
    if (state.pending === 0) state.coldSince = undefined;
    this.#scheduleExpiry(state);
    this.#forgetIfGone(state);
    if (changed) this.#changed();
  }

  #senderGone(state: FunctionState, job: Job): void {
    if (job.done || !job.held) return; // in flight: let the delivery finish
    state.pending -= 1;
    this.#fail(state, job, new GatewayError('SENDER_GONE', 'the sender disconnected while the event was held'));
    if (state.pending === 0) state.coldSince = undefined;
    this.#scheduleExpiry(state);
    this.#forgetIfGone(state);
    this.#changed();
  }

  #fail(state: FunctionState, job: Job, error: GatewayError): void {
    if (job.done) return;
    job.done = true;
    job.cleanup?.();
    state.failed += 1;
    this.#metrics?.failed.inc({ ...this.#labels(state), reason: error.code.toLowerCase() });
    if (job.held) state.metrics?.hold.observe((Date.now() - job.acceptedAt) / 1000);
    job.reject(error);
  }

  #start(state: FunctionState, job: Job, endpoint: EndpointState): void {
    const now = Date.now();
    job.attempts += 1;
    endpoint.inFlight += 1;
    state.inFlight += 1;
    if (job.held) state.metrics?.hold.observe((now - job.acceptedAt) / 1000);
    job.held = false;
    if (state.coldSince !== undefined) {
      this.#metrics?.coldStart.observe(this.#labels(state), (now - state.coldSince) / 1000);
      this.#logger?.info(
        { function: state.key, coldStartMs: now - state.coldSince, endpoint: endpoint.key },
        'first delivery after cold start',
      );
      state.coldSince = undefined;
    }
    // One controller per delivery (cheaper than AbortSignal.any on a long-lived signal).
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new GatewayError('DELIVERY_TIMEOUT', 'delivery timeout'));
    }, this.#options.deliveryTimeoutMs);
    this.#deliveries.add(controller);
    const finish = () => {
      clearTimeout(timer);
      this.#deliveries.delete(controller);
    };
    this.#transport.send(endpoint.endpoint, job.message, controller.signal).then(
      (reply) => {
        finish();
        endpoint.inFlight -= 1;
        state.inFlight -= 1;
        state.metrics?.delivery.observe((Date.now() - now) / 1000);
        job.done = true;
        job.cleanup?.();
        if (reply.status < 500) {
          state.delivered += 1;
          state.metrics?.delivered.inc();
        } else {
          state.failed += 1;
          this.#metrics?.failed.inc({ ...this.#labels(state), reason: 'function_error' });
        }
        job.resolve(reply);
        this.#afterDelivery(state);
      },
      (error: unknown) => {
        finish();
        endpoint.inFlight -= 1;
        state.inFlight -= 1;
        const at = Date.now();
        if (error instanceof TransportError && error.safeToRetry && !this.#abort.signal.aborted && at < job.deadline) {
          // Nothing reached the function: skip this endpoint for a while and hold the event again.
          endpoint.ejectedUntil = at + this.#options.ejectMs;
          this.#scheduleEjectEnd(state);
          this.#logger?.warn(
            { function: state.key, endpoint: endpoint.key, err: errorMessage(error), eventId: job.message.id },
            'the event did not reach the endpoint (connection refused or a stale keep-alive connection); retrying it',
          );
          const urgent = this.#hold(state, job, at, true);
          if (urgent) this.emit('counts', true);
          this.#afterDelivery(state);
          return;
        }
        let failure: GatewayError;
        if (this.#abort.signal.aborted) {
          failure = new GatewayError('SHUTTING_DOWN', 'the gateway shut down during delivery', { cause: error });
        } else if (timedOut) {
          failure = new GatewayError(
            'DELIVERY_TIMEOUT',
            `${state.key} did not answer within ${this.#options.deliveryTimeoutMs} ms`,
            { cause: error },
          );
        } else {
          failure = new GatewayError('DELIVERY_FAILED', `delivery to ${state.key} failed: ${errorMessage(error)}`, {
            cause: error,
          });
        }
        this.#logger?.warn(
          { function: state.key, endpoint: endpoint.key, err: errorMessage(error), eventId: job.message.id },
          'delivery failed',
        );
        this.#fail(state, job, failure);
        this.#afterDelivery(state);
      },
    );
  }

  /** Pumps again when the first ejected endpoint is back (timers may fire a millisecond early, so it re-arms). */
  #scheduleEjectEnd(state: FunctionState): void {
    if (state.ejectTimer !== undefined) return;
    const now = Date.now();
    let until = Number.POSITIVE_INFINITY;
    for (const endpoint of state.order) if (endpoint.ejectedUntil > now) until = Math.min(until, endpoint.ejectedUntil);
    if (until === Number.POSITIVE_INFINITY) return;
    state.ejectTimer = setTimeout(
      () => {
        state.ejectTimer = undefined;
        this.#pump(state);
        if (state.pending > 0) this.#scheduleEjectEnd(state);
      },
      Math.max(1, until - now),
    );
    state.ejectTimer.unref();
  }

  #afterDelivery(state: FunctionState): void {
    this.#pump(state);
    this.#forgetIfGone(state);
    this.#changed();
  }

  /** Drops an idle function the table no longer knows (revisions come and go with every rollout). */
  #forgetIfGone(state: FunctionState): void {
    if (state.pending > 0 || state.inFlight > 0 || this.#table.has(state.ref)) return;
    if (this.#functions.get(state.key) !== state) return;
    clearTimeout(state.expiryTimer);
    clearTimeout(state.ejectTimer);
    this.#functions.delete(state.key);
  }

  /** Hands held events to endpoints with free capacity, oldest first. */
  #pump(state: FunctionState): void {
    const now = Date.now();
    let moved = false;
    while (state.pending > 0) {
      const endpoint = this.#pick(state, now);
      if (endpoint === undefined) break;
      const job = state.shift();
      if (job === undefined) break;
      state.pending -= 1;
      moved = true;
      this.#start(state, job, endpoint);
    }
    if (moved) {
      this.#scheduleExpiry(state);
      this.#changed();
    }
  }

  #changed(): void {
    this.emit('counts', false);
    if (this.#idleWaiters.length > 0 && this.outstanding() === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  #endpointsChanged(ref: FunctionRef, endpoints: readonly Endpoint[] | undefined): void {
    const state = this.#functions.get(functionKey(ref));
    if (state === undefined) return;
    state.setEndpoints(endpoints ?? []);
    this.#logger?.debug({ function: state.key, endpoints: state.order.map((e) => e.key) }, 'endpoints changed');
    if (endpoints === undefined && state.pending === 0 && state.inFlight === 0) {
      this.#forgetIfGone(state);
      this.#changed();
      return;
    }
    this.#pump(state);
  }
}
