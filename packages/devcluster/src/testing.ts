import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { ensureComponent } from './binaries.ts';
import { DevCluster, type DevClusterState, readClusterState, reapOrphanClusters } from './cluster.ts';
import { AfterlifeClusterError } from './cluster-error.ts';
import { DEFAULT_QUEUE_SIDECAR_IMAGE, type KnativeServing, startKnativeServing } from './knative.ts';
import { installKnativeEventing, type KnativeEventing } from './knative-eventing.ts';
import { applyObjects, KubeRequestError, kubeRequest } from './kube.ts';
import { reapOrphanNetns } from './netns.ts';
import { type Component, PACKAGE_ROOT } from './paths.ts';
import { issueCertificate, type KeyPair } from './pki.ts';
import { waitFor } from './wait.ts';

export { type BenchRow, benchRow, writeBenchResult } from './bench.ts';

/** A serving certificate for `localhost` and 127.0.0.1, valid a day, signed by `ca` (the test servers' one kind). */
export function issueLocalhostServerCert(ca: KeyPair, dir: string, name: string): Promise<KeyPair> {
  return issueCertificate(ca, dir, name, {
    commonName: name,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
    days: 1,
  });
}

/** The env var `exec` sets so every test process shares one running cluster. */
export const STATE_DIR_ENV = 'AFTERLIFE_DEVCLUSTER_STATE_DIR';
/** Point tests at an existing cluster instead of a local one (see docs/development.md). */
export const TEST_KUBECONFIG_ENV = 'AFTERLIFE_TEST_KUBECONFIG';
export const TEST_REGISTRY_ENV = 'AFTERLIFE_TEST_REGISTRY';

export interface TestCluster {
  /** Client config for the cluster (admin). */
  readonly kubeConfig: KubeConfig;
  readonly kubeconfigPath: string;
  /** A fresh namespace for this describe() block, deleted after it. */
  readonly namespace: string;
  /** `127.0.0.1:PORT` of the cluster's OCI registry ('' when there is none). */
  readonly registry: string;
  /** Absolute path of an upstream binary (kubectl, helm, oras, etcdctl, kwok, …). */
  binary(name: string): string;
  /** The local cluster's state, when it is a devcluster. */
  readonly state: DevClusterState | undefined;
}

interface SharedCluster {
  readonly kubeconfigPath: string;
  readonly registry: string;
  readonly binaries: Readonly<Record<string, string>>;
  readonly state: DevClusterState | undefined;
}

let shared: Promise<SharedCluster> | undefined;

const BINARY_COMPONENT: Record<string, Component> = {
  kubectl: 'kubernetes',
  helm: 'helm',
  oras: 'oras',
  etcdctl: 'etcd',
  kwok: 'kwok',
};

async function acquire(): Promise<SharedCluster> {
  const testKubeconfig = process.env[TEST_KUBECONFIG_ENV];
  if (testKubeconfig) {
    const binaries: Record<string, string> = {};
    for (const [name, component] of Object.entries(BINARY_COMPONENT)) {
      binaries[name] = join(await ensureComponent(component), name);
    }
    return {
      kubeconfigPath: testKubeconfig,
      registry: process.env[TEST_REGISTRY_ENV] ?? '',
      binaries,
      state: undefined,
    };
  }
  const stateDir = process.env[STATE_DIR_ENV];
  if (stateDir) {
    const state = await readClusterState(stateDir);
    if (!state) {
      throw new AfterlifeClusterError(
        'CLUSTER_NOT_RUNNING',
        `${STATE_DIR_ENV}=${stateDir} has no cluster state; is the cluster up?`,
      );
    }
    return { kubeconfigPath: state.kubeconfig, registry: state.registry, binaries: state.binaries, state };
  }
  // No shared cluster: this test process starts its own and kills it when it exits.
  await reapOrphanClusters();
  await reapOrphanNetns();
  const cluster = await DevCluster.start({ name: `test-${process.pid}` });
  process.once('exit', () => {
    cluster.killNow();
    // 'exit' allows only synchronous work: a child does the real-node teardown (cgroups, bridge,
    // host ledger) from the state file, then removes the state directory.
    const down = spawnSync(
      process.execPath,
      [join(PACKAGE_ROOT, 'dist', 'main.js'), 'down', '--name', cluster.state.name],
      {
        stdio: 'ignore',
        timeout: 60_000,
      },
    );
    if (down.status !== 0) rmSync(cluster.state.stateDir, { recursive: true, force: true });
  });
  return {
    kubeconfigPath: cluster.kubeconfigPath,
    registry: cluster.state.registry,
    binaries: cluster.state.binaries,
    state: cluster.state,
  };
}

