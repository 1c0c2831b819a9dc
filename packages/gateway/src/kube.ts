import { Grouping, InformerRunner, type Logger, makeLeanInformer } from '@afterlife/core';
import {
  CoreV1Api,
  DiscoveryV1Api,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  type ObjectCache,
  type V1EndpointSlice,
  type V1Service,
} from '@kubernetes/client-node';
import type { DiscoveryMode } from './config.ts';
import type { Endpoint, EndpointTable } from './endpoints.ts';

/** The label Kubernetes puts on every EndpointSlice naming its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface DiscoveryOptions {
  readonly discovery: DiscoveryMode;
  readonly functionLabel: string;
  readonly serviceSelector: string;
  /** Empty = all namespaces. */
  readonly namespaces: readonly string[];
}

/**
 * Ready endpoints of an EndpointSlice: addresses whose `conditions.ready` is true, on the port
 * named `http` (or the slice's first port). FQDN slices are ignored.
 */
export function readyEndpoints(slice: V1EndpointSlice): Endpoint[] {
  if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') return [];
  const ports = slice.ports ?? [];
  const port = (ports.find((candidate) => candidate.name === 'http') ?? ports[0])?.port;
  if (port === undefined || port === null) return [];
  const out: Endpoint[] = [];
  for (const endpoint of slice.endpoints ?? []) {
    if (endpoint.conditions?.ready !== true) continue;
    for (const ip of endpoint.addresses ?? []) out.push({ ip, port });
  }
  return out;
}

/**
 * Which function a Service belongs to: in `service` mode the Service's own name; in `label`
 * mode the value of the function label (Services without it are ignored).
 */
export function functionOfService(service: V1Service, options: DiscoveryOptions): string | undefined {
  if (options.discovery === 'service') return service.metadata?.name;
  const value = service.metadata?.labels?.[options.functionLabel];
  return value === undefined || value === '' ? undefined : value;
}

type Watched<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

/**
 * What the gateway keeps of an EndpointSlice: identity, the labels it reads (`keepLabels`),
 * address type, ports and each endpoint's addresses and readiness — not topology, hints,
 * target refs or the rest of its metadata.
 */
export function sliceEssentials(slice: V1EndpointSlice, keepLabels: readonly string[]): V1EndpointSlice {
  const { name, namespace, resourceVersion, uid, labels } = slice.metadata ?? {};
  const kept: Record<string, string> = {};
  for (const label of keepLabels) {
    const value = labels?.[label];
    if (value !== undefined) kept[label] = value;
  }
  return {
    apiVersion: slice.apiVersion,
    kind: slice.kind,
    metadata: { name, namespace, resourceVersion, uid, labels: kept },
    addressType: slice.addressType,
    ports: (slice.ports ?? []).map(({ name: portName, port }) => ({ name: portName, port })),
    endpoints: (slice.endpoints ?? []).map(({ addresses, conditions }) => ({
      addresses,
      conditions: { ready: conditions?.ready, terminating: conditions?.terminating },
    })),
  } as V1EndpointSlice;
}

