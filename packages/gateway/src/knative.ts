import { functionKey, Grouping, InformerRunner, isRecord, type Logger, makeLeanInformer } from '@afterlife/core';
import {
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1EndpointSlice,
} from '@kubernetes/client-node';
import { type Endpoint, type EndpointTable, endpointKey } from './endpoints.ts';
import { endpointSliceInformer } from './kube.ts';
import type { RouteTable, TrafficTarget } from './routes.ts';
import { WarmupProber, type WarmupTiming } from './warmup.ts';

/** The label Knative puts on a revision's Services (and so on their EndpointSlices). */
export const REVISION_LABEL = 'serving.knative.dev/revision';
/** Knative's label telling a revision's private Service (selects its pods) from the public one. */
export const SERVICE_TYPE_LABEL = 'networking.internal.knative.dev/serviceType';
/** The EndpointSlice selector of the revisions' private Services. */
export const PRIVATE_SLICE_SELECTOR = `${SERVICE_TYPE_LABEL}=Private`;

const ROUTES = { group: 'serving.knative.dev', version: 'v1', plural: 'routes' } as const;

/** A `serving.knative.dev/v1` Route as far as the gateway reads it. */
export interface KnativeRoute extends KubernetesObject {
  status?: { traffic?: unknown };
}

/** The Route's `status.traffic`, keeping only well-typed fields (the object comes from the API server). */
export function trafficOfRoute(route: KnativeRoute): TrafficTarget[] {
  const traffic = route.status?.traffic;
  if (!Array.isArray(traffic)) return [];
  return traffic.filter(isRecord).map((entry) => {
    const target: {
      revisionName?: string;
      percent?: number;
      latestRevision?: boolean;
      tag?: string;
      configurationName?: string;
    } = {};
    if (typeof entry.revisionName === 'string') target.revisionName = entry.revisionName;
    if (typeof entry.percent === 'number') target.percent = entry.percent;
    if (typeof entry.latestRevision === 'boolean') target.latestRevision = entry.latestRevision;
    if (typeof entry.tag === 'string') target.tag = entry.tag;
    if (typeof entry.configurationName === 'string') target.configurationName = entry.configurationName;
    return target;
  });
}

/** What one private EndpointSlice says about its revision. */
export interface RevisionSlice {
  readonly revision: string;
  readonly endpoints: Endpoint[];
  /** Addresses of pods not ready yet (and not terminating): starting pods the gateway may probe. */
  readonly notReady: Endpoint[];
  /** The slice offers only `http2` (h2c), which the gateway cannot deliver to. */
  readonly h2cOnly: boolean;
}

/**
 * Reads a revision's private EndpointSlice: ready addresses on the port named `http`
 * (queue-proxy, 8012 for HTTP/1 revisions). No `http` port but an `http2` one is an h2c
 * revision: no endpoints. Undefined for slices without the revision label.
 */
export function revisionSlice(slice: V1EndpointSlice): RevisionSlice | undefined {
  const revision = slice.metadata?.labels?.[REVISION_LABEL];
  if (revision === undefined || revision === '') return undefined;
  const ports = slice.ports ?? [];
  const port = ports.find((candidate) => candidate.name === 'http')?.port;
  const h2cOnly = port === undefined && ports.some((candidate) => candidate.name === 'http2');
  const endpoints: Endpoint[] = [];
  const notReady: Endpoint[] = [];
  if (port !== undefined && port !== null && (slice.addressType === 'IPv4' || slice.addressType === 'IPv6')) {
    for (const endpoint of slice.endpoints ?? []) {
      const ready = endpoint.conditions?.ready === true;
      if (!ready && endpoint.conditions?.terminating === true) continue;
      for (const ip of endpoint.addresses ?? []) (ready ? endpoints : notReady).push({ ip, port });
    }
  }
  return { revision, endpoints, notReady, h2cOnly };
}

/** What the gateway keeps of a Route: its identity and `status.traffic` (with 1,000 functions the caches are most of the memory). */
export function routeEssentials(route: KnativeRoute): KnativeRoute {
  const { name, namespace, resourceVersion, uid } = route.metadata ?? {};
  return {
    apiVersion: route.apiVersion,
    kind: route.kind,
    metadata: { name, namespace, resourceVersion, uid },
    ...(route.status?.traffic === undefined ? {} : { status: { traffic: route.status.traffic } }),
  } as KnativeRoute;
}

