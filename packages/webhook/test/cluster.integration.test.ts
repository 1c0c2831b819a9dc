import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger, createMetricsRegistry, enableFlagCommand, runtimeClassFieldAllowed } from '@afterlife/core';
import { waitFor } from '@afterlife/devcluster';
import { useCluster } from '@afterlife/devcluster/testing';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1MutatingWebhook,
} from '@kubernetes/client-node';
import { DEFAULT_MUTATION_CONFIG } from '../src/config.ts';
import { createWebhookMetrics } from '../src/metrics.ts';
import { startWebhookServer, type WebhookServer } from '../src/server.ts';
import { KnativeConfigWatcher } from '../src/watch.ts';
import { createTestPki, issueServerCert, type TestPki } from './tls.ts';

const KNATIVE_NS = 'knative-serving';
const GROUP = 'serving.knative.dev';
// biome-ignore lint/suspicious/noExplicitAny: stored API objects are read deeply in assertions
type Json = Record<string, any>;

function service(name: string, labels: Record<string, string> = {}, templateLabels?: Record<string, string>): Json {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'Service',
    metadata: { name, labels },
    spec: {
      template: {
        ...(templateLabels === undefined ? {} : { metadata: { labels: templateLabels } }),
        spec: { containers: [{ image: 'registry.invalid/afterlife/hello-wasm:1', ports: [{ containerPort: 8080 }] }] },
      },
    },
  };
}

/** Saves `data` of a Knative ConfigMap and puts it back afterwards (the cluster is shared). */
class ConfigMapGuard {
  readonly #core: CoreV1Api;
  readonly #name: string;
  #original: V1ConfigMap | undefined;
  #saved = false;

  constructor(kubeConfig: KubeConfig, name: string) {
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
    this.#name = name;
  }

