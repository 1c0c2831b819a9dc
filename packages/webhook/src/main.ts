#!/usr/bin/env node
import { createLogger, createMetricsRegistry, errorMessage } from '@afterlife/core';
import { KubeConfig } from '@kubernetes/client-node';
import { loadConfig } from './config.ts';
import { runtimeClassFieldAllowed } from './features.ts';
import { RegistryImageInspector } from './image.ts';
import { createWebhookMetrics } from './metrics.ts';
import { startWebhookServer } from './server.ts';
import { KnativeConfigWatcher, NamespaceLabelWatcher } from './watch.ts';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    createLogger('webhook').fatal({ err: errorMessage(error) }, 'invalid configuration');
    process.exitCode = 2;
    return;
  }
  const logger = createLogger('webhook', { level: config.logLevel });
  const registry = createMetricsRegistry('webhook');
  const metrics = createWebhookMetrics(registry);

  const kubeConfig = new KubeConfig();
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

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await Promise.allSettled([server.close(config.shutdownTimeoutMs), knative.stop(), namespaces?.stop()]);
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  createLogger('webhook').fatal({ err: errorMessage(error) }, 'webhook failed to start');
  process.exitCode = 1;
});