/** What a revision's private slices say together. */
export interface RevisionEndpoints {
  readonly ready: readonly Endpoint[];
  /** Addresses of its pods that are not ready yet. */
  readonly notReady: readonly Endpoint[];
  /** It has slices, and they offer only h2c. */
  readonly h2cOnly: boolean;
}

interface NamespaceIndex {
  /** Route name → its traffic. */
  readonly routes: Map<string, TrafficTarget[]>;
  /** Revision → the Routes naming it (at any percent). */
  readonly referencedBy: Map<string, Set<string>>;
  /** Each private slice (by name) under the revision it was filed under. */
  readonly slices: Grouping<string, string, RevisionSlice>;
}

const revisionsOf = (traffic: readonly TrafficTarget[]): Set<string> =>
  new Set(
    traffic.map((target) => target.revisionName).filter((name): name is string => name !== undefined && name !== ''),
  );

/**
 * The watcher's mapping of Knative objects, kept per object: which functions (Routes) exist with
 * their traffic, and which revisions exist — every revision a Route names (at any percent, so
 * events held for it stay its own until it is gone) or a private EndpointSlice carries — with
 * their endpoints. Each change costs what that object touches, not the size of its namespace.
 */
export class KnativeIndex {
  readonly #namespaces = new Map<string, NamespaceIndex>();

  /** Sets (or with `undefined`, deletes) a Route's traffic; answers the revisions it named before and names now. */
  setRoute(
    namespace: string,
    name: string,
    traffic: TrafficTarget[] | undefined,
  ): { named: Set<string>; dropped: Set<string> } {
    const state = this.#state(namespace);
    const before = revisionsOf(state.routes.get(name) ?? []);
    const named = traffic === undefined ? new Set<string>() : revisionsOf(traffic);
    const dropped = new Set([...before].filter((revision) => !named.has(revision)));
    for (const revision of dropped) {
      const routes = state.referencedBy.get(revision);
      routes?.delete(name);
      if (routes?.size === 0) state.referencedBy.delete(revision);
    }
    for (const revision of named) {
      const routes = state.referencedBy.get(revision) ?? new Set<string>();
      routes.add(name);
      state.referencedBy.set(revision, routes);
    }
    if (traffic === undefined) state.routes.delete(name);
    else state.routes.set(name, traffic);
    this.#forgetIfEmpty(namespace, state);
    return { named, dropped };
  }

  /** Sets (or with `undefined`, deletes) what one slice says; answers the revisions whose endpoints may have changed. */
  setSlice(namespace: string, sliceName: string, read: RevisionSlice | undefined): string[] {
    const state = this.#state(namespace);
    const touched = state.slices.set(sliceName, read === undefined ? undefined : { group: read.revision, value: read });
    this.#forgetIfEmpty(namespace, state);
    return touched;
  }

  /** A Route's traffic, or undefined when there is no such Route. */
  route(namespace: string, name: string): TrafficTarget[] | undefined {
    return this.#namespaces.get(namespace)?.routes.get(name);
  }

  /** A revision's endpoints, or undefined when no Route names it and no slice carries it. */
  revision(namespace: string, revision: string): RevisionEndpoints | undefined {
    const state = this.#namespaces.get(namespace);
    const slices = state?.slices.members(revision);
    if (slices === undefined && !state?.referencedBy.has(revision)) return undefined;
    const ready: Endpoint[] = [];
    const notReady: Endpoint[] = [];
    let h2cOnly = slices !== undefined;
    for (const slice of slices?.values() ?? []) {
      ready.push(...slice.endpoints);
      notReady.push(...slice.notReady);
      h2cOnly &&= slice.h2cOnly;
    }
    return { ready, notReady, h2cOnly };
  }

  /** Routes over all namespaces. */
  get routeCount(): number {
    let count = 0;
    for (const state of this.#namespaces.values()) count += state.routes.size;
    return count;
  }

  #state(namespace: string): NamespaceIndex {
    let state = this.#namespaces.get(namespace);
    if (state === undefined) {
      state = { routes: new Map(), referencedBy: new Map(), slices: new Grouping() };
      this.#namespaces.set(namespace, state);
    }
    return state;
  }

