import { errorMessage, type Logger } from '@afterlife/core';
import { CoreV1Api, type KubeConfig, makeInformer, type V1ConfigMap, type V1Namespace } from '@kubernetes/client-node';
import { LABEL_RUNTIME } from './admit.ts';
import {
  CONFIG_DEPLOYMENT,
  CONFIG_FEATURES,
  featuresFromConfigMaps,
  type KnativeFeatures,
  UNSYNCED_FEATURES,
} from './features.ts';

const RESTART_DELAY_MS = [500, 1000, 2000, 5000, 10_000, 30_000];

interface Restartable {
  start(): Promise<void>;
  stop(): Promise<void>;
  on(verb: 'error', cb: (err?: unknown) => void): void;
}

/** Keeps an informer running: restarts it with backoff after errors until stopped. */
class InformerRunner {
  readonly #informer: Restartable;
  readonly #logger: Logger;
  readonly #what: string;
  #stopped = false;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(informer: Restartable, logger: Logger, what: string) {
    this.#informer = informer;
    this.#logger = logger;
    this.#what = what;
    informer.on('error', (err) => this.#scheduleRestart(err));
  }

  #scheduleRestart(err: unknown): void {
    if (this.#stopped || this.#timer !== undefined) return;
    const delay = RESTART_DELAY_MS[Math.min(this.#failures, RESTART_DELAY_MS.length - 1)] ?? 30_000;
    this.#failures += 1;
    this.#logger.warn({ err: errorMessage(err), retryInMs: delay }, `watching ${this.#what} failed; retrying`);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#stopped) void this.#start();
    }, delay);
    this.#timer.unref();
  }

  async #start(): Promise<void> {
    try {
      await this.#informer.start();
    } catch (error) {
      this.#scheduleRestart(error);
    }
  }

  resetFailures(): void {
    this.#failures = 0;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await this.#start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#informer.stop();
  }
}

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
    this.#informer = makeInformer<V1ConfigMap>(kubeConfig, `/api/v1/namespaces/${namespace}/configmaps`, async () => {
      const list = await core.listNamespacedConfigMap({ namespace });
      this.#listed = true;
      this.#runner.resetFailures();
      // After the informer has stored the listed items (and also when none of ours exist).
      setImmediate(() => this.#recompute());
      return list;
    });
    for (const verb of ['add', 'update', 'delete'] as const) {
      this.#informer.on(verb, (cm) => {
        const name = cm.metadata?.name;
        if (name === CONFIG_FEATURES || name === CONFIG_DEPLOYMENT) this.#recompute();
      });
    }
    this.#runner = new InformerRunner(this.#informer, logger, `ConfigMaps in ${namespace}`);
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
      if (Date.now() > deadline)
        throw new Error(`Knative ConfigMaps in ${this.#namespace} not synced after ${timeoutMs} ms`);
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
    this.#informer = makeInformer<V1Namespace>(
      kubeConfig,
      '/api/v1/namespaces',
      async () => {
        const list = await core.listNamespace({ labelSelector: LABEL_RUNTIME });
        this.#runner.resetFailures();
        return list;
      },
      LABEL_RUNTIME,
    );
    this.#runner = new InformerRunner(this.#informer, logger, 'namespaces');
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
