import type { IncomingMessage, ServerResponse } from 'node:http';
import { type AdminRoutes, errorMessage, type Logger, type RequestHandler, sendAnswer } from '@afterlife/core';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Dispatcher } from './dispatcher.ts';
import { GatewayError } from './errors.ts';
import { EventValidationError, parseEvents } from './events.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { EventRouter } from './routes.ts';
import type { CountsBroadcaster } from './stream.ts';
import type { Reply } from './transport.ts';

function sendError(res: Response, status: number, error: string, message: string, extra: object = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.status(status).json({ error, message, ...extra });
}

function sendGatewayError(res: Response, error: GatewayError, retryAfterSeconds: number): void {
  if (error.retryable) res.setHeader('retry-after', String(retryAfterSeconds));
  sendError(res, error.status, error.code.toLowerCase(), error.message);
}

function sendReply(res: Response, reply: Reply): void {
  res.status(reply.status);
  for (const [name, value] of Object.entries(reply.headers)) res.setHeader(name, value);
  res.end(reply.body);
}

/** The events port: `POST /ns/:namespace/fn/:name` with binary, structured or batch CloudEvents. */
export function createEventsApp(options: {
  dispatcher: Dispatcher;
  /** Resolves the function before the dispatcher (discovery `knative`); default: the dispatcher itself. */
  router?: EventRouter;
  metrics: GatewayMetrics;
  logger: Logger;
  bodyLimitBytes: number;
  retryAfterSeconds: number;
}): express.Express {
  const { dispatcher, metrics, logger, retryAfterSeconds } = options;
  const router = options.router ?? dispatcher;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.post(
    '/ns/:namespace/fn/:name',
    express.raw({ type: () => true, limit: options.bodyLimitBytes }),
    async (req: Request<{ namespace: string; name: string }>, res: Response) => {
      const ref = { namespace: req.params.namespace, name: req.params.name };
      if (dispatcher.draining) res.setHeader('connection', 'close');
      let parsed: ReturnType<typeof parseEvents>;
      try {
        parsed = parseEvents(req.headers, Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0));
      } catch (error) {
        if (!(error instanceof EventValidationError)) throw error;
        metrics.rejected.inc({ reason: 'invalid_event' });
        sendError(res, 400, 'invalid_event', error.message, { errors: error.errors });
        return;
      }
      const gone = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) gone.abort();
      });
      let deliveries: Promise<Reply>[];
      try {
        deliveries = router.submit(ref, parsed.events, gone.signal);
      } catch (error) {
        if (!(error instanceof GatewayError)) throw error;
        sendGatewayError(res, error, retryAfterSeconds);
        return;
      }
      if (parsed.mode !== 'batch') {
        try {
          const reply = await (deliveries[0] as Promise<Reply>);
          sendReply(res, reply);
        } catch (error) {
          if (error instanceof GatewayError) sendGatewayError(res, error, retryAfterSeconds);
          else sendError(res, 502, 'delivery_failed', errorMessage(error));
        }
        return;
      }
      const settled = await Promise.allSettled(deliveries);
      const results = settled.map((outcome, index) => {
        const id = parsed.events[index]?.id ?? '';
        if (outcome.status === 'fulfilled') return { id, status: outcome.value.status };
        const error = outcome.reason;
        return error instanceof GatewayError
          ? { id, status: error.status, error: error.code.toLowerCase(), message: error.message }
          : { id, status: 502, error: 'delivery_failed', message: errorMessage(error) };
      });
      const statuses = new Set(results.map((result) => result.status));
      const status = statuses.size === 1 ? (results[0]?.status ?? 200) : 207;
      if (results.some((result) => 'error' in result && result.status >= 503)) {
        res.setHeader('retry-after', String(retryAfterSeconds));
      }
      res.status(status).json({ results });
    },
  );
  app.all('/ns/:namespace/fn/:name', (req: Request, res: Response) => {
    res.setHeader('allow', 'POST');
    sendError(res, 405, 'method_not_allowed', `${req.method} is not allowed: send events with POST`);
  });
  app.use((_req: Request, res: Response) => {
    sendError(res, 404, 'not_found', 'send events to POST /ns/<namespace>/fn/<name>');
  });
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = (error as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      metrics.rejected.inc({ reason: status === 413 ? 'too_large' : 'bad_request' });
      sendError(res, status, status === 413 ? 'too_large' : 'bad_request', errorMessage(error));
      return;
    }
    logger.error({ err: errorMessage(error) }, 'unexpected error handling an event');
    sendError(res, 500, 'internal', 'internal error');
  });
  return app;
}

/** The admin port: counts for the scaler (`/v1/counts`, `/v1/counts/stream`), probes and metrics. */
export function createAdminRoutes(options: {
  dispatcher: Dispatcher;
  broadcaster: CountsBroadcaster;
  metrics: GatewayMetrics;
  ready: () => boolean;
}): AdminRoutes & { readonly notFound: RequestHandler } {
  const { dispatcher, broadcaster, metrics, ready } = options;
  const counts = (_req: IncomingMessage, res: ServerResponse) =>
    sendAnswer(res, 200, dispatcher.snapshot(), { 'cache-control': 'no-store' });
  const stream = (req: IncomingMessage, res: ServerResponse) => {
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    metrics.subscribers.inc();
    const unsubscribe = broadcaster.subscribe((snapshot) => {
      res.write(`event: counts\ndata: ${JSON.stringify(snapshot)}\n\n`);
    });
    res.on('close', () => {
      unsubscribe();
      metrics.subscribers.dec();
    });
  };
  return {
    healthz: () => ({ ok: true, body: { status: 'ok' } }),
    readyz: () => {
      const isReady = ready() && !dispatcher.draining;
      return { ok: isReady, body: { status: isReady ? 'ready' : dispatcher.draining ? 'draining' : 'syncing' } };
    },
    metrics: metrics.registry,
    routes: { '/v1/counts': counts, '/v1/counts/stream': stream },
    notFound: (_req, res) =>
      sendAnswer(res, 404, {
        error: 'not_found',
        message: 'admin endpoints: /v1/counts, /v1/counts/stream, /healthz, /readyz, /metrics',
      }),
  };
}
