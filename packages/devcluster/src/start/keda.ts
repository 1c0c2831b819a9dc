import { readFile } from 'node:fs/promises';
import { probeOk } from '@afterlife/core';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { applyObjects } from '../kube.ts';
import type { ManagedProcess } from '../process.ts';
import { type WaitOptions, waitFor } from '../wait.ts';
import type { Pki } from './cluster-pki.ts';
import { componentEnv, type Launch, takePort } from './launcher.ts';

const EXTERNAL_METRICS_API_SERVICE = 'v1beta1.external.metrics.k8s.io';

export interface Keda {
  readonly operator: ManagedProcess;
  readonly adapter: ManagedProcess;
  /** The metrics adapter's serving port (the APIService points there). */
  readonly adapterPort: number;
  /** The operator's health probe port. */
  readonly probePort: number;
  readonly ports: Readonly<Record<string, number>>;
}

/** KEDA's operator and metrics adapter, linked by mTLS gRPC with the certificates in `pki.kedaCertDir`. */
export async function startKeda(
  launch: Launch,
  input: {
    operatorBinary: string;
    adapterBinary: string;
    kubeconfig: string;
    pki: Pick<Pki, 'kedaCertDir' | 'kedaServing'>;
    /**
     * With cluster services: a resolv.conf naming cluster DNS, bind-mounted over /etc/resolv.conf in
     * a private mount namespace, so KEDA resolves scaler Services (`*.svc.cluster.local`) as it does
     * in a pod.
     */
    resolvConf?: string;
  },
): Promise<Keda> {
  const { kubeconfig, pki } = input;
  const withClusterDns: Launch = input.resolvConf
    ? (name, binary, args, env) =>
        launch(
          name,
          'unshare',
          [
            '--mount',
            '--propagation',
            'private',
            '--',
            'bash',
            '-c',
            'mount --bind "$0" /etc/resolv.conf && exec "$@"',
            input.resolvConf ?? '',
            binary,
            ...args,
          ],
          env,
        )
    : launch;
  const grpcPort = await takePort();
  const probePort = await takePort();
  const operatorMetricsPort = await takePort();
  const adapterPort = await takePort();
  const adapterMetricsPort = await takePort();
  const kedaEnv = componentEnv({
    KUBECONFIG: kubeconfig,
    WATCH_NAMESPACE: '',
    POD_NAMESPACE: 'keda',
    KEDA_CLUSTER_OBJECT_NAMESPACE: 'keda',
    OPERATOR_NAME: 'keda-operator',
    KEDA_HTTP_DEFAULT_TIMEOUT: '3000',
  });
  const operator = await withClusterDns(
    'keda-operator',
    input.operatorBinary,
    [
      '--leader-elect=false',
      `--metrics-bind-address=127.0.0.1:${operatorMetricsPort}`,
      `--health-probe-bind-address=127.0.0.1:${probePort}`,
      `--metrics-service-bind-address=127.0.0.1:${grpcPort}`,
      `--cert-dir=${pki.kedaCertDir}`,
      '--enable-cert-rotation=false',
      '--enable-webhook-patching=false',
      '--enable-apiservice-patching=false',
      `--ca-dir=${pki.kedaCertDir}`,
      '--zap-log-level=info',
      // Default 20/s, burst 30: KEDA writes a new ScaledObject's status about nine times, so 1,000
      // functions queue for minutes behind it (docs/operating.md, controllers at scale).
      '--kube-api-qps=100',
      '--kube-api-burst=200',
    ],
    kedaEnv,
  );
  const adapter = await withClusterDns(
    'keda-adapter',
    input.adapterBinary,
    [
      `--secure-port=${adapterPort}`,
      '--bind-address=127.0.0.1',
      `--cert-dir=${pki.kedaCertDir}`,
      `--tls-cert-file=${pki.kedaServing.certFile}`,
      `--tls-private-key-file=${pki.kedaServing.keyFile}`,
      `--lister-kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      `--metrics-service-address=127.0.0.1:${grpcPort}`,
      '--metrics-service-grpc-authority=localhost',
      `--port=${adapterMetricsPort}`,
      '--v=1',
    ],
    kedaEnv,
  );
  return {
    operator,
    adapter,
    adapterPort,
    probePort,
    ports: {
      'keda-operator-grpc': grpcPort,
      'keda-operator-probe': probePort,
      'keda-operator-metrics': operatorMetricsPort,
      'keda-adapter': adapterPort,
      'keda-adapter-metrics': adapterMetricsPort,
    },
  };
}

/**
 * Registers the adapter as `v1beta1.external.metrics.k8s.io`: an APIService on Service
 * `keda/keda-metrics-apiserver` of type `ExternalName: localhost`, with the adapter's real port.
 */
export async function registerExternalMetricsApi(
  kubeConfig: KubeConfig,
  keda: Keda,
  pki: Pick<Pki, 'ca'>,
): Promise<void> {
  const caBundle = (await readFile(pki.ca.certFile)).toString('base64');
  await applyObjects(kubeConfig, [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'keda-metrics-apiserver', namespace: 'keda' },
      // The aggregator resolves an ExternalName Service to its name and the APIService's port.
      spec: { type: 'ExternalName', externalName: 'localhost' },
    } as KubernetesObject,
    {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: { name: EXTERNAL_METRICS_API_SERVICE },
      spec: {
        group: 'external.metrics.k8s.io',
        version: 'v1beta1',
        groupPriorityMinimum: 100,
        versionPriority: 100,
        caBundle,
        service: { name: 'keda-metrics-apiserver', namespace: 'keda', port: keda.adapterPort },
      },
    } as KubernetesObject,
  ]);
}

/** The operator answers `/readyz` and the aggregator reports the external metrics API Available. */
export async function waitKedaReady(kubeConfig: KubeConfig, keda: Keda, wait: WaitOptions): Promise<void> {
  await waitFor('KEDA operator /readyz', () => probeOk(`http://127.0.0.1:${keda.probePort}/readyz`), wait);
  await waitFor(
    'external.metrics.k8s.io APIService Available',
    async () => ((await apiServiceAvailable(kubeConfig)) ? true : undefined),
    wait,
  );
}

async function apiServiceAvailable(kubeConfig: KubeConfig): Promise<boolean> {
  const { ApiregistrationV1Api } = await import('@kubernetes/client-node');
  const api = kubeConfig.makeApiClient(ApiregistrationV1Api);
  const service = await api.readAPIService({ name: EXTERNAL_METRICS_API_SERVICE });
  const available = service.status?.conditions?.find((c) => c.type === 'Available');
  if (available?.status === 'True') return true;
  throw new Error(`APIService Available=${available?.status ?? 'unknown'}: ${available?.message ?? ''}`);
}
