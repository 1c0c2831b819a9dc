import { AfterlifeError } from '@afterlife/core';

/** Every code the autoscaler raises. */
export type AutoscalerErrorCode =
  /** A revision's scaling annotations are unusable (reported on its PodAutoscaler, never retried). */
  | 'ANNOTATIONS_INVALID'
  /** An object the autoscaler must own (SKS, ScaledObject) exists and is controlled by someone else. */
  | 'RESOURCE_NOT_OWNED'
  /** A Kubernetes API call failed (retried with backoff). */
  | 'KUBE_REQUEST_FAILED'
  /** The leader Lease could not be read, created or renewed. */
  | 'LEASE_FAILED';

export class AutoscalerError extends AfterlifeError<AutoscalerErrorCode> {}
