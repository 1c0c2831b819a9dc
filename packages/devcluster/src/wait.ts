import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '@afterlife/core';
import { ReadinessTimeoutError } from './errors.ts';

export interface WaitOptions {
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  /** Called every round; throw to abort early (e.g. a component died). */
  readonly guard?: () => void;
}

/**
 * Polls `probe` until it returns a value other than undefined, with a bounded number of rounds.
 * A probe that throws counts as "not yet"; its message becomes the last observed state.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, options: WaitOptions): Promise<T> {
  const interval = options.intervalMs ?? 200;
  const deadline = Date.now() + options.timeoutMs;
  let lastState = 'never probed';
  while (Date.now() <= deadline) {
    options.guard?.();
    try {
      const value = await probe();
      if (value !== undefined) return value;
      lastState = 'not ready';
    } catch (error) {
      lastState = errorMessage(error);
    }
    await sleep(interval);
  }
  options.guard?.();
  throw new ReadinessTimeoutError(what, options.timeoutMs, lastState);
}
