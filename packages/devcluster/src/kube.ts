import { readFile } from 'node:fs/promises';
import { type RequestOptions, request } from 'node:https';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { AfterlifeClusterError } from './cluster-error.ts';

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

const REQUEST_TIMEOUT_MS = 30_000;

export class KubeRequestError extends AfterlifeClusterError {
  readonly status: number;

  constructor(status: number, message: string) {
    super('KUBE_REQUEST_FAILED', message);
    this.status = status;
  }
}

/**
 * A raw request to the API server. Manifests go through here rather than the typed client
 * because the typed client's serializer drops keys it does not model (for example
 * `x-kubernetes-int-or-string` inside CRD schemas).
 */
export async function kubeRequest(
  kubeConfig: KubeConfig,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<unknown> {
  const server = kubeConfig.getCurrentCluster()?.server;
  if (!server) throw new AfterlifeClusterError('KUBECONFIG_INVALID', 'the kubeconfig has no current cluster');
  const url = new URL(path, server);
  const options: RequestOptions = { method, headers: { Accept: 'application/json' }, timeout: REQUEST_TIMEOUT_MS };
  await kubeConfig.applyToHTTPSOptions(options);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload !== undefined) options.headers = { ...options.headers, 'Content-Type': contentType };
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve(text ? JSON.parse(text) : undefined);
        } else {
          let message = text;
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? text;
          } catch {
            // Not JSON; keep the raw text.
          }
          reject(new KubeRequestError(status, `${method} ${path}: ${status} ${message}`));
        }
      });
    });
    req.on('timeout', () =>
      req.destroy(
        new AfterlifeClusterError(
          'KUBE_REQUEST_FAILED',
          `${method} ${path}: no answer within ${REQUEST_TIMEOUT_MS} ms`,
        ),
      ),
    );
    req.on('error', reject);
    req.end(payload);
  });
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
