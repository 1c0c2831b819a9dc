import { readdirSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Logger, probeOk } from '@afterlife/core';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { binaryPath } from './binaries.ts';
import { AfterlifeClusterError } from './cluster-error.ts';
import { applyObjects, KubeRequestError, kubeRequest, readManifests } from './kube.ts';
import { PACKAGE_ROOT } from './paths.ts';
import { freePort } from './ports.ts';
import { ManagedProcess } from './process.ts';
import { waitFor } from './wait.ts';

export const KNATIVE_NAMESPACE = 'knative-serving';
/** Used only without real nodes (then nothing pulls it); with them the devcluster pushes the real queue-proxy. */
export const DEFAULT_QUEUE_SIDECAR_IMAGE = '127.0.0.1:5000/knative/queue:v1.23.0';
/**
 * Registries whose tags Knative must not resolve to digests. The controller runs in a network
 * namespace with nothing but loopback, so any resolution would fail the Revision instead.
 */
const SKIP_TAG_RESOLVING = [
  'kind.local',
  'ko.local',
  'dev.local',
  'index.docker.io',
  'docker.io',
  'ghcr.io',
  'gcr.io',
  'quay.io',
  'registry.k8s.io',
  'mcr.microsoft.com',
  'public.ecr.aws',
];
/** Names of Knative's webhook configurations (config/core/webhooks). */
const WEBHOOK_CONFIGURATIONS = [
  ['admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', 'webhook.serving.knative.dev'],
  ['admissionregistration.k8s.io/v1', 'validatingwebhookconfigurations', 'validation.webhook.serving.knative.dev'],
  ['admissionregistration.k8s.io/v1', 'validatingwebhookconfigurations', 'config.webhook.serving.knative.dev'],
] as const;
/** Knative's fixed in-process ports: health probes (controller, autoscaler-hpa) and the webhook. */
const PROBES_PORT = 8080;
const WEBHOOK_PORT = 8443;

export interface KnativeServingOptions {
  readonly kubeConfig: KubeConfig;
  readonly kubeconfigPath: string;
  /** Cluster state directory; sockets and the bridge script go to `<stateDir>/knative`. */
  readonly stateDir: string;
  readonly logDir: string;
  /** Directory with the `controller` and `webhook` binaries (component `knative`). */
  readonly binDir: string;
  /** Serving's `config/` directory (has `core/configmaps`, `core/webhooks`). */
  readonly configDir: string;
  /** Component `knative-networking`: `networking/config` and `caching/config`. */
  readonly networkingDir: string;
  /** Directory with `autoscaler-hpa` (component `knative`); without it no HPA-class PodAutoscaler is reconciled. */
  readonly hpaBinDir?: string;
  /** `127.0.0.1:PORT` of the local registry: its tags are not resolved to digests either. */
  readonly registry?: string;
  readonly queueSidecarImage?: string;
  readonly logger?: Logger;
  /** Bound on each readiness wait (default 120 s). */
  readonly timeoutMs?: number;
}

export interface KnativeServing {
  readonly processes: readonly ManagedProcess[];
  /** Seconds per phase (crds, config, webhook, controllers). */
  readonly timings: Readonly<Record<string, number>>;
  /** Throws ComponentExitedError when a Knative process died. */
  assertHealthy(): void;
  /** Removes the webhook registrations (so nothing is left failing closed), then stops the processes. */
  stop(): Promise<void>;
}

/** The socket bridge program (src/socket-bridge.ts), run from the build. */
const BRIDGE_PROGRAM = join(PACKAGE_ROOT, 'dist', 'socket-bridge.js');

async function readYamlFiles(dir: string, filter: (file: string) => boolean = () => true): Promise<KubernetesObject[]> {
  const objects: KubernetesObject[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && filter(f))
    .sort()) {
    objects.push(...(await readManifests(join(dir, file))));
  }
  return objects;
}

type ConfigMap = KubernetesObject & { data?: Record<string, string> };

