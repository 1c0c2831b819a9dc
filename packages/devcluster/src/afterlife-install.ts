import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { type AppImageName, buildAppImages, pushAppImages } from './app-images.ts';
import { AfterlifeClusterError } from './cluster-error.ts';
import { KubeRequestError, kubeRequest } from './kube.ts';
import { WASM_RUNTIME_HANDLER } from './node.ts';
import { PACKAGE_ROOT } from './paths.ts';
import { tcpOpen } from './start/cluster-services.ts';
import { type WaitOptions, waitFor } from './wait.ts';

const run = promisify(execFile);

/** The chart in this repository (charts/afterlife). */
export const CHART_DIR = join(PACKAGE_ROOT, '..', '..', 'charts', 'afterlife');
export const AFTERLIFE_NAMESPACE = 'afterlife-system';
export const AFTERLIFE_RELEASE = 'afterlife';
/** The chart's four deployables, by the name of their values section and image. */
export const CHART_COMPONENTS = [
  'webhook',
  'gateway',
  'scaler',
  'autoscaler',
] as const satisfies readonly AppImageName[];

export interface AfterlifeInstallOptions {
  readonly kubeConfig: KubeConfig;
  readonly kubeconfigPath: string;
  readonly helm: string;
  /** `127.0.0.1:PORT` of the cluster's registry: the images go there and the nodes pull them by digest. */
  readonly registry: string;
  readonly release?: string;
  readonly namespace?: string;
  /** Values merged over the local ones (per-component sections merge one level deep). */
  readonly values?: Readonly<Record<string, unknown>>;
  /** Bound for `helm --wait` and the rollouts (default 300 s). */
  readonly timeoutMs?: number;
  readonly onProgress?: (line: string) => void;
}

export interface AfterlifeInstall {
  readonly release: string;
  readonly namespace: string;
  /** `<registry>/afterlife-<name>@sha256:…` per component. */
  readonly images: Readonly<Record<(typeof CHART_COMPONENTS)[number], string>>;
  /** The values the release was installed with (what `helm get values` shows). */
  readonly values: Readonly<Record<string, unknown>>;
  /** `helm upgrade` the release with more values (same images unless they say otherwise). */
  upgrade(values: Readonly<Record<string, unknown>>): Promise<void>;
  /** `helm uninstall --wait`. */
  uninstall(): Promise<void>;
}

/**
 * The values a local install differs from a user's by: the images just pushed (by digest), the
 * RuntimeClass for the real nodes' `wasmedge` handler, requests small enough for one 2-core node.
 */
export function localValues(images: Readonly<Record<string, { repository: string; digest: string }>>) {
  const small = { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '512Mi' } };
  const component = (name: (typeof CHART_COMPONENTS)[number]) => ({
    image: { repository: images[name]?.repository ?? '', digest: images[name]?.digest ?? '', tag: '' },
    resources: small,
  });
  return {
    runtimeClass: {
      create: true,
      name: WASM_RUNTIME_HANDLER,
      handler: WASM_RUNTIME_HANDLER,
      scheduling: { nodeSelector: { 'afterlife.dev/wasm': 'true' } },
    },
    webhook: { ...component('webhook'), replicas: 1 },
    gateway: { ...component('gateway'), replicas: 2 },
    scaler: { ...component('scaler'), replicas: 1 },
    autoscaler: { ...component('autoscaler'), replicas: 1 },
  };
}

function merge(base: Record<string, unknown>, over: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object'
        ? { ...(current as Record<string, unknown>), ...(value as Record<string, unknown>) }
        : value;
  }
  return out;
}

/**
 * Installs Afterlife on a (local) cluster the way a user does: the images built by the one image
 * builder and pushed to the cluster's registry, then `helm upgrade --install --wait` of the
 * chart with their digests; every component runs as a pod with the chart's Services, RBAC,
 * certificate, webhook configuration and NetworkPolicies.
 */
