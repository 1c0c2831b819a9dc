import { AfterlifeError } from '@afterlife/core';

/** Stable codes for the errors the webhook raises on purpose (logs, metrics, tests match on these). */
export const WEBHOOK_ERROR_CODES = {
  /** The HTTP body is not JSON. */
  badBody: 'WEBHOOK_BAD_BODY',
  /** The body is JSON but not an AdmissionReview v1 the webhook can answer. */
  badReview: 'WEBHOOK_BAD_REVIEW',
  /** TLS certificate or key could not be read or do not form a valid pair. */
  tls: 'WEBHOOK_TLS',
  /** An image reference could not be parsed. */
  imageReference: 'WEBHOOK_IMAGE_REFERENCE',
  /** The registry could not be reached, timed out or answered with an error. */
  registry: 'WEBHOOK_REGISTRY',
  /** The Knative ConfigMaps could not be read or parsed. */
  knativeConfig: 'WEBHOOK_KNATIVE_CONFIG',
} as const;

export type WebhookErrorCode = (typeof WEBHOOK_ERROR_CODES)[keyof typeof WEBHOOK_ERROR_CODES];

export class WebhookError extends AfterlifeError {
  declare readonly code: WebhookErrorCode;

  constructor(code: WebhookErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
