import { AfterlifeError } from '@afterlife/core';

/** Every code the gateway raises, with the HTTP status its sender gets. */
export type GatewayErrorCode =
  /** No function of that name is known (no Service; in `knative` discovery no Route). */
  | 'UNKNOWN_FUNCTION'
  /** The function's Route exists but sends no traffic to any revision yet (nothing was accepted). */
  | 'NO_ROUTABLE_REVISION'
  /** The revision an event was held for no longer exists; the router sends the event elsewhere. */
  | 'REVISION_GONE'
  /** The function already holds as many events as allowed. */
  | 'PENDING_LIMIT'
  /** No endpoint became ready within the cold-start timeout. */
  | 'COLD_START_TIMEOUT'
  /** The delivery failed after the event may have reached the function. */
  | 'DELIVERY_FAILED'
  /** The function did not answer within the delivery timeout. */
  | 'DELIVERY_TIMEOUT'
  /** The gateway is draining (or shut down before delivering). */
  | 'SHUTTING_DOWN'
  /** The sender disconnected while its event was held. */
  | 'SENDER_GONE'
  /** The request carries no valid CloudEvent. */
  | 'EVENT_INVALID'
  /** The request body is larger than the body limit. */
  | 'TOO_LARGE'
  /** The request body is compressed with an encoding the gateway cannot decode. */
  | 'UNSUPPORTED_ENCODING'
  /** The request could not be read: a path segment that is not percent-encoded UTF-8, a corrupt compressed body, an aborted upload. */
  | 'BAD_REQUEST'
  /** Transport: the request to the endpoint failed (the errno is in `cause`). */
  | 'TRANSPORT_FAILED'
  /** Transport: the delivery was aborted (timeout, shutdown). */
  | 'TRANSPORT_ABORTED'
  /** Transport: the connection closed before the whole reply arrived. */
  | 'REPLY_ABORTED';

const STATUS: Record<GatewayErrorCode, number> = {
  UNKNOWN_FUNCTION: 404,
  NO_ROUTABLE_REVISION: 503,
  REVISION_GONE: 503,
  PENDING_LIMIT: 503,
  COLD_START_TIMEOUT: 504,
  DELIVERY_FAILED: 502,
  DELIVERY_TIMEOUT: 504,
  SHUTTING_DOWN: 503,
  SENDER_GONE: 499,
  EVENT_INVALID: 400,
  TOO_LARGE: 413,
  UNSUPPORTED_ENCODING: 415,
  BAD_REQUEST: 400,
  TRANSPORT_FAILED: 502,
  TRANSPORT_ABORTED: 502,
  REPLY_ABORTED: 502,
};

const RETRYABLE: ReadonlySet<GatewayErrorCode> = new Set<GatewayErrorCode>([
  'PENDING_LIMIT',
  'COLD_START_TIMEOUT',
  'SHUTTING_DOWN',
  'NO_ROUTABLE_REVISION',
  'REVISION_GONE',
]);

/** Why an accepted (or refused) event did not reach the function, with the HTTP status its sender gets. */
export class GatewayError extends AfterlifeError<GatewayErrorCode> {
  readonly status: number;
  /** Worth retrying later (the answer carries `Retry-After`). */
  readonly retryable: boolean;

  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = STATUS[code];
    this.retryable = RETRYABLE.has(code);
  }
}

/** A delivery attempt failed; `safeToRetry` when the event cannot have reached the function (connection refused, or a reset of a reused keep-alive socket before any reply). */
export class TransportError extends GatewayError {
  readonly safeToRetry: boolean;

  constructor(
    code: 'TRANSPORT_FAILED' | 'TRANSPORT_ABORTED' | 'REPLY_ABORTED',
    message: string,
    safeToRetry: boolean,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.safeToRetry = safeToRetry;
  }
}