/** Serving's ConfigMaps with the settings a kwok cluster needs (queue image, no tag resolution). */
export function knativeConfigMaps(
  objects: readonly KubernetesObject[],
  settings: { queueSidecarImage: string; registry?: string },
): KubernetesObject[] {
  return objects.map((object) => {
    if (object.kind === 'ConfigMap' && object.metadata?.name === 'config-leader-election') {
      // A controller killed without releasing its Leases blocks the next one for lease-duration.
      const configMap = object as ConfigMap;
      return {
        ...configMap,
        data: { ...configMap.data, 'lease-duration': '15s', 'renew-deadline': '10s', 'retry-period': '2s' },
      } as KubernetesObject;
    }
    if (object.kind !== 'ConfigMap' || object.metadata?.name !== 'config-deployment') return object;
    const configMap = object as ConfigMap;
    const skip = [...SKIP_TAG_RESOLVING, ...(settings.registry ? [settings.registry] : [])];
    return {
      ...configMap,
      data: {
        ...configMap.data,
        'queue-sidecar-image': settings.queueSidecarImage,
        'registries-skipping-tag-resolving': skip.join(','),
      },
    } as KubernetesObject;
  });
}

/**
 * No activator runs, but the ServerlessService reconciler reads the activator's Endpoints on
 * every pass and fails without them. An address-less Service + Endpoints lets SKS in `Serve`
 * mode mirror the revision's own endpoints; in `Proxy` mode (scaled to zero) nothing answers.
 */
function activatorPlaceholder(): KubernetesObject[] {
  const metadata = {
    name: 'activator-service',
    namespace: KNATIVE_NAMESPACE,
    labels: { app: 'activator', 'afterlife.dev/placeholder': 'true' },
  };
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata,
      spec: {
        ports: [
          { name: 'http', port: 80, targetPort: 8012 },
          { name: 'http2', port: 81, targetPort: 8013 },
        ],
      },
    } as KubernetesObject,
    { apiVersion: 'v1', kind: 'Endpoints', metadata, subsets: [] } as KubernetesObject,
  ];
}

async function crdsEstablished(kubeConfig: KubeConfig, names: readonly string[]): Promise<true | undefined> {
  for (const name of names) {
    const crd = (await kubeRequest(
      kubeConfig,
      'GET',
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
    )) as {
      status?: { conditions?: { type: string; status: string }[] };
    };
    if (!crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return undefined;
  }
  return true;
}

/** Reconcilers of cmd/controller whose Leases must be ours before it acts (one bucket each). */
const CONTROLLER_RECONCILERS = ['configuration', 'revision', 'route', 'service', 'serverlessservice'];

/**
 * True when the process logging to `logFile` (from byte `offset` on) has started leading every
 * named reconciler. Lease holders are `<hostname>_<uuid>`, so the Lease objects cannot tell a
 * stale holder from this process; its own log can.
 */
async function leading(logFile: string, offset: number, reconcilers: readonly string[]): Promise<true> {
  const text = (await readFile(logFile)).subarray(offset).toString('utf8');
  const missing = reconcilers.filter(
    (reconciler) =>
      !text.includes(`has started leading \\"controller.knative.dev.serving.pkg.reconciler.${reconciler}.`),
  );
  if (missing.length > 0) throw new Error(`not yet leading: ${missing.join(', ')}`);
  return true;
}

/** A dry-run Knative Service create: succeeds (with defaults filled in) only when the webhook answers. */
async function webhookDefaults(kubeConfig: KubeConfig): Promise<true> {
  const created = (await kubeRequest(
    kubeConfig,
    'POST',
    `/apis/serving.knative.dev/v1/namespaces/${KNATIVE_NAMESPACE}/services?dryRun=All`,
    {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name: 'afterlife-readiness-probe' },
      spec: { template: { spec: { containers: [{ image: 'dev.local/probe:1' }] } } },
    },
  )) as { spec?: { template?: { spec?: { containers?: { name?: string }[] } } } };
  const name = created.spec?.template?.spec?.containers?.[0]?.name;
  if (!name) throw new Error('the Knative webhook did not default the container name');
  return true;
}

/**
 * Runs Knative Serving's real webhook and controller (and, when built, the HPA-class autoscaler)
 * against a devcluster: installs the networking and caching CRDs, applies the ConfigMaps with a
 * queue-proxy image and tag resolution off, registers Knative's own webhook configurations (the
 * webhook manages their certificates itself; the API server reaches it through an ExternalName
 * Service on localhost) and waits until each is truly serving.
 */
