#!/usr/bin/env node
import { runMain } from '@afterlife/core';
import { KubeConfig } from '@kubernetes/client-node';
import { loadConfig } from './config.ts';
import { startGateway } from './server.ts';

await runMain({
  component: 'gateway',
  loadConfig,
  logLevel: (config) => config.logLevel,
  start: async (config, logger) => {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromDefault();
    const gateway = await startGateway(config, { kubeConfig, logger });
    return { stop: () => gateway.close() };
  },
});
