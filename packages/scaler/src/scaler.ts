import { type AdminServer, type Logger, PooledKubeConfig, sendAnswer, startAdminServer } from '@afterlife/core';
import { Server, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { KubeConfig } from '@kubernetes/client-node';
import { CountsAggregator } from './aggregate.ts';
import type { ScalerConfig } from './config.ts';
import { endpointSliceDiscovery, type GatewayDiscovery, staticDiscovery } from './discovery.ts';
import { GatewayWatcher } from './gateways.ts';
import { ExternalScalerService } from './gen/externalscaler.ts';
import { HealthService } from './gen/grpc/health/v1/health.ts';
import { createHealth } from './health.ts';
import { createScalerMetrics, type ScalerMetrics } from './metrics.ts';
import { createExternalScaler } from './service.ts';
import { serverCredentials } from './tls.ts';

export interface StartScalerOptions {
  /** Needed for AFTERLIFE_SCALER_GATEWAY_SERVICE; defaults to the in-cluster / default kubeconfig. */
  kubeConfig?: KubeConfig;
  logger: Logger;
  /** Collect Node.js process metrics too (default true; tests and benches turn it off). */
  defaultMetrics?: boolean;
  /** More gRPC services on the same server and port (the bench adds an empty baseline handler). */
  extraServices?: readonly { definition: ServiceDefinition; implementation: UntypedServiceImplementation }[];
}

export interface RunningScaler {
  /** The gRPC port KEDA connects to. */
  readonly port: number;
  /** The HTTP port of /metrics, /healthz, /readyz. */
  readonly metricsPort: number;
  readonly aggregator: CountsAggregator;
  readonly metrics: ScalerMetrics;
  /** Gateway admin URLs currently followed. */
  gatewayUrls(): readonly string[];
  /** Ends streams, stops following gateways, closes both servers. */
  close(): Promise<void>;
}

/** Starts the gRPC external scaler, the gateway followers and the metrics/health HTTP server. */
export async function startScaler(config: Readonly<ScalerConfig>, options: StartScalerOptions): Promise<RunningScaler> {
  const { logger } = options;
  const aggregator = new CountsAggregator({ staleAfterMs: config.staleAfterMs });
  const watchers = new Map<string, GatewayWatcher>();
  const metrics = createScalerMetrics(
    () => {
      const gateways = aggregator.gateways();
      const fresh = gateways.filter((g) => g.fresh).length;
      let streaming = 0;
      for (const watcher of watchers.values()) if (watcher.streaming) streaming++;
      return { fresh, stale: watchers.size - fresh, streaming };
    },
    options.defaultMetrics === undefined ? {} : { defaultMetrics: options.defaultMetrics },
  );

  const scaler = createExternalScaler({ aggregator, streamIntervalMs: config.streamIntervalMs, logger, metrics });
  const health = createHealth(aggregator, Math.min(1000, Math.max(50, Math.floor(config.staleAfterMs / 4))));
  const server = new Server({ 'grpc.keepalive_permit_without_calls': 1 });
  server.addService(ExternalScalerService, scaler.implementation);
  server.addService(HealthService, health.implementation);
  for (const extra of options.extraServices ?? []) server.addService(extra.definition, extra.implementation);

  const onGateways = (urls: readonly string[]): void => {
    const wanted = new Set(urls);
    for (const [url, watcher] of watchers) {
      if (wanted.has(url)) continue;
      watchers.delete(url);
      void watcher.stop().then(() => aggregator.remove(url));
      logger.info({ gateway: url }, 'gateway removed');
    }
    for (const url of wanted) {
      if (watchers.has(url)) continue;
      const watcher = new GatewayWatcher({
        source: url,
        aggregator,
        pollIntervalMs: config.pollIntervalMs,
        heartbeatTimeoutMs: Math.min(config.staleAfterMs, 3000),
        logger,
        hooks: {
          onSnapshot: (_source, via, result) => metrics.snapshots.inc({ via, result }),
          onStream: (source, up) => logger.info({ gateway: source, up }, 'gateway counts stream'),
        },
      });
      watchers.set(url, watcher);
      watcher.start();
      logger.info({ gateway: url }, 'gateway added');
    }
  };

  let discovery: GatewayDiscovery;
  if (config.gatewayService !== undefined) {
    let kubeConfig = options.kubeConfig;
    if (kubeConfig === undefined) {
      kubeConfig = new PooledKubeConfig();
      kubeConfig.loadFromDefault();
    }
    discovery = endpointSliceDiscovery(kubeConfig, config.gatewayService, logger);
  } else {
    discovery = staticDiscovery(config.gatewayUrls);
  }

  let grpcPort: number;
  let ready = false;
  const probe = (ok: boolean) => ({
    ok,
    body: {
      status: ok ? 'ok' : 'starting',
      countsFresh: aggregator.freshGatewayCount() > 0,
      gateways: aggregator.gateways(),
    },
  });
  let admin: AdminServer | undefined;
  try {
    const credentials = await serverCredentials(config.tls);
    grpcPort = await new Promise<number>((resolve, reject) => {
      const address = config.host.includes(':') ? `[${config.host}]:${config.port}` : `${config.host}:${config.port}`;
      server.bindAsync(address, credentials, (error, port) => (error ? reject(error) : resolve(port)));
    });
    admin = await startAdminServer({
      host: config.host,
      port: config.metricsPort,
      healthz: () => probe(true),
      readyz: () => probe(ready),
      metrics: metrics.registry,
      routes: {
        '/v1/activations': (_req, res) =>
          sendAnswer(res, 200, { activations: scaler.activations() }, { 'cache-control': 'no-store' }),
      },
    });
    await discovery.start(onGateways);
  } catch (error) {
    health.close();
    server.forceShutdown();
    await admin?.close();
    await discovery.stop().catch(() => undefined);
    throw error;
  }
  ready = true;
  const adminServer = admin;
  const metricsPort = admin.port;
  logger.info(
    { port: grpcPort, metricsPort, tls: config.tls === undefined ? 'off' : config.tls.caFile ? 'mutual' : 'server' },
    'scaler listening',
  );

  let closing: Promise<void> | undefined;
  return {
    port: grpcPort,
    metricsPort,
    aggregator,
    metrics,
    gatewayUrls: () => [...watchers.keys()],
    close() {
      closing ??= (async () => {
        ready = false;
        health.shutdown();
        scaler.endStreams();
        await discovery.stop().catch(() => undefined);
        await Promise.all([...watchers.values()].map((w) => w.stop()));
        watchers.clear();
        health.close();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 2000);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        await adminServer.close();
        logger.info('scaler stopped');
      })();
      return closing;
    },
  };
}
