/**
 * Every error Afterlife raises on purpose carries a stable machine-readable `code` (for logs,
 * metrics and tests) and, where one exists, the `cause` that led to it.
 *
 * One scheme everywhere (as connect-es does it): each package declares a closed union of its
 * codes (`type GatewayErrorCode = 'UNKNOWN_FUNCTION' | …`, SUBJECT_CONDITION in upper snake case,
 * no package prefix) and one error class that takes only those (`class GatewayError extends
 * AfterlifeError<GatewayErrorCode>`); the class tells which package raised it.
 */
export class AfterlifeError<C extends string = string> extends Error {
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** The codes core itself raises. */
export type CoreErrorCode =
  /** A setting (env var or flag) could not be read. */
  | 'CONFIG_INVALID'
  /** A counts document from a gateway does not follow the contract. */
  | 'COUNTS_INVALID'
  /** A gateway's counts could not be fetched (unreachable, HTTP error). */
  | 'COUNTS_UNAVAILABLE'
  /** A command was called wrongly (unknown flag, bad value); commands exit 2. */
  | 'USAGE'
  /** An HTTP(S) probe got no answer in time or could not connect. */
  | 'PROBE_FAILED'
  /** An image reference does not follow the OCI / Docker reference grammar. */
  | 'IMAGE_REFERENCE_INVALID'
  /** Something watched for did not happen in time (a pod's IP, …). */
  | 'WAIT_TIMEOUT'
  /** A request to the API server failed or answered outside 2xx. */
  | 'KUBE_REQUEST_FAILED';

/** An error raised by core itself. */
export class CoreError extends AfterlifeError<CoreErrorCode> {}

/** A setting could not be read; `variable` names the env var (or flag) to fix. */
export class ConfigError extends CoreError {
  readonly variable: string;

  constructor(variable: string, message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', `${variable}: ${message}`, options);
    this.variable = variable;
  }
}

/** A command was called wrongly; `runCli` prints the message and exits 2. */
export class UsageError extends CoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE', message, options);
  }
}

/** Returns the message of anything thrown, without assuming it is an Error. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** True when `error` is an AfterlifeError with the given code. */
export function hasCode(error: unknown, code: string): boolean {
  return error instanceof AfterlifeError && error.code === code;
}
