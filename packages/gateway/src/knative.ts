import { functionKey, InformerRunner, isRecord, type Logger, makeLeanInformer } from '@afterlife/core';
import {
  CustomObjectsApi,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
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

/** One namespace as the gateway sees it: functions (Routes) with their traffic, revisions with their ready endpoints. */
export interface KnativeNamespaceView {
  readonly routes: Map<string, TrafficTarget[]>;
  /** Every revision a Route names (at any percent) or an EndpointSlice carries. */
  readonly revisions: Map<string, Endpoint[]>;
  /** Per revision, the addresses of its pods that are not ready yet. */
  readonly notReady: Map<string, Endpoint[]>;
  /** Revisions whose slices offer only h2c. */
  readonly h2cOnly: Set<string>;
}

/** Maps one namespace's Routes and private EndpointSlices to functions and revisions. */
export function knativeNamespaceView(
  routes: Iterable<KnativeRoute>,
  slices: Iterable<V1EndpointSlice>,
): KnativeNamespaceView {
  const view: KnativeNamespaceView = {
    routes: new Map(),
    revisions: new Map(),
    notReady: new Map(),
    h2cOnly: new Set(),
  };
  for (const route of routes) {
    const name = route.metadata?.name;
    if (name === undefined) continue;
    const traffic = trafficOfRoute(route);
    view.routes.set(name, traffic);
    // Referenced at any percent: events held for it stay its own until the revision is gone.
    for (const target of traffic) {
      if (target.revisionName !== undefined && target.revisionName !== '' && !view.revisions.has(target.revisionName))
        view.revisions.set(target.revisionName, []);
    }
  }
  const h2cSlices = new Map<string, boolean>();
  for (const slice of slices) {
    const read = revisionSlice(slice);
    if (read === undefined) continue;
    view.revisions.set(read.revision, [...(view.revisions.get(read.revision) ?? []), ...read.endpoints]);
    if (read.notReady.length > 0)
      view.notReady.set(read.revision, [...(view.notReady.get(read.revision) ?? []), ...read.notReady]);
    h2cSlices.set(read.revision, (h2cSlices.get(read.revision) ?? true) && read.h2cOnly);
  }
  for (const [revision, onlyH2c] of h2cSlices) if (onlyH2c) view.h2cOnly.add(revision);
  return view;
}

type Watched<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

/**
 * Discovery `knative`: keeps a `RouteTable` in sync with the Knative Routes (which functions
 * exist, how their traffic is split) and an `EndpointTable` with the revisions' private
 * EndpointSlices (where each revision's ready pods are). Watch, never poll. With `probeNotReady`,
 * a revision's starting pods join its endpoints as soon as their queue-proxy answers the
 * activator probe (`WarmupProber`), before kubelet marks them Ready.
 */
export class KnativeRouteWatcher {
  readonly #routes: RouteTable;
  readonly #endpoints: EndpointTable;
  readonly #logger: Logger;
  readonly #routeInformers: Watched<KnativeRoute>[] = [];
  readonly #sliceInformers: Watched<V1EndpointSlice>[] = [];
  readonly #runners: InformerRunner[] = [];
  /** What this watcher put in the tables, per namespace. */
  readonly #knownRoutes = new Map<string, Set<string>>();
  readonly #knownRevisions = new Map<string, Set<string>>();
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
            onAnswered: (revisionKey) => this.#recompute(revisionKey.slice(0, revisionKey.indexOf('/'))),
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
        { labelSelector: routeSelector },
      );
      const slices = endpointSliceInformer(options.kubeConfig, namespace, PRIVATE_SLICE_SELECTOR);
      for (const informer of [routes, slices] as Watched<KubernetesObject>[]) {
        informer.on('change', (object) => this.#recompute(object.metadata?.namespace ?? ''));
      }
      this.#routeInformers.push(routes);
      this.#sliceInformers.push(slices);
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
    await InformerRunner.startAll(this.#runners);
    if (this.#stopped) return;
    const namespaces = new Set<string>();
    for (const informer of [...this.#routeInformers, ...this.#sliceInformers] as Watched<KubernetesObject>[]) {
      for (const object of informer.list()) namespaces.add(object.metadata?.namespace ?? '');
    }
    for (const namespace of namespaces) this.#recompute(namespace);
    this.#synced = true;
    this.#logger.info(
      { functions: [...this.#knownRoutes.values()].reduce((sum, names) => sum + names.size, 0) },
      'Knative Route watch synced',
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#prober?.stop();
    await Promise.all(this.#runners.map((runner) => runner.stop()));
  }

  #recompute(namespace: string): void {
    if (this.#stopped || namespace === '') return;
    const view = knativeNamespaceView(
      this.#routeInformers.flatMap((informer) => informer.list(namespace)),
      this.#sliceInformers.flatMap((informer) => informer.list(namespace)),
    );
    for (const revision of view.h2cOnly) {
      const key = functionKey({ namespace, name: revision });
      if (this.#warnedH2c.has(key)) continue;
      this.#warnedH2c.add(key);
      this.#logger.warn(
        { revision: key },
        'revision serves only h2c (EndpointSlice port "http2"); the gateway delivers HTTP/1.1 only, so it gets no endpoints',
      );
    }
    // Revisions first, so that no Route ever names a revision the dispatcher does not know; gone
    // revisions last, so the router re-routes their held events through the new traffic.
    const now = Date.now();
    for (const [revision, ready] of view.revisions) {
      const key = functionKey({ namespace, name: revision });
      const notReady = view.notReady.get(revision) ?? [];
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
      this.#endpoints.setFunction({ namespace, name: revision }, endpoints);
    }
    for (const [name, traffic] of view.routes) this.#routes.setRoute({ namespace, name }, traffic);
    const previousRoutes = this.#knownRoutes.get(namespace) ?? new Set<string>();
    for (const name of previousRoutes) if (!view.routes.has(name)) this.#routes.deleteRoute({ namespace, name });
    const previousRevisions = this.#knownRevisions.get(namespace) ?? new Set<string>();
    for (const name of previousRevisions) {
      if (view.revisions.has(name)) continue;
      this.#prober?.update(functionKey({ namespace, name }), []);
      this.#listedAt.delete(functionKey({ namespace, name }));
      this.#endpoints.deleteFunction({ namespace, name });
      this.#warnedH2c.delete(functionKey({ namespace, name }));
    }
    remember(this.#knownRoutes, namespace, view.routes.keys());
    remember(this.#knownRevisions, namespace, view.revisions.keys());
  }
}

function remember(known: Map<string, Set<string>>, namespace: string, names: Iterable<string>): void {
  const set = new Set(names);
  if (set.size === 0) known.delete(namespace);
  else known.set(namespace, set);
}
