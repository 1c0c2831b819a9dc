import { cpus, hostname } from 'node:os';
import { errorMessage, parseImageReference } from '@afterlife/core';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  NodeV1Api,
  VersionApi,
} from '@kubernetes/client-node';

/** A component's version and where it was read, e.g. `{ version: '2.20.2', source: 'keda-operator image tag' }`. */
export interface DetectedVersion {
  readonly version: string;
  readonly source: string;
}

/** Versions known without asking the cluster (the local devcluster builds them from pinned sources). */
export interface VersionFallbacks {
  readonly keda?: DetectedVersion;
  readonly knative?: DetectedVersion;
}

/** Where a run ran, for the header of the reports. Every value is already worded for people. */
export interface ReportEnvironment {
  readonly kubernetes: string;
  readonly knative: string;
  readonly keda: string;
  /** The nodes Wasm pods run on: container runtime, kubelet, OS, and the RuntimeClass handler. */
  readonly wasmNodes: string;
  /** What ran the suite or the demo: `Node.js v24.21.0 on linux x64 (2 CPUs, host)`. */
  readonly runner: string;
}

const VERSION_LABEL = 'app.kubernetes.io/version';
/** Placeholders that are not a release: Knative's source tree says `devel`, KEDA's `main`. */
const NOT_A_RELEASE = new Set(['', 'devel', 'main', 'latest', 'unknown']);

function releaseLabel(labels: Record<string, string> | undefined, ...keys: string[]): string | undefined {
  for (const key of keys) {
    const value = labels?.[key];
    if (value !== undefined && !NOT_A_RELEASE.has(value)) return value;
  }
  return undefined;
}

/** The tag of an image reference when it names a release (not `latest`, not a bare digest). */
export function releaseTag(image: string | undefined): string | undefined {
  if (!image) return undefined;
  try {
    const tag = parseImageReference(image).tag;
    return tag !== undefined && !NOT_A_RELEASE.has(tag) ? tag : undefined;
  } catch {
    return undefined;
  }
}

function isNotFound(error: unknown): boolean {
  const e = error as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return e?.code === 404 || e?.statusCode === 404 || e?.response?.statusCode === 404;
}

/** Tries each way in turn; a way that cannot be read (RBAC, not installed) just yields nothing. */
async function firstOf(
  ways: ReadonlyArray<() => Promise<DetectedVersion | undefined>>,
): Promise<DetectedVersion | undefined> {
  for (const way of ways) {
    try {
      const found = await way();
      if (found) return found;
    } catch {
      // the next way
    }
  }
  return undefined;
}

/**
 * KEDA's version, read where each install puts it: the `app.kubernetes.io/version` label of the
 * ScaledObject CRD (release manifests and the Helm chart; `helm.sh/chart: keda-X` too), the
 * keda-operator Deployment's labels or image tag, then the `app.kubernetes.io/version` label KEDA
 * writes on every HPA it makes (its build version, so it also works when KEDA runs outside the
 * cluster, as on the local devcluster; unless the ScaledObject carries that label itself, which
 * KEDA copies over). `fallback` when none of these says.
 */
export async function detectKedaVersion(
  kubeConfig: KubeConfig,
  fallback?: DetectedVersion,
): Promise<DetectedVersion | undefined> {
  const found = await firstOf([
    async () => {
      const crd = await kubeConfig
        .makeApiClient(ApiextensionsV1Api)
        .readCustomResourceDefinition({ name: 'scaledobjects.keda.sh' });
      const labels = crd.metadata?.labels;
      const version = releaseLabel(labels, VERSION_LABEL) ?? /^keda-(.+)$/.exec(labels?.['helm.sh/chart'] ?? '')?.[1];
      return version ? { version, source: 'CRD scaledobjects.keda.sh label' } : undefined;
    },
    async () => {
      const apps = kubeConfig.makeApiClient(AppsV1Api);
      for (const labelSelector of ['app.kubernetes.io/name=keda-operator', 'app=keda-operator']) {
        const operator = (await apps.listDeploymentForAllNamespaces({ labelSelector, limit: 1 })).items[0];
        if (!operator) continue;
        const label = releaseLabel(operator.metadata?.labels, VERSION_LABEL);
        if (label) return { version: label, source: 'keda-operator Deployment label' };
        const containers = operator.spec?.template.spec?.containers ?? [];
        const image = (containers.find((c) => c.name === 'keda-operator') ?? containers[0])?.image;
        const tag = releaseTag(image);
        if (tag) return { version: tag, source: 'keda-operator image tag' };
      }
      return undefined;
    },
    async () => {
      // KEDA copies the ScaledObject's labels onto its HPA (managed-by included), so find them by
      // the ScaledObject label; a version label the ScaledObject itself carries is the app's, not KEDA's.
      const hpas = await kubeConfig.makeApiClient(AutoscalingV2Api).listHorizontalPodAutoscalerForAllNamespaces({
        labelSelector: 'scaledobject.keda.sh/name',
        limit: 5,
      });
      const custom = kubeConfig.makeApiClient(CustomObjectsApi);
      for (const hpa of hpas.items) {
        const version = releaseLabel(hpa.metadata?.labels, VERSION_LABEL);
        const scaledObject = hpa.metadata?.labels?.['scaledobject.keda.sh/name'];
        if (!version || !scaledObject) continue;
        const so = (await custom.getNamespacedCustomObject({
          group: 'keda.sh',
          version: 'v1alpha1',
          namespace: hpa.metadata?.namespace ?? '',
          plural: 'scaledobjects',
          name: scaledObject,
        })) as { metadata?: { labels?: Record<string, string> } };
        if (so.metadata?.labels?.[VERSION_LABEL] === version) continue;
        return { version, source: 'label KEDA writes on the HPAs it makes' };
      }
      return undefined;
    },
  ]);
  return found ?? fallback;
}

