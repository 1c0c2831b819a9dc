import { join } from 'node:path';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { ManagedProcess } from '../process.ts';
import { type WaitOptions, waitFor } from '../wait.ts';
import type { Pki } from './cluster-pki.ts';
import { type Launch, takePort } from './launcher.ts';

export interface Controller {
  readonly process: ManagedProcess;
  readonly ports: Readonly<Record<string, number>>;
}

/** kube-controller-manager with every default controller (HPAs synced every `hpaSyncPeriod`). */
export async function startControllerManager(
  launch: Launch,
  input: { binary: string; stateDir: string; kubeconfig: string; pki: Pki; hpaSyncPeriod: string },
): Promise<Controller> {
  const { kubeconfig, pki } = input;
  const port = await takePort();
  const process = await launch('kube-controller-manager', input.binary, [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${join(input.stateDir, 'pki', 'kcm')}`,
    '--leader-elect=false',
    `--service-account-private-key-file=${pki.serviceAccount.privateKeyFile}`,
    `--root-ca-file=${pki.ca.certFile}`,
    `--cluster-signing-cert-file=${pki.ca.certFile}`,
    `--cluster-signing-key-file=${pki.ca.keyFile}`,
    '--use-service-account-credentials=false',
    // Tests see HPA decisions in seconds with 5 s rather than the production 15 s (documented).
    `--horizontal-pod-autoscaler-sync-period=${input.hpaSyncPeriod}`,
    // Client-side rate limit (default 20/s, burst 30): with 1,000 revisions its ReplicaSet,
    // EndpointSlice and HPA writes queue behind it (docs/operating.md, controllers at scale).
    '--kube-api-qps=100',
    '--kube-api-burst=200',
    '--v=1',
  ]);
  return { process, ports: { 'kube-controller-manager': port } };
}

export async function startScheduler(
  launch: Launch,
  input: { binary: string; stateDir: string; kubeconfig: string },
): Promise<Controller> {
  const { kubeconfig } = input;
  const port = await takePort();
  const process = await launch('kube-scheduler', input.binary, [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${join(input.stateDir, 'pki', 'scheduler')}`,
    '--leader-elect=false',
    '--v=1',
  ]);
  return { process, ports: { 'kube-scheduler': port } };
}

/** The controller manager has made namespace `default`'s ServiceAccount: pods can be created. */
export async function waitDefaultServiceAccount(kubeConfig: KubeConfig, wait: WaitOptions): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await waitFor(
    'default ServiceAccount',
    async () => (await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' })) && true,
    wait,
  );
}
