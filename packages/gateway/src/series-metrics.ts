import { Counter, type CounterConfiguration, type LabelValues, type Metric, type Registry } from 'prom-client';

/**
 * Metrics updated once or twice per event, with children bound to one function's labels that
 * count in plain numbers: prom-client's own children hash and validate their labels on every
 * `inc` / `observe`, a measurable share of the gateway's CPU per event. The registry reads the
 * numbers when `/metrics` is scraped; the exposition is the same as prom-client's.
 */

export interface CounterChild {
  inc(value?: number): void;
}

export interface HistogramChild {
  observe(value: number): void;
}

/** A prom-client `Counter` whose `child(labels)` counts in a plain number, added to the series at scrape time. */
export class BatchedCounter<T extends string> extends Counter<T> {
  readonly #children: { readonly labels: LabelValues<T>; pending: number }[] = [];

  constructor(config: Omit<CounterConfiguration<T>, 'collect'>) {
    super({
      ...config,
      // Called with the metric as `this` when the registry reads it.
      collect(this: Counter<T>) {
        (this as BatchedCounter<T>).#flush();
      },
    });
  }

  /** A child for these labels (one per function, kept for the gateway's life). */
  child(labels: LabelValues<T>): CounterChild {
    const child = { labels: { ...labels }, pending: 0 };
    this.#children.push(child);
    return {
      inc: (value = 1) => {
        child.pending += value;
      },
    };
  }

  #flush(): void {
    for (const child of this.#children) {
      if (child.pending === 0) continue;
      this.inc(child.labels, child.pending);
      child.pending = 0;
    }
  }
}

interface Series {
  readonly labels: Readonly<Record<string, string>>;
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  readonly counts: number[];
  sum: number;
  count: number;
}

/** What the registry reads from a metric (prom-client's `getForPromString` shape). */
interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
}

/**
 * A histogram with the `prom-client` exposition (`_bucket` with `le`, `_sum`, `_count`, series
 * appearing with their first observation) whose children add to plain arrays.
 */
export class BucketHistogram<T extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #labelNames: readonly T[];
  readonly #bounds: readonly number[];
  #series = new Map<string, Series>();

  constructor(config: {
    name: string;
    help: string;
    labelNames: readonly T[];
    buckets: readonly number[];
    registers: readonly Registry[];
  }) {
    this.name = config.name;
    this.help = config.help;
    this.#labelNames = config.labelNames;
    this.#bounds = [...config.buckets].sort((a, b) => a - b);
    // The registry only needs name, help, type and get()/getForPromString(); its types list prom-client's own classes.
    for (const registry of config.registers) registry.registerMetric(this as unknown as Metric<T>);
  }

  /** A child for these labels; the series is exported from its first observation on. */
  labels(labels: Readonly<Record<T, string>>): HistogramChild {
    const key = this.#labelNames.map((name) => labels[name]).join('\u0000');
    const bounds = this.#bounds;
    let series: Series | undefined;
    return {
      observe: (value: number) => {
        if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
        if (series === undefined) {
          const existing = this.#series.get(key);
          series = existing ?? {
            labels: { ...labels },
            counts: new Array<number>(bounds.length + 1).fill(0),
            sum: 0,
            count: 0,
          };
          if (existing === undefined) this.#series.set(key, series);
        }
        let bucket = 0;
        while (bucket < bounds.length && value > (bounds[bucket] as number)) bucket++;
        (series.counts[bucket] as number) += 1;
        series.sum += value;
        series.count += 1;
      },
    };
  }

  observe(labels: Readonly<Record<T, string>>, value: number): void {
    this.labels(labels).observe(value);
  }

  reset(): void {
    this.#series = new Map();
  }

  async getForPromString(): Promise<{
    name: string;
    help: string;
    type: string;
    values: ExportedValue[];
    aggregator: string;
  }> {
    const values: ExportedValue[] = [];
    for (const series of this.#series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((bound, index) => {
        cumulative += series.counts[index] as number;
        values.push({
          labels: { le: bound },
          sharedLabels: { ...series.labels },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      });
      values.push(
        {
          labels: { le: '+Inf' },
          sharedLabels: { ...series.labels },
          value: series.count,
          metricName: `${this.name}_bucket`,
        },
        { labels: {}, sharedLabels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** Like prom-client's `get()`: every value's labels merged. */
  async get() {
    const exported = await this.getForPromString();
    return {
      ...exported,
      values: exported.values.map(({ labels, sharedLabels, ...rest }) => ({
        ...rest,
        labels: { ...labels, ...sharedLabels },
      })),
    };
  }
}
