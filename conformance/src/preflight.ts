import { connect } from 'node:net';
import {
  CONFIG_DEPLOYMENT,
  CONFIG_FEATURES,
  enableFlagCommand,
  errorMessage,
  featuresFromConfigMaps,
  probeOk,
  RUNTIME_CLASS_FLAG,
  RUNTIME_CLASS_NAME_KEY,
  runtimeClassFieldAllowed,
} from '@afterlife/core';
import {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  ApiregistrationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  type KubeConfig,
  NodeV1Api,
  type V1MutatingWebhookConfiguration,
  type V1Node,
} from '@kubernetes/client-node';
import { describeVersion, detectKedaVersion, detectKnativeVersion, type VersionFallbacks } from './environment.ts';
import { ConformanceError } from './errors.ts';

/** One preflight check: what was checked, whether it passed, what was seen and how to fix it. */
export interface PreflightResult {
  readonly name: string;
  readonly ok: boolean;
  readonly message: string;
  /** How to fix a failed check ('' when it passed). */
  readonly fix: string;
}

export interface PreflightOptions {
  /** RuntimeClass the webhook sets (default `wasmedge`). */
  readonly runtimeClassName?: string;
  /** Namespace of Knative Serving's ConfigMaps (default `knative-serving`). */
  readonly knativeNamespace?: string;
  /** The gateway's event ingress, e.g. `http://127.0.0.1:8080` (a port-forward). */
  readonly gatewayUrl?: string;
  /** The gateway's admin port, e.g. `http://127.0.0.1:9090`; `/readyz` must answer 200. */
  readonly gatewayAdminUrl?: string;
  /** `host:port` of the scaler's gRPC port when it is reachable from here (local runs). */
  readonly scalerAddress?: string;
  /** Per-probe timeout (default 3000 ms). */
  readonly timeoutMs?: number;
  /** Versions to report when the cluster does not say (the local devcluster runs KEDA and Knative as processes). */
  readonly versionFallbacks?: VersionFallbacks;
}

export const PREFLIGHT_CHECKS = [
  'knative-serving',
  'runtime-class-flag',
  'keda',
  'runtime-class',
  'wasm-nodes',
  'webhook',
  'gateway',
  'scaler',
] as const;

const KNATIVE_CRD = 'services.serving.knative.dev';
const KEDA_CRD = 'scaledobjects.keda.sh';
const EXTERNAL_METRICS_APISERVICE = 'v1beta1.external.metrics.k8s.io';
const PART_OF = 'app.kubernetes.io/part-of=afterlife';

function isNotFound(error: unknown): boolean {
  const e = error as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return e?.code === 404 || e?.statusCode === 404 || e?.response?.statusCode === 404;
}

/** An error's message plus its cause (fetch wraps ECONNREFUSED and friends in `cause`). */
function describe(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  return cause === undefined ? errorMessage(error) : `${errorMessage(error)} (${errorMessage(cause)})`;
}

const pass = (name: string, message: string): PreflightResult => ({ name, ok: true, message, fix: '' });
const fail = (name: string, message: string, fix: string): PreflightResult => ({ name, ok: false, message, fix });

/**
 * Checks that a cluster can run Afterlife workloads. Never throws for a cluster problem: each
 * problem is a failed result with a fix. Also the basis of `afterlife doctor`.
 */
export async function runPreflight(kubeConfig: KubeConfig, options: PreflightOptions = {}): Promise<PreflightResult[]> {
  const runtimeClassName = options.runtimeClassName ?? 'wasmedge';
  const knativeNamespace = options.knativeNamespace ?? 'knative-serving';
  const timeoutMs = options.timeoutMs ?? 3000;
  const guarded = async (name: string, check: () => Promise<PreflightResult>): Promise<PreflightResult> => {
    try {
      return await check();
    } catch (error) {
      return fail(
        name,
        `could not check: ${errorMessage(error)}`,
        'check that the kubeconfig user may read this resource',
      );
    }
  };
  const checks: Array<Promise<PreflightResult>> = [
    guarded('knative-serving', () => checkKnative(kubeConfig, knativeNamespace, options.versionFallbacks)),
    guarded('runtime-class-flag', () => checkRuntimeClassFlag(kubeConfig, knativeNamespace, runtimeClassName)),
    guarded('keda', () => checkKeda(kubeConfig, options.versionFallbacks)),
    guarded('runtime-class', () => checkRuntimeClass(kubeConfig, runtimeClassName)),
    guarded('wasm-nodes', () => checkNodes(kubeConfig, runtimeClassName)),
    guarded('webhook', () => checkWebhook(kubeConfig, timeoutMs)),
    guarded('gateway', () => checkGateway(kubeConfig, options, timeoutMs)),
    guarded('scaler', () => checkScaler(kubeConfig, options, timeoutMs)),
    guarded('autoscaler', () => checkAutoscaler(kubeConfig)),
    guarded('images', () => checkImages(kubeConfig)),
  ];
  return Promise.all(checks);
}

