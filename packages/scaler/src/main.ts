#!/usr/bin/env node
import { runMain } from '@afterlife/core';
import { loadConfig } from './config.ts';
import { startScaler } from './scaler.ts';

await runMain({
  component: 'scaler',
  loadConfig,
  logLevel: (config) => config.logLevel,
  start: async (config, logger) => {
    const scaler = await startScaler(config, { logger });
    return { stop: () => scaler.close() };
  },
});
