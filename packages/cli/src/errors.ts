import { AfterlifeError } from '@afterlife/core';

/** Every code the `afterlife` command raises itself (usage errors are core's `UsageError`). */
export type CliErrorCode =
  /** A step of the demo did not do what it must (the message says which). */
  'DEMO_FAILED';

export class CliError extends AfterlifeError<CliErrorCode> {}
