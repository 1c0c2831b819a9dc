import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { pushStaticBinaryImage } from './images.ts';
import { applyObjects, KubeRequestError, kubeRequest, readManifests } from './kube.ts';
import { type WaitOptions, waitFor } from './wait.ts';

export const KNATIVE_EVENTING_NAMESPACE = 'knative-eventing';

/** What a Broker + Trigger needs: the core, the in-memory channel and the channel-based broker. */
const CONFIG_DIRS = ['core', 'channels/in-memory-channel', 'brokers/mt-channel-broker'] as const;
/**
 * Parts of the release this install leaves out: sources and sinks other than Broker/Trigger
 * (their images are not built here) and HPAs that would scale the data plane on CPU.
 */
const SKIPPED_FILES = new Set([
  'core/deployments/job-sink.yaml',
  'core/deployments/request-reply.yaml',
  'core/deployments/pingsource-mt-adapter.yaml',
  'core/deployments/webhook-hpa.yaml',
  'brokers/mt-channel-broker/deployments/hpa.yaml',
]);
/** `ko://knative.dev/eventing/cmd/<path>` references the built binaries answer (by last segment). */
const KO_PREFIX = 'ko://knative.dev/eventing/cmd/';
export const EVENTING_BINARIES = [
  'controller',
  'webhook',
  'channel_controller',
  'channel_dispatcher',
  'mtchannel_broker',
  'ingress',
  'filter',
] as const;
/** The Deployments a Broker + Trigger path depends on. */
export const EVENTING_DEPLOYMENTS = [
  'eventing-controller',
  'eventing-webhook',
  'imc-controller',
  'imc-dispatcher',
  'mt-broker-controller',
  'mt-broker-ingress',
  'mt-broker-filter',
] as const;

export interface KnativeEventingOptions {
  readonly kubeConfig: KubeConfig;
  /** Directory of the built `knative-eventing` component (binaries + `config/`). */
  readonly componentDir: string;
  readonly version: string;
  /** `127.0.0.1:PORT` of the cluster's registry; the real nodes pull the images from it. */
  readonly registry: string;
  readonly wait: WaitOptions;
}

export interface KnativeEventing {
  /** Image pushed per binary name. */
  readonly images: Readonly<Record<string, string>>;
  /** Removes the webhook configurations and the namespace (the cluster keeps running). */
  uninstall(): Promise<void>;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return yamlFiles(path);
      return name.endsWith('.yaml') ? [path] : [];
    });
}

/** Replaces every `ko://` reference (container images and the env vars naming images) in place. */
function resolveImages(value: unknown, images: Readonly<Record<string, string>>): unknown {
  if (typeof value === 'string' && value.startsWith(KO_PREFIX)) {
    const name = value.slice(KO_PREFIX.length).split('/').pop() ?? '';
    // Images for the sources this install leaves out name what would be needed, and fail to pull.
    return images[name] ?? `afterlife.invalid/knative-eventing-not-built/${name}`;
  }
  if (Array.isArray(value)) return value.map((item) => resolveImages(item, images));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolveImages(item, images)]));
  }
  return value;
}

/**
 * The controller reads the images of sources and transforms this install leaves out from
 * ConfigMaps a release generates (they are not in `config/`); they name what would be needed.
 */
function missingImageConfigMaps(objects: readonly KubernetesObject[]): KubernetesObject[] {
  const present = new Set(objects.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata?.name));
  const wanted = new Map<string, Set<string>>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') {
      const ref = (value as { configMapKeyRef?: { name?: string; key?: string } }).configMapKeyRef;
      if (ref?.name && ref.key && !present.has(ref.name)) {
        wanted.set(ref.name, (wanted.get(ref.name) ?? new Set()).add(ref.key));
      }
      Object.values(value).forEach(visit);
    }
  };
  for (const object of objects) if (object.kind === 'Deployment') visit(object);
  return [...wanted].map(
    ([name, keys]) =>
      ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace: KNATIVE_EVENTING_NAMESPACE },
        data: Object.fromEntries([...keys].map((key) => [key, `afterlife.invalid/knative-eventing-not-built/${key}`])),
      }) as KubernetesObject,
  );
}

const isWebhookConfiguration = (object: KubernetesObject) =>
  object.kind === 'MutatingWebhookConfiguration' || object.kind === 'ValidatingWebhookConfiguration';

/**
 * Installs Knative Eventing from its own release manifests (the module's `config/`), as a user
 * installs it, with the `ko://` images replaced by the binaries built here: every part runs as a
 * pod on the real nodes, talks to the API through the `kubernetes` Service and resolves the data
 * plane's `*.svc.cluster.local` addresses through cluster DNS (needs `clusterServices`).
 */