/**
 * Knative Serving's version: the release label of its Service CRD or its ConfigMaps, or the
 * controller Deployment's; `fallback` when they only say `devel` (a build from source).
 */
export async function detectKnativeVersion(
  kubeConfig: KubeConfig,
  namespace = 'knative-serving',
  fallback?: DetectedVersion,
): Promise<DetectedVersion | undefined> {
  const keys = [VERSION_LABEL, 'serving.knative.dev/release', 'app.kubernetes.io/part-of-version'];
  const found = await firstOf([
    async () => {
      const crd = await kubeConfig
        .makeApiClient(ApiextensionsV1Api)
        .readCustomResourceDefinition({ name: 'services.serving.knative.dev' });
      const version = releaseLabel(crd.metadata?.labels, ...keys);
      return version ? { version, source: 'CRD services.serving.knative.dev label' } : undefined;
    },
    async () => {
      const cm = await kubeConfig
        .makeApiClient(CoreV1Api)
        .readNamespacedConfigMap({ name: 'config-features', namespace });
      const version = releaseLabel(cm.metadata?.labels, ...keys);
      return version ? { version, source: `${namespace}/config-features label` } : undefined;
    },
    async () => {
      const controller = await kubeConfig
        .makeApiClient(AppsV1Api)
        .readNamespacedDeployment({ name: 'controller', namespace });
      const version = releaseLabel(controller.metadata?.labels, ...keys);
      return version ? { version, source: `${namespace}/controller Deployment label` } : undefined;
    },
  ]);
  return found ?? fallback;
}

/** "2.20.2" with where it came from when that is not the usual place. */
export function describeVersion(found: DetectedVersion | undefined, unknown: string): string {
  if (!found) return unknown;
  return `${found.version} (${found.source})`;
}

export interface EnvironmentOptions {
  readonly runtimeClassName?: string;
  readonly knativeNamespace?: string;
  readonly fallbacks?: VersionFallbacks;
}

async function describeWasmNodes(kubeConfig: KubeConfig, runtimeClassName: string): Promise<string> {
  let selector: Record<string, string> = {};
  let handler = '';
  try {
    const rc = await kubeConfig.makeApiClient(NodeV1Api).readRuntimeClass({ name: runtimeClassName });
    selector = rc.scheduling?.nodeSelector ?? {};
    handler = rc.handler;
  } catch (error) {
    return `RuntimeClass ${runtimeClassName}: ${isNotFound(error) ? 'not found' : errorMessage(error)}`;
  }
  const nodes = (await kubeConfig.makeApiClient(CoreV1Api).listNode()).items.filter((n) =>
    Object.entries(selector).every(([k, v]) => n.metadata?.labels?.[k] === v),
  );
  const infos = [
    ...new Set(
      nodes.map((n) => {
        const i = n.status?.nodeInfo;
        return i
          ? `${i.containerRuntimeVersion}, kubelet ${i.kubeletVersion}, ${i.osImage}, kernel ${i.kernelVersion}, ${i.architecture}`
          : 'no node info';
      }),
    ),
  ];
  const names = nodes
    .slice(0, 3)
    .map((n) => n.metadata?.name ?? '')
    .join(', ');
  return `${nodes.length} node${nodes.length === 1 ? '' : 's'}${names ? ` (${names}${nodes.length > 3 ? ', …' : ''})` : ''}: ${infos.join('; ') || '—'}; RuntimeClass ${runtimeClassName} → handler ${handler}`;
}

/** The runner: Node.js version, OS, CPUs and host. */
export function runnerDescription(): string {
  return `Node.js ${process.version} on ${process.platform} ${process.arch} (${cpus().length} CPUs, ${hostname()})`;
}

/** Kubernetes, Knative, KEDA and the Wasm nodes of a cluster, each "unknown (why)" when it cannot be read. Never throws. */
export async function detectEnvironment(
  kubeConfig: KubeConfig,
  options: EnvironmentOptions = {},
): Promise<ReportEnvironment> {
  const safe = async (what: () => Promise<string>): Promise<string> => {
    try {
      return await what();
    } catch (error) {
      return `unknown (${errorMessage(error)})`;
    }
  };
  const [kubernetes, knative, keda, wasmNodes] = await Promise.all([
    safe(async () => {
      const info = await kubeConfig.makeApiClient(VersionApi).getCode();
      return `${info.gitVersion} (${info.platform})`;
    }),
    safe(async () =>
      describeVersion(
        await detectKnativeVersion(kubeConfig, options.knativeNamespace, options.fallbacks?.knative),
        'unknown (no release label on Knative Serving CRDs, ConfigMaps or controller)',
      ),
    ),
    safe(async () =>
      describeVersion(
        await detectKedaVersion(kubeConfig, options.fallbacks?.keda),
        'unknown (no version label on CRD scaledobjects.keda.sh, no keda-operator Deployment, no HPA made by KEDA)',
      ),
    ),
    safe(() => describeWasmNodes(kubeConfig, options.runtimeClassName ?? 'wasmedge')),
  ]);
  return { kubernetes, knative, keda, wasmNodes, runner: runnerDescription() };
}
