import { EventEmitter } from 'node:events';
import type { CountsSnapshot, FunctionCounts, Logger } from '@afterlife/core';
import { functionKey } from '@afterlife/core';
import { type ColdStartRecord, DeliveryOutcome } from './delivery-outcome.ts';
import { EndpointPicker, type PickedEndpoint } from './endpoint-picker.ts';
import type { Endpoint, EndpointTable, FunctionRef } from './endpoints.ts';
import { GatewayError } from './errors.ts';
import type { EventMessage } from './events.ts';
import { type AcceptedEvent, HeldQueue, pendingLimitError } from './held-queue.ts';
import type { GatewayMetrics } from './metrics.ts';
import { RateWindow } from './rate.ts';
import type { Delivery, Reply, Transport } from './transport.ts';

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

/** One function (discovery `knative`: revision): its held events, its endpoints, how its events end. */
interface FunctionState {
  readonly ref: FunctionRef;
  readonly key: string;
  readonly rate: RateWindow;
  readonly queue: HeldQueue;
  readonly picker: EndpointPicker;
  readonly outcome: DeliveryOutcome;
}

/**
 * The gateway's core: accepts events for known functions, delivers each to the least-loaded
 * ready endpoint (per-replica concurrency limit), holds them while none is available (bounded
 * by the pending limit and the cold-start timeout), retries only when nothing reached the
 * function, and keeps the counts the scaler reads. Per function it composes a `HeldQueue`
 * (waiting events), an `EndpointPicker` (where each delivery goes) and a `DeliveryOutcome`
 * (what each sender gets, counts, metrics); the transport calls and the drain are its own.
 */
export class Dispatcher extends EventEmitter<DispatcherEvents> {
  readonly #table: EndpointTable;
  readonly #transport: Transport;
  readonly #options: DispatcherOptions;
  readonly #metrics: GatewayMetrics | undefined;
  readonly #logger: Logger | undefined;
  readonly #functions = new Map<string, FunctionState>();
  /** The deliveries in flight (aborted together on a drain timeout). */
  readonly #deliveries = new Set<Delivery>();
  /** The drain timed out: deliveries still running were aborted. */
  #shuttingDown = false;
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

