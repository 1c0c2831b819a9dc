import { functionKey, type Logger } from '@afterlife/core';
import type { Dispatcher } from './dispatcher.ts';
import type { Endpoint, EndpointTable, FunctionRef } from './endpoints.ts';
import { GatewayError } from './errors.ts';
import type { EventMessage } from './events.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { Reply } from './transport.ts';

/** One entry of a Knative Route's `status.traffic` (the fields the gateway reads). */
export interface TrafficTarget {
  readonly revisionName?: string;
  /** Share of the Route's traffic; missing means 0. */
  readonly percent?: number;
  readonly latestRevision?: boolean;
  readonly tag?: string;
  readonly configurationName?: string;
}

/** A revision that receives traffic, with its summed share. */
export interface RevisionWeight {
  readonly revision: string;
  readonly percent: number;
}

/** Where accepted events go: the dispatcher itself, or a router in front of it. */
export interface EventRouter {
  /** Same contract as `Dispatcher.submit`: throws `GatewayError` before accepting anything. */
  submit(ref: FunctionRef, messages: readonly EventMessage[], signal?: AbortSignal): Promise<Reply>[];
}

/** A number in [0, 1), like `Math.random`; injectable so tests can pick deterministically. */
export type RandomSource = () => number;

/**
 * The revisions that receive events, in first-seen order: entries with a `revisionName` and a
 * percent above 0, entries naming the same revision summed. Tags do not matter (a tagged entry
 * with a percent also serves the main route); entries with only a `configurationName` cannot be
 * resolved to a revision and are left out.
 */
export function routableRevisions(traffic: readonly TrafficTarget[]): RevisionWeight[] {
  const sums = new Map<string, number>();
  for (const target of traffic) {
    const revision = target.revisionName;
    const percent = target.percent ?? 0;
    if (revision === undefined || revision === '' || !Number.isFinite(percent) || percent <= 0) continue;
    sums.set(revision, (sums.get(revision) ?? 0) + percent);
  }
  return [...sums].map(([revision, percent]) => ({ revision, percent }));
}

/** Weighted random choice by percent; undefined when nothing receives traffic. */
export function pickRevision(
  weights: readonly RevisionWeight[],
  random: RandomSource = Math.random,
): string | undefined {
  if (weights.length <= 1) return weights[0]?.revision;
  let total = 0;
  for (const weight of weights) total += weight.percent;
  let point = random() * total;
  for (const weight of weights) {
    if (point < weight.percent) return weight.revision;
    point -= weight.percent;
  }
  // Only reached through floating-point rounding at the top end.
  return weights[weights.length - 1]?.revision;
}

interface Route {
  readonly traffic: readonly TrafficTarget[];
  readonly weights: readonly RevisionWeight[];
}

/**
 * Which Knative Services (functions) exist and how their Routes split traffic over revisions.
 * `KnativeRouteWatcher` keeps it in sync with the cluster's Routes; embedders set it with
 * `setRoute` — and declare each revision's endpoints in the `EndpointTable` under
 * `{ namespace, name: <revision> }`, as the watcher does.
 */
export class RouteTable {
  readonly #routes = new Map<string, Route>();

  /** Declares the function known with this `status.traffic` (possibly empty: nothing is routable yet). */
  setRoute(ref: FunctionRef, traffic: readonly TrafficTarget[]): void {
    const copy = traffic.map((target) => ({ ...target }));
    this.#routes.set(functionKey(ref), { traffic: copy, weights: routableRevisions(copy) });
  }

  /** The function no longer exists (its events get 404 from now on). */
  deleteRoute(ref: FunctionRef): void {
    this.#routes.delete(functionKey(ref));
  }

  has(ref: FunctionRef): boolean {
    return this.#routes.has(functionKey(ref));
  }

  /** The traffic as set, or undefined when the function is unknown. */
  traffic(ref: FunctionRef): readonly TrafficTarget[] | undefined {
    return this.#routes.get(functionKey(ref))?.traffic;
  }

  /** The revisions that receive events (see `routableRevisions`), or undefined when the function is unknown. */
  weights(ref: FunctionRef): readonly RevisionWeight[] | undefined {
    return this.#routes.get(functionKey(ref))?.weights;
  }
}

