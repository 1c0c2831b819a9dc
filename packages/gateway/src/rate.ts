/** Counts events in one-second buckets over a sliding window of `windowSeconds`. */
export class RateWindow {
  readonly #counts: number[];
  readonly #seconds: number[];
  readonly #window: number;

  constructor(windowSeconds: number) {
    this.#window = Math.max(1, Math.floor(windowSeconds));
    this.#counts = new Array<number>(this.#window).fill(0);
    this.#seconds = new Array<number>(this.#window).fill(-1);
  }

  add(nowMs: number, count = 1): void {
    const second = Math.floor(nowMs / 1000);
    const slot = second % this.#window;
    if (this.#seconds[slot] !== second) {
      this.#seconds[slot] = second;
      this.#counts[slot] = 0;
    }
    this.#counts[slot] = (this.#counts[slot] ?? 0) + count;
  }

  /** Events per second over the last `windowSeconds` (the current, partial second included). */
  perSecond(nowMs: number): number {
    const second = Math.floor(nowMs / 1000);
    let total = 0;
    for (let slot = 0; slot < this.#window; slot++) {
      const at = this.#seconds[slot] ?? -1;
      if (at > second - this.#window && at <= second) total += this.#counts[slot] ?? 0;
    }
    return total / this.#window;
  }
}
