import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, type Logger, probeStatus } from '@afterlife/core';
import { type Endpoint, endpointKey } from './endpoints.ts';

/**
 * The probe Knative's activator sends a revision's pod before routing to it: queue-proxy answers
 * it itself (any path), running the user container's readiness check — retried every 50 ms for
 * up to 10 s — and replies 200 `queue` once it passes, 503 while it fails or while draining.
 */
export const QUEUE_PROXY_PROBE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'K-Network-Probe': 'queue',
  'User-Agent': 'Knative-Activator-Probe',
});

export interface WarmupTiming {
  /** One probe's deadline: queue-proxy may hold a probe 10 s while it retries the user container. */
  readonly probeTimeoutMs: number;
  /** Waits between probes of an address that refused or failed: doubling from the first, up to the last. */
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
  /** An address that has not answered 200 for this long is broken, not starting: no more probes. */
  readonly giveUpMs: number;
  /**
   * How long a 200 stands in for kubelet's Ready. Past it the address is probed again, so a pod
   * that answered once but never turns Ready (its container died) stops getting events.
   */
  readonly answerTtlMs: number;
}

export const DEFAULT_WARMUP_TIMING: WarmupTiming = Object.freeze({
  probeTimeoutMs: 12_000,
  retryMinMs: 20,
  retryMaxMs: 500,
  giveUpMs: 120_000,
  answerTtlMs: 30_000,
});

/** A not-ready address the prober works on. */
interface Target {
  readonly endpoint: Endpoint;
  readonly firstSeen: number;
  readonly abort: AbortController;
  state: 'probing' | 'answered' | 'gave-up';
  answeredAt: number;
}

/** What the prober knows of an address that answered: when it was first listed and when it answered. */
export interface WarmEndpoint extends Endpoint {
  readonly seenAt: number;
  readonly answeredAt: number;
}

/**
 * Delivers to a pod as soon as it can serve, as Knative's activator does: a revision's
 * EndpointSlice lists a new pod (not ready) once it has an address; kubelet marks it Ready only
 * at its next readiness probe, and the slice follows after a status update and the EndpointSlice
 * controller. This prober sends queue-proxy's own probe to every not-ready address at once and
 * reports the ones that answered, so the first held event goes out a probe period and two API
 * round trips earlier. Probes are single long requests (queue-proxy retries the container
 * itself); only a refused connection — queue-proxy not listening yet — is retried, with backoff.
 */
export class WarmupProber {
  readonly #onAnswered: (revisionKey: string) => void;
  readonly #logger: Logger | undefined;
  readonly #timing: WarmupTiming;
  readonly #revisions = new Map<string, Map<string, Target>>();
  #stopped = false;

  constructor(options: {
    /** An address of `revisionKey` answered (or its answer expired): recompute its endpoints. */
    readonly onAnswered: (revisionKey: string) => void;
    readonly logger?: Logger;
    readonly timing?: Partial<WarmupTiming>;
  }) {
    this.#onAnswered = options.onAnswered;
    this.#logger = options.logger;
    this.#timing = { ...DEFAULT_WARMUP_TIMING, ...options.timing };
  }

  /**
   * The revision's not-ready addresses now: probing starts for new ones and stops for gone ones.
   * Returns those whose queue-proxy answered (to be delivered to as if ready).
   */
  update(revisionKey: string, notReady: readonly Endpoint[]): WarmEndpoint[] {
    if (this.#stopped) return [];
    const known = this.#revisions.get(revisionKey);
    // Most revisions, most of the time: nothing starting, nothing being probed.
    if (known === undefined && notReady.length === 0) return [];
    const now = Date.now();
    const targets = known ?? new Map<string, Target>();
    const wanted = new Map(notReady.map((endpoint) => [endpointKey(endpoint), endpoint]));
    for (const [key, target] of targets) {
      if (wanted.has(key)) continue;
      target.abort.abort();
      targets.delete(key);
    }
    const answered: WarmEndpoint[] = [];
    for (const [key, endpoint] of wanted) {
      let target = targets.get(key);
      if (target === undefined) {
        target = { endpoint, firstSeen: now, abort: new AbortController(), state: 'probing', answeredAt: 0 };
        targets.set(key, target);
        void this.#probe(revisionKey, target);
      }
      if (target.state === 'answered') {
        answered.push({ ...target.endpoint, seenAt: target.firstSeen, answeredAt: target.answeredAt });
      }
    }
    if (targets.size === 0) this.#revisions.delete(revisionKey);
    else this.#revisions.set(revisionKey, targets);
    return answered;
  }

  /** Addresses being probed or answered, over all revisions (for tests and metrics). */
  get size(): number {
    let total = 0;
    for (const targets of this.#revisions.values()) total += targets.size;
    return total;
  }

  stop(): void {
    this.#stopped = true;
    for (const targets of this.#revisions.values()) for (const target of targets.values()) target.abort.abort();
    this.#revisions.clear();
  }

  async #probe(revisionKey: string, target: Target): Promise<void> {
    const { signal } = target.abort;
    const url = `http://${endpointKey(target.endpoint)}/`;
    let wait = this.#timing.retryMinMs;
    let lastProblem = '';
    while (!signal.aborted) {
      if (Date.now() - target.firstSeen > this.#timing.giveUpMs) {
        target.state = 'gave-up';
        this.#logger?.warn(
          { revision: revisionKey, endpoint: endpointKey(target.endpoint), lastProblem },
          'a not-ready pod never answered the queue-proxy probe; waiting for kubelet to mark it Ready',
        );
        return;
      }
      let status = 0;
      try {
        status = await probeStatus(url, {
          headers: QUEUE_PROXY_PROBE_HEADERS,
          timeoutMs: this.#timing.probeTimeoutMs,
          signal,
        });
      } catch (error) {
        lastProblem = errorMessage(error);
      }
      if (signal.aborted) return;
      if (status === 200) {
        target.state = 'answered';
        target.answeredAt = Date.now();
        this.#logger?.debug(
          {
            revision: revisionKey,
            endpoint: endpointKey(target.endpoint),
            afterMs: target.answeredAt - target.firstSeen,
          },
          'not-ready pod answered the queue-proxy probe',
        );
        this.#onAnswered(revisionKey);
        // Past the answer's lifetime, probe again (the slice still calls it not ready).
        const expired = await sleep(this.#timing.answerTtlMs, true, { signal }).catch(() => false);
        if (!expired || signal.aborted) return;
        target.state = 'probing';
        this.#onAnswered(revisionKey);
        wait = this.#timing.retryMinMs;
        continue;
      }
      if (status !== 0) lastProblem = `answered ${status}`;
      const slept = await sleep(wait, true, { signal }).catch(() => false);
      if (!slept) return;
      wait = Math.min(wait * 2, this.#timing.retryMaxMs);
    }
  }
}
