import { createServer } from 'node:http';
import { type AdminServer, closeServer, createLogger, type Logger, listen, startAdminServer } from '@afterlife/core';
import type { KubeConfig } from '@kubernetes/client-node';
import type { GatewayConfig } from './config.ts';
import { Dispatcher } from './dispatcher.ts';
import { EndpointTable } from './endpoints.ts';
import { createAdminRoutes, createEventsApp } from './http.ts';
import { KubeEndpointWatcher } from './kube.ts';
import { GatewayMetrics } from './metrics.ts';
import { CountsBroadcaster, DEFAULT_STREAM_TIMING, type StreamTiming } from './stream.ts';
import { HttpTransport, type Transport } from './transport.ts';

export interface StartOptions {
  /** Watch EndpointSlices with this config; without it, only `gateway.endpoints` (programmatic) feeds endpoints. */
  readonly kubeConfig?: KubeConfig;
  readonly logger?: Logger;
  /** Replace the HTTP delivery (rarely needed). */
  readonly transport?: Transport;
  readonly streamTiming?: StreamTiming;
  /** Register Node.js process metrics (default true). */
  readonly defaultMetrics?: boolean;
}

export interface Gateway {
  readonly eventsPort: number;
  readonly adminPort: number;
  /** Known functions and their ready endpoints; set entries yourself when running without a cluster. */
  readonly endpoints: EndpointTable;
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
  const broadcaster = new CountsBroadcaster(dispatcher, options.streamTiming ?? DEFAULT_STREAM_TIMING);
  const watcher =
    options.kubeConfig === undefined
      ? undefined
      : new KubeEndpointWatcher({ kubeConfig: options.kubeConfig, table: endpoints, discovery: config, logger });

  const eventsServer = createServer(
    createEventsApp({
      dispatcher,
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
      transport.close();
      broadcaster.close();
      await adminServer.close();
      logger.info('gateway stopped');
    })();
    return closing;
  };
  return { eventsPort, adminPort, endpoints, dispatcher, metrics, close };
}