  async save(): Promise<void> {
    this.#original = await this.#core
      .readNamespacedConfigMap({ name: this.#name, namespace: KNATIVE_NS })
      .catch(() => undefined);
    this.#saved = true;
  }

  async set(data: Record<string, string | null>): Promise<void> {
    if (
      (await this.#core.readNamespacedConfigMap({ name: this.#name, namespace: KNATIVE_NS }).catch(() => undefined)) ===
      undefined
    ) {
      await this.#core.createNamespacedConfigMap({
        namespace: KNATIVE_NS,
        body: { metadata: { name: this.#name }, data: {} },
      });
    }
    await this.#core.patchNamespacedConfigMap(
      { name: this.#name, namespace: KNATIVE_NS, body: { data } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async restore(): Promise<void> {
    if (!this.#saved) return;
    const current = await this.#core
      .readNamespacedConfigMap({ name: this.#name, namespace: KNATIVE_NS })
      .catch(() => undefined);
    if (this.#original === undefined) {
      if (current !== undefined)
        await this.#core.deleteNamespacedConfigMap({ name: this.#name, namespace: KNATIVE_NS });
      return;
    }
    if (current === undefined) {
      const { metadata, ...rest } = this.#original;
      await this.#core.createNamespacedConfigMap({
        namespace: KNATIVE_NS,
        body: {
          ...rest,
          metadata: {
            name: this.#name,
            ...(metadata?.labels === undefined ? {} : { labels: metadata.labels }),
            ...(metadata?.annotations === undefined ? {} : { annotations: metadata.annotations }),
          },
        },
      });
      return;
    }
    await this.#core.replaceNamespacedConfigMap({
      name: this.#name,
      namespace: KNATIVE_NS,
      body: { ...current, data: this.#original.data ?? {} },
    });
  }
}

describe('webhook on a real kube-apiserver', function () {
  this.timeout(180_000);
  const cluster = useCluster({ namespacePrefix: 'webhook' });
  const run = randomBytes(3).toString('hex');
  const configName = `afterlife-webhook-test-${run}`;
  const labelledNamespace = `webhook-nsopt-${run}`;
  const logger = createLogger('webhook-it', {
    level: 'warn',
    destination: new Writable({ write: (_c, _e, cb) => cb() }),
  });
  let pki: TestPki;
  let server: WebhookServer | undefined;
  let watcher: KnativeConfigWatcher;
  let features: ConfigMapGuard;
  let deployment: ConfigMapGuard;
  let objects: CustomObjectsApi;
  let core: CoreV1Api;
  let admission: AdmissionregistrationV1Api;

  const create = (namespace: string, body: Json, dryRun?: 'All') =>
    objects.createNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace,
      plural: 'services',
      body,
      ...(dryRun === undefined ? {} : { dryRun }),
    }) as Promise<Json>;
  const get = (namespace: string, name: string) =>
    objects.getNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace,
      plural: 'services',
      name,
    }) as Promise<Json>;
  const failureOf = async (promise: Promise<unknown>): Promise<string> => {
    try {
      await promise;
    } catch (error) {
      const e = error as { body?: unknown; message?: string };
      return typeof e.body === 'string' ? e.body : JSON.stringify(e.body ?? e.message);
    }
    assert.fail('expected the API server to reject the request');
  };
  const setFlag = async (value: string | null) => {
    await features.set({ 'kubernetes.podspec-runtimeclassname': value });
    const want = value?.toLowerCase() === 'enabled';
    await waitFor(
      'the webhook to see the flag',
      async () => (runtimeClassFieldAllowed(watcher.features) === want ? true : undefined),
      {
        timeoutMs: 20_000,
        intervalMs: 50,
      },
    );
  };

  before(async () => {
    const kc = cluster.kubeConfig;
    objects = kc.makeApiClient(CustomObjectsApi);
    core = kc.makeApiClient(CoreV1Api);
    admission = kc.makeApiClient(AdmissionregistrationV1Api);
    features = new ConfigMapGuard(kc, 'config-features');
    deployment = new ConfigMapGuard(kc, 'config-deployment');
    await features.save();
    await deployment.save();
    await core.createNamespace({
      body: {
        metadata: {
          name: labelledNamespace,
          labels: { 'afterlife.dev/runtime': 'wasmedge', 'afterlife.dev/test': 'true' },
        },
      },
    });

    watcher = new KnativeConfigWatcher(kc, KNATIVE_NS, logger);
    await watcher.start();
    await watcher.waitForSync(20_000);

    pki = await createTestPki();
    const { certFile, keyFile } = await issueServerCert(pki, 'webhook-it');
    const registry = createMetricsRegistry('webhook-it', { defaultMetrics: false });
    server = await startWebhookServer({
      config: {
        ...DEFAULT_MUTATION_CONFIG,
        bindAddress: '127.0.0.1',
        port: 0,
        tlsCertFile: certFile,
        tlsKeyFile: keyFile,
        tlsReloadIntervalMs: 1000,
        requestTimeoutMs: 5000,
        keepAliveTimeoutMs: 95_000,
        bodyLimitBytes: 4 * 1024 * 1024,
      },
      features: () => watcher.features,
      ready: () => watcher.synced,
      logger,
      metrics: createWebhookMetrics(registry),
      registry,
    });

    const common = {
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      reinvocationPolicy: 'IfNeeded',
      timeoutSeconds: 5,
      matchPolicy: 'Equivalent',
      rules: [
        {
          apiGroups: [GROUP],
          apiVersions: ['v1'],
          operations: ['CREATE', 'UPDATE'],
          resources: ['services', 'configurations'],
          scope: 'Namespaced',
        },
      ],
    } satisfies Partial<V1MutatingWebhook>;
    const caBundle = Buffer.from(pki.caPem).toString('base64');
    await admission.createMutatingWebhookConfiguration({
      body: {
        metadata: { name: configName, labels: { 'afterlife.dev/test': 'true' } },
        webhooks: [
          {
            ...common,
            name: `object.${run}.webhook.afterlife.dev`,
            clientConfig: { url: `https://127.0.0.1:${server.port}/mutate`, caBundle },
            objectSelector: { matchLabels: { 'afterlife.dev/runtime': 'wasmedge' } },
            // Only this suite's namespaces: the cluster is shared with other suites.
            namespaceSelector: {
              matchExpressions: [
                { key: 'kubernetes.io/metadata.name', operator: 'In', values: [cluster.namespace, labelledNamespace] },
              ],
            },
          },
          {
            ...common,
            name: `namespace.${run}.webhook.afterlife.dev`,
            clientConfig: { url: `https://127.0.0.1:${server.port}/mutate/namespace`, caBundle },
            objectSelector: {
              matchExpressions: [{ key: 'afterlife.dev/runtime', operator: 'NotIn', values: ['disabled'] }],
            },
            namespaceSelector: {
              matchExpressions: [
                { key: 'afterlife.dev/runtime', operator: 'In', values: ['wasmedge'] },
                { key: 'kubernetes.io/metadata.name', operator: 'In', values: [labelledNamespace] },
              ],
            },
          },
        ],
      },
    });
    await setFlag('enabled');
    // The API server picks up new webhook configurations asynchronously: probe with dry-run creates.
    await waitFor(
      'the API server to call the webhook',
      async () => {
        const probe = await create(cluster.namespace, service('probe', { 'afterlife.dev/runtime': 'wasmedge' }), 'All');
        return probe.spec?.template?.spec?.runtimeClassName === 'wasmedge' ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
  });

  after(async () => {
    await admission?.deleteMutatingWebhookConfiguration({ name: configName }).catch(() => undefined);
    await features?.restore().catch((error) => console.error('restoring config-features failed', error));
    await deployment?.restore().catch((error) => console.error('restoring config-deployment failed', error));
    await core?.deleteNamespace({ name: labelledNamespace }).catch(() => undefined);
    await server?.close(1000);
    await watcher?.stop();
    await pki?.cleanup();
  });

  it('injects runtimeClassName, the compat-smart annotation and event-scaling annotations on CREATE', async () => {
    const created = await create(
      cluster.namespace,
      service('fn-events', { 'afterlife.dev/runtime': 'wasmedge', 'afterlife.dev/scaling': 'events' }),
    );
    const stored = await get(cluster.namespace, created.metadata.name);
    const template = stored.spec.template;
    assert.equal(template.spec.runtimeClassName, 'wasmedge');
    assert.equal(template.metadata.annotations['module.wasm.image/variant'], 'compat-smart');
    // The default route: the Afterlife autoscaler's class; the autoscaler-keda route is covered by admit() tests.
    assert.equal(template.metadata.annotations['autoscaling.knative.dev/class'], 'afterlife.dev');
    assert.equal(template.metadata.annotations['autoscaling.knative.dev/min-scale'], '0');
    assert.equal(template.metadata.annotations['autoscaling.knative.dev/scaled-object-override'], undefined);
  });

  it('re-applies the injection on UPDATE and leaves user values alone', async () => {
    await create(cluster.namespace, service('fn-update', { 'afterlife.dev/runtime': 'wasmedge' }));
    // A client that drops our annotation and sets its own runtimeClassName: annotation back, class kept.
    await objects.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: 'v1',
        namespace: cluster.namespace,
        plural: 'services',
        name: 'fn-update',
        body: {
          spec: {
            template: {
              metadata: { annotations: { 'module.wasm.image/variant': null } },
              spec: { runtimeClassName: 'kata' },
            },
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const stored = await get(cluster.namespace, 'fn-update');
    assert.equal(stored.spec.template.metadata.annotations['module.wasm.image/variant'], 'compat-smart');
    assert.equal(stored.spec.template.spec.runtimeClassName, 'kata');
  });

  it('mutates opted-in Configurations too', async () => {
    const {
      apiVersion: _a,
      kind: _k,
      ...rest
    } = service('fn-config', {
      'afterlife.dev/runtime': 'wasmedge',
      'afterlife.dev/scaling': 'events',
      'serving.knative.dev/service': 'fn-owner',
    });
    await objects.createNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace: cluster.namespace,
      plural: 'configurations',
      body: { apiVersion: `${GROUP}/v1`, kind: 'Configuration', ...rest },
    });
    const stored = (await objects.getNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace: cluster.namespace,
      plural: 'configurations',
      name: 'fn-config',
    })) as Json;
    assert.equal(stored.spec.template.spec.runtimeClassName, 'wasmedge');
    assert.equal(stored.spec.template.metadata.annotations['autoscaling.knative.dev/class'], 'afterlife.dev');
  });

  it('returns the mutation for dry-run creates without storing anything', async () => {
    const dry = await create(cluster.namespace, service('fn-dry', { 'afterlife.dev/runtime': 'wasmedge' }), 'All');
    assert.equal(dry.spec.template.spec.runtimeClassName, 'wasmedge');
    await assert.rejects(get(cluster.namespace, 'fn-dry'), (e: { code?: number }) => e.code === 404);
  });

  it('leaves foreign and opted-out Services untouched', async () => {
    await create(cluster.namespace, service('foreign'));
    await create(labelledNamespace, service('opted-out', { 'afterlife.dev/runtime': 'disabled' }));
    for (const [ns, name] of [
      [cluster.namespace, 'foreign'],
      [labelledNamespace, 'opted-out'],
    ] as const) {
      const stored = await get(ns, name);
      assert.equal(stored.spec.template.spec.runtimeClassName, undefined, name);
      assert.equal(stored.spec.template.metadata?.annotations?.['module.wasm.image/variant'], undefined, name);
    }
  });

  it('mutates Services in a namespace labelled afterlife.dev/runtime=wasmedge (namespaceSelector)', async () => {
    await create(labelledNamespace, service('by-namespace'));
    const stored = await get(labelledNamespace, 'by-namespace');
    assert.equal(stored.spec.template.spec.runtimeClassName, 'wasmedge');
  });

  it('denies opted-in Services with the exact ConfigMap change when the Knative flag is off', async () => {
    await setFlag('disabled');
    try {
      const message = await failureOf(
        create(cluster.namespace, service('flag-off', { 'afterlife.dev/runtime': 'wasmedge' })),
      );
      assert.match(message, /denied the request/);
      assert.ok(message.includes(JSON.stringify(enableFlagCommand(KNATIVE_NS)).slice(1, -1)), message);
      // Foreign Services are not affected.
      await create(cluster.namespace, service('flag-off-foreign'));
    } finally {
      await setFlag('enabled');
    }
  });

  it('uses config-deployment runtime-class-name when the flag is off (Knative >= 1.15)', async () => {
    await setFlag('disabled');
    try {
      await deployment.set({ 'runtime-class-name': 'wasmedge:\n  selector:\n    afterlife.dev/wasm: "true"\n' });
      await waitFor(
        'the webhook to see config-deployment',
        async () => (watcher.features.runtimeClassNames.has('wasmedge') ? true : undefined),
        {
          timeoutMs: 20_000,
          intervalMs: 50,
        },
      );
      await create(cluster.namespace, service('by-selector', { 'afterlife.dev/runtime': 'wasmedge' }));
      const stored = await get(cluster.namespace, 'by-selector');
      assert.equal(stored.spec.template.spec.runtimeClassName, undefined);
      assert.equal(stored.spec.template.metadata.labels['afterlife.dev/wasm'], 'true');
      assert.equal(stored.spec.template.metadata.annotations['module.wasm.image/variant'], 'compat-smart');
    } finally {
      await deployment.set({ 'runtime-class-name': null });
      await setFlag('enabled');
    }
  });

  it('with the webhook down and failurePolicy Fail, blocks only opted-in Services', async () => {
    await server?.close(1000);
    server = undefined;
    const message = await failureOf(
      create(cluster.namespace, service('while-down', { 'afterlife.dev/runtime': 'wasmedge' })),
    );
    assert.match(message, /failed calling webhook/);
    await create(cluster.namespace, service('foreign-while-down'));
    await create(cluster.namespace, service('opted-out-while-down', { 'afterlife.dev/runtime': 'disabled' }));
  });
});
