import {
  CONFIG_DEPLOYMENT,
  CONFIG_FEATURES,
  featuresFromConfigMaps,
  InformerRunner,
  type KnativeFeatures,
  type Logger,
  makeLeanInformer,
  UNSYNCED_FEATURES,
} from '@afterlife/core';
import { CoreV1Api, type KubeConfig, type V1ConfigMap, type V1Namespace } from '@kubernetes/client-node';
import { LABEL_RUNTIME } from './admit.ts';
import { WebhookError } from './errors.ts';

/**
 * Watches Knative Serving's `config-features` and `config-deployment` ConfigMaps and keeps a
 * `KnativeFeatures` snapshot current. Needs get/list/watch on ConfigMaps in the Knative namespace.
 */
export class KnativeConfigWatcher {
  readonly #namespace: string;
  readonly #logger: Logger;
  readonly #informer;
  readonly #runner: InformerRunner;
  #features: KnativeFeatures = UNSYNCED_FEATURES;
  #listed = false;
  readonly #listeners = new Set<(features: KnativeFeatures) => void>();

  constructor(kubeConfig: KubeConfig, namespace: string, logger: Logger) {
    this.#namespace = namespace;
    this.#logger = logger;
    const core = kubeConfig.makeApiClient(CoreV1Api);
    this.#informer = makeLeanInformer<V1ConfigMap>(
      kubeConfig,
      `/api/v1/namespaces/${namespace}/configmaps`,
      async () => {
        const list = await core.listNamespacedConfigMap({ namespace });
        this.#listed = true;
        // After the informer has stored the listed items (and also when none of ours exist).
        setImmediate(() => this.#recompute());
        return list;
      },
    );
    for (const verb of ['add', 'update', 'delete'] as const) {
      this.#informer.on(verb, (cm) => {
        const name = cm.metadata?.name;
        if (name === CONFIG_FEATURES || name === CONFIG_DEPLOYMENT) this.#recompute();
      });
    }
    this.#runner = new InformerRunner(this.#informer, { logger, what: `ConfigMaps in ${namespace}` });
  }

  /** The current snapshot (`synced: false` until the first successful list). */
  get features(): KnativeFeatures {
    return this.#features;
  }

  get synced(): boolean {
    return this.#features.synced;
  }

  onChange(listener: (features: KnativeFeatures) => void): void {
    this.#listeners.add(listener);
  }

  /** Starts watching; resolves after the first list attempt (check `synced`). */
  async start(): Promise<void> {
    await this.#runner.start();
    this.#recompute();
  }

  /** Resolves once synced, or rejects after `timeoutMs`. */
  async waitForSync(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.synced) {
      if (Date.now() > deadline) {
        throw new WebhookError(
          'KNATIVE_NOT_SYNCED',
          `Knative ConfigMaps in ${this.#namespace} not synced after ${timeoutMs} ms`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(): Promise<void> {
    await this.#runner.stop();
  }

  #recompute(): void {
    if (!this.#listed) return;
    const features = this.#informer.get(CONFIG_FEATURES, this.#namespace)?.data;
    const deployment = this.#informer.get(CONFIG_DEPLOYMENT, this.#namespace)?.data;
    const next = featuresFromConfigMaps(features, deployment);
    const previous = this.#features;
    this.#features = next;
    if (
      previous.synced !== next.synced ||
      previous.runtimeClassNameFlag !== next.runtimeClassNameFlag ||
      JSON.stringify([...previous.runtimeClassNames]) !== JSON.stringify([...next.runtimeClassNames]) ||
      previous.runtimeClassNamesError !== next.runtimeClassNamesError
    ) {
      this.#logger.info(
        {
          runtimeClassNameFlag: next.runtimeClassNameFlag ?? '(unset: disabled)',
          runtimeClassNames: Object.fromEntries(next.runtimeClassNames),
          runtimeClassNamesError: next.runtimeClassNamesError,
        },
        'Knative configuration changed',
      );
      for (const listener of this.#listeners) listener(next);
    }
  }
}

/**
 * Caches the `afterlife.dev/runtime` label of namespaces that carry it (a label-selected informer,
 * so only opted-in/out namespaces are held). Needs cluster-wide list/watch on namespaces.
 */
export class NamespaceLabelWatcher {
  readonly #informer;
  readonly #runner: InformerRunner;

  constructor(kubeConfig: KubeConfig, logger: Logger) {
    const core = kubeConfig.makeApiClient(CoreV1Api);
    this.#informer = makeLeanInformer<V1Namespace>(
      kubeConfig,
      '/api/v1/namespaces',
      () => core.listNamespace({ labelSelector: LABEL_RUNTIME }),
      { labelSelector: LABEL_RUNTIME },
    );
    this.#runner = new InformerRunner(this.#informer, { logger, what: 'namespaces' });
  }

  labels(namespace: string): Readonly<Record<string, string>> | undefined {
    return this.#informer.get(namespace)?.metadata?.labels;
  }

  async start(): Promise<void> {
    await this.#runner.start();
  }

  async stop(): Promise<void> {
    await this.#runner.stop();
  }
}
