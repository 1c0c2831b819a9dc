import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { errorMessage, type Logger } from '@afterlife/core';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import { type AdmitContext, type AdmitResult, admit, type ImageInspector } from './admit.ts';
import type { MutationConfig, WebhookConfig } from './config.ts';
import type { KnativeFeatures } from './features.ts';
import type { WebhookMetrics } from './metrics.ts';
import { loadTlsMaterial, TlsFileWatcher } from './tls.ts';

/** Path for the objectSelector webhook (opt-in by the object's own label). */
export const MUTATE_PATH = '/mutate';
/** Path for the namespaceSelector webhook: the namespace carries `afterlife.dev/runtime: wasmedge`. */
export const MUTATE_NAMESPACE_PATH = '/mutate/namespace';

export type ServerConfig = MutationConfig &
  Pick<
    WebhookConfig,
    | 'bindAddress'
    | 'port'
    | 'tlsCertFile'
    | 'tlsKeyFile'
    | 'tlsReloadIntervalMs'
    | 'requestTimeoutMs'
    | 'keepAliveTimeoutMs'
    | 'bodyLimitBytes'
  >;

export interface WebhookAppOptions {
  readonly config: Readonly<ServerConfig>;
  /** The current Knative features snapshot. */
  readonly features: () => KnativeFeatures;
  /** True when admissions can be answered (Knative ConfigMaps read). */
  readonly ready: () => boolean;
  readonly namespaceLabels?: (namespace: string) => Readonly<Record<string, string>> | undefined;
  readonly imageInspector?: ImageInspector;
  readonly logger: Logger;
  readonly metrics: WebhookMetrics;
  readonly registry: Registry;
}

function uidOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const request = (body as { request?: unknown }).request;
  if (typeof request !== 'object' || request === null) return undefined;
  const uid = (request as { uid?: unknown }).uid;
  return typeof uid === 'string' && uid !== '' ? uid : undefined;
}

function labelsOf(body: unknown): { kind: string; operation: string } {
  const request = (body as { request?: { kind?: { kind?: unknown }; operation?: unknown } } | undefined)?.request;
  const kind = typeof request?.kind?.kind === 'string' ? request.kind.kind : 'unknown';
  const operation = typeof request?.operation === 'string' ? request.operation : 'unknown';
  return {
    kind: kind === 'Service' || kind === 'Configuration' ? kind : 'other',
    operation: ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'].includes(operation) ? operation : 'unknown',
  };
}

/** The express app: a thin adapter from HTTP to `admit()`. */
export function createWebhookApp(options: WebhookAppOptions): express.Express {
  const { config, logger, metrics, registry } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const raw = express.raw({ type: () => true, limit: config.bodyLimitBytes });
  const admitTimeoutMs = Math.max(50, config.requestTimeoutMs - 50);

  const handle = (namespaceOptIn: boolean) => async (req: Request, res: Response) => {
    const started = process.hrtime.bigint();
    const body: unknown = req.body;
    let review: unknown;
    try {
      if (!Buffer.isBuffer(body) || body.length === 0) throw new Error('empty body');
      review = JSON.parse(body.toString('utf8'));
    } catch (error) {
      metrics.rejectedRequests.inc({ reason: 'malformed-json' });
      logger.warn({ err: errorMessage(error) }, 'rejected a body that is not JSON');
      sendJson(res, 400, { error: `the body must be a JSON AdmissionReview: ${errorMessage(error)}` });
      return;
    }
    const context: AdmitContext = {
      config,
      features: options.features(),
      namespaceOptIn,
      ...(options.namespaceLabels === undefined ? {} : { namespaceLabels: options.namespaceLabels }),
      ...(options.imageInspector === undefined ? {} : { imageInspector: options.imageInspector }),
    };
    const { kind, operation } = labelsOf(review);
    let result: AdmitResult | 'timeout';
    let timer: NodeJS.Timeout | undefined;
    try {
      // Only image inspection can make admit() wait; without it there is nothing to time out.
      result =
        context.imageInspector === undefined
          ? await admit(review, context)
          : await Promise.race([
              admit(review, context),
              new Promise<'timeout'>((resolve) => {
                timer = setTimeout(() => resolve('timeout'), admitTimeoutMs);
              }),
            ]);
    } catch (error) {
      logger.error({ err: error }, 'admission failed unexpectedly');
      metrics.admissions.inc({ result: 'error', kind, operation });
      const uid = uidOf(review);
      if (uid === undefined) sendJson(res, 500, { error: 'internal error' });
      else
        sendJson(
          res,
          200,
          failure(uid, 500, 'InternalError', `afterlife webhook internal error: ${errorMessage(error)}`),
        );
      return;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (result === 'timeout') {
      metrics.admissions.inc({ result: 'timeout', kind, operation });
      metrics.admissionDuration.observe({ result: 'timeout' }, seconds);
      const uid = uidOf(review);
      logger.warn({ uid, kind, operation }, 'admission timed out');
      if (uid === undefined) sendJson(res, 503, { error: 'admission timed out' });
      else sendJson(res, 200, failure(uid, 504, 'Timeout', `afterlife webhook timed out after ${admitTimeoutMs} ms`));
      return;
    }
    metrics.admissions.inc({ result: result.outcome, kind, operation });
    metrics.admissionDuration.observe({ result: result.outcome }, seconds);
    if (result.httpStatus === 400) metrics.rejectedRequests.inc({ reason: result.reason });
    const level = result.outcome === 'skipped' || result.outcome === 'unchanged' ? 'debug' : 'info';
    if (logger.isLevelEnabled(level)) {
      const request = (review as { request?: Record<string, unknown> }).request;
      logger[level](
        {
          uid: uidOf(review),
          kind,
          operation,
          namespace: request?.namespace,
          name: request?.name,
          dryRun: request?.dryRun === true,
          outcome: result.outcome,
          reason: result.reason,
          patchOps: result.patch.length,
        },
        'admission',
      );
    }
    sendJson(res, result.httpStatus, result.body);
  };

  app.post(MUTATE_PATH, raw, handle(false));
  app.post(MUTATE_NAMESPACE_PATH, raw, handle(true));
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.get('/readyz', (_req, res) => {
    const ready = options.ready();
    metrics.ready.set(ready ? 1 : 0);
    res
      .status(ready ? 200 : 503)
      .type('text/plain')
      .send(ready ? 'ok' : 'not ready: Knative ConfigMaps not read yet');
  });
  app.get('/metrics', async (_req, res) => {
    metrics.ready.set(options.ready() ? 1 : 0);
    res.type(registry.contentType).send(await registry.metrics());
  });
  app.use((req, res) => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  });
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = error as { type?: string; status?: number; limit?: number; expose?: boolean };
    if (e.type === 'entity.too.large') {
      metrics.rejectedRequests.inc({ reason: 'too-large' });
      logger.warn({ limit: e.limit }, 'rejected a body over the limit');
      res
        .status(413)
        .json({ error: `request body larger than the limit of ${e.limit ?? config.bodyLimitBytes} bytes` });
      return;
    }
    if (e.type === 'request.aborted') return;
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      metrics.rejectedRequests.inc({ reason: e.type ?? 'bad-request' });
      res.status(e.status).json({ error: e.expose === true ? errorMessage(error) : 'bad request' });
      return;
    }
    logger.error({ err: error }, 'unhandled error');
    res.status(500).json({ error: 'internal error' });
  });
  return app;
}

