import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (works from both src/ and dist/, which sit one level below it). */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SCRIPTS_DIR = join(PACKAGE_ROOT, 'scripts');
export const MANIFESTS_DIR = join(PACKAGE_ROOT, 'manifests');

/** Per-user cache shared by every clone on the machine, so CI's fresh clone starts warm. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.AFTERLIFE_CACHE ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'afterlife');
}

export type Component =
  | 'kubernetes'
  | 'etcd'
  | 'kwok'
  | 'keda'
  | 'helm'
  | 'registry'
  | 'oras'
  | 'knative'
  | 'knative-eventing'
  | 'coredns'
  | 'knative-config'
  | 'knative-networking'
  | 'containerd'
  | 'runc'
  | 'cni';
export const COMPONENTS: readonly Component[] = [
  'kubernetes',
  'etcd',
  'kwok',
  'keda',
  'helm',
  'registry',
  'oras',
  'knative',
  'knative-eventing',
  'coredns',
  'knative-config',
  'knative-networking',
  'containerd',
  'runc',
  'cni',
];

export interface Versions {
  readonly kubernetes: string;
  readonly etcd: string;
  readonly kwok: string;
  readonly keda: string;
  readonly helm: string;
  readonly registry: string;
  readonly oras: string;
  readonly knative: string;
  readonly knativeEventing: string;
  readonly coredns: string;
  readonly containerd: string;
  readonly runc: string;
  readonly cni: string;
}

/** Reads the pinned upstream versions from scripts/versions.env (the build script's source of truth). */
export function readVersions(): Versions {
  const values = new Map<string, string>();
  for (const line of readFileSync(join(SCRIPTS_DIR, 'versions.env'), 'utf8').split('\n')) {
    const match = /^([A-Z_]+)=(\S+)$/.exec(line.trim());
    if (match?.[1] && match[2]) values.set(match[1], match[2]);
  }
  const get = (key: string): string => {
    const value = values.get(key);
    if (!value) throw new Error(`scripts/versions.env has no ${key}`);
    return value;
  };
  return Object.freeze({
    kubernetes: get('KUBERNETES_VERSION'),
    etcd: get('ETCD_VERSION'),
    kwok: get('KWOK_VERSION'),
    keda: get('KEDA_VERSION'),
    helm: get('HELM_VERSION'),
    registry: get('REGISTRY_VERSION'),
    oras: get('ORAS_VERSION'),
    knative: get('KNATIVE_SERVING_VERSION'),
    knativeEventing: get('KNATIVE_EVENTING_VERSION'),
    coredns: get('COREDNS_VERSION'),
    containerd: get('CONTAINERD_VERSION'),
    runc: get('RUNC_VERSION'),
    cni: get('CNI_PLUGINS_VERSION'),
  });
}