export async function installAfterlife(options: AfterlifeInstallOptions): Promise<AfterlifeInstall> {
  const release = options.release ?? AFTERLIFE_RELEASE;
  const namespace = options.namespace ?? AFTERLIFE_NAMESPACE;
  const timeoutMs = options.timeoutMs ?? 300_000;
  const progress = options.onProgress ?? (() => undefined);
  const built = await buildAppImages({ only: CHART_COMPONENTS, onProgress: progress });
  const pushed = await pushAppImages(built, options.registry);
  const byName: Record<string, { repository: string; digest: string }> = {};
  const images: Record<string, string> = {};
  built.forEach((image, index) => {
    const reference = pushed[index];
    if (!reference) return;
    byName[image.name] = { repository: `${options.registry}/${image.repository}`, digest: image.digest };
    images[image.name] = reference.pinned;
  });
  let values = merge(localValues(byName), options.values ?? {});
  if (await runtimeClassOwnedElsewhere(options.kubeConfig, release)) {
    // The cluster has its Wasm RuntimeClass already (an operator made it): use it, as the chart says.
    values = merge(values, { runtimeClass: { create: false } });
  }
  const helm = async (args: readonly string[]): Promise<void> => {
    const dir = await mkdtemp(join(tmpdir(), 'afterlife-values-'));
    try {
      const file = join(dir, 'values.yaml');
      await writeFile(file, stringify(values));
      await run(
        options.helm,
        [
          '--kubeconfig',
          options.kubeconfigPath,
          ...args,
          release,
          CHART_DIR,
          '--namespace',
          namespace,
          '--values',
          file,
          '--wait',
          '--timeout',
          `${Math.ceil(timeoutMs / 1000)}s`,
        ],
        { timeout: timeoutMs + 30_000, maxBuffer: 16 << 20 },
      );
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr?.trim() ?? String(error);
      throw new AfterlifeClusterError('INSTALL_FAILED', `helm ${args[0]} ${release} failed: ${stderr}`, {
        cause: error,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  progress(
    `helm install ${release} (${CHART_COMPONENTS.map((c) => `${c}@${byName[c]?.digest.slice(7, 19)}`).join(', ')})`,
  );
  await helm(['upgrade', '--install', '--create-namespace']);
  await waitRollouts(options.kubeConfig, namespace, { timeoutMs, intervalMs: 500 });
  await waitServicesAnswer(options.kubeConfig, namespace, { timeoutMs, intervalMs: 250 });
  return {
    release,
    namespace,
    images: images as AfterlifeInstall['images'],
    get values() {
      return values;
    },
    async upgrade(more) {
      values = merge(values, more);
      await helm(['upgrade']);
      await waitRollouts(options.kubeConfig, namespace, { timeoutMs, intervalMs: 500 });
    },
    async uninstall() {
      await run(
        options.helm,
        ['--kubeconfig', options.kubeconfigPath, 'uninstall', release, '--namespace', namespace, '--wait'],
        { timeout: timeoutMs },
      ).catch((error: unknown) => {
        const stderr = (error as { stderr?: string }).stderr ?? '';
        if (!/not found/i.test(stderr)) {
          throw new AfterlifeClusterError('INSTALL_FAILED', `helm uninstall ${release} failed: ${stderr.trim()}`, {
            cause: error,
          });
        }
      });
    },
  };
}

/** A `wasmedge` RuntimeClass exists that this release did not create. */
async function runtimeClassOwnedElsewhere(kubeConfig: KubeConfig, release: string): Promise<boolean> {
  try {
    const existing = (await kubeRequest(
      kubeConfig,
      'GET',
      `/apis/node.k8s.io/v1/runtimeclasses/${WASM_RUNTIME_HANDLER}`,
    )) as { metadata?: { annotations?: Record<string, string> } };
    return existing.metadata?.annotations?.['meta.helm.sh/release-name'] !== release;
  } catch (error) {
    if (error instanceof KubeRequestError && error.status === 404) return false;
    throw error;
  }
}

/**
 * Ready pods are not yet reachable Services: kube-proxy programs the ClusterIPs a moment later
 * (longer on a busy machine). Waits until every Service port of the release accepts a TCP
 * connection through its ClusterIP — what the API server calling the webhook goes through.
 */
async function waitServicesAnswer(kubeConfig: KubeConfig, namespace: string, wait: WaitOptions): Promise<void> {
  const services = (await kubeRequest(kubeConfig, 'GET', `/api/v1/namespaces/${namespace}/services`)) as {
    items: { metadata: { name: string }; spec?: { clusterIP?: string; ports?: { port: number }[] } }[];
  };
  for (const service of services.items) {
    const ip = service.spec?.clusterIP;
    if (!ip || ip === 'None') continue;
    for (const { port } of service.spec?.ports ?? []) {
      await waitFor(
        `Service ${namespace}/${service.metadata.name} answering on ${ip}:${port}`,
        () => tcpOpen(ip, port),
        wait,
      );
    }
  }
}

interface DeploymentList {
  items: {
    metadata: { name: string; generation?: number };
    spec?: { replicas?: number };
    status?: { observedGeneration?: number; updatedReplicas?: number; readyReplicas?: number };
  }[];
}

/** Every Deployment of the release rolled out: observed, updated and ready at its replica count. */
async function waitRollouts(kubeConfig: KubeConfig, namespace: string, wait: WaitOptions): Promise<void> {
  await waitFor(
    `Afterlife Deployments in ${namespace} rolled out`,
    async () => {
      const list = (await kubeRequest(
        kubeConfig,
        'GET',
        `/apis/apps/v1/namespaces/${namespace}/deployments`,
      )) as DeploymentList;
      const done = list.items.every((d) => {
        const want = d.spec?.replicas ?? 1;
        return (
          (d.status?.observedGeneration ?? 0) >= (d.metadata.generation ?? 0) &&
          (d.status?.updatedReplicas ?? 0) === want &&
          (d.status?.readyReplicas ?? 0) === want
        );
      });
      return list.items.length > 0 && done ? true : undefined;
    },
    wait,
  );
}
