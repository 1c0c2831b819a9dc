export {
  DISCOVERY_MODES,
  type DiscoveryMode,
  GATEWAY_ENV_VARS,
  type GatewayConfig,
  loadConfig,
} from './config.ts';
export { Dispatcher, type DispatcherOptions } from './dispatcher.ts';
export { type Endpoint, EndpointTable, endpointKey, type FunctionRef } from './endpoints.ts';
export { GatewayError, type GatewayErrorCode, TransportError } from './errors.ts';
export {
  type ContentMode,
  decodeHeaderValue,
  type EventMessage,
  EventValidationError,
  encodeHeaderValue,
  parseEvents,
} from './events.ts';
export { createAdminRoutes, createEventsHandler, functionOfPath } from './http.ts';
export {
  KnativeIndex,
  type KnativeRoute,
  KnativeRouteWatcher,
  PRIVATE_SLICE_SELECTOR,
  REVISION_LABEL,
  type RevisionEndpoints,
  type RevisionSlice,
  revisionSlice,
  routeEssentials,
  SERVICE_TYPE_LABEL,
  trafficOfRoute,
} from './knative.ts';
export {
  type DiscoveryOptions,
  functionOfService,
  KubeEndpointWatcher,
  readyEndpoints,
  SERVICE_NAME_LABEL,
  ServiceIndex,
} from './kube.ts';
export { COLD_START_BUCKETS_SECONDS, GatewayMetrics } from './metrics.ts';
export { RateWindow } from './rate.ts';
export {
  type EventRouter,
  KnativeRouter,
  pickRevision,
  type RandomSource,
  type RevisionWeight,
  RouteTable,
  routableRevisions,
  type TrafficTarget,
} from './routes.ts';
export { type Gateway, type StartOptions, startGateway } from './server.ts';
export { CountsBroadcaster, DEFAULT_STREAM_TIMING, type StreamTiming } from './stream.ts';
export { type Delivery, HttpTransport, type Reply, type Transport } from './transport.ts';
