import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCertificateAuthority, createSigningKey, issueCertificate, type KeyPair } from '../pki.ts';

/** Every key and certificate the control plane uses, under `<stateDir>/pki`. */
export interface Pki {
  readonly ca: KeyPair;
  readonly apiServer: KeyPair;
  readonly admin: KeyPair;
  readonly frontProxyCa: KeyPair;
  readonly frontProxyClient: KeyPair;
  readonly kedaServing: KeyPair;
  readonly serviceAccount: { privateKeyFile: string; publicKeyFile: string };
  readonly kedaCertDir: string;
  readonly apiServerKubeletClient: KeyPair;
}

/** A fresh cluster CA, front-proxy CA, serving and client certificates and the service-account key. */
export async function createClusterPki(stateDir: string): Promise<Pki> {
  const dir = join(stateDir, 'pki');
  const ca = await createCertificateAuthority(dir, 'ca', 'afterlife-devcluster-ca');
  const frontProxyCa = await createCertificateAuthority(dir, 'front-proxy-ca', 'afterlife-front-proxy-ca');
  const [apiServer, admin, frontProxyClient, serviceAccount] = await Promise.all([
    issueCertificate(ca, dir, 'apiserver', {
      commonName: 'kube-apiserver',
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
      ipAddresses: ['127.0.0.1', '10.96.0.1'],
      usage: 'server',
    }),
    issueCertificate(ca, dir, 'admin', {
      commonName: 'afterlife-admin',
      organization: 'system:masters',
      usage: 'client',
    }),
    issueCertificate(frontProxyCa, dir, 'front-proxy-client', { commonName: 'front-proxy-client', usage: 'client' }),
    createSigningKey(dir, 'service-account'),
  ]);
  // KEDA's operator and adapter read ca.crt/tls.crt/tls.key from one directory for their mTLS gRPC link.
  const kedaCertDir = join(dir, 'keda');
  const kedaServing = await issueCertificate(ca, kedaCertDir, 'tls', {
    commonName: 'keda-operator',
    dnsNames: ['localhost', 'keda-operator.keda.svc', 'keda-metrics-apiserver.keda.svc'],
    ipAddresses: ['127.0.0.1'],
    usage: 'server-and-client',
  });
  await writeFile(join(kedaCertDir, 'ca.crt'), await readFile(ca.certFile));
  // The API server's identity towards kubelets (logs, exec, port-forward); kubelets authorize it by webhook.
  const apiServerKubeletClient = await issueCertificate(ca, dir, 'apiserver-kubelet-client', {
    commonName: 'kube-apiserver-kubelet-client',
    organization: 'system:masters',
    usage: 'client',
  });
  return {
    ca,
    apiServer,
    admin,
    frontProxyCa,
    frontProxyClient,
    serviceAccount,
    kedaCertDir,
    kedaServing,
    apiServerKubeletClient,
  };
}