  /** This gateway's id in counts snapshots and cold-start records. */
  get snapshotId(): string {
    return this.#options.gatewayId;
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
    const key = functionKey(ref);
    let state = this.#functions.get(key);
    const refusal = pendingLimitError(key, state?.queue.pending, messages.length, this.#options.pendingLimit);
    if (refusal !== undefined) {
      this.#metrics?.rejected.inc({ reason: 'pending_limit' }, messages.length);
      throw refusal;
    }
    let urgent = false;
    if (state === undefined) {
      state = this.#createState(ref);
      this.#functions.set(state.key, state);
      urgent = true;
    }
    const now = Date.now();
    state.rate.add(now, messages.length);
    state.outcome.accepted(messages.length);
    const fn = state;
    const promises = messages.map(
      (message) =>
        new Promise<Reply>((resolve, reject) => {
          const endpoint = fn.queue.pending === 0 ? fn.picker.pick(now) : undefined;
          if (endpoint !== undefined) {
            this.#start(fn, fn.queue.acceptForDelivery(message, now, resolve, reject, signal), endpoint);
          } else if (this.#hold(fn, fn.queue.accept(message, now, resolve, reject, signal), now, false)) {
            urgent = true;
          }
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
        pending: state.queue.pending,
        inFlight: state.outcome.inFlight,
        delivered: state.outcome.delivered,
        failed: state.outcome.failed,
        ratePerSecond: Math.round(state.rate.perSecond(now) * 1000) / 1000,
      });
    }
    functions.sort((a, b) => functionKey(a).localeCompare(functionKey(b)));
    this.#sequence += 1;
    return { gateway: this.#options.gatewayId, sequence: this.#sequence, at: new Date(now).toISOString(), functions };
  }

  /**
   * The last cold start of every function this gateway holds state for, oldest first
   * (`/v1/cold-starts`). Bounded by the functions known: one record each.
   */
  coldStarts(): ColdStartRecord[] {
    const records: ColdStartRecord[] = [];
    for (const state of this.#functions.values()) {
      const record = state.outcome.lastColdStart;
      if (record !== undefined) records.push(record);
    }
    return records.sort((a, b) => a.heldAt - b.heldAt);
  }

  /** Sum of held and in-flight events over all functions. */
  outstanding(): number {
    let total = 0;
    for (const state of this.#functions.values()) total += state.queue.pending + state.outcome.inFlight;
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
        for (let event = state.queue.take(); event !== undefined; event = state.queue.take()) {
          abandoned += 1;
          state.outcome.fail(
            event,
            new GatewayError('SHUTTING_DOWN', 'the gateway shut down before an endpoint was ready'),
          );
        }
        abandoned += state.outcome.inFlight;
      }
      const reason = new GatewayError('SHUTTING_DOWN', 'the gateway shut down during delivery');
      this.#shuttingDown = true;
      for (const delivery of this.#deliveries) delivery.abort(reason);
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
    const released = state.queue.releaseAll(error);
    state.outcome.coldStartOver();
    this.#forgetIfGone(state);
    if (released > 0) this.#changed();
    return released;
  }

  /** Stops timers and listeners (does not settle outstanding events; use `drain` for that). */
  close(): void {
    this.#table.off('change', this.#onTable);
    for (const state of this.#functions.values()) {
      state.queue.close();
      state.picker.close();
    }
  }

  #createState(ref: FunctionRef): FunctionState {
    const key = functionKey(ref);
    const outcome = new DeliveryOutcome({
      ref,
      deliveryTimeoutMs: this.#options.deliveryTimeoutMs,
      metrics: this.#metrics,
      logger: this.#logger,
    });
    const state: FunctionState = {
      ref: { namespace: ref.namespace, name: ref.name },
      key,
      rate: new RateWindow(this.#options.rateWindowMs / 1000),
      queue: new HeldQueue(
        { key, coldStartTimeoutMs: this.#options.coldStartTimeoutMs },
        {
          fail: (event, error) => outcome.fail(event, error),
          dropped: (changed) => {
            if (state.queue.pending === 0) outcome.coldStartOver();
            this.#forgetIfGone(state);
            if (changed) this.#changed();
          },
        },
      ),
      picker: new EndpointPicker({
        replicaConcurrency: this.#options.replicaConcurrency,
        ejectMs: this.#options.ejectMs,
        onReturn: () => {
          this.#pump(state);
          return state.queue.pending > 0;
        },
      }),
      outcome,
    };
    state.picker.setEndpoints(this.#table.endpoints(ref) ?? []);
    return state;
  }

  *#gauges() {
    for (const state of this.#functions.values()) {
      yield {
        namespace: state.ref.namespace,
        name: state.ref.name,
        pending: state.queue.pending,
        inFlight: state.outcome.inFlight,
        readyEndpoints: state.picker.size,
      };
    }
  }

  /** Returns true when pending went 0 → 1 (urgent for the scaler). */
  #hold(state: FunctionState, event: AcceptedEvent, now: number, front: boolean): boolean {
    const urgent = state.queue.hold(event, front);
    if (!state.outcome.coldStarting && state.picker.readyCount(now) === 0)
      state.outcome.coldStartFrom(event.acceptedAt);
    return urgent;
  }

  #start(state: FunctionState, event: AcceptedEvent, endpoint: PickedEndpoint): void {
    const now = Date.now();
    state.picker.acquire(endpoint);
    state.outcome.started(event, endpoint.key, now, endpoint.endpoint);
    const delivery = this.#transport.send(endpoint.endpoint, event.message);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      delivery.abort(new GatewayError('DELIVERY_TIMEOUT', 'delivery timeout'));
    }, this.#options.deliveryTimeoutMs);
    this.#deliveries.add(delivery);
    const finish = () => {
      clearTimeout(timer);
      this.#deliveries.delete(delivery);
      state.picker.release(endpoint);
    };
    delivery.reply.then(
      (reply) => {
        finish();
        state.outcome.replied(event, reply, now);
        this.#afterDelivery(state);
      },
      (error: unknown) => {
        finish();
        const at = Date.now();
        const end = { shuttingDown: this.#shuttingDown, timedOut, at };
        if (state.outcome.unanswered(event, endpoint.key, error, end)) {
          // Nothing reached the function: skip this endpoint for a while and hold the event again.
          state.picker.eject(endpoint, at);
          if (this.#hold(state, event, at, true)) this.emit('counts', true);
        }
        this.#afterDelivery(state);
      },
    );
  }

  #afterDelivery(state: FunctionState): void {
    this.#pump(state);
    this.#forgetIfGone(state);
    this.#changed();
  }

  /** Drops an idle function the table no longer knows (revisions come and go with every rollout). */
  #forgetIfGone(state: FunctionState): void {
    if (state.queue.pending > 0 || state.outcome.inFlight > 0 || this.#table.has(state.ref)) return;
    if (this.#functions.get(state.key) !== state) return;
    state.queue.close();
    state.picker.close();
    this.#functions.delete(state.key);
  }

  /** Hands held events to endpoints with free capacity, oldest first. */
  #pump(state: FunctionState): void {
    const now = Date.now();
    let moved = false;
    while (state.queue.pending > 0) {
      const endpoint = state.picker.pick(now);
      if (endpoint === undefined) break;
      const event = state.queue.take();
      if (event === undefined) break;
      moved = true;
      this.#start(state, event, endpoint);
    }
    if (moved) {
      state.queue.scheduleExpiry();
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
    state.picker.setEndpoints(endpoints ?? []);
    this.#logger?.debug({ function: state.key, endpoints: state.picker.keys() }, 'endpoints changed');
    if (endpoints === undefined && state.queue.pending === 0 && state.outcome.inFlight === 0) {
      this.#forgetIfGone(state);
      this.#changed();
      return;
    }
    this.#pump(state);
  }
}
