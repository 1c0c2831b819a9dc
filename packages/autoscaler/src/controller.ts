import { errorMessage, InformerRunner, type Logger, makeLeanInformer, withoutManagedFields } from '@afterlife/core';
import {
  AppsV1Api,
  CustomObjectsApi,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  type ObjectCache,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
} from '@kubernetes/client-node';
import { parseScaling } from './annotations.ts';
import type { AutoscalerConfig } from './config.ts';
import { AutoscalerError } from './errors.ts';
import { statusOf } from './lease.ts';
import type { AutoscalerMetrics } from './metrics.ts';
import { WorkQueue } from './queue.ts';
import {
  CLASS_ANNOTATION,
  computeStatus,
  desiredScaledObject,
  desiredServerlessService,
  isControlledBy,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  PA_API,
  type PodAutoscaler,
  REVISION_LABEL,
  SCALED_OBJECT_API,
  type ScaledObject,
  type ScaleTarget,
  type ServerlessService,
  SKS_API,
  sameStatus,
  scaledObjectDiffers,
  scaledObjectRead,
  serverlessServiceDiffers,
  serverlessServiceRead,
} from './resources.ts';

type Watched<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;
type Api = { group: string; version: string; plural: string };

export interface ControllerOptions {
  readonly kubeConfig: KubeConfig;
  readonly config: AutoscalerConfig;
  readonly logger: Logger;
  readonly metrics: AutoscalerMetrics;
}

/** What one reconcile did, for the metrics and logs. */
export type ReconcileResult = 'unchanged' | 'updated' | 'invalid' | 'ignored' | 'gone';

/**
 * What the autoscaler keeps of a revision Deployment: its identity and revision label,
 * `spec.replicas`, `status.readyReplicas` (`#scaleTarget`). The pod template, the annotations and
 * the status conditions, most of a Deployment, are never read; it is never written from the cache.
 */
export function scaleTargetOnly(deployment: V1Deployment): V1Deployment {
  const { name, namespace, uid, resourceVersion, labels } = deployment.metadata ?? {};
  const revision = labels?.[REVISION_LABEL];
  return {
    apiVersion: deployment.apiVersion,
    kind: deployment.kind,
    metadata: {
      name,
      namespace,
      uid,
      resourceVersion,
      ...(revision === undefined ? {} : { labels: { [REVISION_LABEL]: revision } }),
    },
    ...(deployment.spec === undefined
      ? {}
      : { spec: { replicas: deployment.spec.replicas, selector: {}, template: {} } }),
    ...(deployment.status === undefined ? {} : { status: { readyReplicas: deployment.status.readyReplicas } }),
  } as V1Deployment;
}

/**
 * Owns every PodAutoscaler of the configured class. Informers (PAs, their SKSs, ScaledObjects and
 * revision Deployments) feed a keyed work queue; only the Lease leader reconciles. Each key is a
 * PA `namespace/name`; SKS, ScaledObject and Deployment changes map back to it by name.
 */
export class PodAutoscalerController {
  readonly #kube: KubeConfig;
  readonly #config: AutoscalerConfig;
  readonly #logger: Logger;
  readonly #metrics: AutoscalerMetrics;
  readonly #custom: CustomObjectsApi;
  readonly #pas: Watched<PodAutoscaler & KubernetesObject>[] = [];
  readonly #sks: Watched<ServerlessService & KubernetesObject>[] = [];
  readonly #scaledObjects: Watched<ScaledObject & KubernetesObject>[] = [];
  readonly #deployments: Watched<V1Deployment>[] = [];
  readonly #runners: InformerRunner[] = [];
  readonly #queue: WorkQueue;
  #leading = false;
  #synced = false;
  #resync: NodeJS.Timeout | undefined;

