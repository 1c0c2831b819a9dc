import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { type Server as HttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { CoreError, errorMessage } from './errors.ts';

/** Listens on `host:port` (0 picks a free port) and resolves with the bound port. */
export async function listen(server: Server | HttpsServer, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/**
 * Stops accepting connections, lets requests in progress finish for up to `graceMs`, then cuts
 * what is left (long-lived streams included) and resolves once the server is closed.
 */
export async function closeServer(server: Server | HttpsServer, graceMs: number): Promise<void> {
  if (!server.listening) {
    server.closeAllConnections();
    return;
  }
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
}

/** Writes a whole answer: an object as JSON, a string as plain text. */
export function sendAnswer(
  res: ServerResponse,
  status: number,
  body: string | object,
  headers: Readonly<Record<string, string>> = {},
): void {
  const json = typeof body !== 'string';
  const payload = json ? JSON.stringify(body) : body;
  res.writeHead(status, {
    'content-type': json ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

/** A probe's answer: `ok` decides 200 or 503; an object body is sent as JSON, a string as text. */
export interface ProbeAnswer {
  readonly ok: boolean;
  readonly body: string | object;
}

/** Where `/metrics` comes from (a prom-client `Registry` is one). */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface AdminRoutes {
  /** Liveness (`GET /healthz`). */
  readonly healthz: () => ProbeAnswer;
  /** Readiness (`GET /readyz`). */
  readonly readyz: () => ProbeAnswer;
  /** Prometheus exposition (`GET /metrics`). */
  readonly metrics: MetricsSource;
  /** More `GET` routes by exact path (the gateway's counts API). */
  readonly routes?: Readonly<Record<string, RequestHandler>>;
}

/**
 * The admin endpoints every component serves: `GET`/`HEAD` on `/healthz`, `/readyz`, `/metrics`
 * and any extra `routes`. Returns true when it answered the request, false when the request is
 * not one of them (so it can share a server with other routes).
 */
export function adminHandler(routes: AdminRoutes): (req: IncomingMessage, res: ServerResponse) => boolean {
  const probe = (res: ServerResponse, answer: ProbeAnswer) => sendAnswer(res, answer.ok ? 200 : 503, answer.body);
  const table: Record<string, RequestHandler> = {
    ...routes.routes,
    '/healthz': (_req, res) => probe(res, routes.healthz()),
    '/readyz': (_req, res) => probe(res, routes.readyz()),
    '/metrics': async (_req, res) => {
      try {
        const text = await routes.metrics.metrics();
        res.writeHead(200, { 'content-type': routes.metrics.contentType });
        res.end(text);
      } catch (error) {
        sendAnswer(res, 500, `metrics failed: ${errorMessage(error)}`);
      }
    },
  };
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = Object.hasOwn(table, path) ? table[path] : undefined;
    if (route === undefined) return false;
    void Promise.resolve(route(req, res)).catch((error: unknown) => {
      if (!res.headersSent) sendAnswer(res, 500, `internal error: ${errorMessage(error)}`);
      else res.destroy();
    });
    return true;
  };
}

export interface AdminServerOptions extends AdminRoutes {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** The answer for every other request (default: 404 `not found`). */
  readonly notFound?: RequestHandler;
}

export interface AdminServer {
  readonly server: Server;
  readonly port: number;
  /** Closes the server, cutting open streams after `graceMs` (default 0). */
  close(graceMs?: number): Promise<void>;
}

/** A plain-HTTP server with only the admin endpoints (the gateway's and the scaler's admin ports). */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const handle = adminHandler(options);
  const notFound: RequestHandler = options.notFound ?? ((_req, res) => sendAnswer(res, 404, 'not found\n'));
  const server = createServer((req, res) => {
    if (!handle(req, res)) void notFound(req, res);
  });
  const port = await listen(server, options.port, options.host);
  return { server, port, close: (graceMs = 0) => closeServer(server, graceMs) };
}

/** Where a probe goes: an `http://` or `https://` URL, or a path served on a unix socket. */
export type ProbeTarget = string | { readonly socketPath: string; readonly path: string };

export interface ProbeOptions {
  /** CA bundle to trust for `https://` (default: the system's). */
  readonly ca?: string | Buffer;
  /** Client certificate and key for mutual TLS. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** Connect + answer deadline (default 2000 ms). */
  readonly timeoutMs?: number;
  /** Request headers (e.g. Knative's `K-Network-Probe`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Aborts the probe (it rejects with `PROBE_FAILED`). */
  readonly signal?: AbortSignal;
}

function describeTarget(target: ProbeTarget): string {
  return typeof target === 'string' ? target : `unix:${target.socketPath}:${target.path}`;
}

/**
 * One `GET` (fresh connection, body discarded); resolves with the status code, rejects with a
 * `PROBE_FAILED` CoreError when nothing answered in time.
 */
export function probeStatus(target: ProbeTarget, options: ProbeOptions = {}): Promise<number> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const what = describeTarget(target);
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', fail);
    };
    const fail = (error: unknown) =>
      reject(new CoreError('PROBE_FAILED', `${what}: ${errorMessage(error)}`, { cause: error }));
    const tls = {
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      ...(options.cert === undefined ? {} : { cert: options.cert }),
      ...(options.key === undefined ? {} : { key: options.key }),
    };
    const common = {
      timeout: timeoutMs,
      agent: false as const,
      ...(options.headers === undefined ? {} : { headers: { ...options.headers } }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    };
    const req =
      typeof target !== 'string'
        ? httpRequest({ socketPath: target.socketPath, path: target.path, ...common }, onResponse)
        : target.startsWith('https:')
          ? httpsRequest(target, { ...tls, ...common }, onResponse)
          : httpRequest(target, common, onResponse);
    req.on('timeout', () => req.destroy(new CoreError('PROBE_FAILED', `no answer within ${timeoutMs} ms`)));
    req.on('error', fail);
    req.end();
  });
}

/** Resolves true when the probe answers 200; rejects with `PROBE_FAILED` naming the status otherwise. */
export async function probeOk(target: ProbeTarget, options: ProbeOptions = {}): Promise<true> {
  const status = await probeStatus(target, options);
  if (status !== 200) throw new CoreError('PROBE_FAILED', `${describeTarget(target)} answered ${status}`);
  return true;
}
