import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { CountsSnapshot, FunctionCounts } from '@afterlife/core';
import { createLogger, type Logger } from '@afterlife/core';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { loadConfig, type ScalerConfig } from '../src/config.ts';

export const PROTO_DIR = fileURLToPath(new URL('../proto/', import.meta.url));

export const silentLogger: Logger = createLogger('scaler-test', { level: 'silent' });

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws `what`). */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 5000,
  everyMs = 10,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

export function counts(namespace: string, name: string, partial: Partial<FunctionCounts> = {}): FunctionCounts {
  return { namespace, name, pending: 0, inFlight: 0, delivered: 0, failed: 0, ratePerSecond: 0, ...partial };
}

/**
 * A tiny but real gateway admin server speaking the counts contract: `GET /v1/counts` and
 * `GET /v1/counts/stream` (SSE `event: counts`, once on connect, at once on every change, and a
 * heartbeat every `heartbeatMs`).
 */
export class FakeGateway {
  readonly id: string;
  sequence = 0;
  functions: FunctionCounts[] = [];
  /** When false, the stream endpoint answers 503 (the scaler must fall back to polling). */
  streamEnabled = true;
  polls = 0;
  streamConnects = 0;
  readonly #server: Server;
  readonly #clients = new Set<ServerResponse>();
  readonly #heartbeat: NodeJS.Timeout;
  #port = 0;

  private constructor(id: string, heartbeatMs: number) {
    this.id = id;
    this.#server = createServer((req, res) => this.#handle(req, res));
    this.#heartbeat = setInterval(() => this.#broadcast(), heartbeatMs);
  }

  static async start(
    id = 'gw-0',
    options: { heartbeatMs?: number; port?: number; host?: string } = {},
  ): Promise<FakeGateway> {
    const gateway = new FakeGateway(id, options.heartbeatMs ?? 1000);
    await new Promise<void>((resolve, reject) => {
      gateway.#server.once('error', reject);
      gateway.#server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
    });
    gateway.#port = (gateway.#server.address() as AddressInfo).port;
    return gateway;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get streamClients(): number {
    return this.#clients.size;
  }

  snapshot(): CountsSnapshot {
    return { gateway: this.id, sequence: this.sequence, at: new Date().toISOString(), functions: this.functions };
  }

  /** Replaces the counts and pushes them to every stream at once (a new sequence). */
  set(functions: FunctionCounts[]): void {
    this.functions = functions;
    this.sequence++;
    this.#broadcast();
  }

  /** Closes the open SSE connections (the scaler should re-connect). */
  dropStreams(): void {
    for (const res of this.#clients) res.destroy();
    this.#clients.clear();
  }

  #broadcast(): void {
    const frame = `event: counts\ndata: ${JSON.stringify(this.snapshot())}\n\n`;
    for (const res of this.#clients) res.write(frame);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.url === '/v1/counts') {
      this.polls++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.snapshot()));
      return;
    }
    if (req.url === '/v1/counts/stream') {
      if (!this.streamEnabled) {
        res.writeHead(503).end();
        return;
      }
      this.streamConnects++;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      this.#clients.add(res);
      res.on('close', () => this.#clients.delete(res));
      res.write(`event: counts\ndata: ${JSON.stringify(this.snapshot())}\n\n`);
      return;
    }
    res.writeHead(404).end();
  }

  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    this.dropStreams();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

export function testConfig(urls: readonly string[], env: Record<string, string> = {}): Readonly<ScalerConfig> {
  return loadConfig({
    AFTERLIFE_SCALER_HOST: '127.0.0.1',
    AFTERLIFE_SCALER_PORT: '0',
    AFTERLIFE_SCALER_METRICS_PORT: '0',
    AFTERLIFE_SCALER_GATEWAY_URLS: urls.join(','),
    AFTERLIFE_SCALER_POLL_INTERVAL: '100ms',
    AFTERLIFE_SCALER_STREAM_INTERVAL: '200ms',
    AFTERLIFE_SCALER_STALE_AFTER: '2s',
    ...env,
  });
}

// --- a gRPC client built from the same .proto with @grpc/proto-loader (independent of src/gen) ---

export interface WireRef {
  name: string;
  namespace: string;
  scalerMetadata: Record<string, string>;
}
export interface WireMetricSpec {
  metricName: string;
  targetSize: number;
  targetSizeFloat: number;
}
export interface WireMetricValue {
  metricName: string;
  metricValue: number;
  metricValueFloat: number;
}

type Callback<T> = (error: grpc.ServiceError | null, value: T) => void;
export interface WireScalerClient extends grpc.Client {
  IsActive(
    ref: WireRef,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: Callback<{ result: boolean }>,
  ): grpc.ClientUnaryCall;
  IsActive(ref: WireRef, callback: Callback<{ result: boolean }>): grpc.ClientUnaryCall;
  GetMetricSpec(ref: WireRef, callback: Callback<{ metricSpecs: WireMetricSpec[] }>): grpc.ClientUnaryCall;
  GetMetrics(
    request: { scaledObjectRef: WireRef; metricName: string },
    callback: Callback<{ metricValues: WireMetricValue[] }>,
  ): grpc.ClientUnaryCall;
  StreamIsActive(ref: WireRef): grpc.ClientReadableStream<{ result: boolean }>;
}
export interface WireHealthClient extends grpc.Client {
  Check(request: { service: string }, callback: Callback<{ status: string }>): grpc.ClientUnaryCall;
  Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}

const LOAD_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  includeDirs: [PROTO_DIR],
};

type ClientConstructor<T> = new (address: string, credentials: grpc.ChannelCredentials, options?: object) => T;

export function scalerClientConstructor(): ClientConstructor<WireScalerClient> {
  const definition = protoLoader.loadSync('externalscaler.proto', LOAD_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    externalscaler: { ExternalScaler: ClientConstructor<WireScalerClient> };
  };
  return pkg.externalscaler.ExternalScaler;
}

export function healthClientConstructor(): ClientConstructor<WireHealthClient> {
  const definition = protoLoader.loadSync('grpc/health/v1/health.proto', LOAD_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { health: { v1: { Health: ClientConstructor<WireHealthClient> } } };
  };
  return pkg.grpc.health.v1.Health;
}

/** Promisifies a unary call of the wire client. */
export function call<Req, Res>(
  fn: (request: Req, callback: Callback<Res>) => grpc.ClientUnaryCall,
  client: grpc.Client,
  request: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn.call(client, request, (error, value) => (error ? reject(error) : resolve(value)));
  });
}

export function ref(scalerMetadata: Record<string, string>, name = 'so-1', namespace = 'default'): WireRef {
  return { name, namespace, scalerMetadata };
}