/** An informer over the EndpointSlices matching `labelSelector`, in one namespace or all, keeping `sliceEssentials`. */
export function endpointSliceInformer(
  kubeConfig: KubeConfig,
  namespace: string | undefined,
  labelSelector: string,
  keepLabels: readonly string[],
): Watched<V1EndpointSlice> {
  const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
  return makeLeanInformer<V1EndpointSlice>(
    kubeConfig,
    namespace === undefined
      ? '/apis/discovery.k8s.io/v1/endpointslices'
      : `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
    () =>
      namespace === undefined
        ? discovery.listEndpointSliceForAllNamespaces({ labelSelector })
        : discovery.listNamespacedEndpointSlice({ namespace, labelSelector }),
    { labelSelector, trim: (slice) => sliceEssentials(slice, keepLabels) },
  );
}

interface NamespaceServices {
  /** Each Service (by name) in the function it belongs to. */
  readonly services: Grouping<string, string, true>;
  /** Each EndpointSlice (by name) under the Service it serves, with its ready endpoints. */
  readonly slices: Grouping<string, string, Endpoint[]>;
}

/**
 * The `service`/`label` watcher's mapping, kept per object: which function each Service belongs
 * to and the ready endpoints each EndpointSlice gives its Service. Each change costs what that
 * object touches, not the size of its namespace; each answers the functions whose endpoints may
 * have changed.
 */
export class ServiceIndex {
  readonly #namespaces = new Map<string, NamespaceServices>();

  /** Sets (or with `undefined`, deletes) the function a Service belongs to. */
  setService(namespace: string, service: string, fn: string | undefined): string[] {
    const state = this.#state(namespace);
    const touched = state.services.set(service, fn === undefined ? undefined : { group: fn, value: true });
    this.#forgetIfEmpty(namespace, state);
    return touched;
  }

  /** Sets (or with `undefined`, deletes) what one slice says: its Service and ready endpoints. */
  setSlice(namespace: string, slice: string, read: { service: string; endpoints: Endpoint[] } | undefined): string[] {
    const state = this.#state(namespace);
    const services = state.slices.set(
      slice,
      read === undefined ? undefined : { group: read.service, value: read.endpoints },
    );
    const touched: string[] = [];
    for (const service of services) {
      const fn = state.services.groupOf(service);
      if (fn !== undefined) touched.push(fn);
    }
    this.#forgetIfEmpty(namespace, state);
    return touched;
  }

  /** A function's ready endpoints over all its Services, or undefined when no Service belongs to it. */
  endpoints(namespace: string, fn: string): Endpoint[] | undefined {
    const state = this.#namespaces.get(namespace);
    const services = state?.services.members(fn);
    if (state === undefined || services === undefined) return undefined;
    const out: Endpoint[] = [];
    for (const service of services.keys()) {
      for (const endpoints of state.slices.members(service)?.values() ?? []) out.push(...endpoints);
    }
    return out;
  }

  #state(namespace: string): NamespaceServices {
    let state = this.#namespaces.get(namespace);
    if (state === undefined) {
      state = { services: new Grouping(), slices: new Grouping() };
      this.#namespaces.set(namespace, state);
    }
    return state;
  }

  #forgetIfEmpty(namespace: string, state: NamespaceServices): void {
    if (state.services.size === 0 && state.slices.size === 0) this.#namespaces.delete(namespace);
  }
}

/**
 * Keeps an `EndpointTable` in sync with the cluster by watching Services (which functions
 * exist) and EndpointSlices (where their ready replicas are). Watch, never poll; each event
 * updates only the functions its object touches (`ServiceIndex`).
 */
export class KubeEndpointWatcher {
  readonly #table: EndpointTable;
  readonly #options: DiscoveryOptions;
  readonly #logger: Logger;
  readonly #index = new ServiceIndex();
  readonly #runners: InformerRunner[] = [];
  #stopped = false;
  #synced = false;

  constructor(options: { kubeConfig: KubeConfig; table: EndpointTable; discovery: DiscoveryOptions; logger: Logger }) {
    this.#table = options.table;
    this.#options = options.discovery;
    this.#logger = options.logger;
    const core = options.kubeConfig.makeApiClient(CoreV1Api);
    const serviceSelector = [
      options.discovery.discovery === 'label' ? options.discovery.functionLabel : '',
      options.discovery.serviceSelector,
    ]
      .filter((part) => part !== '')
      .join(',');
    const scopes: (string | undefined)[] =
      options.discovery.namespaces.length > 0 ? [...options.discovery.namespaces] : [undefined];
    for (const namespace of scopes) {
      const selector = serviceSelector === '' ? undefined : serviceSelector;
      const services = makeLeanInformer<V1Service>(
        options.kubeConfig,
        namespace === undefined ? '/api/v1/services' : `/api/v1/namespaces/${namespace}/services`,
        () =>
          namespace === undefined
            ? core.listServiceForAllNamespaces(selector === undefined ? {} : { labelSelector: selector })
            : core.listNamespacedService(
                selector === undefined ? { namespace } : { namespace, labelSelector: selector },
              ),
        { labelSelector: selector },
      );
      const slices = endpointSliceInformer(options.kubeConfig, namespace, SERVICE_NAME_LABEL, [SERVICE_NAME_LABEL]);
      for (const verb of ['add', 'update', 'delete'] as const) {
        services.on(verb, (service) => this.#onService(service, verb === 'delete'));
        slices.on(verb, (slice) => this.#onSlice(slice, verb === 'delete'));
      }
      const scope = namespace === undefined ? 'all namespaces' : `namespace ${namespace}`;
      this.#runners.push(
        new InformerRunner(services, { logger: this.#logger, what: `Services in ${scope}` }),
        new InformerRunner(slices, { logger: this.#logger, what: `EndpointSlices in ${scope}` }),
      );
    }
  }

  /** True once every informer listed its objects; `/readyz` reports this. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Lists and starts watching; resolves once the table reflects the cluster (retries while the API is down). */
  async start(): Promise<void> {
    await InformerRunner.startAll(this.#runners);
    if (this.#stopped) return;
    this.#synced = true;
    this.#logger.info({ functions: this.#table.functions().length }, 'endpoint watch synced');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#runners.map((runner) => runner.stop()));
  }

  #onService(service: V1Service, deleted: boolean): void {
    const { namespace, name } = service.metadata ?? {};
    if (this.#stopped || namespace === undefined || name === undefined) return;
    const fn = deleted ? undefined : functionOfService(service, this.#options);
    this.#publish(namespace, this.#index.setService(namespace, name, fn));
  }

  #onSlice(slice: V1EndpointSlice, deleted: boolean): void {
    const { namespace, name, labels } = slice.metadata ?? {};
    if (this.#stopped || namespace === undefined || name === undefined) return;
    const service = labels?.[SERVICE_NAME_LABEL];
    const read = deleted || service === undefined ? undefined : { service, endpoints: readyEndpoints(slice) };
    this.#publish(namespace, this.#index.setSlice(namespace, name, read));
  }

  #publish(namespace: string, functions: readonly string[]): void {
    for (const name of functions) {
      const endpoints = this.#index.endpoints(namespace, name);
      if (endpoints === undefined) this.#table.deleteFunction({ namespace, name });
      else this.#table.setFunction({ namespace, name }, endpoints);
    }
  }
}