  constructor(options: ControllerOptions) {
    this.#kube = options.kubeConfig;
    this.#config = options.config;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
    const apps = options.kubeConfig.makeApiClient(AppsV1Api);
    this.#queue = new WorkQueue({
      workers: options.config.workers,
      handle: (key) => this.#reconcileKey(key),
      onError: (key, error, retryInMs) =>
        this.#logger.warn({ podAutoscaler: key, err: errorMessage(error), retryInMs }, 'reconcile failed; retrying'),
    });
    const scopes: (string | undefined)[] =
      options.config.namespaces.length > 0 ? [...options.config.namespaces] : [undefined];
    for (const namespace of scopes) {
      const pas = this.#customInformer<PodAutoscaler & KubernetesObject>(PA_API, namespace);
      const sks = this.#customInformer<ServerlessService & KubernetesObject>(
        SKS_API,
        namespace,
        REVISION_LABEL,
        (object) => serverlessServiceRead(withoutManagedFields(object)),
      );
      const scaledObjects = this.#customInformer<ScaledObject & KubernetesObject>(
        SCALED_OBJECT_API,
        namespace,
        `${MANAGED_BY_LABEL}=${MANAGED_BY}`,
        (object) => scaledObjectRead(withoutManagedFields(object)),
      );
      const deployments = makeLeanInformer<V1Deployment>(
        options.kubeConfig,
        namespace === undefined ? '/apis/apps/v1/deployments' : `/apis/apps/v1/namespaces/${namespace}/deployments`,
        () =>
          namespace === undefined
            ? apps.listDeploymentForAllNamespaces({ labelSelector: REVISION_LABEL })
            : apps.listNamespacedDeployment({ namespace, labelSelector: REVISION_LABEL }),
        { labelSelector: REVISION_LABEL, trim: scaleTargetOnly },
      );
      for (const verb of ['add', 'update', 'delete'] as const) {
        pas.on(verb, (pa) => this.#enqueue(pa.metadata?.namespace, pa.metadata?.name));
        sks.on(verb, (object) => this.#enqueue(object.metadata?.namespace, object.metadata?.name));
        scaledObjects.on(verb, (object) => this.#enqueue(object.metadata?.namespace, object.metadata?.name));
        deployments.on(verb, (object) =>
          this.#enqueue(object.metadata?.namespace, object.metadata?.labels?.[REVISION_LABEL]),
        );
      }
      this.#pas.push(pas);
      this.#sks.push(sks);
      this.#scaledObjects.push(scaledObjects);
      this.#deployments.push(deployments);
      const scope = namespace === undefined ? 'all namespaces' : `namespace ${namespace}`;
      for (const [informer, what] of [
        [pas, 'PodAutoscalers'],
        [sks, 'ServerlessServices'],
        [scaledObjects, 'ScaledObjects'],
        [deployments, 'revision Deployments'],
      ] as const) {
        this.#runners.push(new InformerRunner(informer, { logger: this.#logger, what: `${what} in ${scope}` }));
      }
    }
  }

  /** True once every informer has listed (`/readyz`). */
  get synced(): boolean {
    return this.#synced;
  }

  get queueDepth(): number {
    return this.#queue.depth;
  }

  /** PAs of our class in the cache. */
  get owned(): number {
    return this.#allPas().length;
  }

  async start(): Promise<void> {
    await InformerRunner.startAll(this.#runners);
    this.#synced = true;
    this.#resync = setInterval(() => this.#enqueueAll(), this.#config.resyncMs);
    this.#resync.unref();
    this.#logger.info({ podAutoscalers: this.owned }, 'caches synced');
    if (this.#leading) this.#enqueueAll();
  }

  /** Leadership changes from the LeaderElector. */
  setLeading(leading: boolean): void {
    this.#leading = leading;
    if (leading && this.#synced) this.#enqueueAll();
  }

  /** Resolves when no reconcile is queued or running (tests). */
  whenIdle(): Promise<void> {
    return this.#queue.whenIdle();
  }

  async stop(): Promise<void> {
    clearInterval(this.#resync);
    this.#leading = false;
    await this.#queue.stop();
    await Promise.all(this.#runners.map((runner) => runner.stop()));
  }

  #customInformer<T extends KubernetesObject>(
    api: Api,
    namespace: string | undefined,
    labelSelector?: string,
    trim?: (object: T) => T,
  ): Watched<T> {
    const base = `/apis/${api.group}/${api.version}`;
    const path = namespace === undefined ? `${base}/${api.plural}` : `${base}/namespaces/${namespace}/${api.plural}`;
    const list = async () => {
      const selector = labelSelector === undefined ? {} : { labelSelector };
      const body =
        namespace === undefined
          ? await this.#custom.listClusterCustomObject({ ...api, ...selector })
          : await this.#custom.listNamespacedCustomObject({ ...api, namespace, ...selector });
      return body as { metadata?: { resourceVersion?: string }; items: T[] };
    };
    return makeLeanInformer<T>(this.#kube, path, list as never, {
      labelSelector,
      ...(trim === undefined ? {} : { trim }),
    });
  }

  #isOurs(pa: PodAutoscaler): boolean {
    return pa.metadata.annotations?.[CLASS_ANNOTATION] === this.#config.class;
  }

  #allPas(): PodAutoscaler[] {
    return this.#pas.flatMap((informer) => informer.list()).filter((pa) => this.#isOurs(pa));
  }

  #enqueue(namespace: string | undefined, name: string | undefined): void {
    if (!this.#leading || namespace === undefined || name === undefined) return;
    this.#queue.add(`${namespace}/${name}`);
  }

  #enqueueAll(): void {
    for (const pa of this.#allPas()) this.#enqueue(pa.metadata.namespace, pa.metadata.name);
  }

  #find<T extends KubernetesObject>(informers: readonly Watched<T>[], namespace: string, name: string): T | undefined {
    for (const informer of informers) {
      const found = informer.get(name, namespace);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  async #reconcileKey(key: string): Promise<void> {
    if (!this.#leading) return;
    const [namespace = '', name = ''] = key.split('/');
    const started = performance.now();
    let result: ReconcileResult = 'gone';
    try {
      result = await this.#reconcile(namespace, name);
      if (result === 'gone' || result === 'ignored') this.#queue.forget(key);
    } catch (error) {
      this.#metrics.reconciles.inc({ result: 'error' });
      throw error;
    } finally {
      this.#metrics.reconcileDuration.observe((performance.now() - started) / 1000);
    }
    this.#metrics.reconciles.inc({ result });
  }

  async #reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const pa = this.#find(this.#pas, namespace, name);
    // Deleted: owner references let the garbage collector remove the SKS and ScaledObject.
    if (pa === undefined || pa.metadata.deletionTimestamp !== undefined) return 'gone';
    if (!this.#isOurs(pa)) return 'ignored';
    const log = this.#logger.child({ podAutoscaler: `${namespace}/${name}` });

    const parsed = parseScaling(
      {
        annotations: pa.metadata.annotations ?? {},
        ...(pa.spec.reachability ? { reachability: pa.spec.reachability } : {}),
      },
      this.#config.defaults,
    );
    const target = this.#scaleTarget(namespace, pa.spec.scaleTargetRef.name ?? '');
    if (!parsed.ok) {
      log.warn({ problems: parsed.problems }, 'revision has unusable scaling annotations; not scaling it');
      await this.#writeStatus(
        pa,
        computeStatus({
          pa,
          scaling: { problems: parsed.problems },
          sks: undefined,
          target,
          scaledObject: undefined,
          now: new Date(),
        }),
      );
      return 'invalid';
    }

    let failure: { reason: string; message: string } | undefined;
    let sks: ServerlessService | undefined;
    let scaledObject: ScaledObject | undefined;
    let changed = false;
    try {
      const reconciledSks = await this.#reconcileOwned(
        SKS_API,
        this.#sks,
        pa,
        desiredServerlessService(pa),
        serverlessServiceDiffers,
      );
      sks = reconciledSks.object;
      changed ||= reconciledSks.changed;
      const initialized = (pa.status?.conditions ?? []).some(
        (c) => c.type === 'ScaleTargetInitialized' && c.status === 'True',
      );
      const reconciledSo = await this.#reconcileOwned(
        SCALED_OBJECT_API,
        this.#scaledObjects,
        pa,
        desiredScaledObject({
          pa,
          scaling: parsed.scaling,
          scalerAddress: this.#config.scalerAddress,
          scalerTlsAuthentication: this.#config.scalerTlsAuthentication,
          initialized,
        }),
        scaledObjectDiffers,
      );
      scaledObject = reconciledSo.object;
      changed ||= reconciledSo.changed;
    } catch (error) {
      if (!(error instanceof AutoscalerError && error.code === 'RESOURCE_NOT_OWNED')) throw error;
      failure = { reason: 'NotOwned', message: error.message };
      log.error({ err: error.message }, 'cannot reconcile revision');
    }
    const status = computeStatus({
      pa,
      scaling: parsed.scaling,
      sks,
      target,
      scaledObject,
      ...(failure === undefined ? {} : { failure }),
      now: new Date(),
    });
    changed = (await this.#writeStatus(pa, status)) || changed;
    return changed ? 'updated' : 'unchanged';
  }

  #scaleTarget(namespace: string, deploymentName: string): ScaleTarget | undefined {
    const deployment = this.#find(this.#deployments, namespace, deploymentName);
    if (deployment === undefined) return undefined;
    return { desired: deployment.spec?.replicas ?? 0, ready: deployment.status?.readyReplicas ?? 0 };
  }

  /** Creates or updates an object the PA controls; refuses one controlled by someone else. */
  async #reconcileOwned<T extends ServerlessService | ScaledObject>(
    api: Api,
    cache: readonly Watched<T & KubernetesObject>[],
    pa: PodAutoscaler,
    desired: T,
    differs: (current: T, desired: T) => boolean,
  ): Promise<{ object: T; changed: boolean }> {
    const namespace = desired.metadata.namespace ?? '';
    const name = desired.metadata.name ?? '';
    const current = this.#find(cache, namespace, name) as T | undefined;
    try {
      if (current === undefined) {
        const created = (await this.#custom.createNamespacedCustomObject({ ...api, namespace, body: desired })) as T;
        this.#logger.info({ kind: desired.kind, object: `${namespace}/${name}` }, 'created');
        return { object: created, changed: true };
      }
      if (!isControlledBy(current, pa)) {
        throw new AutoscalerError(
          'RESOURCE_NOT_OWNED',
          `There is an existing ${desired.kind} "${name}" that we do not own.`,
        );
      }
      if (!differs(current, desired)) return { object: current, changed: false };
      const body = {
        ...current,
        metadata: { ...current.metadata, labels: { ...current.metadata.labels, ...desired.metadata.labels } },
        spec: { ...current.spec, ...desired.spec },
      };
      const updated = (await this.#custom.replaceNamespacedCustomObject({ ...api, namespace, name, body })) as T;
      this.#logger.info({ kind: desired.kind, object: `${namespace}/${name}` }, 'updated');
      return { object: updated, changed: true };
    } catch (error) {
      if (error instanceof AutoscalerError) throw error;
      if (current === undefined && statusOf(error) === 409) {
        // Exists, yet not in the cache: the informer is behind, or the object lacks the label it
        // selects by — in which case it is not ours.
        const existing = (await this.#custom
          .getNamespacedCustomObject({ ...api, namespace, name })
          .catch(() => undefined)) as T | undefined;
        if (existing !== undefined && !isControlledBy(existing, pa)) {
          throw new AutoscalerError(
            'RESOURCE_NOT_OWNED',
            `There is an existing ${desired.kind} "${name}" that we do not own.`,
          );
        }
      }
      // Otherwise (a Conflict, or the cache behind) the informer catches up and the retry succeeds.
      throw new AutoscalerError(
        'KUBE_REQUEST_FAILED',
        `writing ${desired.kind} ${namespace}/${name} (HTTP ${statusOf(error) ?? '?'})`,
        {
          cause: error,
        },
      );
    }
  }

  /** Merge-patches `/status` when it says something new; true when written. */
  async #writeStatus(pa: PodAutoscaler, status: ReturnType<typeof computeStatus>): Promise<boolean> {
    if (sameStatus(pa.status, status)) return false;
    try {
      await this.#custom.patchNamespacedCustomObjectStatus(
        { ...PA_API, namespace: pa.metadata.namespace ?? '', name: pa.metadata.name ?? '', body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw new AutoscalerError(
        'KUBE_REQUEST_FAILED',
        `writing status of PodAutoscaler ${pa.metadata.namespace}/${pa.metadata.name}`,
        {
          cause: error,
        },
      );
    }
    return true;
  }
}
