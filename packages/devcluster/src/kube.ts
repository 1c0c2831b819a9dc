import { readFile } from 'node:fs/promises';
import { KubeRequestError, kubeRequest } from '@afterlife/core';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { AfterlifeClusterError } from './cluster-error.ts';

// The one raw API client is core's; devcluster's callers import it from here too.
export { KubeRequestError, kubeRequest };

const FIELD_MANAGER = 'afterlife-devcluster';

/** Parses multi-document YAML into objects, skipping empty documents. */
export function parseManifests(text: string): KubernetesObject[] {
  return parseAllDocuments(text)
    .map((doc) => doc.toJS() as KubernetesObject | null)
    .filter((obj): obj is KubernetesObject => obj !== null && typeof obj === 'object' && typeof obj.kind === 'string');
}

export async function readManifests(file: string): Promise<KubernetesObject[]> {
  return parseManifests(await readFile(file, 'utf8'));
}

interface ApiResource {
  readonly name: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

/** Resolves apiVersion + kind to its REST path through discovery, caching per group/version. */
export class ResourceResolver {
  readonly #kubeConfig: KubeConfig;
  readonly #cache = new Map<string, readonly ApiResource[]>();

  constructor(kubeConfig: KubeConfig) {
    this.#kubeConfig = kubeConfig;
  }

  async path(object: KubernetesObject): Promise<string> {
    const apiVersion = object.apiVersion ?? '';
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let resources = this.#cache.get(apiVersion);
    const find = () => resources?.find((resource) => resource.kind === object.kind && !resource.name.includes('/'));
    if (!find()) {
      const list = (await kubeRequest(this.#kubeConfig, 'GET', base)) as { resources: ApiResource[] };
      resources = list.resources;
      this.#cache.set(apiVersion, resources);
    }
    const resource = find();
    if (!resource)
      throw new AfterlifeClusterError(
        'KUBE_UNKNOWN_KIND',
        `the API server does not serve ${apiVersion} ${object.kind}`,
      );
    const name = encodeURIComponent(object.metadata?.name ?? '');
    if (!resource.namespaced) return `${base}/${resource.name}/${name}`;
    const namespace = encodeURIComponent(object.metadata?.namespace ?? 'default');
    return `${base}/namespaces/${namespace}/${resource.name}/${name}`;
  }
}

/** Server-side applies objects in order (CRDs before their custom resources is the caller's job). */
export async function applyObjects(kubeConfig: KubeConfig, objects: readonly KubernetesObject[]): Promise<void> {
  const resolver = new ResourceResolver(kubeConfig);
  for (const object of objects) {
    const path = await resolver.path(object);
    await kubeRequest(
      kubeConfig,
      'PATCH',
      `${path}?fieldManager=${FIELD_MANAGER}&force=true`,
      object,
      'application/apply-patch+yaml',
    );
  }
}