  #forgetIfEmpty(namespace: string, state: NamespaceIndex): void {
    if (state.routes.size === 0 && state.slices.size === 0 && state.referencedBy.size === 0)
      this.#namespaces.delete(namespace);
  }
}

/**
 * Discovery `knative`: keeps a `RouteTable` in sync with the Knative Routes (which functions
 * exist, how their traffic is split) and an `EndpointTable` with the revisions' private
 * EndpointSlices (where each revision's ready pods are). Watch, never poll. Each watch event
 * updates only the Route or revision it concerns (a namespace with 1,000 functions is not
 * recomputed per event). With `probeNotReady`, a revision's starting pods join its endpoints as
 * soon as their queue-proxy answers the activator probe (`WarmupProber`), before kubelet marks them Ready.
 */
export class KnativeRouteWatcher {
  readonly #routes: RouteTable;
  readonly #endpoints: EndpointTable;
  readonly #logger: Logger;
  readonly #runners: InformerRunner[] = [];
  readonly #index = new KnativeIndex();
  /** Revisions (`namespace/revision`) this watcher put in the endpoint table. */
  readonly #inTable = new Set<string>();
  /** h2c revisions already warned about (once each). */
  readonly #warnedH2c = new Set<string>();
  readonly #prober: WarmupProber | undefined;
  /** When each revision's addresses were first listed (`namespace/revision` → endpoint key → epoch ms). */
  readonly #listedAt = new Map<string, Map<string, number>>();
  #stopped = false;
  #synced = false;