async function checkKnative(
  kubeConfig: KubeConfig,
  namespace: string,
  fallbacks: VersionFallbacks | undefined,
): Promise<PreflightResult> {
  const name = 'knative-serving';
  const fix =
    'install Knative Serving: kubectl apply -f https://github.com/knative/serving/releases/latest/download/serving-crds.yaml -f https://github.com/knative/serving/releases/latest/download/serving-core.yaml';
  try {
    await kubeConfig.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: KNATIVE_CRD });
  } catch (error) {
    if (isNotFound(error)) return fail(name, `CRD ${KNATIVE_CRD} not found: Knative Serving is not installed`, fix);
    throw error;
  }
  try {
    await kubeConfig.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: CONFIG_FEATURES, namespace });
  } catch (error) {
    if (isNotFound(error)) {
      return fail(
        name,
        `Knative Serving CRDs found but ConfigMap ${namespace}/${CONFIG_FEATURES} is missing`,
        `${fix} (or pass --knative-namespace if it lives elsewhere)`,
      );
    }
    throw error;
  }
  const version = describeVersion(
    await detectKnativeVersion(kubeConfig, namespace, fallbacks?.knative),
    'version unknown (no release label on its CRDs, ConfigMaps or controller)',
  );
  return pass(name, `Knative Serving ${version}, CRDs and ${namespace} ConfigMaps present`);
}

async function checkRuntimeClassFlag(
  kubeConfig: KubeConfig,
  namespace: string,
  runtimeClassName: string,
): Promise<PreflightResult> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const read = async (cm: string) => {
    try {
      return (await core.readNamespacedConfigMap({ name: cm, namespace })).data ?? {};
    } catch (error) {
      if (isNotFound(error)) return {};
      throw error;
    }
  };
  const [features, deployment] = await Promise.all([read(CONFIG_FEATURES), read(CONFIG_DEPLOYMENT)]);
  return runtimeClassFlagResult(namespace, runtimeClassName, features, deployment);
}

/** The `runtime-class-flag` check on the `data` of Knative's `config-features` and `config-deployment`. */
export function runtimeClassFlagResult(
  namespace: string,
  runtimeClassName: string,
  features: Readonly<Record<string, string>>,
  deployment: Readonly<Record<string, string>>,
): PreflightResult {
  const name = 'runtime-class-flag';
  const knative = featuresFromConfigMaps(features, deployment);
  const flag = knative.runtimeClassNameFlag;
  if (runtimeClassFieldAllowed(knative)) {
    return pass(name, `${namespace}/${CONFIG_FEATURES} ${RUNTIME_CLASS_FLAG}: ${flag}`);
  }
  const entry = knative.runtimeClassNames.get(runtimeClassName);
  if (entry !== undefined) {
    const selector = Object.entries(entry.selector ?? {})
      .map(([key, value]) => `${key}=${value}`)
      .join(',');
    return pass(
      name,
      `${namespace}/${CONFIG_DEPLOYMENT} ${RUNTIME_CLASS_NAME_KEY} maps ${runtimeClassName} (revisions labelled ${selector || 'any'})`,
    );
  }
  const broken =
    knative.runtimeClassNamesError === undefined
      ? `does not map ${runtimeClassName}`
      : `is invalid: ${knative.runtimeClassNamesError}`;
  return fail(
    name,
    `Knative rejects runtimeClassName: ConfigMap ${namespace}/${CONFIG_FEATURES} key ${RUNTIME_CLASS_FLAG} is "${flag ?? '(unset)'}", and ${namespace}/${CONFIG_DEPLOYMENT} key ${RUNTIME_CLASS_NAME_KEY} ${broken}`,
    enableFlagCommand(namespace),
  );
}

