#!/usr/bin/env node
import {
  createMetricsRegistry,
  errorMessage,
  PooledKubeConfig,
  runMain,
  runtimeClassFieldAllowed,
} from '@afterlife/core';
import { loadConfig } from './config.ts';
import { RegistryImageInspector } from './image.ts';
import { createWebhookMetrics } from './metrics.ts';
import { startWebhookServer } from './server.ts';
import { KnativeConfigWatcher, NamespaceLabelWatcher } from './watch.ts';

await runMain({
  component: 'webhook',
  loadConfig,
  logLevel: (config) => config.logLevel,
  start: async (config, logger) => {
    const registry = createMetricsRegistry('webhook');
    const metrics = createWebhookMetrics(registry);
    const kubeConfig = new PooledKubeConfig();
    kubeConfig.loadFromDefault();
    const knative = new KnativeConfigWatcher(kubeConfig, config.knativeNamespace, logger);
    knative.onChange((features) => metrics.runtimeClassFlag.set(runtimeClassFieldAllowed(features) ? 1 : 0));
    const namespaces = config.watchNamespaces ? new NamespaceLabelWatcher(kubeConfig, logger) : undefined;
    const imageInspector = config.imageDetection
      ? new RegistryImageInspector({
          timeoutMs: config.imageTimeoutMs,
          insecureRegistries: config.insecureRegistries,
          cacheSize: config.imageCacheSize,
          cacheTtlMs: config.imageCacheTtlMs,
          onResult: (result, image, error) => {
            metrics.imageInspections.inc({ result });
            if (error !== undefined) logger.warn({ image, err: errorMessage(error) }, 'image inspection failed');
          },
        })
      : undefined;

    const server = await startWebhookServer({
      config,
      features: () => knative.features,
      ready: () => knative.synced,
      ...(namespaces === undefined ? {} : { namespaceLabels: (ns: string) => namespaces.labels(ns) }),
      ...(imageInspector === undefined ? {} : { imageInspector }),
      logger,
      metrics,
      registry,
    });
    // Serve /healthz at once; /readyz turns 200 when the ConfigMaps are read.
    void knative.start();
    void namespaces?.start();
    return {
      stop: async () => {
        await Promise.allSettled([server.close(config.shutdownTimeoutMs), knative.stop(), namespaces?.stop()]);
      },
    };
  },
});
