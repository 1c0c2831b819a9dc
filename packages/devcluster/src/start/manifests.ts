import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { applyObjects, readManifests } from '../kube.ts';
import { type WaitOptions, waitFor } from '../wait.ts';
import { kwokNodeObjects } from './kwok.ts';

/**
 * The cluster's base objects: namespaces, the kwok Nodes, KEDA's and Knative Serving's CRDs and
 * Knative's ConfigMaps. Returns what was applied as CRDs (to wait for them to be established).
 */
export async function applyClusterManifests(
  kubeConfig: KubeConfig,
  input: {
    kwokNodes: number;
    /** KEDA's component directory, when KEDA runs. */
    kedaDir: string | undefined;
    /** Component `knative-config`'s directory, when Knative Serving's CRDs are installed. */
    knativeConfigDir: string | undefined;
  },
): Promise<KubernetesObject[]> {
  const { kedaDir, knativeConfigDir } = input;
  await applyObjects(kubeConfig, [
    namespace('keda'),
    ...(knativeConfigDir !== undefined ? [namespace('knative-serving')] : []),
    ...kwokNodeObjects(input.kwokNodes),
  ]);
  const crds: KubernetesObject[] = [];
  if (kedaDir !== undefined) crds.push(...(await readYamlDir(join(kedaDir, 'config', 'crd', 'bases'))));
  if (knativeConfigDir !== undefined) {
    const config = join(knativeConfigDir, 'config', 'core');
    crds.push(...(await readYamlDir(join(config, '300-resources'))));
  }
  await applyObjects(kubeConfig, crds);
  if (knativeConfigDir !== undefined) {
    const configMaps = await readYamlDir(join(knativeConfigDir, 'config', 'core', 'configmaps'));
    await applyObjects(kubeConfig, configMaps);
  }
  return crds;
}

export async function waitCrdsEstablished(
  kubeConfig: KubeConfig,
  crds: readonly KubernetesObject[],
  wait: WaitOptions,
): Promise<void> {
  await waitFor('CRDs established', async () => ((await crdsEstablished(kubeConfig, crds)) ? true : undefined), wait);
}

function namespace(name: string): KubernetesObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

async function readYamlDir(dir: string): Promise<KubernetesObject[]> {
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.yaml'))
    .sort();
  const objects: KubernetesObject[] = [];
  for (const file of files) objects.push(...(await readManifests(join(dir, file))));
  return objects;
}

async function crdsEstablished(kubeConfig: KubeConfig, crds: readonly KubernetesObject[]): Promise<boolean> {
  const { ApiextensionsV1Api } = await import('@kubernetes/client-node');
  const api = kubeConfig.makeApiClient(ApiextensionsV1Api);
  const list = await api.listCustomResourceDefinition();
  const established = new Set(
    list.items
      .filter((crd) => crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'))
      .map((crd) => crd.metadata?.name),
  );
  return crds.every((crd) => crd.kind !== 'CustomResourceDefinition' || established.has(crd.metadata?.name));
}
