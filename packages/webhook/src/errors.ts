import { AfterlifeError } from '@afterlife/core';

/** Every code the webhook raises (logs, metrics and tests match on these). */
export type WebhookErrorCode =
  /** The HTTP body is not a JSON document (or could not be read). */
  | 'BODY_INVALID'
  /** The HTTP body is larger than `AFTERLIFE_WEBHOOK_BODY_LIMIT`. */
  | 'BODY_TOO_LARGE'
  /** The body is JSON but not an AdmissionReview v1 the webhook can answer. */
  | 'REVIEW_INVALID'
  /** The object opted in but cannot be made to run on Wasm: the admission is denied. */
  | 'ADMISSION_DENIED'
  /** The answer was not ready within the request timeout (image inspection hung). */
  | 'ADMISSION_TIMEOUT'
  /** TLS certificate or key could not be read or do not form a valid pair. */
  | 'TLS_INVALID'
  /** The registry could not be reached, timed out or answered with an error. */
  | 'REGISTRY_FAILED'
  /** The Knative ConfigMaps have not been read (yet). */
  | 'KNATIVE_NOT_SYNCED';

export class WebhookError extends AfterlifeError<WebhookErrorCode> {
  /** Short machine-friendly reason for logs and metrics (e.g. `runtimeclass-flag-disabled`). */
  readonly reason: string;
  /** The HTTP status when the answer cannot be an AdmissionReview (no uid to echo). */
  readonly httpStatus: number | undefined;

  constructor(
    code: WebhookErrorCode,
    message: string,
    options: { cause?: unknown; reason?: string; httpStatus?: number } = {},
  ) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = options.reason ?? code.toLowerCase().replaceAll('_', '-');
    this.httpStatus = options.httpStatus;
  }
}
