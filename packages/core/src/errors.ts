/**
 * Every error Afterlife raises on purpose carries a stable machine-readable `code`
 * (for logs, metrics and tests) and, where one exists, the `cause` that led to it.
 */
export class AfterlifeError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** A setting could not be read; `variable` names the env var (or flag) to fix. */
export class ConfigError extends AfterlifeError {
  readonly variable: string;

  constructor(variable: string, message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', `${variable}: ${message}`, options);
    this.variable = variable;
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
