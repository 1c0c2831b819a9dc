import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Logger, probeOk } from '@afterlife/core';
import {
  applyObjects,
  createCertificateAuthority,
  DevCluster,
  freePort,
  issueCertificate,
  reapOrphanClusters,
  reapOrphanNetns,
  waitFor,
  wasmRuntimeClass,
} from '@afterlife/devcluster';
import { LABEL_RUNTIME, RUNTIME_WASMEDGE } from '@afterlife/webhook';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { startComponent } from './components.ts';
import type { VersionFallbacks } from './environment.ts';

/** What the devcluster built KEDA and Knative Serving from. */
function devclusterVersions(cluster: DevCluster): VersionFallbacks {
  const { keda, knative } = cluster.state.versions;
  return {
    keda: { version: keda.replace(/^v/, ''), source: 'devcluster build; KEDA runs as processes here' },
    knative: { version: `knative.dev/serving ${knative}`, source: 'devcluster build from source' },
  };
}

export interface LocalAfterlifeOptions {
  /** Names the cluster (and its state directory). */
  readonly name: string;
  readonly logger: Logger;
  readonly print: (line: string) => void;
  /** Events the gateway holds per function before it answers 503 + Retry-After (default 5000). */
  readonly pendingLimit?: number;
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

export interface LocalPorts {
  readonly webhook: number;
  readonly gateway: number;
  readonly gatewayAdmin: number;
  readonly scaler: number;
  readonly scalerMetrics: number;
  readonly autoscalerAdmin: number;
}

/** A running local Afterlife: the control plane with a real node, plus webhook, gateway and scaler. */
export interface LocalAfterlife {
  readonly cluster: DevCluster;
  readonly kubeConfig: KubeConfig;
  readonly registry: string;
  readonly logDir: string;
  readonly ports: LocalPorts;
  readonly gateway: LocalGatewaySettings;
  /** Versions the devcluster builds (KEDA and Knative run as processes, so the cluster does not label them). */
  readonly versions: VersionFallbacks;
  /** The reference function's image in the local registry. */
  readonly image: string;
  /** The real node Wasm pods run on (kubelet + containerd, `wasmedge` handler). */
  readonly nodeName: string;
  readonly webhookConfigurationName: string;
  /** `http://127.0.0.1:PORT/ns/<namespace>/fn/<name>` on the gateway. */
  functionUrl(namespace: string, name: string): string;
  /** Throws when the control plane or a component has died. */
  assertHealthy(): void;
  /** Stops the components and the cluster. */
  stop(): Promise<void>;
}

/**
 * Starts everything Afterlife needs on this machine, wired the way a cluster install is: the
 * components run as processes from their `dist/main.js` with env config, the webhook is
 * registered with the API server over HTTPS, the Knative runtime-class flag is on and the
 * `wasmedge` RuntimeClass points at the real node's Wasm runtime handler.
 */
export async function startLocalAfterlife(options: LocalAfterlifeOptions): Promise<LocalAfterlife> {
  const { print, logger } = options;
  const started = performance.now();
  const clock = () => performance.now() - started;
  const webhookConfigurationName = `afterlife-${options.name}`;
  await reapOrphanClusters();
  await reapOrphanNetns();
  print(
    '▸ starting the local cluster (etcd, kube-apiserver, controllers, KEDA, Knative Serving, registry, a real node: kubelet + containerd)…',
  );
  // Knative Serving's real webhook and controller make the revisions; the Afterlife autoscaler scales them.
  const cluster = await DevCluster.start({ name: options.name, logger, knativeControllers: true });
  // Components are adopted by the cluster: `stop()`, `down` and the orphan reaper end them too.
  const stop = (): Promise<void> => cluster.stop();
  try {
    print(`  ready in ${(clock() / 1000).toFixed(1)}s — kubeconfig ${cluster.kubeconfigPath}`);
    const kubeConfig = cluster.kubeConfig();
    const logDir = join(cluster.state.stateDir, 'logs');
    const registry = cluster.state.registry;

    // What an operator does once per cluster (docs/…): let Knative accept runtimeClassName.
    await applyObjects(kubeConfig, [
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'config-features', namespace: 'knative-serving' },
        data: { 'kubernetes.podspec-runtimeclassname': 'enabled' },
      } as KubernetesObject,
      wasmRuntimeClass() as KubernetesObject,
    ]);

