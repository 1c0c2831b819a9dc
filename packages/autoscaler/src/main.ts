#!/usr/bin/env node
import { runMain } from '@afterlife/core';
import { startAutoscaler } from './autoscaler.ts';
import { loadConfig } from './config.ts';

await runMain({
  component: 'autoscaler',
  loadConfig,
  logLevel: (config) => config.logLevel,
  start: async (config, logger) => {
    const autoscaler = await startAutoscaler(config, { logger });
    return { stop: () => autoscaler.close() };
  },
});
