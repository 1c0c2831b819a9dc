import { setTimeout as sleep } from 'node:timers/promises';
import {
  type CountsSnapshot,
  errorMessage,
  fetchCounts,
  hasCode,
  type Logger,
  parseCountsSnapshot,
} from '@afterlife/core';
import type { AcceptResult, CountsAggregator } from './aggregate.ts';
import { ScalerError } from './errors.ts';

export interface GatewayWatcherHooks {
  /** Every snapshot read (`invalid` when it failed validation). */
  onSnapshot?: (source: string, via: 'stream' | 'poll', result: AcceptResult | 'invalid') => void;
  /** The SSE stream of a gateway came up or went down. */
  onStream?: (source: string, up: boolean) => void;
}

export interface GatewayWatcherOptions {
  /** Admin base URL of one gateway replica, e.g. http://10.0.0.5:9090. */
  source: string;
  aggregator: CountsAggregator;
  pollIntervalMs: number;
  /** The stream is dropped and re-opened when no byte arrives for this long (gateways heartbeat every ≤1 s). */
  heartbeatTimeoutMs: number;
  logger: Logger;
  hooks?: GatewayWatcherHooks;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

/**
 * Follows one gateway: subscribes to `GET /v1/counts/stream` (Server-Sent Events, `event: counts`)
 * and re-connects with exponential backoff; while the stream is down it polls `GET /v1/counts`
 * every `pollIntervalMs`, so the counts never stop flowing for longer than a poll interval.
 */
export class GatewayWatcher {
  readonly source: string;
  readonly #options: GatewayWatcherOptions;
  readonly #stop = new AbortController();
  #streaming = false;
  #loops: Promise<unknown> | undefined;

  constructor(options: GatewayWatcherOptions) {
    this.source = options.source;
    this.#options = options;
  }

  get streaming(): boolean {
    return this.#streaming;
  }

  start(): void {
    if (this.#loops !== undefined) return;
    this.#loops = Promise.all([this.#streamLoop(), this.#pollLoop()]);
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loops;
    this.#setStreaming(false);
  }

  #setStreaming(up: boolean): void {
    if (this.#streaming === up) return;
    this.#streaming = up;
    this.#options.hooks?.onStream?.(this.source, up);
    this.#options.logger.debug({ gateway: this.source, up }, 'gateway counts stream');
  }

  #offer(snapshot: CountsSnapshot, via: 'stream' | 'poll'): void {
    const result: AcceptResult = this.#options.aggregator.accept(this.source, snapshot);
    this.#options.hooks?.onSnapshot?.(this.source, via, result);
  }

  #invalid(error: unknown, via: 'stream' | 'poll'): void {
    this.#options.logger.warn({ gateway: this.source, via, err: errorMessage(error) }, 'invalid counts from gateway');
    this.#options.hooks?.onSnapshot?.(this.source, via, 'invalid');
  }

  async #streamLoop(): Promise<void> {
    let backoff = BACKOFF_MIN_MS;
    while (!this.#stop.signal.aborted) {
      let connected = false;
      try {
        await this.#streamOnce(() => {
          connected = true;
          backoff = BACKOFF_MIN_MS;
        });
      } catch (error) {
        if (!this.#stop.signal.aborted) {
          this.#options.logger.debug({ gateway: this.source, err: errorMessage(error) }, 'counts stream failed');
        }
      }
      this.#setStreaming(false);
      if (this.#stop.signal.aborted) return;
      const delay = connected ? BACKOFF_MIN_MS : backoff;
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      await sleepUnlessAborted(delay * (0.75 + Math.random() * 0.5), this.#stop.signal);
    }
  }

  async #streamOnce(onConnected: () => void): Promise<void> {
    const attempt = new AbortController();
    const signal = AbortSignal.any([this.#stop.signal, attempt.signal]);
    let watchdog: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(watchdog);
      watchdog = setTimeout(
        () => attempt.abort(new ScalerError('GATEWAY_STREAM_FAILED', 'no heartbeat')),
        this.#options.heartbeatTimeoutMs,
      );
    };
    try {
      arm();
      const response = await fetch(`${this.source}/v1/counts/stream`, {
        signal,
        headers: { accept: 'text/event-stream' },
      });
      if (!response.ok || response.body === null) {
        throw new ScalerError('GATEWAY_STREAM_FAILED', `GET /v1/counts/stream answered ${response.status}`);
      }
      const parser = new SseParser((event, data) => {
        if (event !== 'counts') return;
        try {
          this.#offer(parseCountsSnapshot(JSON.parse(data)), 'stream');
        } catch (error) {
          this.#invalid(error, 'stream');
        }
        if (!this.#streaming) {
          onConnected();
          this.#setStreaming(true);
        }
      });
      const decoder = new TextDecoder();
      for await (const chunk of response.body) {
        arm();
        parser.push(decoder.decode(chunk as Uint8Array, { stream: true }));
      }
    } finally {
      clearTimeout(watchdog);
      attempt.abort();
    }
  }

  async #pollLoop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      if (!this.#streaming) {
        try {
          const snapshot = await fetchCounts(this.source, {
            signal: this.#stop.signal,
            timeoutMs: Math.max(1000, this.#options.pollIntervalMs * 2),
          });
          if (!this.#streaming) this.#offer(snapshot, 'poll');
        } catch (error) {
          if (hasCode(error, 'COUNTS_INVALID')) {
            if (!this.#streaming) this.#invalid(error, 'poll');
          } else if (!this.#stop.signal.aborted) {
            this.#options.logger.debug({ gateway: this.source, err: errorMessage(error) }, 'counts poll failed');
          }
        }
      }
      await sleepUnlessAborted(this.#options.pollIntervalMs, this.#stop.signal);
    }
  }
}

async function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    // aborted: the caller checks the signal
  }
}

/** A minimal text/event-stream parser (event + data fields; comments and ids ignored). */
export class SseParser {
  readonly #onEvent: (event: string, data: string) => void;
  #buffer = '';
  #event = '';
  #data: string[] = [];

  constructor(onEvent: (event: string, data: string) => void) {
    this.#onEvent = onEvent;
  }

  push(text: string): void {
    this.#buffer += text;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.#buffer);
      if (match === null) return;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (match[0] === '\r' && match.index === this.#buffer.length - 1) return;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      this.#line(line);
    }
  }

  #line(line: string): void {
    if (line === '') {
      if (this.#data.length > 0) this.#onEvent(this.#event === '' ? 'message' : this.#event, this.#data.join('\n'));
      this.#event = '';
      this.#data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') this.#data.push(value);
  }
}
