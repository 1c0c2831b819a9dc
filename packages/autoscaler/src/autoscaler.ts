import { type AdminServer, type Logger, PooledKubeConfig, startAdminServer } from '@afterlife/core';
import type { KubeConfig } from '@kubernetes/client-node';
import type { AutoscalerConfig } from './config.ts';
import { PodAutoscalerController } from './controller.ts';
import { LeaderElector } from './lease.ts';
import { createAutoscalerMetrics } from './metrics.ts';

export interface AutoscalerOptions {
  readonly logger: Logger;
  /** Default: in-cluster config, else `$KUBECONFIG`/`~/.kube/config`. */
  readonly kubeConfig?: KubeConfig;
  /** Collect Node.js process metrics (default true; tests turn it off). */
  readonly defaultMetrics?: boolean;
}

export interface Autoscaler {
  readonly adminPort: number;
  readonly controller: PodAutoscalerController;
  readonly elector: LeaderElector;
  /** Releases the Lease, stops reconciling and the informers, closes the admin server. */
  close(): Promise<void>;
}

/** Starts the admin server, the informers and the leader election; reconciles while leading. */
export async function startAutoscaler(config: AutoscalerConfig, options: AutoscalerOptions): Promise<Autoscaler> {
  const { logger } = options;
  const kubeConfig = options.kubeConfig ?? defaultKubeConfig();
  let controller: PodAutoscalerController | undefined;
  let elector: LeaderElector | undefined;
  const metrics = createAutoscalerMetrics(
    () => ({
      leading: elector?.leading ?? false,
      queueDepth: controller?.queueDepth ?? 0,
      podAutoscalers: controller?.owned ?? 0,
    }),
    options.defaultMetrics === undefined ? {} : { defaultMetrics: options.defaultMetrics },
  );
  controller = new PodAutoscalerController({ kubeConfig, config, logger, metrics });
  const active = controller;
  elector = new LeaderElector(kubeConfig, config.lease, logger, {
    onStartedLeading: () => active.setLeading(true),
    onStoppedLeading: () => active.setLeading(false),
  });
  const admin: AdminServer = await startAdminServer({
    host: config.host,
    port: config.adminPort,
    healthz: () => ({ ok: true, body: 'ok' }),
    // Followers are ready too: they hold warm caches and take over the moment the Lease frees.
    readyz: () => ({
      ok: active.synced,
      body: { synced: active.synced, leading: elector?.leading ?? false },
    }),
    metrics: metrics.registry,
  });
  const startup = active.start();
  elector.start();
  await startup;
  logger.info({ class: config.class, adminPort: admin.port, scaler: config.scalerAddress }, 'autoscaler started');
  const running = elector;
  return {
    adminPort: admin.port,
    controller: active,
    elector: running,
    async close() {
      await running.stop();
      await active.stop();
      await admin.close();
    },
  };
}

function defaultKubeConfig(): KubeConfig {
  const kubeConfig = new PooledKubeConfig();
  kubeConfig.loadFromDefault();
  return kubeConfig;
}
