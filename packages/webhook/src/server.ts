import { createServer, type Server } from 'node:https';
import { adminHandler, closeServer, errorMessage, type KnativeFeatures, type Logger, listen } from '@afterlife/core';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import type { AdmitContext, ImageInspector } from './admit.ts';
import type { MutationConfig, WebhookConfig } from './config.ts';
import { WebhookError } from './errors.ts';
import type { WebhookMetrics } from './metrics.ts';
import { answerReview, errorAnswer, type ReviewAnswer, reviewUid } from './review.ts';
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

function labelsOf(body: unknown): { kind: string; operation: string } {
  const request = (body as { request?: { kind?: { kind?: unknown }; operation?: unknown } } | undefined)?.request;
  const kind = typeof request?.kind?.kind === 'string' ? request.kind.kind : 'unknown';
  const operation = typeof request?.operation === 'string' ? request.operation : 'unknown';
  return {
    kind: kind === 'Service' || kind === 'Configuration' ? kind : 'other',
    operation: ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'].includes(operation) ? operation : 'unknown',
  };
}

/**
 * The HTTP layer: reads the body, hands it to `answerReview` (decode → `admit` → encode, every
 * error mapped by `errorAnswer`), writes the answer, counts and logs it. Also serves the admin
 * endpoints (`/healthz`, `/readyz`, `/metrics`) on the same port.
 */
export function createWebhookApp(options: WebhookAppOptions): express.Express {
  const { config, logger, metrics, registry } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const raw = express.raw({ type: () => true, limit: config.bodyLimitBytes });
  // Only image inspection can make admit() wait; without it there is nothing to time out.
  const admitTimeoutMs = Math.max(50, config.requestTimeoutMs - 50);

  const send = (res: Response, review: unknown, answer: ReviewAnswer, seconds: number) => {
    const { kind, operation } = labelsOf(review);
    metrics.admissions.inc({ result: answer.outcome, kind, operation });
    metrics.admissionDuration.observe({ result: answer.outcome }, seconds);
    if (answer.httpStatus >= 400) metrics.rejectedRequests.inc({ reason: answer.reason });
    const request = (review as { request?: Record<string, unknown> } | undefined)?.request;
    const fields = {
      uid: reviewUid(review),
      kind,
      operation,
      namespace: request?.namespace,
      name: request?.name,
      dryRun: request?.dryRun === true,
      outcome: answer.outcome,
      reason: answer.reason,
      patchOps: answer.patch.length,
    };
    if (answer.outcome === 'error') logger.error({ ...fields, err: answer.error }, 'admission failed unexpectedly');
    else if (answer.outcome === 'timeout') logger.warn(fields, 'admission timed out');
    else if (answer.httpStatus >= 400) logger.warn(fields, 'rejected a request that is not an AdmissionReview');
    else logger[answer.outcome === 'skipped' || answer.outcome === 'unchanged' ? 'debug' : 'info'](fields, 'admission');
    sendJson(res, answer.httpStatus, answer.body);
  };

  const handle = (namespaceOptIn: boolean) => async (req: Request, res: Response) => {
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
    const body: unknown = req.body;
    let review: unknown;
    try {
      if (!Buffer.isBuffer(body) || body.length === 0) throw new SyntaxError('empty body');
      review = JSON.parse(body.toString('utf8'));
    } catch (error) {
      const invalid = new WebhookError(
        'BODY_INVALID',
        `the body must be a JSON AdmissionReview: ${errorMessage(error)}`,
        {
          reason: 'malformed-json',
          cause: error,
        },
      );
      send(res, undefined, errorAnswer(undefined, invalid), elapsed());
      return;
    }
    const context: AdmitContext = {
      config,
      features: options.features(),
      namespaceOptIn,
      ...(options.namespaceLabels === undefined ? {} : { namespaceLabels: options.namespaceLabels }),
      ...(options.imageInspector === undefined ? {} : { imageInspector: options.imageInspector }),
    };
    const answer = await answerReview(
      review,
      context,
      context.imageInspector === undefined ? {} : { timeoutMs: admitTimeoutMs },
    );
    send(res, review, answer, elapsed());
  };

  const admin = adminHandler({
    healthz: () => ({ ok: true, body: 'ok' }),
    readyz: () => {
      const ready = options.ready();
      metrics.ready.set(ready ? 1 : 0);
      return { ok: ready, body: ready ? 'ok' : 'not ready: Knative ConfigMaps not read yet' };
    },
    metrics: {
      contentType: registry.contentType,
      metrics: () => {
        metrics.ready.set(options.ready() ? 1 : 0);
        return registry.metrics();
      },
    },
  });
  app.use((req, res, next) => {
    if (!admin(req, res)) next();
  });
  app.post(MUTATE_PATH, raw, handle(false));
  app.post(MUTATE_NAMESPACE_PATH, raw, handle(true));
  app.use((req, res) => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  });
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = error as { type?: string; status?: number; limit?: number; expose?: boolean };
    if (e.type === 'request.aborted') return;
    let failure: WebhookError | unknown = error;
    if (e.type === 'entity.too.large') {
      failure = new WebhookError(
        'BODY_TOO_LARGE',
        `request body larger than the limit of ${e.limit ?? config.bodyLimitBytes} bytes`,
        { reason: 'too-large', httpStatus: 413, cause: error },
      );
    } else if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      failure = new WebhookError('BODY_INVALID', e.expose === true ? errorMessage(error) : 'bad request', {
        reason: e.type ?? 'bad-request',
        httpStatus: e.status,
        cause: error,
      });
    }
    send(res, undefined, errorAnswer(undefined, failure), 0);
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
  const port = await listen(server, config.port, config.bindAddress);
  watcher.start();
  logger.info({ address: config.bindAddress, port }, 'webhook listening (HTTPS, HTTP/1.1)');
  return {
    server,
    port,
    reloadTls: () => watcher.check(),
    close: async (timeoutMs = 10_000) => {
      watcher.stop();
      await closeServer(server, timeoutMs);
    },
  };
}