    print('▸ starting Afterlife: webhook, gateway, scaler, autoscaler…');
    const pkiDir = join(cluster.state.stateDir, 'demo-pki');
    const ca = await createCertificateAuthority(pkiDir, 'webhook-ca', 'afterlife-demo-webhook-ca');
    const tls = await issueCertificate(ca, pkiDir, 'webhook', {
      commonName: 'afterlife-webhook',
      ipAddresses: ['127.0.0.1'],
      dnsNames: ['localhost'],
      usage: 'server',
    });
    const ports = {
      webhook: await freePort(),
      gateway: await freePort(),
      gatewayAdmin: await freePort(),
      scaler: await freePort(),
      scalerMetrics: await freePort(),
      autoscalerAdmin: await freePort(),
    };
    const common = { KUBECONFIG: cluster.kubeconfigPath };
    const gateway: LocalGatewaySettings = { ...LOCAL_GATEWAY, pendingLimit: options.pendingLimit ?? 5000 };
    // Each component is adopted as soon as it starts, so a failure further on still ends it.
    const start = async (...args: Parameters<typeof startComponent>): Promise<void> => {
      await cluster.adopt(await startComponent(...args));
    };
    await start(
      'afterlife-scaler',
      '@afterlife/scaler',
      {
        ...common,
        AFTERLIFE_SCALER_HOST: '127.0.0.1',
        AFTERLIFE_SCALER_PORT: String(ports.scaler),
        AFTERLIFE_SCALER_METRICS_PORT: String(ports.scalerMetrics),
        AFTERLIFE_SCALER_GATEWAY_URLS: `http://127.0.0.1:${ports.gatewayAdmin}`,
      },
      logDir,
    );
    await start(
      'afterlife-gateway',
      '@afterlife/gateway',
      {
        ...common,
        AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
        AFTERLIFE_GATEWAY_PORT: String(ports.gateway),
        AFTERLIFE_GATEWAY_ADMIN_PORT: String(ports.gatewayAdmin),
        AFTERLIFE_GATEWAY_ID: 'demo-gateway-0',
        AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: '90s',
        AFTERLIFE_GATEWAY_PENDING_LIMIT: String(gateway.pendingLimit),
        AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY: String(gateway.replicaConcurrency),
        AFTERLIFE_GATEWAY_RETRY_AFTER: `${gateway.retryAfterSeconds}s`,
        AFTERLIFE_GATEWAY_DISCOVERY: 'knative',
      },
      logDir,
    );
    await start(
      'afterlife-autoscaler',
      '@afterlife/autoscaler',
      {
        ...common,
        AFTERLIFE_AUTOSCALER_HOST: '127.0.0.1',
        AFTERLIFE_AUTOSCALER_ADMIN_PORT: String(ports.autoscalerAdmin),
        AFTERLIFE_AUTOSCALER_SCALER_ADDRESS: `127.0.0.1:${ports.scaler}`,
        AFTERLIFE_AUTOSCALER_LEASE_NAMESPACE: 'default',
        AFTERLIFE_AUTOSCALER_DEFAULT_POLLING_INTERVAL: '1s',
      },
      logDir,
    );
    await start(
      'afterlife-webhook',
      '@afterlife/webhook',
      {
        ...common,
        AFTERLIFE_WEBHOOK_BIND_ADDRESS: '127.0.0.1',
        AFTERLIFE_WEBHOOK_PORT: String(ports.webhook),
        AFTERLIFE_WEBHOOK_TLS_CERT_FILE: tls.certFile,
        AFTERLIFE_WEBHOOK_TLS_KEY_FILE: tls.keyFile,
        AFTERLIFE_WEBHOOK_SCALER_ADDRESS: `127.0.0.1:${ports.scaler}`,
      },
      logDir,
    );
    const guard = () => cluster.assertHealthy();
    const wait = { timeoutMs: 60_000, intervalMs: 200, guard };
    await waitFor('scaler /readyz', () => probeOk(`http://127.0.0.1:${ports.scalerMetrics}/readyz`), wait);
    await waitFor('gateway /readyz', () => probeOk(`http://127.0.0.1:${ports.gatewayAdmin}/readyz`), wait);
    await waitFor('autoscaler /readyz', () => probeOk(`http://127.0.0.1:${ports.autoscalerAdmin}/readyz`), wait);
    const caPem = await readFile(ca.certFile);
    await waitFor('webhook /readyz', () => probeOk(`https://127.0.0.1:${ports.webhook}/readyz`, { ca: caPem }), wait);
    print(`  components ready at ${(clock() / 1000).toFixed(1)}s (logs: ${logDir})`);

    // The cluster built the reference function (Go → wasip1) and pushed it as a compat-smart image.
    const image = cluster.state.images.echoWasm ?? '';
    print(`  reference Wasm function: ${image}`);

    await applyObjects(kubeConfig, [
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name: webhookConfigurationName },
        webhooks: [
          {
            name: 'services.webhook.afterlife.dev',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            failurePolicy: 'Fail',
            reinvocationPolicy: 'IfNeeded',
            timeoutSeconds: 5,
            objectSelector: { matchLabels: { [LABEL_RUNTIME]: RUNTIME_WASMEDGE } },
            clientConfig: { url: `https://127.0.0.1:${ports.webhook}/mutate`, caBundle: caPem.toString('base64') },
            rules: [
              {
                apiGroups: ['serving.knative.dev'],
                apiVersions: ['v1'],
                operations: ['CREATE', 'UPDATE'],
                resources: ['services', 'configurations'],
              },
            ],
          },
        ],
      } as KubernetesObject,
    ]);

    return {
      cluster,
      kubeConfig,
      registry,
      logDir,
      ports,
      gateway,
      versions: devclusterVersions(cluster),
      image,
      nodeName: cluster.state.realNodes[0]?.name ?? '',
      webhookConfigurationName,
      functionUrl: (namespace, name) => `http://127.0.0.1:${ports.gateway}/ns/${namespace}/fn/${name}`,
      assertHealthy: guard,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
