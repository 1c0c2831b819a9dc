import { errorMessage, Grouping, type Logger } from '@afterlife/core';
import {
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { type CountsAggregator, isActive, metricValue } from './aggregate.ts';
import type {
  ExternalScalerServer,
  GetMetricSpecResponse,
  GetMetricsRequest,
  GetMetricsResponse,
  IsActiveResponse,
  ScaledObjectRef,
} from './gen/externalscaler.ts';
import { MetadataError, parseTriggerMetadata, type TriggerSpec } from './metadata.ts';
import type { ScalerMetrics } from './metrics.ts';

export interface ExternalScalerOptions {
  aggregator: CountsAggregator;
  /** StreamIsActive re-sends the current state this often (KEDA's stream stays alive). */
  streamIntervalMs: number;
  logger: Logger;
  metrics: ScalerMetrics;
}

/** The last time the scaler pushed `isActive: true` to KEDA for a ScaledObject because a gateway update made it active. */
export interface Activation {
  /** The function (`namespace/revision`) whose counts activated it. */
  readonly function: string;
  /** The ScaledObject, `namespace/name`. */
  readonly scaledObject: string;
  /** Epoch ms, the scaler's clock. */
  readonly pushedAt: number;
}

export interface ExternalScalerHandle {
  readonly implementation: ExternalScalerServer;
  /** The last event-driven activation per ScaledObject (`/v1/activations`, the cold-start trace). */
  activations(): Activation[];
  /** Ends every open StreamIsActive (on shutdown). */
  endStreams(): void;
}

const SPEC_CACHE_LIMIT = 10_000;

/** One StreamIsActive KEDA holds open: a plain record, so a thousand of them cost little. */
interface OpenStream {
  readonly call: ServerWritableStream<ScaledObjectRef, IsActiveResponse>;
  readonly spec: TriggerSpec;
  /** The last result written. */
  last: boolean | undefined;
}

function streamFields(stream: OpenStream): { function: string; scaledObject: string } {
  return { function: stream.spec.key, scaledObject: `${stream.call.request.namespace}/${stream.call.request.name}` };
}

/**
 * The open streams, indexed by function so a gateway update touches only its functions' streams,
 * and one keep-alive timer for all of them (running only while a stream is open).
 */
class OpenStreams {
  readonly #byFunction = new Grouping<string, OpenStream, true>();
  readonly #intervalMs: number;
  readonly #keepAlive: () => void;
  readonly #metrics: ScalerMetrics;
  #timer: NodeJS.Timeout | undefined;

  constructor(intervalMs: number, keepAlive: () => void, metrics: ScalerMetrics) {
    this.#intervalMs = intervalMs;
    this.#keepAlive = keepAlive;
    this.#metrics = metrics;
  }

  add(stream: OpenStream): void {
    this.#byFunction.set(stream, { group: stream.spec.key, value: true });
    this.#metrics.activeStreams.inc();
    this.#timer ??= setInterval(this.#keepAlive, this.#intervalMs);
  }

  /** False when it was not open (each of a call's end events calls this). */
  delete(stream: OpenStream): boolean {
    if (this.#byFunction.set(stream, undefined).length === 0) return false;
    this.#metrics.activeStreams.dec();
    if (this.#byFunction.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    return true;
  }

  of(key: string): Iterable<OpenStream> {
    return this.#byFunction.members(key)?.keys() ?? [];
  }

  /** A copy: callers may close streams while iterating. */
  all(): OpenStream[] {
    return [...this.#byFunction.groups()].flatMap((key) => [...this.of(key)]);
  }
}

/**
 * The KEDA `externalscaler.ExternalScaler` service: a thin translation from gRPC to the
 * aggregator and the trigger metadata parser.
 */
export function createExternalScaler(options: ExternalScalerOptions): ExternalScalerHandle {
  const { aggregator, metrics, logger } = options;
  const specs = new Map<string, TriggerSpec | MetadataError>();
  // One entry per ScaledObject that was ever activated: bounded by the ScaledObjects KEDA streams.
  const activations = new Map<string, Activation>();

  const send = (stream: OpenStream, reason: 'event' | 'periodic'): void => {
    const result = isActive(stream.spec, aggregator.totals(stream.spec.key));
    stream.last = result;
    metrics.streamPushes.inc({ reason });
    stream.call.write({ result });
  };
  // Re-sent only while active: KEDA acts on `true` (a scale request each time) and drops a
  // streamed `false` unread, so re-sending it would cost one message per idle ScaledObject
  // every interval — a thousand a second with a thousand functions at zero — for nothing.
  const keepAlive = (): void => {
    for (const stream of streams.all()) {
      if (isActive(stream.spec, aggregator.totals(stream.spec.key))) send(stream, 'periodic');
    }
  };
  const streams = new OpenStreams(options.streamIntervalMs, keepAlive, metrics);
  // Event-driven: the moment a gateway update makes a function active, push `true` on its
  // streams; the change back to `false` is sent once too. Only the changed functions' streams.
  aggregator.onUpdate((changed) => {
    for (const key of changed) {
      for (const stream of streams.of(key)) {
        const now = isActive(stream.spec, aggregator.totals(key));
        if (now === stream.last) continue;
        send(stream, 'event');
        if (now) {
          const scaledObject = `${stream.call.request.namespace}/${stream.call.request.name}`;
          activations.set(scaledObject, { function: key, scaledObject, pushedAt: Date.now() });
        }
      }
    }
  });

  const specFor = (ref: ScaledObjectRef | undefined): TriggerSpec => {
    const safe = ref ?? { name: '', namespace: '', scalerMetadata: {} };
    const cacheKey = `${safe.namespace}\u0000${safe.name}\u0000${JSON.stringify(Object.entries(safe.scalerMetadata).sort())}`;
    let spec = specs.get(cacheKey);
    if (spec === undefined) {
      try {
        spec = parseTriggerMetadata(safe);
      } catch (error) {
        if (!(error instanceof MetadataError)) throw error;
        spec = error;
        // Once per distinct bad trigger: KEDA shows only "no metric specs returned" on the ScaledObject.
        logger.warn({ scaledObject: `${safe.namespace}/${safe.name}`, problems: error.problems }, error.message);
      }
      if (specs.size >= SPEC_CACHE_LIMIT) specs.clear();
      specs.set(cacheKey, spec);
    }
    if (spec instanceof MetadataError) throw spec;
    return spec;
  };

  const toServiceError = (error: unknown, ref: ScaledObjectRef | undefined): Partial<ServiceError> => {
    if (error instanceof MetadataError) {
      return {
        code: status.INVALID_ARGUMENT,
        details: `ScaledObject ${ref?.namespace}/${ref?.name}: ${error.message}`,
      };
    }
    logger.error({ err: errorMessage(error) }, 'external scaler RPC failed');
    return { code: status.INTERNAL, details: errorMessage(error) };
  };

  function unary<Req, Res>(
    method: string,
    refOf: (request: Req) => ScaledObjectRef | undefined,
    handle: (request: Req) => Res,
  ): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
    return (call, callback) => {
      const end = metrics.grpcDuration.startTimer({ method });
      try {
        const response = handle(call.request);
        metrics.grpcRequests.inc({ method, code: 'OK' });
        callback(null, response);
      } catch (error) {
        const serviceError = toServiceError(error, refOf(call.request));
        metrics.grpcRequests.inc({ method, code: status[serviceError.code ?? status.INTERNAL] ?? 'UNKNOWN' });
        callback(serviceError, null);
      } finally {
        end();
      }
    };
  }

  const implementation: ExternalScalerServer = {
    isActive: unary<ScaledObjectRef, IsActiveResponse>(
      'IsActive',
      (ref) => ref,
      (ref) => {
        const spec = specFor(ref);
        return { result: isActive(spec, aggregator.totals(spec.key)) };
      },
    ),

    getMetricSpec: unary<ScaledObjectRef, GetMetricSpecResponse>(
      'GetMetricSpec',
      (ref) => ref,
      (ref) => {
        const spec = specFor(ref);
        return {
          metricSpecs: [
            {
              metricName: spec.metricName,
              targetSize: Math.max(1, Math.ceil(spec.targetValue)),
              targetSizeFloat: spec.targetValue,
            },
          ],
        };
      },
    ),

    getMetrics: unary<GetMetricsRequest, GetMetricsResponse>(
      'GetMetrics',
      (request) => request.scaledObjectRef,
      (request) => {
        const spec = specFor(request.scaledObjectRef);
        const value = metricValue(spec.metric, aggregator.totals(spec.key));
        return {
          metricValues: [
            {
              metricName: request.metricName === '' ? spec.metricName : request.metricName,
              metricValue: Math.ceil(value),
              metricValueFloat: value,
            },
          ],
        };
      },
    ),

    streamIsActive(call: ServerWritableStream<ScaledObjectRef, IsActiveResponse>): void {
      let spec: TriggerSpec;
      try {
        spec = specFor(call.request);
      } catch (error) {
        const serviceError = toServiceError(error, call.request);
        metrics.grpcRequests.inc({
          method: 'StreamIsActive',
          code: status[serviceError.code ?? status.INTERNAL] ?? 'UNKNOWN',
        });
        call.emit('error', serviceError);
        return;
      }
      metrics.grpcRequests.inc({ method: 'StreamIsActive', code: 'OK' });
      const stream: OpenStream = { call, spec, last: undefined };
      streams.add(stream);
      const cleanup = (): void => {
        if (streams.delete(stream)) logger.debug(streamFields(stream), 'stream closed');
      };
      call.on('cancelled', cleanup);
      call.on('close', cleanup);
      call.on('finish', cleanup);
      call.on('error', cleanup);
      logger.debug(streamFields(stream), 'stream opened');
      send(stream, 'periodic');
    },
  };

  return {
    implementation,
    activations: () => [...activations.values()].sort((a, b) => a.pushedAt - b.pushedAt),
    endStreams() {
      for (const stream of streams.all()) {
        streams.delete(stream);
        stream.call.end();
      }
    },
  };
}
