#!/usr/bin/env node
import { createLogger, errorMessage } from '@afterlife/core';
import { loadConfig } from './config.ts';
import { startScaler } from './scaler.ts';

const bootLogger = createLogger('scaler');
try {
  const config = loadConfig(process.env);
  const logger = createLogger('scaler', { level: config.logLevel });
  const scaler = await startScaler(config, { logger });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    scaler.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: errorMessage(error) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (error) {
  bootLogger.fatal({ err: errorMessage(error) }, 'scaler failed to start');
  process.exitCode = 1;
}
