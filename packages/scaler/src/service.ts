import { errorMessage, type Logger } from '@afterlife/core';
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

/**
 * The KEDA `externalscaler.ExternalScaler` service: a thin translation from gRPC to the
 * aggregator and the trigger metadata parser.
 */
export function createExternalScaler(options: ExternalScalerOptions): ExternalScalerHandle {
  const { aggregator, metrics, logger } = options;
  const specs = new Map<string, TriggerSpec | MetadataError>();
  const streams = new Set<() => void>();
  // One entry per ScaledObject that was ever activated: bounded by the ScaledObjects KEDA streams.
  const activations = new Map<string, Activation>();

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
      metrics.activeStreams.inc();
      let last: boolean | undefined;
      const send = (reason: 'event' | 'periodic'): void => {
        const result = isActive(spec, aggregator.totals(spec.key));
        last = result;
        metrics.streamPushes.inc({ reason });
        call.write({ result });
      };
      // Event-driven: the moment a gateway update makes this function active, push `true`; the
      // change back to `false` is sent once too.
      const unsubscribe = aggregator.onUpdate((changed) => {
        if (!changed.has(spec.key)) return;
        const now = isActive(spec, aggregator.totals(spec.key));
        if (now === last) return;
        send('event');
        if (now) {
          const scaledObject = `${call.request.namespace}/${call.request.name}`;
          activations.set(scaledObject, { function: spec.key, scaledObject, pushedAt: Date.now() });
        }
      });
      // Re-sent only while active: KEDA acts on `true` (a scale request each time) and drops a
      // streamed `false` unread, so re-sending it would cost one message per idle ScaledObject
      // every interval — a thousand a second with a thousand functions at zero — for nothing.
      const timer = setInterval(() => {
        if (isActive(spec, aggregator.totals(spec.key))) send('periodic');
      }, options.streamIntervalMs);
      let closed = false;
      const cleanup = (): void => {
        if (closed) return;
        closed = true;
        clearInterval(timer);
        unsubscribe();
        streams.delete(end);
        metrics.activeStreams.dec();
        logger.debug(
          { function: spec.key, scaledObject: `${call.request.namespace}/${call.request.name}` },
          'stream closed',
        );
      };
      const end = (): void => {
        cleanup();
        call.end();
      };
      streams.add(end);
      call.on('cancelled', cleanup);
      call.on('close', cleanup);
      call.on('finish', cleanup);
      call.on('error', cleanup);
      logger.debug(
        { function: spec.key, scaledObject: `${call.request.namespace}/${call.request.name}` },
        'stream opened',
      );
      send('periodic');
    },
  };

  return {
    implementation,
    activations: () => [...activations.values()].sort((a, b) => a.pushedAt - b.pushedAt),
    endStreams() {
      for (const end of [...streams]) end();
    },
  };
}
