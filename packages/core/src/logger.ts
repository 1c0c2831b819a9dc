import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * The one structured logger: JSON lines on stdout (what Kubernetes log collectors expect),
 * with the component name on every line.
 */
export function createLogger(
  component: string,
  options: { level?: LogLevel; destination?: DestinationStream } = {},
): Logger {
  const logger = pino(
    {
      name: component,
      level: options.level ?? 'info',
      base: { component },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
  return logger;
}