export async function startKnativeServing(options: KnativeServingOptions): Promise<KnativeServing> {
  const { kubeConfig } = options;
  const log = options.logger;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const dir = join(options.stateDir, 'knative');
  // Unix socket paths are limited to 107 bytes; the longest one below adds 27 bytes to `dir`.
  if (Buffer.byteLength(dir) > 75) {
    throw new AfterlifeClusterError(
      'KNATIVE_STATE_DIR_TOO_LONG',
      `${dir} is too long for unix socket paths (max 75 bytes)`,
    );
  }
  await mkdir(dir, { recursive: true });
  await mkdir(options.logDir, { recursive: true });
  const server = kubeConfig.getCurrentCluster()?.server ?? '';
  const apiPort = new URL(server).port || '443';
  const bridge = BRIDGE_PROGRAM;
  const apiSocket = join(dir, 'apiserver.sock');
  const webhookSocket = join(dir, 'webhook.sock');

  const processes: ManagedProcess[] = [];
  const timings: Record<string, number> = {};
  const guard = (): void => {
    for (const process of processes) process.assertRunning();
  };
  const timed = async <T>(phase: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      timings[phase] = Math.round(performance.now() - started) / 1000;
      log?.debug({ phase, seconds: timings[phase] }, 'knative phase done');
    }
  };
  const wait = <T>(what: string, probe: () => Promise<T | undefined>): Promise<T> =>
    waitFor(what, probe, { timeoutMs, intervalMs: 200, guard });
  const baseEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    KUBECONFIG: options.kubeconfigPath,
    SYSTEM_NAMESPACE: KNATIVE_NAMESPACE,
    CONFIG_LOGGING_NAME: 'config-logging',
    CONFIG_OBSERVABILITY_NAME: 'config-observability',
    METRICS_DOMAIN: 'knative.dev/serving',
  };
  const identity = (name: string): string => `${name}-${process.pid}`;
  /** Starts a Knative binary in its own network namespace (loopback only) behind the bridge. */
  const startIsolated = async (
    name: string,
    binary: string,
    listens: string[],
    env: Record<string, string>,
    extraArgs: string[] = ['--disable-ha'],
  ) => {
    const script = 'ip link set lo up && exec "$0" "$@"';
    const args = [
      '--net',
      '--',
      '/bin/sh',
      '-c',
      script,
      process.execPath,
      bridge,
      `tcp:127.0.0.1:${apiPort}=unix:${apiSocket}`,
      ...listens,
      '--',
      binary,
      `--kubeconfig=${options.kubeconfigPath}`,
      ...extraArgs,
    ];
    const managed = await ManagedProcess.start({
      name,
      command: 'unshare',
      args,
      env: { ...baseEnv, POD_NAME: identity(name), ...env },
      logFile: join(options.logDir, `${name}.log`),
      cwd: dir,
    });
    processes.push(managed);
    return managed;
  };
  const stop = async (): Promise<void> => {
    for (const [apiVersion, resource, name] of WEBHOOK_CONFIGURATIONS) {
      await kubeRequest(kubeConfig, 'DELETE', `/apis/${apiVersion}/${resource}/${name}`).catch((error: unknown) => {
        if (!(error instanceof KubeRequestError && error.status === 404))
          log?.warn({ name, err: String(error) }, 'could not delete');
      });
    }
    for (const process of [...processes].reverse()) await process.stop();
  };

  try {
    const controller = await binaryPath(options.binDir, 'controller');
    const webhook = await binaryPath(options.binDir, 'webhook');
    const hpa = options.hpaBinDir === undefined ? undefined : await binaryPath(options.hpaBinDir, 'autoscaler-hpa');

    await timed('crds', async () => {
      const crds = [
        ...(await readYamlFiles(
          join(options.networkingDir, 'networking', 'config'),
          (f) => f !== 'config-network.yaml',
        )),
        ...(await readYamlFiles(join(options.networkingDir, 'caching', 'config'))),
      ].filter((object) => object.kind === 'CustomResourceDefinition');
      await applyObjects(kubeConfig, crds);
      await wait('Knative networking and caching CRDs established', () =>
        crdsEstablished(
          kubeConfig,
          crds.map((crd) => crd.metadata?.name ?? ''),
        ),
      );
    });

    await timed('config', async () => {
      const core = join(options.configDir, 'core');
      const configMaps = knativeConfigMaps(
        [
          ...(await readYamlFiles(join(core, 'configmaps'))),
          ...(await readManifests(join(options.networkingDir, 'networking', 'config', 'config-network.yaml'))),
        ],
        {
          queueSidecarImage: options.queueSidecarImage ?? DEFAULT_QUEUE_SIDECAR_IMAGE,
          ...(options.registry ? { registry: options.registry } : {}),
        },
      );
      // ConfigMaps first: once registered, the config webhook fails them closed until it serves.
      await applyObjects(kubeConfig, [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: KNATIVE_NAMESPACE } },
        ...configMaps,
        ...activatorPlaceholder(),
      ]);
    });

    // The root-namespace end: the API server for the isolated processes, and the webhook port.
    const webhookPort = await freePort();
    const rootBridge = await ManagedProcess.start({
      name: 'knative-bridge',
      command: process.execPath,
      args: [
        bridge,
        `unix:${apiSocket}=tcp:127.0.0.1:${apiPort}`,
        `tcp:127.0.0.1:${webhookPort}=unix:${webhookSocket}`,
      ],
      env: { PATH: baseEnv.PATH, HOME: baseEnv.HOME },
      logFile: join(options.logDir, 'knative-bridge.log'),
      cwd: dir,
    });
    processes.push(rootBridge);

    await timed('webhook', async () => {
      await startIsolated('knative-webhook', webhook, [`unix:${webhookSocket}=tcp:127.0.0.1:${WEBHOOK_PORT}`], {
        WEBHOOK_NAME: 'webhook',
        WEBHOOK_PORT: String(WEBHOOK_PORT),
      });
      const webhooks = (await readYamlFiles(join(options.configDir, 'core', 'webhooks'))).map((object) => {
        if (object.kind === 'Secret') return object;
        const configuration = object as KubernetesObject & {
          webhooks?: { clientConfig?: { service?: Record<string, unknown> } }[];
        };
        for (const hook of configuration.webhooks ?? []) {
          if (hook.clientConfig?.service) hook.clientConfig.service.port = webhookPort;
        }
        return configuration;
      });
      await applyObjects(kubeConfig, [
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'webhook', namespace: KNATIVE_NAMESPACE },
          // The API server resolves an ExternalName Service to that host and the webhook's port.
          spec: { type: 'ExternalName', externalName: 'localhost' },
        } as KubernetesObject,
        ...webhooks,
      ]);
      await wait('Knative webhook defaulting a dry-run Service', () => webhookDefaults(kubeConfig));
    });

    await timed('controllers', async () => {
      // Knative does not release its Leases on SIGTERM; a previous run's holders would make this one
      // wait out lease-duration. Only the processes started here may lead in knative-serving.
      await kubeRequest(kubeConfig, 'DELETE', `/apis/coordination.k8s.io/v1/namespaces/${KNATIVE_NAMESPACE}/leases`);
      const controllerProbe = join(dir, 'controller-probes.sock');
      const controllerLog = join(options.logDir, 'knative-controller.log');
      const controllerLogOffset = await stat(controllerLog).then(
        (info) => info.size,
        () => 0,
      );
      // cmd/controller calls sharedmain.MainWithConfig, which has no --disable-ha: it always
      // elects leaders on Leases in knative-serving (short timings in config-leader-election).
      await startIsolated(
        'knative-controller',
        controller,
        [`unix:${controllerProbe}=tcp:127.0.0.1:${PROBES_PORT}`],
        {},
        // sharedmain's default is 5/s per reconciler (45/s, burst 90, for the nine), and a Knative
        // Service costs about twenty writes and events: at most ≈ 2 Services/s (docs/operating.md).
        ['--kube-api-qps=200', '--kube-api-burst=400'],
      );
      let hpaProbe: string | undefined;
      if (hpa) {
        hpaProbe = join(dir, 'autoscaler-hpa-probes.sock');
        await startIsolated('knative-autoscaler-hpa', hpa, [`unix:${hpaProbe}=tcp:127.0.0.1:${PROBES_PORT}`], {});
      }
      await wait('Knative controller /readiness', () => probeOk({ socketPath: controllerProbe, path: '/readiness' }));
      await wait('Knative controller leading its reconcilers', () =>
        leading(controllerLog, controllerLogOffset, CONTROLLER_RECONCILERS),
      );
      if (hpaProbe) {
        const socket = hpaProbe;
        await wait('Knative autoscaler-hpa /readiness', () => probeOk({ socketPath: socket, path: '/readiness' }));
      }
    });
    log?.info({ timings }, 'Knative Serving is running');
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }

  return {
    processes,
    timings,
    assertHealthy: guard,
    stop,
  };
}