/** Writes a JSON answer without express's send() machinery (this is the hot path). */
function sendJson(res: Response, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

function failure(uid: string, code: number, reason: string, message: string) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid, allowed: false, status: { status: 'Failure', code, reason, message } },
  };
}

export interface WebhookServer {
  readonly server: Server;
  readonly port: number;
  /** Checks the TLS files now (the watcher also polls); true when a new pair was loaded. */
  reloadTls(): Promise<boolean>;
  /** Stops accepting connections, lets in-flight requests finish, then closes everything. */
  close(timeoutMs?: number): Promise<void>;
}

/** Starts the HTTPS (HTTP/1.1 only) server and its certificate watcher. */
export async function startWebhookServer(options: WebhookAppOptions): Promise<WebhookServer> {
  const { config, logger, metrics } = options;
  const material = await loadTlsMaterial(config.tlsCertFile, config.tlsKeyFile);
  const app = createWebhookApp(options);
  const server = createServer(
    {
      key: material.key,
      cert: material.cert,
      minVersion: 'TLSv1.2',
      ALPNProtocols: ['http/1.1'],
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(config.requestTimeoutMs, 10_000),
      keepAliveTimeout: config.keepAliveTimeoutMs,
    },
    app,
  );
  server.on('tlsClientError', (error) => logger.debug({ err: errorMessage(error) }, 'TLS handshake failed'));
  const watcher = new TlsFileWatcher({
    certFile: config.tlsCertFile,
    keyFile: config.tlsKeyFile,
    intervalMs: config.tlsReloadIntervalMs,
    initial: material,
    onChange: (next) => {
      server.setSecureContext({ key: next.key, cert: next.cert, minVersion: 'TLSv1.2' });
      metrics.tlsReloads.inc({ result: 'ok' });
      logger.info({ certFile: config.tlsCertFile }, 'serving certificate reloaded');
    },
    onError: (error) => {
      metrics.tlsReloads.inc({ result: 'error' });
      logger.warn({ err: errorMessage(error) }, 'serving certificate not reloaded; keeping the previous one');
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.bindAddress, () => {
      server.off('error', reject);
      resolve();
    });
  });
  watcher.start();
  const port = (server.address() as AddressInfo).port;
  logger.info({ address: config.bindAddress, port }, 'webhook listening (HTTPS, HTTP/1.1)');
  return {
    server,
    port,
    reloadTls: () => watcher.check(),
    close: async (timeoutMs = 10_000) => {
      watcher.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
    },
  };
}
