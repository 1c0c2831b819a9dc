#!/usr/bin/env node
import { createLogger, errorMessage } from '@afterlife/core';
import { KubeConfig } from '@kubernetes/client-node';
import { loadConfig } from './config.ts';
import { startGateway } from './server.ts';

const bootLogger = createLogger('gateway');
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (error) {
  bootLogger.fatal({ err: errorMessage(error) }, 'invalid configuration');
  process.exit(2);
}
const logger = createLogger('gateway', { level: config.logLevel });
/** Exits once the last log lines are written (or after 1 s at most). */
function exit(code: number): void {
  setTimeout(() => process.exit(code), 1000).unref();
  logger.flush(() => process.exit(code));
}

const kubeConfig = new KubeConfig();
kubeConfig.loadFromDefault();

try {
  const gateway = await startGateway(config, { kubeConfig, logger });
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ signal }, 'signal received');
    gateway.close().then(
      () => exit(0),
      (error: unknown) => {
        logger.error({ err: errorMessage(error) }, 'shutdown failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} catch (error) {
  logger.fatal({ err: errorMessage(error) }, 'gateway failed to start');
  process.exit(1);
}