async function checkKeda(kubeConfig: KubeConfig, fallbacks: VersionFallbacks | undefined): Promise<PreflightResult> {
  const name = 'keda';
  const fix =
    'install KEDA: helm repo add kedacore https://kedacore.github.io/charts && helm install keda kedacore/keda -n keda --create-namespace';
  try {
    await kubeConfig.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: KEDA_CRD });
  } catch (error) {
    if (isNotFound(error)) return fail(name, `CRD ${KEDA_CRD} not found: KEDA is not installed`, fix);
    throw error;
  }
  try {
    const api = await kubeConfig
      .makeApiClient(ApiregistrationV1Api)
      .readAPIService({ name: EXTERNAL_METRICS_APISERVICE });
    const available = api.status?.conditions?.find((c) => c.type === 'Available');
    if (available?.status !== 'True') {
      return fail(
        name,
        `APIService ${EXTERNAL_METRICS_APISERVICE} is not Available (${available?.reason ?? 'no condition'}: ${available?.message ?? ''})`,
        'check the keda-operator-metrics-apiserver pods: kubectl -n keda get pods; kubectl -n keda logs deploy/keda-operator-metrics-apiserver',
      );
    }
  } catch (error) {
    if (isNotFound(error)) {
      return fail(name, `APIService ${EXTERNAL_METRICS_APISERVICE} not found: KEDA's metrics adapter is missing`, fix);
    }
    throw error;
  }
  const version = describeVersion(
    await detectKedaVersion(kubeConfig, fallbacks?.keda),
    'version unknown (no version label on its CRD, no keda-operator Deployment, no HPA made by KEDA yet)',
  );
  return pass(name, `KEDA ${version}; ${EXTERNAL_METRICS_APISERVICE} Available`);
}

function runtimeClassYaml(runtimeClassName: string): string {
  return `kubectl apply -f - <<EOF
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: { name: ${runtimeClassName} }
handler: crun
scheduling: { nodeSelector: { afterlife.dev/wasm: "true" } }
EOF
(or helm upgrade afterlife charts/afterlife --reuse-values --set runtimeClass.create=true)`;
}

async function checkRuntimeClass(kubeConfig: KubeConfig, runtimeClassName: string): Promise<PreflightResult> {
  const name = 'runtime-class';
  try {
    const rc = await kubeConfig.makeApiClient(NodeV1Api).readRuntimeClass({ name: runtimeClassName });
    const selector = rc.scheduling?.nodeSelector ?? {};
    const sel = Object.entries(selector)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    return pass(
      name,
      `RuntimeClass ${runtimeClassName}: handler ${rc.handler}, nodeSelector ${sel || '(none)'}, tolerations ${rc.scheduling?.tolerations?.length ?? 0}`,
    );
  } catch (error) {
    if (isNotFound(error)) {
      return fail(name, `RuntimeClass ${runtimeClassName} not found`, runtimeClassYaml(runtimeClassName));
    }
    throw error;
  }
}

function nodeReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

