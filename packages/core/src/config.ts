import { ConfigError } from './errors.ts';

/** Where settings come from; `process.env` in production, a plain object in tests. */
export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Reads typed settings from an environment. Each reader names the variable in its error,
 * so a bad deployment says exactly which env var to fix. Build a config with these once at
 * start-up and freeze it (see `freezeConfig`).
 */
export class EnvReader {
  readonly #env: Environment;
  readonly #seen = new Set<string>();

  constructor(env: Environment) {
    this.#env = env;
  }

  /** Every variable name looked up so far (set or not), sorted. */
  get variablesRead(): readonly string[] {
    return [...this.#seen].sort();
  }

  #raw(name: string): string | undefined {
    this.#seen.add(name);
    const value = this.#env[name];
    if (value === undefined) return undefined;
    const trimmed = value.trim();
    return trimmed === '' ? undefined : trimmed;
  }

  string(name: string, fallback: string): string;
  string(name: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    return this.#raw(name) ?? fallback;
  }

  requiredString(name: string): string {
    const value = this.#raw(name);
    if (value === undefined) throw new ConfigError(name, 'is required but not set');
    return value;
  }

  integer(name: string, fallback: number, bounds: { min?: number; max?: number } = {}): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
    const value = Number(raw);
    checkBounds(name, value, bounds);
    return value;
  }

  number(name: string, fallback: number, bounds: { min?: number; max?: number } = {}): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new ConfigError(name, `must be a number, got "${raw}"`);
    checkBounds(name, value, bounds);
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    switch (raw.toLowerCase()) {
      case 'true':
      case '1':
      case 'yes':
        return true;
      case 'false':
      case '0':
      case 'no':
        return false;
      default:
        throw new ConfigError(name, `must be true or false, got "${raw}"`);
    }
  }

  /** A duration such as `250ms`, `30s`, `5m` or a bare number of milliseconds; returns ms. */
  duration(name: string, fallbackMs: number, bounds: { min?: number; max?: number } = {}): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallbackMs;
    const ms = parseDuration(raw);
    if (ms === undefined) throw new ConfigError(name, `must be a duration like 500ms, 30s or 5m, got "${raw}"`);
    checkBounds(name, ms, bounds);
    return ms;
  }

  /**
   * A size in bytes: a plain byte count, decimal `kb`/`mb`/`gb` (1000ⁿ) or binary `kib`/`mib`/`gib`
   * (1024ⁿ), any case, e.g. `512kb`, `4mib`, `1048576`.
   */
  size(name: string, fallback: string, bounds: { min?: number; max?: number } = {}): number {
    const raw = this.#raw(name) ?? fallback;
    const bytes = parseSize(raw);
    if (bytes === undefined) {
      throw new ConfigError(name, `must be a size like 512kb, 4mib or 1048576 (${SIZE_UNITS_TEXT}), got "${raw}"`);
    }
    if (bounds.min !== undefined && bytes < bounds.min) {
      throw new ConfigError(name, `must be at least ${formatSize(bounds.min)}, got "${raw}" (${bytes} bytes)`);
    }
    if (bounds.max !== undefined && bytes > bounds.max) {
      throw new ConfigError(name, `must be at most ${formatSize(bounds.max)}, got "${raw}" (${bytes} bytes)`);
    }
    return bytes;
  }

  oneOf<const T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`);
    }
    return raw as T;
  }

  /** A comma-separated list; empty items are dropped. */
  list(name: string, fallback: readonly string[] = []): readonly string[] {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    return raw
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `250ms`, `1.5s`, `5m`, `1h` or a bare millisecond count; undefined when invalid. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = match[2] ?? 'ms';
  return Math.round(amount * (UNIT_MS[unit] ?? 1));
}

const SIZE = /^(\d+)\s*(b|kb|mb|gb|kib|mib|gib)?$/i;
const SIZE_UNIT_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};
const SIZE_UNITS_TEXT = 'kb/mb/gb = 1000ⁿ bytes, kib/mib/gib = 1024ⁿ bytes';

/**
 * Parses a size into bytes: a plain byte count, decimal `kb`/`mb`/`gb` (1000ⁿ) or binary
 * `kib`/`mib`/`gib` (1024ⁿ), any case, optionally with a space before the unit. Whole numbers
 * only; undefined when invalid.
 */
export function parseSize(text: string): number | undefined {
  const match = SIZE.exec(text.trim());
  if (!match) return undefined;
  const bytes = Number(match[1]) * (SIZE_UNIT_BYTES[(match[2] ?? 'b').toLowerCase()] ?? 1);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** The shortest exact spelling of a byte count (`4mib`, `1kb`, `1500`). */
export function formatSize(bytes: number): string {
  for (const unit of ['gib', 'gb', 'mib', 'mb', 'kib', 'kb'] as const) {
    const factor = SIZE_UNIT_BYTES[unit] ?? 1;
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

function checkBounds(name: string, value: number, { min, max }: { min?: number; max?: number }): void {
  if (min !== undefined && value < min) throw new ConfigError(name, `must be at least ${min}, got ${value}`);
  if (max !== undefined && value > max) throw new ConfigError(name, `must be at most ${max}, got ${value}`);
}

/** Deep-freezes a parsed config so nothing can change it after start-up. */
export function freezeConfig<T extends object>(config: T): Readonly<T> {
  for (const value of Object.values(config)) {
    if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) freezeConfig(value as object);
  }
  return Object.freeze(config);
}
