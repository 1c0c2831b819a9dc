import { errorMessage, type Logger } from '@afterlife/core';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { LeaseSettings } from './config.ts';
import { AutoscalerError } from './errors.ts';

export interface LeaderCallbacks {
  /** This replica now leads: start reconciling. */
  readonly onStartedLeading: () => void;
  /** Leadership lost (renewal failed past the deadline) or released: stop reconciling at once. */
  readonly onStoppedLeading: () => void;
}

/**
 * Leader election on a coordination.k8s.io Lease, with client-go's rules: a Lease is free when
 * its holder has not renewed within `leaseDurationSeconds` as observed on this replica's clock
 * (never by comparing clocks across machines); every write carries the resourceVersion read, so
 * two candidates can never both win; a leader that cannot renew within the renew deadline steps
 * down; a clean stop releases the Lease so a successor takes over at once.
 */
export class LeaderElector {
  readonly #api: CustomObjectsApi;
  readonly #settings: LeaseSettings;
  readonly #logger: Logger;
  readonly #callbacks: LeaderCallbacks;
  #leading = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  /** The holder/renewTime last seen and when (local monotonic clock), to time out a silent holder. */
  #observed: { key: string; at: number } | undefined;
  #lastRenewed = 0;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  constructor(kubeConfig: KubeConfig, settings: LeaseSettings, logger: Logger, callbacks: LeaderCallbacks) {
    this.#api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.#settings = settings;
    this.#logger = logger;
    this.#callbacks = callbacks;
  }

  get leading(): boolean {
    return this.#leading;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops campaigning; a leader releases the Lease. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    await this.#loop;
    if (this.#leading) {
      this.#setLeading(false);
      await this.#release().catch((error: unknown) =>
        this.#logger.warn({ err: errorMessage(error) }, 'could not release the leader Lease'),
      );
    }
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        const held = await this.#tryAcquireOrRenew();
        if (held) this.#lastRenewed = performance.now();
        if (held && !this.#leading) this.#setLeading(true);
        if (!held && this.#leading) this.#setLeading(false);
      } catch (error) {
        this.#logger.warn({ err: errorMessage(error) }, 'leader Lease update failed');
        if (this.#leading && performance.now() - this.#lastRenewed > this.#settings.renewDeadlineMs) {
          this.#logger.error({ lease: this.#settings.name }, 'could not renew the leader Lease in time; stepping down');
          this.#setLeading(false);
        }
      }
      await this.#sleep(this.#settings.retryPeriodMs);
    }
  }

  #setLeading(leading: boolean): void {
    this.#leading = leading;
    this.#logger.info(
      { lease: `${this.#settings.namespace}/${this.#settings.name}`, identity: this.#settings.identity },
      leading ? 'started leading' : 'stopped leading',
    );
    if (leading) this.#callbacks.onStartedLeading();
    else this.#callbacks.onStoppedLeading();
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#settings;
    const now = microTime(new Date());
    const durationSeconds = Math.ceil(this.#settings.durationMs / 1000);
    let lease: Lease;
    try {
      lease = (await this.#api.getNamespacedCustomObject({ ...LEASES, namespace, name })) as Lease;
    } catch (error) {
      if (statusOf(error) !== 404)
        throw new AutoscalerError('LEASE_FAILED', `reading Lease ${namespace}/${name}`, { cause: error });
      await this.#api.createNamespacedCustomObject({
        ...LEASES,
        namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const key = `${holder}|${spec.renewTime ?? ''}`;
    if (this.#observed?.key !== key) this.#observed = { key, at: performance.now() };
    const expired = performance.now() - this.#observed.at > (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder !== '' && holder !== identity && !expired) return false;
    const takingOver = holder !== identity;
    await this.#api.replaceNamespacedCustomObject({
      ...LEASES,
      namespace,
      name,
      body: {
        ...lease,
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: takingOver ? now : (spec.acquireTime ?? now),
          renewTime: now,
          leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && holder !== '' ? 1 : 0),
        },
      },
    });
    return true;
  }

  async #release(): Promise<void> {
    const { namespace, name, identity } = this.#settings;
    const lease = (await this.#api.getNamespacedCustomObject({ ...LEASES, namespace, name })) as Lease;
    if (lease.spec?.holderIdentity !== identity) return;
    await this.#api.replaceNamespacedCustomObject({
      ...LEASES,
      namespace,
      name,
      body: {
        ...lease,
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
      },
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(resolve, ms);
    });
  }
}

/**
 * Leases through the generic API with plain JSON: client-node's typed Lease serializes its
 * MicroTime fields with millisecond precision, which the API server refuses.
 */
const LEASES = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' };

interface Lease {
  metadata?: Record<string, unknown>;
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** RFC 3339 with microseconds, as metav1.MicroTime is written. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** The HTTP status of a failed client-node call, if it carries one. */
export function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}