/**
 * Resolves `POST /ns/<ns>/fn/<service>` to one revision per request (weighted by the Route's
 * traffic) and hands the events to the dispatcher under `{ namespace, name: <revision> }`: the
 * revision is what is held, delivered to and counted, so that revision's ScaledObject wakes.
 * Events held for a revision that disappears (the watcher drops it from the endpoint table) are
 * routed again through the function's current traffic, or answered 503 — never dropped.
 */
export class KnativeRouter implements EventRouter {
  readonly #routes: RouteTable;
  readonly #endpoints: EndpointTable;
  readonly #dispatcher: Dispatcher;
  readonly #metrics: GatewayMetrics | undefined;
  readonly #logger: Logger | undefined;
  readonly #random: RandomSource;
  readonly #onEndpoints: (ref: FunctionRef, endpoints: readonly Endpoint[] | undefined) => void;

  constructor(options: {
    routes: RouteTable;
    endpoints: EndpointTable;
    dispatcher: Dispatcher;
    metrics?: GatewayMetrics;
    logger?: Logger;
    random?: RandomSource;
  }) {
    this.#routes = options.routes;
    this.#endpoints = options.endpoints;
    this.#dispatcher = options.dispatcher;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#random = options.random ?? Math.random;
    this.#onEndpoints = (ref, endpoints) => {
      if (endpoints !== undefined) return;
      const released = this.#dispatcher.releaseHeld(
        ref,
        new GatewayError('REVISION_GONE', `revision ${functionKey(ref)} no longer exists`),
      );
      if (released > 0)
        this.#logger?.info({ revision: functionKey(ref), released }, 'revision gone: re-routing its held events');
    };
    this.#endpoints.on('change', this.#onEndpoints);
  }

  submit(fn: FunctionRef, messages: readonly EventMessage[], signal?: AbortSignal): Promise<Reply>[] {
    // While draining the dispatcher refuses (and counts) every request, routable or not.
    if (this.#dispatcher.draining) return this.#dispatcher.submit(fn, messages, signal);
    const revision = this.#resolve(fn, messages.length);
    return this.#dispatcher
      .submit(revision, messages, signal)
      .map((delivery, index) => this.#rerouteIfGone(fn, revision, messages[index] as EventMessage, delivery, signal));
  }

  close(): void {
    this.#endpoints.off('change', this.#onEndpoints);
  }

  #resolve(fn: FunctionRef, count: number, gone?: string): FunctionRef {
    const weights = this.#routes.weights(fn);
    if (weights === undefined && gone === undefined) {
      this.#metrics?.rejected.inc({ reason: 'unknown_function' }, count);
      throw new GatewayError(
        'UNKNOWN_FUNCTION',
        `function ${functionKey(fn)} is not known to this gateway (no Knative Route)`,
      );
    }
    const revision = pickRevision(weights ?? [], this.#random);
    if (revision === undefined) {
      this.#metrics?.rejected.inc({ reason: 'no_routable_revision' }, count);
      throw new GatewayError(
        'NO_ROUTABLE_REVISION',
        gone === undefined
          ? `no revision of ${functionKey(fn)} receives traffic yet`
          : `revision ${gone} is gone and no revision of ${functionKey(fn)} receives traffic`,
      );
    }
    return { namespace: fn.namespace, name: revision };
  }

  async #rerouteIfGone(
    fn: FunctionRef,
    revision: FunctionRef,
    message: EventMessage,
    delivery: Promise<Reply>,
    signal: AbortSignal | undefined,
  ): Promise<Reply> {
    try {
      return await delivery;
    } catch (error) {
      if (!(error instanceof GatewayError) || error.code !== 'REVISION_GONE') throw error;
      // An abort listener added now would never fire: do not hold an event nobody waits for.
      if (signal?.aborted === true) {
        throw new GatewayError('SENDER_GONE', 'the sender disconnected while the event was held');
      }
      const gone = functionKey(revision);
      // A fresh cold-start window on the new revision: the dispatcher's queue stays in deadline order.
      const next = this.#resolve(fn, 1, gone);
      this.#logger?.debug({ function: functionKey(fn), from: gone, to: next.name, eventId: message.id }, 're-routed');
      const [retry] = this.#dispatcher.submit(next, [message], signal);
      return this.#rerouteIfGone(fn, next, message, retry as Promise<Reply>, signal);
    }
  }
}