export async function installKnativeEventing(options: KnativeEventingOptions): Promise<KnativeEventing> {
  const { kubeConfig } = options;
  const images: Record<string, string> = {};
  for (const name of EVENTING_BINARIES) {
    const pushed = await pushStaticBinaryImage(
      `${options.registry}/knative/eventing-${name.replaceAll('_', '-')}:${options.version}`,
      join(options.componentDir, name),
      // The release's pods run as non-root and verify it: a numeric user, as ko's images have.
      { name, user: '65532' },
    );
    images[name] = pushed.pinned;
  }
  const configDir = join(options.componentDir, 'config');
  const objects: KubernetesObject[] = [];
  for (const dir of CONFIG_DIRS) {
    for (const file of yamlFiles(join(configDir, dir))) {
      if (SKIPPED_FILES.has(relative(configDir, file))) continue;
      for (const object of await readManifests(file)) objects.push(resolveImages(object, images) as KubernetesObject);
    }
  }
  objects.push(...missingImageConfigMaps(objects));
  const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
  const namespaces = objects.filter((o) => o.kind === 'Namespace');
  const webhooks = objects.filter(isWebhookConfiguration);
  const rest = objects.filter((o) => !crds.includes(o) && !namespaces.includes(o) && !webhooks.includes(o));

  await applyObjects(kubeConfig, [...namespaces, ...crds]);
  await waitFor(
    'Knative Eventing CRDs established',
    async () => {
      for (const crd of crds) {
        const current = (await kubeRequest(
          kubeConfig,
          'GET',
          `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata?.name}`,
        )) as { status?: { conditions?: { type: string; status: string }[] } };
        if (!current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return undefined;
      }
      return true;
    },
    options.wait,
  );
  // Webhook configurations last: they fail closed, so nothing else could be applied before the
  // webhook serves.
  await applyObjects(kubeConfig, rest);
  await waitDeployment(options, 'eventing-webhook');
  await applyObjects(kubeConfig, webhooks);
  for (const name of EVENTING_DEPLOYMENTS) await waitDeployment(options, name);
  await waitFor('Knative Eventing webhook validating a dry-run Broker', () => brokerDryRun(kubeConfig), options.wait);

  return {
    images,
    async uninstall() {
      for (const object of webhooks) {
        const group = 'admissionregistration.k8s.io/v1';
        const resource =
          object.kind === 'MutatingWebhookConfiguration'
            ? 'mutatingwebhookconfigurations'
            : 'validatingwebhookconfigurations';
        await kubeRequest(kubeConfig, 'DELETE', `/apis/${group}/${resource}/${object.metadata?.name}`).catch(
          ignoreNotFound,
        );
      }
      await kubeRequest(kubeConfig, 'DELETE', `/api/v1/namespaces/${KNATIVE_EVENTING_NAMESPACE}`).catch(ignoreNotFound);
    },
  };
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof KubeRequestError && error.status === 404)) throw error;
}

async function waitDeployment(options: KnativeEventingOptions, name: string): Promise<void> {
  await waitFor(
    `Knative Eventing ${name} available`,
    async () => {
      const deployment = (await kubeRequest(
        options.kubeConfig,
        'GET',
        `/apis/apps/v1/namespaces/${KNATIVE_EVENTING_NAMESPACE}/deployments/${name}`,
      ).catch(() => undefined)) as { status?: { conditions?: { type: string; status: string }[] } } | undefined;
      const available = deployment?.status?.conditions?.find((c) => c.type === 'Available');
      return available?.status === 'True' ? true : undefined;
    },
    { ...options.wait, intervalMs: 500 },
  );
}

/** The webhook defaulted a Broker (its class annotation appears): it serves and the API reaches it. */
async function brokerDryRun(kubeConfig: KubeConfig): Promise<true | undefined> {
  try {
    const broker = (await kubeRequest(
      kubeConfig,
      'POST',
      `/apis/eventing.knative.dev/v1/namespaces/${KNATIVE_EVENTING_NAMESPACE}/brokers?dryRun=All`,
      { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', metadata: { name: 'afterlife-dry-run' } },
    )) as { metadata?: { annotations?: Record<string, string> } };
    return broker.metadata?.annotations?.['eventing.knative.dev/broker.class'] ? true : undefined;
  } catch {
    // Refused (webhook not reconciled yet) or unreachable: waitFor retries and names what it waited for.
    return undefined;
  }
}
