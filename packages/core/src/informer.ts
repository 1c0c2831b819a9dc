import {
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  ListWatch,
  type ObjectCache,
  Watch,
} from '@kubernetes/client-node';
import { errorMessage } from './errors.ts';
import type { Logger } from './logger.ts';

/** The part of a `@kubernetes/client-node` informer the runner drives. */
export interface RestartableInformer {
  start(): Promise<void>;
  stop(): Promise<void>;
  on(verb: 'error', callback: (error?: unknown) => void): void;
}

/** Waits between restarts after consecutive failures (the last one repeats). */
export const INFORMER_RESTART_DELAYS_MS: readonly number[] = [500, 1000, 2000, 5000, 10_000, 30_000];

export interface InformerRunnerOptions {
  readonly logger: Logger;
  /** What is watched, for the log line (`watching <what> failed; retrying`). */
  readonly what: string;
  readonly restartDelaysMs?: readonly number[];
}

/**
 * Keeps one informer running: starts it, restarts it with backoff after every error (a failed
 * list as well as a dropped watch) until stopped, and knows when it has listed successfully.
 */
export class InformerRunner {
  readonly #informer: RestartableInformer;
  readonly #logger: Logger;
  readonly #what: string;
  readonly #delays: readonly number[];
  #stopped = false;
  #failures = 0;
  #failedDuringStart = false;
  #timer: NodeJS.Timeout | undefined;
  #synced = false;
  #syncWaiters: (() => void)[] = [];

  constructor(informer: RestartableInformer, options: InformerRunnerOptions) {
    this.#informer = informer;
    this.#logger = options.logger;
    this.#what = options.what;
    this.#delays = options.restartDelaysMs ?? INFORMER_RESTART_DELAYS_MS;
    informer.on('error', (error) => {
      this.#failedDuringStart = true;
      this.#scheduleRestart(error);
    });
  }

  /** Starts every runner; resolves once each has listed (or was stopped). */
  static async startAll(runners: readonly InformerRunner[]): Promise<void> {
    await Promise.all(
      runners.map(async (runner) => {
        await runner.start();
        await runner.whenSynced();
      }),
    );
  }

  /** True once a start listed without error (the informer's cache reflects the cluster). */
  get synced(): boolean {
    return this.#synced;
  }

  /** Starts; resolves after the first attempt, successful or not (then it retries in the background). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#attempt();
  }

  /** Resolves once the informer has listed successfully, or when the runner is stopped. */
  whenSynced(): Promise<void> {
    if (this.#synced || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wake();
    await this.#informer.stop();
  }

  async #attempt(): Promise<void> {
    this.#failedDuringStart = false;
    try {
      await this.#informer.start();
    } catch (error) {
      this.#failedDuringStart = true;
      this.#scheduleRestart(error);
    }
    if (this.#failedDuringStart || this.#stopped) return;
    this.#failures = 0;
    this.#synced = true;
    this.#wake();
  }

  #scheduleRestart(error: unknown): void {
    if (this.#stopped || this.#timer !== undefined) return;
    const delay = this.#delays[Math.min(this.#failures, this.#delays.length - 1)] ?? 30_000;
    this.#failures += 1;
    this.#logger.warn({ err: errorMessage(error), retryInMs: delay }, `watching ${this.#what} failed; retrying`);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#stopped) void this.#attempt();
    }, delay);
    this.#timer.unref();
  }

  #wake(): void {
    const waiters = this.#syncWaiters;
    this.#syncWaiters = [];
    for (const waiter of waiters) waiter();
  }
}

/**
 * Drops `metadata.managedFields` (server-side apply's bookkeeping, often the larger half of an
 * object) from an object an informer keeps. No Afterlife component reads it, and an update sent
 * without it leaves the server's copy as it is.
 */
export function withoutManagedFields<T extends KubernetesObject>(object: T): T {
  if (object.metadata?.managedFields === undefined) return object;
  const { managedFields: _dropped, ...metadata } = object.metadata;
  return { ...object, metadata };
}

/**
 * `makeInformer` whose cache holds `trim(object)` instead of the object as listed and watched
 * (default: without managedFields): with a thousand functions a component's caches are most
 * of its memory, so each keeps only what it reads.
 */
export function makeLeanInformer<T extends KubernetesObject>(
  kubeConfig: KubeConfig,
  path: string,
  list: () => Promise<KubernetesListObject<T>>,
  options: { readonly labelSelector?: string | undefined; readonly trim?: (object: T) => T } = {},
): Informer<T> & ObjectCache<T> {
  const trim = options.trim ?? withoutManagedFields;
  const inner = new Watch(kubeConfig);
  // ListWatch only calls `watch()`: trim what each watch event carries before it is cached.
  const watch = {
    watch: (
      watchPath: string,
      query: Record<string, string | number | boolean | undefined>,
      callback: (phase: string, object: T, raw: unknown) => void,
      done: (error: unknown) => void,
    ) =>
      inner.watch(
        watchPath,
        query,
        (phase: string, object: T, raw: unknown) =>
          callback(
            phase,
            phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED' ? trim(object) : object,
            raw,
          ),
        done,
      ),
  } as unknown as Watch;
  const trimmedList = async (): Promise<KubernetesListObject<T>> => {
    const listed = await list();
    return { ...listed, items: listed.items.map(trim) };
  };
  return new ListWatch<T>(path, watch, trimmedList, false, options.labelSelector);
}
