import type { ServerUnaryCall, ServerWritableStream, sendUnaryData } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { CountsAggregator } from './aggregate.ts';
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthServer,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from './gen/grpc/health/v1/health.ts';

/** Service names `grpc.health.v1.Health` answers for; "" is the whole server. */
export const HEALTH_SERVICES = ['', 'externalscaler.ExternalScaler'] as const;

export interface HealthHandle {
  readonly implementation: HealthServer;
  /** SERVING when at least one gateway's counts are fresh; NOT_SERVING when all are stale (or none is known). */
  current(): HealthCheckResponse['status'];
  /** Everything reports NOT_SERVING from now on (graceful shutdown); Watch streams are told so. */
  shutdown(): void;
  /** Ends every Watch stream and stops the freshness timer. */
  close(): void;
}

/** `grpc.health.v1.Health` driven by the freshness of the gateways' data. */
export function createHealth(aggregator: CountsAggregator, checkIntervalMs: number): HealthHandle {
  let shuttingDown = false;
  const current = (): HealthCheckResponse['status'] =>
    !shuttingDown && aggregator.freshGatewayCount() > 0 ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  /** Each Watch stream with the last status it was sent. */
  const watchers = new Map<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>, { last: number }>();
  /** Watch streams for unknown service names (they stay SERVICE_UNKNOWN until closed). */
  const unknownWatchers = new Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>();
  const reevaluate = (): void => {
    const now = current();
    for (const [call, state] of watchers) {
      if (state.last === now) continue;
      state.last = now;
      call.write({ status: now });
    }
  };
  const unsubscribe = aggregator.onUpdate(reevaluate);
  // Staleness is a matter of time passing, not of an event: look again on a timer.
  const timer = setInterval(reevaluate, checkIntervalMs);
  timer.unref();

  const implementation: HealthServer = {
    check(
      call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
      callback: sendUnaryData<HealthCheckResponse>,
    ) {
      if (!(HEALTH_SERVICES as readonly string[]).includes(call.request.service)) {
        callback({ code: status.NOT_FOUND, details: `unknown service "${call.request.service}"` }, null);
        return;
      }
      callback(null, { status: current() });
    },
    watch(call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) {
      if (!(HEALTH_SERVICES as readonly string[]).includes(call.request.service)) {
        unknownWatchers.add(call);
        call.on('cancelled', () => unknownWatchers.delete(call));
        call.on('close', () => unknownWatchers.delete(call));
        call.write({ status: ServingStatus.SERVICE_UNKNOWN });
        return;
      }
      const state = { last: current() };
      watchers.set(call, state);
      const cleanup = (): void => {
        watchers.delete(call);
      };
      call.on('cancelled', cleanup);
      call.on('close', cleanup);
      call.on('error', cleanup);
      call.write({ status: state.last });
    },
  };

  return {
    implementation,
    current,
    shutdown() {
      shuttingDown = true;
      reevaluate();
    },
    close() {
      clearInterval(timer);
      unsubscribe();
      for (const call of [...watchers.keys(), ...unknownWatchers]) call.end();
      watchers.clear();
      unknownWatchers.clear();
    },
  };
}
