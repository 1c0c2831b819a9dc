import { type Endpoint, endpointKey } from './endpoints.ts';

/** One ready endpoint of a function, with what the picker knows about it. */
export interface PickedEndpoint {
  readonly endpoint: Endpoint;
  readonly key: string;
  /** Deliveries to it right now. */
  inFlight: number;
  /** Skipped until then (epoch ms) after it refused a connection; 0 when not ejected. */
  ejectedUntil: number;
}

export interface EndpointPickerOptions {
  /** Deliveries at once per endpoint; 0 = unlimited. */
  readonly replicaConcurrency: number;
  /** How long an endpoint that refused a connection is skipped. */
  readonly ejectMs: number;
  /**
   * The first ejected endpoint is back: hand it work. Returns whether events still wait (then
   * the picker watches for the next ejection to end).
   */
  readonly onReturn: () => boolean;
}

/**
 * Chooses the endpoint for each delivery of one function: the least in-flight ready endpoint
 * that is under the per-replica concurrency limit and not ejected, ties rotating (round robin
 * when idle) so bursts spread. Endpoints that refused a connection are ejected for `ejectMs`.
 */
export class EndpointPicker {
  readonly #options: EndpointPickerOptions;
  #endpoints = new Map<string, PickedEndpoint>();
  #order: PickedEndpoint[] = [];
  #cursor = 0;
  #returnTimer: NodeJS.Timeout | undefined;

  constructor(options: EndpointPickerOptions) {
    this.#options = options;
  }

  /** Ready endpoints known (ejected ones included). */
  get size(): number {
    return this.#order.length;
  }

  keys(): string[] {
    return this.#order.map((endpoint) => endpoint.key);
  }

  /** Replaces the ready endpoints; one that stays keeps its in-flight count and ejection. */
  setEndpoints(endpoints: readonly Endpoint[]): void {
    const next = new Map<string, PickedEndpoint>();
    for (const endpoint of endpoints) {
      const key = endpointKey(endpoint);
      next.set(key, this.#endpoints.get(key) ?? { endpoint, key, inFlight: 0, ejectedUntil: 0 });
    }
    this.#endpoints = next;
    this.#order = [...next.values()];
    this.#cursor = this.#order.length === 0 ? 0 : this.#cursor % this.#order.length;
  }

  /** Least in-flight endpoint under its limit and not ejected; ties rotate so bursts spread. */
  pick(now: number): PickedEndpoint | undefined {
    const limit = this.#options.replicaConcurrency;
    const order = this.#order;
    const count = order.length;
    let best: PickedEndpoint | undefined;
    let bestIndex = 0;
    for (let offset = 0; offset < count; offset++) {
      const index = (this.#cursor + offset) % count;
      const candidate = order[index];
      if (candidate === undefined || candidate.ejectedUntil > now) continue;
      if (limit > 0 && candidate.inFlight >= limit) continue;
      if (best === undefined || candidate.inFlight < best.inFlight) {
        best = candidate;
        bestIndex = index;
      }
    }
    if (best !== undefined) this.#cursor = (bestIndex + 1) % count;
    return best;
  }

  /** Endpoints not ejected at `now` (busy ones included). */
  readyCount(now: number): number {
    let ready = 0;
    for (const endpoint of this.#order) if (endpoint.ejectedUntil <= now) ready += 1;
    return ready;
  }

  /** A delivery to `endpoint` starts. */
  acquire(endpoint: PickedEndpoint): void {
    endpoint.inFlight += 1;
  }

  /** A delivery to `endpoint` ended (also for an endpoint no longer in the set). */
  release(endpoint: PickedEndpoint): void {
    endpoint.inFlight -= 1;
  }

  /** `endpoint` refused the connection at `at`: skip it for `ejectMs`, then call `onReturn`. */
  eject(endpoint: PickedEndpoint, at: number): void {
    endpoint.ejectedUntil = at + this.#options.ejectMs;
    this.#scheduleReturn();
  }

  /** Stops the ejection timer. */
  close(): void {
    clearTimeout(this.#returnTimer);
  }

  /** Fires when the first ejected endpoint is back (timers may fire a millisecond early, so it re-arms). */
  #scheduleReturn(): void {
    if (this.#returnTimer !== undefined) return;
    const now = Date.now();
    let until = Number.POSITIVE_INFINITY;
    for (const endpoint of this.#order) if (endpoint.ejectedUntil > now) until = Math.min(until, endpoint.ejectedUntil);
    if (until === Number.POSITIVE_INFINITY) return;
    this.#returnTimer = setTimeout(
      () => {
        this.#returnTimer = undefined;
        if (this.#options.onReturn()) this.#scheduleReturn();
      },
      Math.max(1, until - now),
    );
    this.#returnTimer.unref();
  }
}
