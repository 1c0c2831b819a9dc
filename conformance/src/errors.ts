import { AfterlifeError } from '@afterlife/core';

/** Every code the conformance suite raises itself (usage errors are core's `UsageError`). */
export type ConformanceErrorCode =
  /** Ctrl-C (or SIGTERM) ended the run. */
  | 'CANCELLED'
  /** A bounded wait ran out; the message has the last state seen. */
  | 'WAIT_TIMEOUT'
  /** A scenario found the cluster not doing what it must. */
  | 'SCENARIO_FAILED'
  /** A TCP check got no connection in time. */
  | 'CONNECT_TIMEOUT';

export class ConformanceError extends AfterlifeError<ConformanceErrorCode> {}
