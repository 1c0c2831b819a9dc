import type { Logger } from '@afterlife/core';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import {
  AFTERLIFE_NAMESPACE,
  AFTERLIFE_RELEASE,
  type AfterlifeInstall,
  installAfterlife,
} from './afterlife-install.ts';
import { DevCluster, reapOrphanClusters } from './cluster.ts';
import { AfterlifeClusterError } from './cluster-error.ts';
import { applyObjects, kubeRequest } from './kube.ts';
import { reapOrphanNetns } from './netns.ts';
import { waitFor } from './wait.ts';

export interface LocalAfterlifeOptions {
  /** Names the cluster (and its state directory). */
  readonly name: string;
  readonly logger: Logger;
  readonly print: (line: string) => void;
  /** Events the gateway holds per function before it answers 503 + Retry-After (default 5000). */
  readonly pendingLimit?: number;
  /** More chart values over the local ones (e.g. autoscaler defaults). */
  readonly values?: Readonly<Record<string, unknown>>;
  /** kube-controller-manager's HPA sync period (`DevClusterOptions.hpaSyncPeriod`). */
  readonly hpaSyncPeriod?: string;
}

/** How the local gateway is configured: what a report needs to state the capacity of a run. */
export interface LocalGatewaySettings {
  /** Events held per function before 503 + Retry-After. */
  readonly pendingLimit: number;
  /** Events delivered at a time to one replica (more are held). */
  readonly replicaConcurrency: number;
  /** The `Retry-After` of a refusal, in seconds. */
  readonly retryAfterSeconds: number;
}

/** The local gateway's per-replica concurrency and Retry-After (the gateway's defaults, written out). */
export const LOCAL_GATEWAY: Omit<LocalGatewaySettings, 'pendingLimit'> = Object.freeze({
  replicaConcurrency: 10,
  retryAfterSeconds: 2,
});

/** Where the chart's Services answer from this machine. */
export interface LocalEndpoints {
  /** `http://<gateway ClusterIP>` (events port 80). */
  readonly gatewayUrl: string;
  /** `http://<gateway ClusterIP>:<admin port>`. */
  readonly gatewayAdminUrl: string;
  /** `<scaler ClusterIP>:<grpc port>`. */
  readonly scalerAddress: string;
  /** `http://<scaler ClusterIP>:<metrics port>`. */
  readonly scalerAdminUrl: string;
}

/** A local cluster with real nodes and Afterlife installed on it by its Helm chart. */
export interface LocalAfterlife extends LocalEndpoints {
  readonly cluster: DevCluster;
  readonly kubeConfig: KubeConfig;
  readonly kubeconfigPath: string;
  readonly install: AfterlifeInstall;
  readonly gateway: LocalGatewaySettings;
  /** The reference function's image in the local registry. */
  readonly image: string;
  /** The real node Wasm pods run on (kubelet + containerd, `wasmedge` handler). */
  readonly nodeName: string;
  /** What the devcluster built KEDA and Knative Serving from (they run as processes here). */
  readonly versions: { readonly keda: string; readonly knative: string };
  /** `<gatewayUrl>/ns/<namespace>/fn/<name>`. */
  functionUrl(namespace: string, name: string): string;
  /** Stops the kube-apiserver, starts it again and waits until it serves; returns the seconds it was down. */
  restartApiServer(): Promise<number>;
  /** Throws when a control-plane or node process has died. */
  assertHealthy(): void;
  /** `helm uninstall`, then stops the cluster (idempotent). */
  stop(): Promise<void>;
}

interface ServiceLike {
  spec?: { clusterIP?: string; ports?: { name?: string; port: number }[] };
}

/** The ClusterIP and named ports of one of the chart's Services. */
async function serviceAddress(
  kubeConfig: KubeConfig,
  name: string,
): Promise<{ ip: string; port(name: string): number }> {
  const service = (await kubeRequest(
    kubeConfig,
    'GET',
    `/api/v1/namespaces/${AFTERLIFE_NAMESPACE}/services/${name}`,
  )) as ServiceLike;
  const ip = service.spec?.clusterIP ?? '';
  if (!ip || ip === 'None') {
    throw new AfterlifeClusterError('INSTALL_FAILED', `Service ${AFTERLIFE_NAMESPACE}/${name} has no ClusterIP`);
  }
  return {
    ip,
    port(portName) {
      const port = service.spec?.ports?.find((p) => p.name === portName)?.port;
      if (port === undefined) {
        throw new AfterlifeClusterError(
          'INSTALL_FAILED',
          `Service ${AFTERLIFE_NAMESPACE}/${name} has no port ${portName}`,
        );
      }
      return port;
    },
  };
}

