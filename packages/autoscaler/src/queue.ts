/**
 * A keyed work queue in the manner of client-go's: a key is queued at most once, never handled by
 * two workers at the same time (a change during handling queues it again), and a failed key is
 * retried with per-key exponential backoff.
 */
export interface WorkQueueOptions {
  readonly workers: number;
  readonly handle: (key: string) => Promise<void>;
  /** Called after a failure, with the delay before the retry. */
  readonly onError?: (key: string, error: unknown, retryInMs: number) => void;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
}

export class WorkQueue {
  readonly #options: WorkQueueOptions;
  readonly #queued = new Set<string>();
  readonly #order: string[] = [];
  readonly #active = new Set<string>();
  /** Keys changed while a worker held them: queued again when it is done. */
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #running = 0;
  #stopped = false;
  #idleWaiters: (() => void)[] = [];

  constructor(options: WorkQueueOptions) {
    this.#options = options;
  }

  /** Keys waiting (not counting those being handled or waiting out a backoff). */
  get depth(): number {
    return this.#order.length;
  }

  add(key: string): void {
    if (this.#stopped) return;
    if (this.#active.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#order.push(key);
    this.#pump();
  }

  /** Forgets a key's failures (its object is gone or handled). */
  forget(key: string): void {
    this.#failures.delete(key);
    clearTimeout(this.#timers.get(key));
    this.#timers.delete(key);
  }

  /** Resolves when nothing is queued or being handled (tests, shutdown). */
  whenIdle(): Promise<void> {
    if (this.#running === 0 && this.#order.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops taking work; resolves once the workers finished their current keys. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#order.length = 0;
    this.#queued.clear();
    await this.whenIdle();
  }

  #pump(): void {
    while (!this.#stopped && this.#running < this.#options.workers && this.#order.length > 0) {
      const key = this.#order.shift() as string;
      this.#queued.delete(key);
      this.#active.add(key);
      this.#running += 1;
      void this.#work(key);
    }
    if (this.#running === 0 && this.#order.length === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  async #work(key: string): Promise<void> {
    try {
      await this.#options.handle(key);
      this.#failures.delete(key);
    } catch (error) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      const base = this.#options.baseDelayMs ?? 200;
      const delay = Math.min(base * 2 ** (failures - 1), this.#options.maxDelayMs ?? 60_000);
      this.#options.onError?.(key, error, delay);
      if (!this.#stopped) {
        clearTimeout(this.#timers.get(key));
        const timer = setTimeout(() => {
          this.#timers.delete(key);
          this.add(key);
        }, delay);
        timer.unref();
        this.#timers.set(key, timer);
      }
    } finally {
      this.#active.delete(key);
      this.#running -= 1;
      if (this.#dirty.delete(key)) this.add(key);
      this.#pump();
    }
  }
}
