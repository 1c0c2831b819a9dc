import type { CountsSnapshot } from '@afterlife/core';
import type { Dispatcher } from './dispatcher.ts';

export interface StreamTiming {
  /** Non-urgent changes are sent at most this often (ms). */
  readonly throttleMs: number;
  /** A snapshot is sent at least this often even without changes (ms). */
  readonly heartbeatMs: number;
}

export const DEFAULT_STREAM_TIMING: StreamTiming = { throttleMs: 100, heartbeatMs: 1000 };

export type SnapshotListener = (snapshot: CountsSnapshot) => void;

/**
 * Fans counts snapshots out to stream subscribers (the scaler): one snapshot on subscribe,
 * one in the same tick when a function's pending goes 0 → >0 or a function appears, other
 * changes at most every `throttleMs`, and a heartbeat at least every `heartbeatMs`.
 */
export class CountsBroadcaster {
  readonly #dispatcher: Dispatcher;
  readonly #timing: StreamTiming;
  readonly #listeners = new Set<SnapshotListener>();
  readonly #onCounts: (urgent: boolean) => void;
  #lastSent = 0;
  #throttle: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(dispatcher: Dispatcher, timing: StreamTiming = DEFAULT_STREAM_TIMING) {
    this.#dispatcher = dispatcher;
    this.#timing = timing;
    this.#onCounts = (urgent) => this.#changed(urgent);
    dispatcher.on('counts', this.#onCounts);
  }

  get size(): number {
    return this.#listeners.size;
  }

  /** Adds a listener and sends it the current snapshot at once; returns the unsubscribe function. */
  subscribe(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    listener(this.#dispatcher.snapshot());
    this.#armHeartbeat();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#stopTimers();
    };
  }

  close(): void {
    this.#dispatcher.off('counts', this.#onCounts);
    this.#listeners.clear();
    this.#stopTimers();
  }

  #changed(urgent: boolean): void {
    if (this.#listeners.size === 0) return;
    const wait = this.#lastSent + this.#timing.throttleMs - Date.now();
    if (urgent || wait <= 0) {
      this.#broadcast();
      return;
    }
    this.#throttle ??= setTimeout(() => {
      this.#throttle = undefined;
      this.#broadcast();
    }, wait);
  }

  #broadcast(): void {
    clearTimeout(this.#throttle);
    this.#throttle = undefined;
    if (this.#listeners.size === 0) return;
    const snapshot = this.#dispatcher.snapshot();
    this.#lastSent = Date.now();
    for (const listener of this.#listeners) listener(snapshot);
    this.#armHeartbeat();
  }

  #armHeartbeat(): void {
    if (this.#heartbeat === undefined) {
      this.#heartbeat = setTimeout(() => {
        this.#heartbeat = undefined;
        this.#broadcast();
      }, this.#timing.heartbeatMs);
    } else {
      this.#heartbeat.refresh();
    }
  }

  #stopTimers(): void {
    clearTimeout(this.#throttle);
    clearTimeout(this.#heartbeat);
    this.#throttle = undefined;
    this.#heartbeat = undefined;
  }
}