/** The chart's gateway and scaler Services, by ClusterIP: this machine is on the cluster's Service network. */
export async function localEndpoints(kubeConfig: KubeConfig, release = AFTERLIFE_RELEASE): Promise<LocalEndpoints> {
  const gateway = await serviceAddress(kubeConfig, `${release}-gateway`);
  const scaler = await serviceAddress(kubeConfig, `${release}-scaler`);
  const events = gateway.port('events');
  return {
    gatewayUrl: `http://${gateway.ip}${events === 80 ? '' : `:${events}`}`,
    gatewayAdminUrl: `http://${gateway.ip}:${gateway.port('admin')}`,
    scalerAddress: `${scaler.ip}:${scaler.port('grpc')}`,
    scalerAdminUrl: `http://${scaler.ip}:${scaler.port('metrics')}`,
  };
}

/**
 * What a user does, on this machine: a cluster with real nodes, KEDA and Knative Serving (its
 * real controllers), the one cluster setting Afterlife needs (Knative's runtime-class flag), then
 * `helm install` of the chart with the images the one image builder made, pushed by digest.
 * Every component runs as a pod with the chart's Services, RBAC, certificate, webhook
 * configuration and NetworkPolicies. This machine reaches the gateway and the scaler through
 * their Services' ClusterIPs, as a pod (or a Knative Eventing Trigger) in the cluster does.
 */
export async function startLocalAfterlife(options: LocalAfterlifeOptions): Promise<LocalAfterlife> {
  const { print, logger } = options;
  const started = performance.now();
  const clock = () => ((performance.now() - started) / 1000).toFixed(1);
  await reapOrphanClusters();
  await reapOrphanNetns();
  print(
    '▸ starting the local cluster (etcd, kube-apiserver, controllers, KEDA, Knative Serving, registry, a real node: kubelet + containerd)…',
  );
  // Cluster services asked for explicitly: the install's pods reach the API server through its
  // ClusterIP and this machine reaches the gateway through its own, so a cluster without them
  // (another one on the machine has them) would not work — it fails at once naming that cluster.
  const cluster = await DevCluster.start({
    name: options.name,
    logger,
    knativeControllers: true,
    clusterServices: true,
    ...(options.hpaSyncPeriod === undefined ? {} : { hpaSyncPeriod: options.hpaSyncPeriod }),
  });
  let install: AfterlifeInstall | undefined;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      // Uninstall first, as a user would; the cluster goes either way.
      await install
        ?.uninstall()
        .catch((error: unknown) => logger.warn({ err: String(error) }, 'helm uninstall failed'));
      await cluster.stop();
    })();
    return stopped;
  };
  try {
    print(`  ready in ${clock()}s — kubeconfig ${cluster.kubeconfigPath}`);
    const kubeConfig = cluster.kubeConfig();
    // What an operator does once per cluster (docs/install.md): let Knative accept runtimeClassName.
    await applyObjects(kubeConfig, [
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'config-features', namespace: 'knative-serving' },
        data: { 'kubernetes.podspec-runtimeclassname': 'enabled' },
      } as KubernetesObject,
    ]);
    const gateway: LocalGatewaySettings = { ...LOCAL_GATEWAY, pendingLimit: options.pendingLimit ?? 5000 };
    const helm = cluster.state.binaries.helm;
    if (!helm) throw new AfterlifeClusterError('INSTALL_FAILED', 'the devcluster has no helm binary');
    print('▸ helm install afterlife (images built without a container engine, pushed to the local registry)…');
    install = await installAfterlife({
      kubeConfig,
      kubeconfigPath: cluster.kubeconfigPath,
      helm,
      registry: cluster.state.registry,
      values: {
        gateway: {
          extraEnv: {
            AFTERLIFE_GATEWAY_PENDING_LIMIT: String(gateway.pendingLimit),
            AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY: String(gateway.replicaConcurrency),
            AFTERLIFE_GATEWAY_RETRY_AFTER: `${gateway.retryAfterSeconds}s`,
            AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: '90s',
          },
        },
        ...options.values,
      },
      onProgress: (line) => print(`  ${line}`),
    });
    const endpoints = await localEndpoints(kubeConfig, install.release);
    print(
      `  Afterlife running as pods at ${clock()}s (gateway ${endpoints.gatewayUrl}, scaler ${endpoints.scalerAddress})`,
    );
    const image = cluster.state.images.echoWasm ?? '';
    print(`  reference Wasm function: ${image}`);
    const { keda, knative } = cluster.state.versions;
    const installed = install;
    return {
      ...endpoints,
      cluster,
      kubeConfig,
      kubeconfigPath: cluster.kubeconfigPath,
      install: installed,
      gateway,
      image,
      nodeName: cluster.state.realNodes[0]?.name ?? '',
      versions: { keda, knative },
      functionUrl: (namespace, name) => `${endpoints.gatewayUrl}/ns/${namespace}/fn/${name}`,
      async restartApiServer() {
        const down = performance.now();
        await cluster.restartProcess('kube-apiserver');
        await waitFor(
          'kube-apiserver serving again',
          async () =>
            (await kubeRequest(kubeConfig, 'GET', '/api/v1/namespaces/default').catch(() => undefined))
              ? true
              : undefined,
          { timeoutMs: 120_000, intervalMs: 100, guard: () => cluster.assertHealthy() },
        );
        return (performance.now() - down) / 1000;
      },
      assertHealthy: () => cluster.assertHealthy(),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
