import { AfterlifeError } from '@afterlife/core';

/** Why an accepted (or refused) event did not reach the function, with the HTTP status its sender gets. */
export type GatewayErrorCode =
  | 'UNKNOWN_FUNCTION'
  | 'PENDING_LIMIT'
  | 'COLD_START_TIMEOUT'
  | 'DELIVERY_FAILED'
  | 'DELIVERY_TIMEOUT'
  | 'SHUTTING_DOWN'
  | 'SENDER_GONE';

const STATUS: Record<GatewayErrorCode, number> = {
  UNKNOWN_FUNCTION: 404,
  PENDING_LIMIT: 503,
  COLD_START_TIMEOUT: 504,
  DELIVERY_FAILED: 502,
  DELIVERY_TIMEOUT: 504,
  SHUTTING_DOWN: 503,
  SENDER_GONE: 499,
};

export class GatewayError extends AfterlifeError {
  declare readonly code: GatewayErrorCode;
  readonly status: number;
  /** Worth retrying later (the answer carries `Retry-After`). */
  readonly retryable: boolean;

  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = STATUS[code];
    this.retryable = code === 'PENDING_LIMIT' || code === 'COLD_START_TIMEOUT' || code === 'SHUTTING_DOWN';
  }
}

/** A delivery attempt failed; `safeToRetry` when the event cannot have reached the function (connection refused, or a reset of a reused keep-alive socket before any reply). */
export class TransportError extends AfterlifeError {
  readonly safeToRetry: boolean;

  constructor(code: string, message: string, safeToRetry: boolean, options?: { cause?: unknown }) {
    super(code, message, options);
    this.safeToRetry = safeToRetry;
  }
}