async function checkNodes(kubeConfig: KubeConfig, runtimeClassName: string): Promise<PreflightResult> {
  const name = 'wasm-nodes';
  let selector: Record<string, string> = {};
  try {
    const rc = await kubeConfig.makeApiClient(NodeV1Api).readRuntimeClass({ name: runtimeClassName });
    selector = rc.scheduling?.nodeSelector ?? {};
  } catch (error) {
    if (!isNotFound(error)) throw error;
    return fail(
      name,
      `no RuntimeClass ${runtimeClassName}, so no node can run it`,
      'create the RuntimeClass first (see runtime-class)',
    );
  }
  const nodes = (await kubeConfig.makeApiClient(CoreV1Api).listNode()).items;
  const matching = nodes.filter((n) => Object.entries(selector).every(([k, v]) => n.metadata?.labels?.[k] === v));
  const ready = matching.filter(nodeReady);
  const sel = Object.entries(selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  if (ready.length === 0) {
    return fail(
      name,
      `no Ready node matches RuntimeClass ${runtimeClassName} nodeSelector ${sel || '(none)'} (${matching.length} matching, ${nodes.length} nodes)`,
      `label a node that has crun with WasmEdge: kubectl label node <node> ${sel || 'afterlife.dev/wasm=true'}`,
    );
  }
  return pass(
    name,
    `${ready.length} Ready node(s) match ${sel || '(no selector)'}: ${ready
      .slice(0, 3)
      .map((n) => n.metadata?.name)
      .join(', ')}`,
  );
}

function isAfterlifeWebhook(config: V1MutatingWebhookConfiguration): boolean {
  const labels = config.metadata?.labels ?? {};
  if (labels['app.kubernetes.io/part-of'] === 'afterlife') return true;
  if ((config.metadata?.name ?? '').includes('afterlife')) return true;
  return (config.webhooks ?? []).some((w) => w.name.includes('afterlife'));
}

async function checkWebhook(kubeConfig: KubeConfig, timeoutMs: number): Promise<PreflightResult> {
  const name = 'webhook';
  const configs = (await kubeConfig.makeApiClient(AdmissionregistrationV1Api).listMutatingWebhookConfiguration()).items;
  const ours = configs.filter(isAfterlifeWebhook);
  const fix =
    'install the chart with the webhook enabled: helm upgrade --install afterlife charts/afterlife -n afterlife-system --create-namespace --set webhook.enabled=true';
  if (ours.length === 0) {
    return fail(
      name,
      'no Afterlife MutatingWebhookConfiguration (label app.kubernetes.io/part-of=afterlife or a name containing "afterlife")',
      fix,
    );
  }
  const config = ours[0] as V1MutatingWebhookConfiguration;
  const hook = (config.webhooks ?? []).find((w) =>
    (w.rules ?? []).some((r) => r.apiGroups?.includes('serving.knative.dev') && r.resources?.includes('services')),
  );
  const configName = config.metadata?.name ?? '';
  if (!hook) {
    return fail(name, `MutatingWebhookConfiguration ${configName} has no rule for serving.knative.dev services`, fix);
  }
  const client = hook.clientConfig;
  if (client.url) {
    const origin = new URL(client.url).origin;
    try {
      const ca = client.caBundle ? Buffer.from(client.caBundle, 'base64') : undefined;
      await probeOk(`${origin}/readyz`, { ...(ca === undefined ? {} : { ca }), timeoutMs });
    } catch (error) {
      return fail(
        name,
        `MutatingWebhookConfiguration ${configName} points at ${client.url}, which is not serving: ${errorMessage(error)}`,
        'start the Afterlife webhook (or fix its clientConfig.url); Services labelled for Afterlife are rejected while it is down (failurePolicy Fail)',
      );
    }
    return pass(name, `MutatingWebhookConfiguration ${configName} → ${client.url} ready`);
  }
  if (client.service) {
    const { namespace, name: service } = client.service;
    const ready = await readyEndpoints(kubeConfig, namespace, service);
    if (ready === 0) {
      return fail(
        name,
        `MutatingWebhookConfiguration ${configName} → Service ${namespace}/${service} has no ready endpoints`,
        `kubectl -n ${namespace} get pods -l app.kubernetes.io/component=webhook; kubectl -n ${namespace} logs deploy/${service}`,
      );
    }
    return pass(
      name,
      `MutatingWebhookConfiguration ${configName} → ${namespace}/${service} (${ready} ready endpoint(s))`,
    );
  }
  return fail(name, `MutatingWebhookConfiguration ${configName} has neither url nor service`, fix);
}

/**
 * The Afterlife autoscaler holds its Lease (`afterlife-autoscaler`) and renews it: without a
 * leader no PodAutoscaler of class afterlife.dev gets its ScaledObject. Read from the Lease, so
 * it holds wherever the autoscaler runs.
 */
async function checkAutoscaler(kubeConfig: KubeConfig): Promise<PreflightResult> {
  const name = 'autoscaler';
  const leases = (await kubeConfig.makeApiClient(CustomObjectsApi).listClusterCustomObject({
    group: 'coordination.k8s.io',
    version: 'v1',
    plural: 'leases',
    fieldSelector: 'metadata.name=afterlife-autoscaler',
  })) as {
    items: {
      metadata: { namespace?: string };
      spec?: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
    }[];
  };
  const fix =
    'install the chart with the autoscaler enabled (autoscaler.enabled=true); then kubectl -n afterlife-system get pods -l app.kubernetes.io/component=autoscaler';
  const lease = leases.items[0];
  if (!lease?.spec?.holderIdentity) {
    return fail(name, 'no Afterlife autoscaler holds the Lease afterlife-autoscaler (none running?)', fix);
  }
  const renewed = Date.parse(lease.spec.renewTime ?? '');
  const bound = 2 * (lease.spec.leaseDurationSeconds ?? 15) * 1000;
  if (!Number.isFinite(renewed) || Date.now() - renewed > bound) {
    return fail(
      name,
      `the Lease ${lease.metadata.namespace}/afterlife-autoscaler was last renewed by ${lease.spec.holderIdentity} at ${lease.spec.renewTime ?? 'never'}: no live leader`,
      `kubectl -n ${lease.metadata.namespace} logs -l app.kubernetes.io/component=autoscaler`,
    );
  }
  return pass(
    name,
    `leader ${lease.spec.holderIdentity} (Lease ${lease.metadata.namespace}/afterlife-autoscaler renewed)`,
  );
}

/** The chart's pods (its selector labels). */
const AFTERLIFE_POD_SELECTOR =
  'app.kubernetes.io/name=afterlife,app.kubernetes.io/component in (webhook,gateway,scaler,autoscaler)';

/** No Afterlife pod waits on its image (a wrong repository, digest or pull secret). */
async function checkImages(kubeConfig: KubeConfig): Promise<PreflightResult> {
  const name = 'images';
  const pods = (
    await kubeConfig.makeApiClient(CoreV1Api).listPodForAllNamespaces({ labelSelector: AFTERLIFE_POD_SELECTOR })
  ).items;
  const stuck = pods.flatMap((pod) =>
    (pod.status?.containerStatuses ?? [])
      .filter((c) => ['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName'].includes(c.state?.waiting?.reason ?? ''))
      .map((c) => `${pod.metadata?.namespace}/${pod.metadata?.name} ${c.image}: ${c.state?.waiting?.reason}`),
  );
  if (stuck.length > 0) {
    return fail(
      name,
      `not pulled: ${stuck.join('; ')}`,
      'check the image repository/digest values and imagePullSecrets of the chart (see docs/images.md to push them to your registry)',
    );
  }
  if (pods.length === 0) return pass(name, 'no Afterlife pods (the components do not run as pods here)');
  return pass(name, `${pods.length} Afterlife pod(s), every image pulled`);
}

async function readyEndpoints(kubeConfig: KubeConfig, namespace: string, service: string): Promise<number> {
  const slices = await kubeConfig.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
    namespace,
    labelSelector: `kubernetes.io/service-name=${service}`,
  });
  return slices.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).length;
}

