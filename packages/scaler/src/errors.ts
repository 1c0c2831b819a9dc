import { AfterlifeError } from '@afterlife/core';

/** Every code the scaler raises. */
export type ScalerErrorCode =
  /** A ScaledObject's trigger metadata is unusable (answered INVALID_ARGUMENT). */
  | 'METADATA_INVALID'
  /** A TLS certificate, key or CA file could not be read. */
  | 'TLS_FILE_UNREADABLE'
  /** A gateway's counts stream could not be opened or went quiet. */
  | 'GATEWAY_STREAM_FAILED';

export class ScalerError extends AfterlifeError<ScalerErrorCode> {}