  constructor(options: {
    kubeConfig: KubeConfig;
    routes: RouteTable;
    endpoints: EndpointTable;
    /** ANDed label selector for Routes (a Knative Service's Route carries the Service's labels). */
    routeSelector: string;
    /** Empty = all namespaces. */
    namespaces: readonly string[];
    logger: Logger;
    /** Probe not-ready pods and deliver to them once queue-proxy answers (default true). */
    probeNotReady?: boolean;
    warmupTiming?: Partial<WarmupTiming>;
  }) {
    this.#routes = options.routes;
    this.#endpoints = options.endpoints;
    this.#logger = options.logger;
    this.#prober =
      options.probeNotReady === false
        ? undefined
        : new WarmupProber({
            onAnswered: (revisionKey) => {
              const slash = revisionKey.indexOf('/');
              this.#syncRevision(revisionKey.slice(0, slash), revisionKey.slice(slash + 1));
            },
            logger: options.logger,
            ...(options.warmupTiming === undefined ? {} : { timing: options.warmupTiming }),
          });
    const custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
    const routeSelector = options.routeSelector === '' ? undefined : options.routeSelector;
    const withSelector = routeSelector === undefined ? {} : { labelSelector: routeSelector };
    const scopes: (string | undefined)[] = options.namespaces.length > 0 ? [...options.namespaces] : [undefined];
    for (const namespace of scopes) {
      const prefix = `/apis/${ROUTES.group}/${ROUTES.version}`;
      const routes = makeLeanInformer<KnativeRoute>(
        options.kubeConfig,
        namespace === undefined ? `${prefix}/${ROUTES.plural}` : `${prefix}/namespaces/${namespace}/${ROUTES.plural}`,
        async () =>
          (namespace === undefined
            ? await custom.listClusterCustomObject({ ...ROUTES, ...withSelector })
            : await custom.listNamespacedCustomObject({
                ...ROUTES,
                namespace,
                ...withSelector,
              })) as KubernetesListObject<KnativeRoute>,
        { labelSelector: routeSelector, trim: routeEssentials },
      );
      const slices = endpointSliceInformer(options.kubeConfig, namespace, PRIVATE_SLICE_SELECTOR, [REVISION_LABEL]);
      routes.on('add', (route) => this.#onRoute(route, false));
      routes.on('update', (route) => this.#onRoute(route, false));
      routes.on('delete', (route) => this.#onRoute(route, true));
      slices.on('add', (slice) => this.#onSlice(slice, false));
      slices.on('update', (slice) => this.#onSlice(slice, false));
      slices.on('delete', (slice) => this.#onSlice(slice, true));
      const scope = namespace === undefined ? 'all namespaces' : `namespace ${namespace}`;
      this.#runners.push(
        new InformerRunner(routes, { logger: this.#logger, what: `Knative Routes in ${scope}` }),
        new InformerRunner(slices, { logger: this.#logger, what: `private EndpointSlices in ${scope}` }),
      );
    }
  }

  /** True once both informers of every scope listed their objects; `/readyz` reports this. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Lists and starts watching; resolves once the tables reflect the cluster (retries while the API is down). */
  async start(): Promise<void> {
    // The informers' add events during the list fill the tables.
    await InformerRunner.startAll(this.#runners);
    if (this.#stopped) return;
    this.#synced = true;
    this.#logger.info({ functions: this.#index.routeCount }, 'Knative Route watch synced');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#prober?.stop();
    await Promise.all(this.#runners.map((runner) => runner.stop()));
  }

  #onRoute(route: KnativeRoute, deleted: boolean): void {
    const namespace = route.metadata?.namespace ?? '';
    const name = route.metadata?.name;
    if (this.#stopped || namespace === '' || name === undefined) return;
    const traffic = deleted ? undefined : trafficOfRoute(route);
    const { named, dropped } = this.#index.setRoute(namespace, name, traffic);
    // Revisions first, so that no Route ever names a revision the dispatcher does not know; gone
    // revisions last, so the router re-routes their held events through the new traffic.
    for (const revision of named) this.#syncRevision(namespace, revision);
    if (traffic === undefined) this.#routes.deleteRoute({ namespace, name });
    else this.#routes.setRoute({ namespace, name }, traffic);
    for (const revision of dropped) this.#syncRevision(namespace, revision);
  }

  #onSlice(slice: V1EndpointSlice, deleted: boolean): void {
    const namespace = slice.metadata?.namespace ?? '';
    const name = slice.metadata?.name;
    if (this.#stopped || namespace === '' || name === undefined) return;
    const touched = this.#index.setSlice(namespace, name, deleted ? undefined : revisionSlice(slice));
    for (const revision of touched) this.#syncRevision(namespace, revision);
  }

  /** Puts one revision in the endpoint table as its slices and the warm-up prober say, or takes it out. */
  #syncRevision(namespace: string, revision: string): void {
    if (this.#stopped) return;
    const key = functionKey({ namespace, name: revision });
    const read = this.#index.revision(namespace, revision);
    if (read === undefined) {
      if (this.#inTable.delete(key)) {
        this.#prober?.update(key, []);
        this.#listedAt.delete(key);
        this.#warnedH2c.delete(key);
        this.#endpoints.deleteFunction({ namespace, name: revision });
      }
      return;
    }
    const { ready, notReady, h2cOnly } = read;
    if (h2cOnly && !this.#warnedH2c.has(key)) {
      this.#warnedH2c.add(key);
      this.#logger.warn(
        { revision: key },
        'revision serves only h2c (EndpointSlice port "http2"); the gateway delivers HTTP/1.1 only, so it gets no endpoints',
      );
    }
    const now = Date.now();
    const warm = this.#prober?.update(key, notReady) ?? [];
    const listed = this.#listedAt.get(key) ?? new Map<string, number>();
    const current = new Map<string, number>();
    for (const endpoint of [...ready, ...notReady]) {
      const at = endpointKey(endpoint);
      current.set(at, listed.get(at) ?? now);
    }
    if (current.size === 0) this.#listedAt.delete(key);
    else this.#listedAt.set(key, current);
    const endpoints: Endpoint[] = [
      ...ready.map((endpoint) => ({ ...endpoint, listedAt: current.get(endpointKey(endpoint)) ?? now })),
      ...warm.map(({ seenAt, answeredAt, ...endpoint }) => ({
        ...endpoint,
        listedAt: seenAt,
        warm: { seenAt, answeredAt },
      })),
    ];
    this.#inTable.add(key);
    this.#endpoints.setFunction({ namespace, name: revision }, endpoints);
  }
}
