import { InformerRunner, type Logger, makeLeanInformer } from '@afterlife/core';
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

/**
 * Keeps an `EndpointTable` in sync with the cluster by watching Services (which functions
 * exist) and EndpointSlices (where their ready replicas are). Watch, never poll.
 */
export class KubeEndpointWatcher {
  readonly #table: EndpointTable;
  readonly #options: DiscoveryOptions;
  readonly #logger: Logger;
  readonly #services: Watched<V1Service>[] = [];
  readonly #slices: Watched<V1EndpointSlice>[] = [];
  readonly #runners: InformerRunner[] = [];
  /** Functions this watcher put in the table, per namespace. */
  readonly #known = new Map<string, Set<string>>();
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
      for (const informer of [services, slices] as Watched<KubernetesObject>[]) {
        informer.on('change', (object) => this.#recompute(object.metadata?.namespace ?? ''));
      }
      this.#services.push(services);
      this.#slices.push(slices);
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
    for (const namespace of new Set(this.#services.flatMap((s) => s.list().map((o) => o.metadata?.namespace ?? '')))) {
      this.#recompute(namespace);
    }
    this.#synced = true;
    this.#logger.info({ functions: this.#table.functions().length }, 'endpoint watch synced');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#runners.map((runner) => runner.stop()));
  }

  #recompute(namespace: string): void {
    if (this.#stopped || namespace === '') return;
    const servicesByFunction = new Map<string, Set<string>>();
    for (const informer of this.#services) {
      for (const service of informer.list(namespace)) {
        const fn = functionOfService(service, this.#options);
        const name = service.metadata?.name;
        if (fn === undefined || name === undefined) continue;
        const set = servicesByFunction.get(fn) ?? new Set<string>();
        set.add(name);
        servicesByFunction.set(fn, set);
      }
    }
    const endpointsByService = new Map<string, Endpoint[]>();
    for (const informer of this.#slices) {
      for (const slice of informer.list(namespace)) {
        const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
        if (service === undefined) continue;
        const list = endpointsByService.get(service) ?? [];
        list.push(...readyEndpoints(slice));
        endpointsByService.set(service, list);
      }
    }
    const previous = this.#known.get(namespace) ?? new Set<string>();
    const now = new Set<string>();
    for (const [fn, services] of servicesByFunction) {
      now.add(fn);
      const endpoints = [...services].flatMap((service) => endpointsByService.get(service) ?? []);
      this.#table.setFunction({ namespace, name: fn }, endpoints);
    }
    for (const fn of previous) if (!now.has(fn)) this.#table.deleteFunction({ namespace, name: fn });
    if (now.size === 0) this.#known.delete(namespace);
    else this.#known.set(namespace, now);
  }
}
