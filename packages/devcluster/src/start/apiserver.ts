import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { probeOk } from '@afterlife/core';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { KeyPair } from '../pki.ts';
import type { ManagedProcess } from '../process.ts';
import { type WaitOptions, waitFor } from '../wait.ts';
import type { Pki } from './cluster-pki.ts';
import type { Launch } from './launcher.ts';

export const SERVICE_CIDR = '10.96.0.0/16';
/** ClusterIP of `kube-system/kube-dns`; every real node's kubelet hands it to pods. */
export const CLUSTER_DNS_IP = '10.96.0.10';
export const CLUSTER_DOMAIN = 'cluster.local';

export interface ApiServer {
  readonly process: ManagedProcess;
  /** `https://127.0.0.1:PORT`. */
  readonly url: string;
  readonly ports: Readonly<Record<string, number>>;
}

export function apiServerUrl(port: number): string {
  return `https://127.0.0.1:${port}`;
}

/** The admin kubeconfig (`<stateDir>/kubeconfig`) for an API server at `server`; returns its path. */
export async function writeKubeconfig(stateDir: string, server: string, pki: Pki): Promise<string> {
  const kubeconfig = join(stateDir, 'kubeconfig');
  await writeFile(kubeconfig, kubeconfigYaml(server, pki.ca.certFile, pki.admin));
  return kubeconfig;
}

export function loadKubeConfig(kubeconfig: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfig);
  return kubeConfig;
}

/**
 * kube-apiserver with envtest's flags, plus the front proxy (for KEDA's aggregated API), Node
 * authorization for kubelets and the kubelet client certificate.
 */
export async function startApiServer(
  launch: Launch,
  input: { binary: string; stateDir: string; etcdUrl: string; port: number; pki: Pki },
): Promise<ApiServer> {
  const { pki, port } = input;
  const process = await launch('kube-apiserver', input.binary, [
    `--etcd-servers=${input.etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${join(input.stateDir, 'pki', 'apiserver')}`,
    `--tls-cert-file=${pki.apiServer.certFile}`,
    `--tls-private-key-file=${pki.apiServer.keyFile}`,
    `--client-ca-file=${pki.ca.certFile}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki.serviceAccount.publicKeyFile}`,
    `--service-account-signing-key-file=${pki.serviceAccount.privateKeyFile}`,
    // Node authorizes each kubelet for its own node's objects, RBAC everything else.
    '--authorization-mode=Node,RBAC',
    `--kubelet-client-certificate=${pki.apiServerKubeletClient.certFile}`,
    `--kubelet-client-key=${pki.apiServerKubeletClient.keyFile}`,
    `--kubelet-certificate-authority=${pki.ca.certFile}`,
    '--kubelet-preferred-address-types=InternalIP',
    '--allow-privileged=true',
    // Loopback may not be an Endpoints address; the `kubernetes` Service is not needed here.
    '--endpoint-reconciler-type=none',
    // Front proxy: lets the aggregator call KEDA's external-metrics APIService.
    `--requestheader-client-ca-file=${pki.frontProxyCa.certFile}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--requestheader-extra-headers-prefix=X-Remote-Extra-',
    '--requestheader-group-headers=X-Remote-Group',
    '--requestheader-username-headers=X-Remote-User',
    `--proxy-client-cert-file=${pki.frontProxyClient.certFile}`,
    `--proxy-client-key-file=${pki.frontProxyClient.keyFile}`,
    '--enable-aggregator-routing=false',
    '--event-ttl=30m',
    '--v=1',
  ]);
  return { process, url: apiServerUrl(port), ports: { 'kube-apiserver': port } };
}

export async function waitApiServerReady(apiServer: ApiServer, pki: Pki, wait: WaitOptions): Promise<void> {
  const [ca, cert, key] = await Promise.all([
    readFile(pki.ca.certFile),
    readFile(pki.admin.certFile),
    readFile(pki.admin.keyFile),
  ]);
  await waitFor('kube-apiserver /readyz', () => probeOk(`${apiServer.url}/readyz`, { ca, cert, key }), wait);
}

function kubeconfigYaml(server: string, caFile: string, admin: KeyPair): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'afterlife', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: 'afterlife-admin', user: { 'client-certificate': admin.certFile, 'client-key': admin.keyFile } }],
    contexts: [{ name: 'afterlife', context: { cluster: 'afterlife', user: 'afterlife-admin', namespace: 'default' } }],
    'current-context': 'afterlife',
  });
}
