export { type Environment, EnvReader, freezeConfig, parseDuration } from './config.ts';
export {
  type CountsSnapshot,
  type FunctionCounts,
  functionKey,
  parseCountsSnapshot,
} from './counts.ts';
export { AfterlifeError, ConfigError, errorMessage, hasCode } from './errors.ts';
export { createLogger, LOG_LEVELS, type Logger, type LogLevel } from './logger.ts';
export { createMetricsRegistry, LATENCY_BUCKETS_SECONDS } from './metrics.ts';