/** Shared cluster for the whole test process (started at most once). */
export function sharedCluster(): Promise<SharedCluster> {
  shared ??= acquire();
  return shared;
}

/**
 * Registers mocha hooks that give the enclosing describe() a ready cluster and a fresh
 * namespace; the namespace is deleted afterwards. Fields are valid inside hooks and tests.
 */
export function useCluster(options: { namespacePrefix?: string } = {}): TestCluster {
  let cluster: SharedCluster | undefined;
  let kubeConfig: KubeConfig | undefined;
  let namespace = '';
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`useCluster(): ${what} is only available inside tests and hooks`);
    return value;
  };
  before(async function () {
    // A cold machine builds every upstream component first.
    this.timeout(60 * 60_000);
    cluster = await sharedCluster();
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cluster.kubeconfigPath);
    namespace = `${options.namespacePrefix ?? 't'}-${randomBytes(3).toString('hex')}`;
    const core = kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({
      body: { metadata: { name: namespace, labels: { 'afterlife.dev/test': 'true' } } },
    });
    // Pods cannot be created until the controller-manager has made the default ServiceAccount.
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        await core.readNamespacedServiceAccount({ name: 'default', namespace });
        break;
      } catch {
        await sleep(100);
      }
    }
  });
  after(async () => {
    if (kubeConfig && namespace) {
      await kubeConfig
        .makeApiClient(CoreV1Api)
        .deleteNamespace({ name: namespace })
        .catch(() => undefined);
    }
  });
  return {
    get kubeConfig() {
      return need(kubeConfig, 'kubeConfig');
    },
    get kubeconfigPath() {
      return need(cluster, 'kubeconfigPath').kubeconfigPath;
    },
    get namespace() {
      return need(namespace || undefined, 'namespace');
    },
    get registry() {
      return need(cluster, 'registry').registry;
    },
    get state() {
      return need(cluster, 'state').state;
    },
    binary(name: string): string {
      const path = need(cluster, 'binary()').binaries[name];
      if (!path)
        throw new Error(
          `no binary named ${name} in the test cluster (have: ${Object.keys(cluster?.binaries ?? {}).join(', ')})`,
        );
      return path;
    },
  };
}

export interface TestKnative {
  /** The queue-proxy image Knative puts beside every revision container. */
  readonly queueImage: string;
  /** Throws when a Knative process started here has died (undefined-safe for external clusters). */
  assertHealthy(): void;
}

/**
 * Registers mocha hooks that make Knative Serving's real webhook and controllers available to the
 * enclosing describe() (call after `useCluster`): an external cluster or a devcluster already
 * running them is used as is, otherwise they are started here and stopped afterwards — after
 * the namespace's Knative Services are deleted, since their finalizers need the controllers.
 */
