import type { Environment } from './config.ts';
import { ConfigError, errorMessage } from './errors.ts';
import { createLogger, type Logger, type LogLevel } from './logger.ts';

/** What a component's `start` returns: the running thing `runMain` stops on SIGTERM/SIGINT. */
export interface Stoppable {
  /** Drains and stops (the component's graceful shutdown). */
  stop(): Promise<void>;
}

export interface MainOptions<C> {
  /** Logger name and `component` field of every line. */
  readonly component: string;
  /** Reads the settings once; throws `ConfigError` naming the variable to fix. */
  readonly loadConfig: (env: Environment) => C;
  /** The log level the settings ask for. */
  readonly logLevel: (config: C) => LogLevel;
  /** Starts the component; throwing (or rejecting) is a start failure. */
  readonly start: (config: C, logger: Logger) => Promise<Stoppable>;
  /** Where settings come from (default `process.env`). */
  readonly env?: Environment;
  /** Longest wait for the last log lines before exiting anyway (default 1000 ms). */
  readonly flushTimeoutMs?: number;
}

/** Exit codes every Afterlife process uses. */
export const EXIT_CODES = Object.freeze({
  ok: 0,
  /** Start-up failed, shutdown failed, or a second signal cut the drain short. */
  failure: 1,
  /** The configuration is invalid (the log names the variable). */
  config: 2,
});

/** Writes what the logger still buffers, then exits (after `timeoutMs` at the most). */
export function exitAfterFlush(logger: Logger, code: number, timeoutMs = 1000): void {
  const exit = () => process.exit(code);
  setTimeout(exit, timeoutMs).unref();
  logger.flush(exit);
}

/**
 * The one process scaffold of the components' `main.ts`:
 * - a bad configuration logs `invalid configuration` with the variable and exits 2;
 * - a start failure logs `<component> failed to start` and exits 1;
 * - the first SIGTERM/SIGINT logs `shutting down` and calls `stop()` (the drain), then exits 0
 *   (1 when stopping failed); during start-up it exits 0 at once (nothing was accepted yet);
 *   a second signal exits 1 at once;
 * - every exit waits for the log lines to be written first.
 */
export async function runMain<C>(options: MainOptions<C>): Promise<void> {
  const flushTimeoutMs = options.flushTimeoutMs ?? 1000;
  let config: C;
  try {
    config = options.loadConfig(options.env ?? process.env);
  } catch (error) {
    const boot = createLogger(options.component);
    const variable = error instanceof ConfigError ? error.variable : undefined;
    boot.fatal({ err: errorMessage(error), ...(variable === undefined ? {} : { variable }) }, 'invalid configuration');
    exitAfterFlush(boot, EXIT_CODES.config, flushTimeoutMs);
    return;
  }
  const logger = createLogger(options.component, { level: options.logLevel(config) });

  let running: Stoppable | undefined;
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      exitAfterFlush(logger, EXIT_CODES.failure, flushTimeoutMs);
      return;
    }
    logger.info({ signal }, 'shutting down');
    const component = running;
    if (component === undefined) {
      // Still starting: nothing accepted yet, so nothing to drain.
      exitAfterFlush(logger, EXIT_CODES.ok, flushTimeoutMs);
      return;
    }
    component.stop().then(
      () => exitAfterFlush(logger, EXIT_CODES.ok, flushTimeoutMs),
      (error: unknown) => {
        logger.error({ err: errorMessage(error) }, 'shutdown failed');
        exitAfterFlush(logger, EXIT_CODES.failure, flushTimeoutMs);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    running = await options.start(config, logger);
  } catch (error) {
    logger.fatal({ err: errorMessage(error) }, `${options.component} failed to start`);
    exitAfterFlush(logger, EXIT_CODES.failure, flushTimeoutMs);
  }
}