async function checkGateway(
  kubeConfig: KubeConfig,
  options: PreflightOptions,
  timeoutMs: number,
): Promise<PreflightResult> {
  const name = 'gateway';
  const portForward =
    'kubectl -n afterlife-system port-forward svc/afterlife-gateway 8080:80 9090:9090, then pass --gateway-url http://127.0.0.1:8080 --gateway-admin-url http://127.0.0.1:9090';
  if (options.gatewayAdminUrl) {
    try {
      const response = await fetch(new URL('/readyz', options.gatewayAdminUrl), {
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.arrayBuffer();
      if (response.status !== 200) {
        return fail(
          name,
          `gateway ${options.gatewayAdminUrl}/readyz answered ${response.status} (its EndpointSlice watch has not synced)`,
          'check the gateway logs and its RBAC (list/watch endpointslices, services)',
        );
      }
    } catch (error) {
      return fail(name, `gateway admin ${options.gatewayAdminUrl} unreachable: ${describe(error)}`, portForward);
    }
  }
  if (options.gatewayUrl) {
    try {
      // Any HTTP answer proves the ingress listens; events go to /ns/<namespace>/fn/<name>.
      const response = await fetch(new URL('/healthz', options.gatewayUrl), { signal: AbortSignal.timeout(timeoutMs) });
      await response.arrayBuffer();
    } catch (error) {
      return fail(name, `gateway ${options.gatewayUrl} unreachable: ${describe(error)}`, portForward);
    }
    return pass(
      name,
      `gateway ${options.gatewayUrl} answers${options.gatewayAdminUrl ? `, ${options.gatewayAdminUrl}/readyz 200` : ''}`,
    );
  }
  // No URL: look for the chart's gateway Service in the cluster.
  const services = (
    await kubeConfig
      .makeApiClient(CoreV1Api)
      .listServiceForAllNamespaces({ labelSelector: `${PART_OF},app.kubernetes.io/component=gateway` })
  ).items;
  if (services.length === 0) {
    return fail(
      name,
      'no --gateway-url given and no Service labelled app.kubernetes.io/component=gateway',
      portForward,
    );
  }
  return fail(
    name,
    `gateway Service ${services[0]?.metadata?.namespace}/${services[0]?.metadata?.name} exists but is not reachable from here`,
    portForward,
  );
}

async function checkScaler(
  kubeConfig: KubeConfig,
  options: PreflightOptions,
  timeoutMs: number,
): Promise<PreflightResult> {
  const name = 'scaler';
  // ScaledObjects that use an Afterlife scaler and KEDA reports as not Ready.
  const broken: string[] = [];
  try {
    const list = (await kubeConfig.makeApiClient(CustomObjectsApi).listClusterCustomObject({
      group: 'keda.sh',
      version: 'v1alpha1',
      plural: 'scaledobjects',
    })) as { items?: ScaledObjectLike[] };
    for (const so of list.items ?? []) {
      const usesScaler = (so.spec?.triggers ?? []).some(
        (t) =>
          (t.type === 'external-push' || t.type === 'external') &&
          (options.scalerAddress === undefined || t.metadata?.scalerAddress === options.scalerAddress),
      );
      const ready = so.status?.conditions?.find((c) => c.type === 'Ready');
      if (usesScaler && ready?.status === 'False') {
        broken.push(`${so.metadata?.namespace}/${so.metadata?.name}: ${ready.message ?? ready.reason ?? 'not ready'}`);
      }
    }
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  if (options.scalerAddress) {
    try {
      await tcpConnect(options.scalerAddress, timeoutMs);
    } catch (error) {
      return fail(
        name,
        `scaler unreachable at ${options.scalerAddress}: ${errorMessage(error)}`,
        'start the Afterlife scaler (KEDA cannot scale from zero without it)',
      );
    }
  } else {
    const services = (
      await kubeConfig
        .makeApiClient(CoreV1Api)
        .listServiceForAllNamespaces({ labelSelector: `${PART_OF},app.kubernetes.io/component=scaler` })
    ).items;
    const service = services[0];
    if (!service) {
      return fail(
        name,
        'scaler unreachable: no Service labelled app.kubernetes.io/component=scaler',
        'install the Afterlife chart: helm upgrade --install afterlife charts/afterlife -n afterlife-system --create-namespace',
      );
    }
    const ns = service.metadata?.namespace ?? '';
    const svc = service.metadata?.name ?? '';
    const ready = await readyEndpoints(kubeConfig, ns, svc);
    if (ready === 0) {
      return fail(
        name,
        `scaler unreachable: Service ${ns}/${svc} has no ready endpoints`,
        `kubectl -n ${ns} get pods -l app.kubernetes.io/component=scaler; kubectl -n ${ns} logs deploy/${svc}`,
      );
    }
  }
  if (broken.length > 0) {
    return fail(
      name,
      `ScaledObjects using the scaler are not Ready: ${broken.slice(0, 3).join('; ')}`,
      'check the scalerAddress in their triggers and the scaler logs',
    );
  }
  return pass(name, `scaler reachable${options.scalerAddress ? ` at ${options.scalerAddress}` : ''}`);
}

interface ScaledObjectLike {
  metadata?: { name?: string; namespace?: string };
  spec?: { triggers?: Array<{ type?: string; metadata?: Record<string, string> }> };
  status?: { conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string }> };
}

function tcpConnect(address: string, timeoutMs: number): Promise<void> {
  const index = address.lastIndexOf(':');
  const host = address.slice(0, index);
  const port = Number(address.slice(index + 1));
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('timeout', () =>
      socket.destroy(new ConformanceError('CONNECT_TIMEOUT', `connect timed out after ${timeoutMs} ms`)),
    );
    socket.once('error', reject);
  });
}

/** A fixed-width table of results, failures followed by their fixes. */
export function formatPreflight(results: readonly PreflightResult[]): string {
  const width = Math.max(5, ...results.map((r) => r.name.length));
  const lines = [`${'CHECK'.padEnd(width)}  RESULT  DETAIL`];
  for (const r of results) lines.push(`${r.name.padEnd(width)}  ${r.ok ? 'ok    ' : 'FAILED'}  ${r.message}`);
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) {
    lines.push('', 'How to fix:');
    for (const r of failed) {
      const [first = '', ...rest] = r.fix.split('\n');
      lines.push(`  ${r.name}: ${first}`, ...rest.map((l) => `    ${l}`));
    }
  }
  return lines.join('\n');
}
