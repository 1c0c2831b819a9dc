#!/usr/bin/env node
import { createLogger, errorMessage } from '@afterlife/core';
import { KubeConfig } from '@kubernetes/client-node';
import { loadConfig } from './config.ts';
import { startWasmNode } from './node-agent.ts';

/** `afterlife-wasm-node`: registers this machine as a Wasm node of the cluster and runs its pods. */
const bootLogger = createLogger('wasm-node');
try {
  const config = loadConfig(process.env);
  const logger = createLogger('wasm-node', { level: config.logLevel });
  const kubeConfig = new KubeConfig();
  if (config.kubeconfig !== '') kubeConfig.loadFromFile(config.kubeconfig);
  else kubeConfig.loadFromDefault();
  const node = await startWasmNode({ kubeConfig, config, logger });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    node
      .close()
      .catch((error: unknown) => logger.error({ err: errorMessage(error) }, 'shutdown failed'))
      .finally(() => {
        logger.flush();
        process.exit(0);
      });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
} catch (error) {
  bootLogger.fatal({ err: errorMessage(error) }, 'wasm-node failed to start');
  bootLogger.flush();
  process.exitCode = 1;
}
