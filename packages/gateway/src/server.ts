import { createServer } from 'node:http';
import { type AdminServer, closeServer, createLogger, type Logger, listen, startAdminServer } from '@afterlife/core';
import type { KubeConfig } from '@kubernetes/client-node';
import type { GatewayConfig } from './config.ts';
import { Dispatcher } from './dispatcher.ts';
import { EndpointTable } from './endpoints.ts';
import { createAdminRoutes, createEventsHandler } from './http.ts';
import { KnativeRouteWatcher } from './knative.ts';
import { KubeEndpointWatcher } from './kube.ts';
import { GatewayMetrics } from './metrics.ts';
import { KnativeRouter, type RandomSource, RouteTable } from './routes.ts';
import { CountsBroadcaster, DEFAULT_STREAM_TIMING, type StreamTiming } from './stream.ts';
import { HttpTransport, type Transport } from './transport.ts';

export interface StartOptions {
  /**
   * Watch the cluster with this config (Routes and EndpointSlices, or Services and EndpointSlices,
   * by discovery mode); without it only `gateway.routes` and `gateway.endpoints` (programmatic) feed it.
   */
  readonly kubeConfig?: KubeConfig;
  readonly logger?: Logger;
  /** Replace the HTTP delivery (rarely needed). */
  readonly transport?: Transport;
  readonly streamTiming?: StreamTiming;
  /** Register Node.js process metrics (default true). */
  readonly defaultMetrics?: boolean;
  /** Picks among a Route's revisions (discovery `knative`); default `Math.random`. */
  readonly random?: RandomSource;
}

export interface Gateway {
  readonly eventsPort: number;
  readonly adminPort: number;
  /**
   * Known functions (discovery `knative`: revisions) and their ready endpoints; set entries
   * yourself when running without a cluster.
   */
  readonly endpoints: EndpointTable;
  /** Discovery `knative`: the functions (Knative Services) and their Routes' traffic; set routes yourself without a cluster. */
  readonly routes: RouteTable;
  readonly dispatcher: Dispatcher;
  readonly metrics: GatewayMetrics;
  /**
   * Graceful shutdown: stop accepting, drain held and in-flight events (bounded by the drain
   * timeout; remaining senders get 503), stop watching, close both servers. Idempotent.
   */
  close(): Promise<void>;
}

/** Starts a gateway in this process (what `main.ts`, the scaler's e2e test and the demo use). */
export async function startGateway(config: Readonly<GatewayConfig>, options: StartOptions = {}): Promise<Gateway> {
  const logger = options.logger ?? createLogger('gateway', { level: config.logLevel });
  const endpoints = new EndpointTable();
  const routes = new RouteTable();
  const metrics = new GatewayMetrics(
    options.defaultMetrics === undefined ? {} : { defaultMetrics: options.defaultMetrics },
  );
  const transport = options.transport ?? new HttpTransport();
  const dispatcher = new Dispatcher({
    table: endpoints,
    transport,
    metrics,
    logger,
    options: {
      gatewayId: config.id,
      pendingLimit: config.pendingLimit,
      coldStartTimeoutMs: config.coldStartTimeoutMs,
      replicaConcurrency: config.replicaConcurrency,
      rateWindowMs: config.rateWindowMs,
      deliveryTimeoutMs: config.deliveryTimeoutMs,
      ejectMs: config.ejectMs,
    },
  });
  const router =
    config.discovery === 'knative'
      ? new KnativeRouter({
          routes,
          endpoints,
          dispatcher,
          metrics,
          logger,
          ...(options.random === undefined ? {} : { random: options.random }),
        })
      : undefined;
  const broadcaster = new CountsBroadcaster(dispatcher, options.streamTiming ?? DEFAULT_STREAM_TIMING);
  const kubeConfig = options.kubeConfig;
  const watcher =
    kubeConfig === undefined
      ? undefined
      : config.discovery === 'knative'
        ? new KnativeRouteWatcher({
            kubeConfig,
            routes,
            endpoints,
            routeSelector: config.serviceSelector,
            namespaces: config.namespaces,
            logger,
            probeNotReady: config.probeNotReady,
          })
        : new KubeEndpointWatcher({ kubeConfig, table: endpoints, discovery: config, logger });

  const eventsServer = createServer(
    createEventsHandler({
      dispatcher,
      ...(router === undefined ? {} : { router }),
      metrics,
      logger,
      bodyLimitBytes: config.bodyLimitBytes,
      retryAfterSeconds: config.retryAfterSeconds,
    }),
  );
  const adminRoutes = createAdminRoutes({
    dispatcher,
    broadcaster,
    metrics,
    ready: () => watcher === undefined || watcher.synced,
  });
  let admin: AdminServer | undefined;
  let eventsPort: number;
  try {
    admin = await startAdminServer({ host: config.host, port: config.adminPort, ...adminRoutes });
    await watcher?.start();
    eventsPort = await listen(eventsServer, config.port, config.host);
  } catch (error) {
    await watcher?.stop();
    router?.close();
    broadcaster.close();
    dispatcher.close();
    transport.close();
    await closeServer(eventsServer, 0);
    await admin?.close();
    throw error;
  }
  const adminServer = admin;
  const adminPort = admin.port;
  logger.info({ eventsPort, adminPort, id: config.id, discovery: config.discovery }, 'gateway listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      logger.info({ outstanding: dispatcher.outstanding() }, 'shutting down: draining events');
      eventsServer.close();
      const { drained, abandoned } = await dispatcher.drain(config.drainTimeoutMs);
      if (drained) logger.info('all events delivered');
      else logger.warn({ abandoned }, 'drain timeout: remaining senders got 503');
      await closeServer(eventsServer, 1000);
      await watcher?.stop();
      router?.close();
      transport.close();
      broadcaster.close();
      await adminServer.close();
      logger.info('gateway stopped');
    })();
    return closing;
  };
  return { eventsPort, adminPort, endpoints, routes, dispatcher, metrics, close };
}
