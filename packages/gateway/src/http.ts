import type { IncomingMessage, ServerResponse } from 'node:http';
import { type AdminRoutes, errorMessage, type Logger, type RequestHandler, sendAnswer } from '@afterlife/core';
import { readBody } from './body.ts';
import type { Dispatcher } from './dispatcher.ts';
import type { FunctionRef } from './endpoints.ts';
import { GatewayError } from './errors.ts';
import { EventValidationError, type ParsedEvents, parseEvents } from './events.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { EventRouter } from './routes.ts';
import type { CountsBroadcaster } from './stream.ts';
import type { Reply } from './transport.ts';

/** `/ns/<namespace>/fn/<name>`, a trailing slash allowed, any case (as express routed it before). */
const FUNCTION_PATH = /^\/ns\/([^/]+)\/fn\/([^/]+)\/?$/i;

/** The function a request path names; undefined for other paths. Throws `BAD_REQUEST` for a segment that is not percent-encoded UTF-8. */
export function functionOfPath(url: string): FunctionRef | undefined {
  let path = url;
  if (!path.startsWith('/')) {
    // absolute-form (`POST http://host/ns/…`), as a proxy may send it
    if (!URL.canParse(path)) return undefined;
    path = new URL(path).pathname;
  }
  const query = path.indexOf('?');
  const match = FUNCTION_PATH.exec(query === -1 ? path : path.slice(0, query));
  if (match === null) return undefined;
  return { namespace: decodeSegment(match[1] as string), name: decodeSegment(match[2] as string) };
}

function decodeSegment(segment: string): string {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new GatewayError('BAD_REQUEST', `path segment "${segment}" is not percent-encoded UTF-8`);
  }
}

function sendError(res: ServerResponse, status: number, error: string, message: string, extra: object = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  sendAnswer(res, status, { error, message, ...extra });
}

function sendGatewayError(res: ServerResponse, error: GatewayError, retryAfterSeconds: number): void {
  if (error.retryable) res.setHeader('retry-after', String(retryAfterSeconds));
  sendError(res, error.status, error.code.toLowerCase(), error.message);
}

function sendReply(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, reply.headers);
  res.end(reply.body);
}

/** Aborted when the sender goes away before its answer is sent (events held for it are then dropped). */
function senderGone(res: ServerResponse): AbortSignal {
  const gone = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) gone.abort();
  });
  return gone.signal;
}

/** How requests that are refused before their events are read count in `events_rejected_total`. */
function rejectionReason(error: GatewayError): string {
  return error.code === 'TOO_LARGE' ? 'too_large' : 'bad_request';
}

/**
 * The events port, a plain `node:http` request listener (the hot path: no framework, one pass
 * over the headers): `POST /ns/:namespace/fn/:name` with binary, structured or batch CloudEvents.
 */
export function createEventsHandler(options: {
  dispatcher: Dispatcher;
  /** Resolves the function before the dispatcher (discovery `knative`); default: the dispatcher itself. */
  router?: EventRouter;
  metrics: GatewayMetrics;
  logger: Logger;
  bodyLimitBytes: number;
  retryAfterSeconds: number;
}): (req: IncomingMessage, res: ServerResponse) => void {
  const { dispatcher, metrics, logger, retryAfterSeconds, bodyLimitBytes } = options;
  const router = options.router ?? dispatcher;

  const refuse = (res: ServerResponse, error: GatewayError) => {
    metrics.rejected.inc({ reason: rejectionReason(error) });
    sendError(res, error.status, error.code.toLowerCase(), error.message);
  };

  const internalError = (res: ServerResponse, error: unknown) => {
    logger.error({ err: errorMessage(error) }, 'unexpected error handling an event');
    sendError(res, 500, 'internal', 'internal error');
  };

  const answerBatch = (res: ServerResponse, events: ParsedEvents['events'], settled: PromiseSettledResult<Reply>[]) => {
    const results = settled.map((outcome, index) => {
      const id = events[index]?.id ?? '';
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
    sendAnswer(res, status, { results });
  };

  const answerOne = (res: ServerResponse, delivery: Promise<Reply>) => {
    delivery.then(
      (reply) => {
        try {
          sendReply(res, reply);
        } catch (error) {
          // a reply Node refuses to forward (invalid status or header)
          sendError(res, 502, 'delivery_failed', errorMessage(error));
        }
      },
      (error: unknown) => {
        if (error instanceof GatewayError) sendGatewayError(res, error, retryAfterSeconds);
        else sendError(res, 502, 'delivery_failed', errorMessage(error));
      },
    );
  };

  const answerAll = (res: ServerResponse, events: ParsedEvents['events'], deliveries: Promise<Reply>[]) => {
    Promise.allSettled(deliveries)
      .then((settled) => answerBatch(res, events, settled))
      .catch((error: unknown) => internalError(res, error));
  };

  /** Hands the events over; the sender is answered when they are delivered (nothing is acknowledged before). */
  const deliver = (ref: FunctionRef, parsed: ParsedEvents, res: ServerResponse): void => {
    let deliveries: Promise<Reply>[];
    try {
      deliveries = router.submit(ref, parsed.events, senderGone(res));
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error;
      sendGatewayError(res, error, retryAfterSeconds);
      return;
    }
    // No closure here keeps `parsed`: a held request retains only what answering it needs.
    if (parsed.mode !== 'batch') answerOne(res, deliveries[0] as Promise<Reply>);
    else answerAll(res, parsed.events, deliveries);
  };

  return (req, res) => {
    let ref: FunctionRef | undefined;
    try {
      ref = functionOfPath(req.url ?? '/');
    } catch (error) {
      if (error instanceof GatewayError) refuse(res, error);
      else internalError(res, error);
      return;
    }
    if (ref === undefined) {
      sendError(res, 404, 'not_found', 'send events to POST /ns/<namespace>/fn/<name>');
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      sendError(res, 405, 'method_not_allowed', `${req.method} is not allowed: send events with POST`);
      return;
    }
    const target = ref;
    readBody(req, bodyLimitBytes, (problem, body) => {
      if (problem !== undefined) {
        refuse(res, problem);
        return;
      }
      if (dispatcher.draining) res.setHeader('connection', 'close');
      let parsed: ParsedEvents;
      try {
        parsed = parseEvents(req.headers, body);
      } catch (error) {
        if (!(error instanceof EventValidationError)) {
          internalError(res, error);
          return;
        }
        metrics.rejected.inc({ reason: 'invalid_event' });
        sendError(res, 400, 'invalid_event', error.message, { errors: error.errors });
        return;
      }
      try {
        deliver(target, parsed, res);
      } catch (error) {
        internalError(res, error);
      }
    });
  };
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
  const coldStarts = (_req: IncomingMessage, res: ServerResponse) =>
    sendAnswer(
      res,
      200,
      { gateway: dispatcher.snapshotId, coldStarts: dispatcher.coldStarts() },
      { 'cache-control': 'no-store' },
    );
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
    routes: { '/v1/counts': counts, '/v1/counts/stream': stream, '/v1/cold-starts': coldStarts },
    notFound: (_req, res) =>
      sendAnswer(res, 404, {
        error: 'not_found',
        message: 'admin endpoints: /v1/counts, /v1/counts/stream, /v1/cold-starts, /healthz, /readyz, /metrics',
      }),
  };
}
