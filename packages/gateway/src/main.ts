#!/usr/bin/env node
import { PooledKubeConfig, runMain } from '@afterlife/core';
import { loadConfig } from './config.ts';
import { startGateway } from './server.ts';

await runMain({
  component: 'gateway',
  loadConfig,
  logLevel: (config) => config.logLevel,
  start: async (config, logger) => {
    const kubeConfig = new PooledKubeConfig();
    kubeConfig.loadFromDefault();
    const gateway = await startGateway(config, { kubeConfig, logger });
    return { stop: () => gateway.close() };
  },
});
