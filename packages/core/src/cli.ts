import { type ParseArgsConfig, parseArgs } from 'node:util';
import { AfterlifeError, errorMessage, UsageError } from './errors.ts';

/** Exit codes of every Afterlife command. */
export const CLI_EXIT_CODES = Object.freeze({
  ok: 0,
  /** A check, scenario or step failed (or the command failed unexpectedly). */
  failure: 1,
  /** Bad usage: an unknown flag, a bad value, a missing argument. */
  usage: 2,
});

/** True for the errors that mean "called wrongly" (`UsageError`, node's `parseArgs` errors). */
export function isUsageError(error: unknown): boolean {
  if (error instanceof AfterlifeError) return error.code === 'USAGE';
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}

/** `node:util` `parseArgs` (strict unless told otherwise), with its errors turned into `UsageError`s. */
export function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    if (isUsageError(error)) throw new UsageError(errorMessage(error), { cause: error });
    throw error;
  }
}

export interface CliOptions {
  /** Prefix of the error line on stderr (`afterlife: …`). */
  readonly name: string;
  /** Arguments after the command name (default `process.argv.slice(2)`). */
  readonly argv?: readonly string[];
  /**
   * Once `main` has returned and stdout and stderr are written, exit after this long even if
   * sockets or watches are still open (default 500 ms; the exit code is already set).
   */
  readonly exitAfterMs?: number;
}

/**
 * The one scaffold of Afterlife's commands: runs `main(argv)` and exits with the code it returns;
 * a usage error prints `<name>: <message>` and exits 2, any other error prints it and exits 1.
 */
export async function runCli(main: (argv: string[]) => Promise<number>, options: CliOptions): Promise<void> {
  const argv = [...(options.argv ?? process.argv.slice(2))];
  let code: number;
  try {
    code = await main(argv);
  } catch (error) {
    process.stderr.write(`${options.name}: ${errorMessage(error)}\n`);
    code = isUsageError(error) ? CLI_EXIT_CODES.usage : CLI_EXIT_CODES.failure;
  }
  process.exitCode = code;
  // A pipe takes stdout asynchronously: all of it must be taken before a forced exit (a large
  // `-o json` piped to another program was cut off at the exit).
  await Promise.all([process.stdout, process.stderr].map((stream) => new Promise((done) => stream.write('', done))));
  // Keep-alive sockets and watches of API clients must not hold the process open.
  setTimeout(() => process.exit(code), options.exitAfterMs ?? 500).unref();
}