export function useKnativeServing(cluster: TestCluster, options: { hpa?: boolean } = {}): TestKnative {
  let serving: KnativeServing | undefined;
  let queueImage = DEFAULT_QUEUE_SIDECAR_IMAGE;
  before(async function () {
    // A cold machine builds the Knative components first.
    this.timeout(30 * 60_000);
    const state = cluster.state;
    queueImage = state?.images.queue ?? queueImage;
    if (!state || state.pids['knative-controller'] !== undefined) {
      const deployment = (await kubeRequest(
        cluster.kubeConfig,
        'GET',
        '/api/v1/namespaces/knative-serving/configmaps/config-deployment',
      )) as { data?: Record<string, string> };
      queueImage = deployment.data?.['queue-sidecar-image'] ?? queueImage;
      return;
    }
    const knative = await ensureComponent('knative');
    serving = await startKnativeServing({
      kubeConfig: cluster.kubeConfig,
      kubeconfigPath: cluster.kubeconfigPath,
      stateDir: state.stateDir,
      logDir: join(state.stateDir, 'logs'),
      binDir: knative,
      configDir: join(knative, 'config'),
      networkingDir: await ensureComponent('knative-networking'),
      ...(options.hpa === false ? {} : { hpaBinDir: knative }),
      ...(state.registry ? { registry: state.registry } : {}),
      ...(state.images.queue ? { queueSidecarImage: state.images.queue } : {}),
    });
  });
  after(async function () {
    this.timeout(90_000);
    try {
      const path = (resource: string) => `/apis/serving.knative.dev/v1/namespaces/${cluster.namespace}/${resource}`;
      await kubeRequest(cluster.kubeConfig, 'DELETE', path('services')).catch(() => undefined);
      await waitFor(
        'Knative objects deleted',
        async () => {
          const counts = await Promise.all(
            ['services', 'revisions'].map(async (resource) => {
              try {
                return ((await kubeRequest(cluster.kubeConfig, 'GET', path(resource))) as { items: unknown[] }).items
                  .length;
              } catch (error) {
                if (error instanceof KubeRequestError && error.status === 404) return 0;
                throw error;
              }
            }),
          );
          return counts.every((count) => count === 0) ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      ).catch((error: unknown) => process.stderr.write(`${String(error)}\n`));
    } finally {
      await serving?.stop();
    }
  });
  return {
    get queueImage() {
      return queueImage;
    },
    assertHealthy() {
      serving?.assertHealthy();
    },
  };
}

/**
 * Installs Knative Eventing (core, in-memory channel, channel-based broker) from its release
 * manifests for the enclosing describe(), as pods on the real nodes; uninstalled afterwards.
 * Needs a devcluster with real nodes and cluster services (kube-proxy, DNS).
 */
export function useKnativeEventing(cluster: TestCluster): { readonly images: Readonly<Record<string, string>> } {
  let eventing: KnativeEventing | undefined;
  before(async function () {
    // A cold machine builds Knative Eventing first (about 3 minutes).
    this.timeout(30 * 60_000);
    if (!cluster.state?.images.coredns) this.skip();
    const componentDir = await ensureComponent('knative-eventing');
    eventing = await installKnativeEventing({
      kubeConfig: cluster.kubeConfig,
      componentDir,
      version: cluster.state.versions.knativeEventing,
      registry: cluster.registry,
      wait: { timeoutMs: 240_000, intervalMs: 250 },
    });
  });
  after(async function () {
    this.timeout(60_000);
    await eventing?.uninstall();
  });
  return {
    get images() {
      return eventing?.images ?? {};
    },
  };
}

/**
 * Sets Knative Serving feature flags (`config-features`) for the enclosing describe() and takes
 * them back afterwards (server-side apply: dropping the fields this manager owns), so a later
 * test sees the cluster's defaults (e.g. `afterlife doctor` expects the RuntimeClass flag off).
 */
export function useKnativeFeatures(cluster: TestCluster, features: Readonly<Record<string, string>>): void {
  const configMap = (data?: Readonly<Record<string, string>>) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'config-features', namespace: 'knative-serving' },
    ...(data ? { data: { ...data } } : {}),
  });
  before(async () => {
    await applyObjects(cluster.kubeConfig, [configMap(features)]);
  });
  after(async () => {
    await applyObjects(cluster.kubeConfig, [configMap()]);
  });
}
