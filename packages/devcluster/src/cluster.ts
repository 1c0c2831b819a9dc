import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, type Logger } from '@afterlife/core';
import { CoreV1Api, KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { binaryPath, ensureComponent } from './binaries.ts';
import { AfterlifeClusterError } from './cluster-error.ts';
import { pushNodeImages, pushQueueProxyImage } from './images.ts';
import { startKnativeServing } from './knative.ts';
import { applyObjects, readManifests } from './kube.ts';
import { fenceCidr, releaseNetnsDir } from './netns.ts';
import { RealNode, type RealNodeState, reapNode } from './node.ts';
import { ensureNodeTools } from './node-tools.ts';
import { type Component, cacheDir, readVersions, type Versions } from './paths.ts';
import { createCertificateAuthority, createSigningKey, issueCertificate, type KeyPair } from './pki.ts';
import { assertPortFree, freePort } from './ports.ts';
import { isAlive, killGroup, ManagedProcess } from './process.ts';
import { waitFor } from './wait.ts';

export interface DevClusterOptions {
  /** Names the state directory (`<cache>/run/<name>`); one cluster per name. */
  readonly name?: string;
  /** Overrides the state directory entirely. */
  readonly stateDir?: string;
  /** How many kwok fake nodes to create (default 2); their pods never run, so they carry a NoSchedule taint. */
  readonly nodes?: number;
  /**
   * How many real nodes (kubelet + containerd + runc + CNI, with the `wasmedge` runtime handler)
   * to run (default 1; needs root and the registry). Pods that must answer run here.
   */
  readonly realNodes?: number;
  /** Run the KEDA operator and metrics adapter (default true). */
  readonly keda?: boolean;
  /** Install Knative Serving CRDs and ConfigMaps (default true). */
  readonly knative?: boolean;
  /** Also run Knative Serving's webhook, controller and HPA-class autoscaler (default false; needs root). */
  readonly knativeControllers?: boolean;
  /** Run a local OCI registry (default true). */
  readonly registry?: boolean;
  /** Fixed kube-apiserver port (default: a free port). */
  readonly apiServerPort?: number;
  /** Leave the processes running after this Node process exits (`cluster up`). */
  readonly detached?: boolean;
  readonly logger?: Logger;
  /** Bound on the whole start-up once binaries exist (default 180 s). */
  readonly readyTimeoutMs?: number;
}

export interface DevClusterState {
  readonly name: string;
  readonly stateDir: string;
  readonly kubeconfig: string;
  readonly apiServer: string;
  /** `127.0.0.1:PORT` of the local OCI registry, or '' when not running. */
  readonly registry: string;
  readonly ports: Readonly<Record<string, number>>;
  readonly pids: Readonly<Record<string, number>>;
  readonly binaries: Readonly<Record<string, string>>;
  readonly versions: Versions;
  readonly ownerPid: number;
  readonly detached: boolean;
  readonly startedAt: string;
  /** Seconds spent per phase of the last start (build, etcd, apiserver, …). */
  readonly timings: Readonly<Record<string, number>>;
  /** Real nodes: what teardown (and the orphan reaper) needs. */
  readonly realNodes: readonly RealNodeState[];
  /** Images pushed to the registry for the real nodes ('' when none). */
  readonly images: Readonly<Record<string, string>>;
}

const STATE_FILE = 'state.json';
/** A process that is still exiting may add a file while the tree goes; retry instead of failing on ENOTEMPTY. */
const REMOVE_TREE = { recursive: true, force: true, maxRetries: 10, retryDelay: 100 } as const;
const SERVICE_CIDR = '10.96.0.0/16';
/** kwok assigns fake pod IPs from here; nothing ever connects to them. */
const KWOK_POD_CIDR = '10.212.0.0/16';
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
/** Taint on kwok nodes: only pods that tolerate it (scale tests) land where nothing runs. */
export const KWOK_NODE_TAINT = { key: KWOK_NODE_ANNOTATION, value: 'fake', effect: 'NoSchedule' } as const;

export function clusterStateDir(name: string): string {
  return join(cacheDir(), 'run', name);
}

export async function readClusterState(stateDir: string): Promise<DevClusterState | undefined> {
  try {
    return JSON.parse(await readFile(join(stateDir, STATE_FILE), 'utf8')) as DevClusterState;
  } catch {
    return undefined;
  }
}

/** True when every process recorded in the state is still alive. */
export function isClusterRunning(state: DevClusterState): boolean {
  return Object.values(state.pids).every((pid) => isAlive(pid));
}

/** Stops every process recorded in a state directory and removes the directory. */
export async function destroyFromState(stateDir: string): Promise<void> {
  const state = await readClusterState(stateDir);
  if (state) {
    const pids = Object.values(state.pids);
    for (const pid of pids) killGroup(pid, 'SIGTERM');
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && pids.some((pid) => isAlive(pid))) await sleep(100);
    for (const pid of pids) if (isAlive(pid)) killGroup(pid, 'SIGKILL');
    for (const node of state.realNodes ?? []) await reapNode(node, []);
  }
  await rm(stateDir, REMOVE_TREE);
  await releaseNetnsDir();
}

/** Removes clusters left behind by `exec`/test runs whose owning process died (e.g. SIGKILL). */
export async function reapOrphanClusters(): Promise<string[]> {
  const runDir = join(cacheDir(), 'run');
  if (!existsSync(runDir)) return [];
  const reaped: string[] = [];
  for (const name of readdirSync(runDir)) {
    const dir = join(runDir, name);
    const state = await readClusterState(dir);
    if (state === undefined) {
      // A start that died before writing its state; nothing is tracked there but files.
      if (name.startsWith('exec-') || name.startsWith('test-')) {
        const pid = Number(name.split('-')[1]);
        if (!Number.isFinite(pid) || !isAlive(pid)) {
          await rm(dir, { recursive: true, force: true });
          reaped.push(name);
        }
      }
      continue;
    }
    if (!state.detached && !isAlive(state.ownerPid)) {
      await destroyFromState(dir);
      reaped.push(name);
    }
  }
  return reaped;
}

interface Pki {
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

/**
 * A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler, kwok fake nodes, KEDA operator + metrics adapter, Knative Serving CRDs and
 * ConfigMaps, and an OCI registry. Every binary is built from the Go module proxy and cached.
 */
export class DevCluster {
  #state: DevClusterState;
  readonly #processes: ManagedProcess[];
  readonly #nodes: RealNode[];
  #stopped = false;

  private constructor(state: DevClusterState, processes: ManagedProcess[], nodes: RealNode[]) {
    this.#state = state;
    this.#processes = processes;
    this.#nodes = nodes;
  }

  /** Ports, pids, kubeconfig, registry, binaries and start-up timings of this cluster. */
  get state(): DevClusterState {
    return this.#state;
  }

  get kubeconfigPath(): string {
    return this.state.kubeconfig;
  }

  kubeConfig(): KubeConfig {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(this.state.kubeconfig);
    return kubeConfig;
  }

  /** Throws ComponentExitedError when any control-plane process has died. */
  assertHealthy(): void {
    for (const process of this.#processes) process.assertRunning();
    for (const node of this.#nodes) for (const process of node.processes) process.assertRunning();
  }

  static async start(options: DevClusterOptions = {}): Promise<DevCluster> {
    const starter = new Starter(options);
    try {
      const { state, processes, nodes } = await starter.run();
      return new DevCluster(state, processes, nodes);
    } catch (error) {
      await starter.abort();
      throw error;
    }
  }

  /** Stops every process (reverse start order) and removes the state directory. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // Nodes first (their pods may be served by adopted components), then the control plane.
    for (const node of this.#nodes) await node.stop();
    for (const process of [...this.#processes].reverse()) await process.stop();
    await rm(this.state.stateDir, REMOVE_TREE);
    await releaseNetnsDir();
  }

  /**
   * Makes a process started next to the cluster (a component under test) part of it: recorded in
   * the state file, so `down` and the orphan reaper end it too, and stopped by `stop()` before
   * the control plane.
   */
  async adopt(process: ManagedProcess): Promise<void> {
    this.#processes.push(process);
    this.#state = { ...this.#state, pids: { ...this.#state.pids, [process.spec.name]: process.pid } };
    await writeFile(join(this.#state.stateDir, STATE_FILE), `${JSON.stringify(this.#state, null, 2)}\n`);
  }

  /** Last-resort synchronous kill for process 'exit' handlers. */
  killNow(): void {
    for (const node of this.#nodes) for (const process of node.processes) killGroup(process.pid, 'SIGKILL');
    for (const process of this.#processes) killGroup(process.pid, 'SIGKILL');
  }
}

class Starter {
  readonly #options: DevClusterOptions;
  readonly #name: string;
  readonly #stateDir: string;
  readonly #logDir: string;
  readonly #processes: ManagedProcess[] = [];
  readonly #nodes: RealNode[] = [];
  readonly #timings: Record<string, number> = {};
  readonly #ports: Record<string, number> = {};
  readonly #binaries: Record<string, string> = {};
  readonly #versions = readVersions();
  readonly #log: Logger | undefined;
  readonly #readyTimeoutMs: number;

  constructor(options: DevClusterOptions) {
    this.#options = options;
    this.#name = options.name ?? 'default';
    this.#stateDir = options.stateDir ?? clusterStateDir(this.#name);
    this.#logDir = join(this.#stateDir, 'logs');
    this.#log = options.logger;
    this.#readyTimeoutMs = options.readyTimeoutMs ?? 180_000;
  }

  async abort(): Promise<void> {
    for (const node of this.#nodes) await node.stop().catch(() => undefined);
    for (const process of [...this.#processes].reverse()) await process.stop(2000);
    await rm(this.#stateDir, REMOVE_TREE);
  }

  #guard = (): void => {
    for (const process of this.#processes) process.assertRunning();
    for (const node of this.#nodes) for (const process of node.processes) process.assertRunning();
  };

  async #timed<T>(phase: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.#timings[phase] = Math.round(performance.now() - started) / 1000;
      this.#log?.debug({ phase, seconds: this.#timings[phase] }, 'devcluster phase done');
    }
  }

  async #start(name: string, command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<ManagedProcess> {
    const process = await ManagedProcess.start({
      name,
      command,
      args,
      env: env ?? { PATH: globalThis.process.env.PATH ?? '/usr/bin:/bin', HOME: globalThis.process.env.HOME ?? '/' },
      logFile: join(this.#logDir, `${name}.log`),
      cwd: this.#stateDir,
    });
    this.#processes.push(process);
    return process;
  }

  async #port(name: string, fixed?: number): Promise<number> {
    let port: number;
    if (fixed === undefined) {
      port = await freePort();
    } else {
      await assertPortFree(fixed);
      port = fixed;
    }
    this.#ports[name] = port;
    return port;
  }

  async run(): Promise<{ state: DevClusterState; processes: ManagedProcess[]; nodes: RealNode[] }> {
    const options = this.#options;
    const existing = await readClusterState(this.#stateDir);
    if (existing && isClusterRunning(existing)) {
      throw new AfterlifeClusterError(
        'DEVCLUSTER_ALREADY_RUNNING',
        `a cluster named "${this.#name}" is already running (state in ${this.#stateDir}); stop it first with "down"`,
      );
    }
    await destroyFromState(this.#stateDir);
    await mkdir(this.#logDir, { recursive: true });
    if (options.apiServerPort !== undefined) await assertPortFree(options.apiServerPort);

    const keda = options.keda ?? true;
    const knative = options.knative ?? true;
    const registry = options.registry ?? true;
    const realNodes = options.realNodes ?? 1;
    if (realNodes > 0 && !registry) {
      throw new AfterlifeClusterError(
        'DEVCLUSTER_BAD_OPTIONS',
        'real nodes pull their images from the local registry: keep registry on',
      );
    }
    const components: Component[] = ['kubernetes', 'etcd', 'kwok'];
    if (keda) components.push('keda');
    if (knative) components.push('knative-config');
    const knativeControllers = knative && (options.knativeControllers ?? false);
    if (knativeControllers || realNodes > 0) components.push('knative');
    if (knativeControllers) components.push('knative-networking');
    if (registry) components.push('registry', 'oras');
    if (realNodes > 0) components.push('containerd', 'runc', 'cni');
    components.push('helm');

    const dirs = await this.#timed('binaries', async () => {
      const result: Record<string, string> = {};
      // One at a time: each Go build already uses every core.
      for (const component of components) {
        result[component] = await ensureComponent(component, {
          onProgress: (line) => this.#log?.info({ component }, line),
        });
      }
      if (realNodes > 0) result.node = (await ensureNodeTools()).dir;
      return result;
    });
    const bin = async (component: string, name: string): Promise<string> => {
      const dir = dirs[component];
      if (!dir) throw new Error(`component ${component} was not prepared`);
      const path = await binaryPath(dir, name);
      this.#binaries[name] = path;
      return path;
    };
    const kubeApiServer = await bin('kubernetes', 'kube-apiserver');
    const kubeControllerManager = await bin('kubernetes', 'kube-controller-manager');
    const kubeScheduler = await bin('kubernetes', 'kube-scheduler');
    await bin('kubernetes', 'kubectl');
    const etcd = await bin('etcd', 'etcd');
    await bin('etcd', 'etcdctl');
    const kwok = await bin('kwok', 'kwok');
    await bin('helm', 'helm');

    const pki = await this.#timed('pki', () => this.#createPki());
    // Nothing may ever reach the real network through a fake Service or kwok pod address.
    for (const cidr of [SERVICE_CIDR, KWOK_POD_CIDR]) {
      await fenceCidr(cidr).catch((error: unknown) =>
        this.#log?.warn({ cidr, err: errorMessage(error) }, 'could not fence fake address range (not root?)'),
      );
    }

    // etcd
    const etcdPort = await this.#port('etcd');
    const etcdPeerPort = await this.#port('etcd-peer');
    await this.#timed('etcd', async () => {
      await this.#start('etcd', etcd, [
        '--name=default',
        `--data-dir=${join(this.#stateDir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
        // A throwaway test store: durability is not worth the fsync latency.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ]);
      await waitFor('etcd', () => httpProbe(`http://127.0.0.1:${etcdPort}/health`), this.#waitOptions());
    });

    // kube-apiserver
    const apiPort = await this.#port('kube-apiserver', options.apiServerPort);
    const apiServer = `https://127.0.0.1:${apiPort}`;
    const kubeconfig = join(this.#stateDir, 'kubeconfig');
    await writeFile(kubeconfig, kubeconfigYaml(apiServer, pki.ca.certFile, pki.admin));
    await this.#timed('kube-apiserver', async () => {
      await this.#start('kube-apiserver', kubeApiServer, [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(this.#stateDir, 'pki', 'apiserver')}`,
        `--tls-cert-file=${pki.apiServer.certFile}`,
        `--tls-private-key-file=${pki.apiServer.keyFile}`,
        `--client-ca-file=${pki.ca.certFile}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${pki.serviceAccount.publicKeyFile}`,
        `--service-account-signing-key-file=${pki.serviceAccount.privateKeyFile}`,
        // Node authorizes each kubelet for its own node's objects, RBAC everything else.
        '--authorization-mode=Node,RBAC',
        `--kubelet-client-certificate=${pki.apiServerKubeletClient.certFile}`,
        `--kubelet-client-key=${pki.apiServerKubeletClient.keyFile}`,
        `--kubelet-certificate-authority=${pki.ca.certFile}`,
        '--kubelet-preferred-address-types=InternalIP',
        '--allow-privileged=true',
        // Loopback may not be an Endpoints address; the `kubernetes` Service is not needed here.
        '--endpoint-reconciler-type=none',
        // Front proxy: lets the aggregator call KEDA's external-metrics APIService.
        `--requestheader-client-ca-file=${pki.frontProxyCa.certFile}`,
        '--requestheader-allowed-names=front-proxy-client',
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
        '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-username-headers=X-Remote-User',
        `--proxy-client-cert-file=${pki.frontProxyClient.certFile}`,
        `--proxy-client-key-file=${pki.frontProxyClient.keyFile}`,
        '--enable-aggregator-routing=false',
        '--event-ttl=30m',
        '--v=1',
      ]);
      await waitFor('kube-apiserver /readyz', () => tlsProbe(`${apiServer}/readyz`, pki), this.#waitOptions());
    });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfig);

    const controlEnv = this.#env({ KUBECONFIG: kubeconfig });
    await this.#timed('controllers', async () => {
      const kcmPort = await this.#port('kube-controller-manager');
      await this.#start('kube-controller-manager', kubeControllerManager, [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(this.#stateDir, 'pki', 'kcm')}`,
        '--leader-elect=false',
        `--service-account-private-key-file=${pki.serviceAccount.privateKeyFile}`,
        `--root-ca-file=${pki.ca.certFile}`,
        `--cluster-signing-cert-file=${pki.ca.certFile}`,
        `--cluster-signing-key-file=${pki.ca.keyFile}`,
        '--use-service-account-credentials=false',
        // Tests see HPA decisions in seconds rather than the production 15 s (documented).
        '--horizontal-pod-autoscaler-sync-period=5s',
        '--v=1',
      ]);
      const schedulerPort = await this.#port('kube-scheduler');
      await this.#start('kube-scheduler', kubeScheduler, [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${schedulerPort}`,
        `--cert-dir=${join(this.#stateDir, 'pki', 'scheduler')}`,
        '--leader-elect=false',
        '--v=1',
      ]);
      const kwokPort = await this.#port('kwok');
      const kwokDir = dirs.kwok ?? '';
      const kwokConfig = join(this.#stateDir, 'kwok.yaml');
      await writeFile(kwokConfig, await kwokConfigYaml(kwokDir));
      await this.#start(
        'kwok',
        kwok,
        [
          `--kubeconfig=${kubeconfig}`,
          `--config=${kwokConfig}`,
          '--manage-all-nodes=false',
          `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
          `--cidr=${KWOK_POD_CIDR}`,
          '--node-ip=10.212.255.254',
          `--server-address=127.0.0.1:${kwokPort}`,
          '--node-lease-duration-seconds=40',
        ],
        controlEnv,
      );
    });

    let registryAddress = '';
    if (registry) {
      await this.#timed('registry', async () => {
        const registryBin = await bin('registry', 'registry');
        await bin('oras', 'oras');
        const registryPort = await this.#port('registry');
        registryAddress = `127.0.0.1:${registryPort}`;
        const registryConfig = join(this.#stateDir, 'registry.yaml');
        await writeFile(
          registryConfig,
          stringify({
            version: 0.1,
            log: { level: 'warn' },
            storage: { filesystem: { rootdirectory: join(this.#stateDir, 'registry') }, delete: { enabled: true } },
            http: { addr: registryAddress },
          }),
        );
        await this.#start(
          'registry',
          registryBin,
          ['serve', registryConfig],
          this.#env({ OTEL_TRACES_EXPORTER: 'none' }),
        );
      });
    }

    await this.#timed('manifests', async () => {
      await applyObjects(kubeConfig, [
        namespace('keda'),
        ...(knative ? [namespace('knative-serving')] : []),
        ...nodeObjects(options.nodes ?? 2),
      ]);
      const crds: KubernetesObject[] = [];
      if (keda) crds.push(...(await readYamlDir(join(dirs.keda ?? '', 'config', 'crd', 'bases'))));
      if (knative) {
        const config = join(dirs['knative-config'] ?? '', 'config', 'core');
        crds.push(...(await readYamlDir(join(config, '300-resources'))));
      }
      await applyObjects(kubeConfig, crds);
      if (knative) {
        const configMaps = await readYamlDir(join(dirs['knative-config'] ?? '', 'config', 'core', 'configmaps'));
        await applyObjects(kubeConfig, configMaps);
      }
      await waitFor(
        'CRDs established',
        async () => ((await crdsEstablished(kubeConfig, crds)) ? true : undefined),
        this.#waitOptions(),
      );
    });

    if (keda) {
      await this.#timed('keda', async () => {
        const operator = await bin('keda', 'operator');
        const adapter = await bin('keda', 'adapter');
        const grpcPort = await this.#port('keda-operator-grpc');
        const probePort = await this.#port('keda-operator-probe');
        const operatorMetricsPort = await this.#port('keda-operator-metrics');
        const adapterPort = await this.#port('keda-adapter');
        const adapterMetricsPort = await this.#port('keda-adapter-metrics');
        const kedaEnv = this.#env({
          KUBECONFIG: kubeconfig,
          WATCH_NAMESPACE: '',
          POD_NAMESPACE: 'keda',
          KEDA_CLUSTER_OBJECT_NAMESPACE: 'keda',
          OPERATOR_NAME: 'keda-operator',
          KEDA_HTTP_DEFAULT_TIMEOUT: '3000',
        });
        await this.#start(
          'keda-operator',
          operator,
          [
            '--leader-elect=false',
            `--metrics-bind-address=127.0.0.1:${operatorMetricsPort}`,
            `--health-probe-bind-address=127.0.0.1:${probePort}`,
            `--metrics-service-bind-address=127.0.0.1:${grpcPort}`,
            `--cert-dir=${pki.kedaCertDir}`,
            '--enable-cert-rotation=false',
            '--enable-webhook-patching=false',
            '--enable-apiservice-patching=false',
            `--ca-dir=${pki.kedaCertDir}`,
            '--zap-log-level=info',
          ],
          kedaEnv,
        );
        await this.#start(
          'keda-adapter',
          adapter,
          [
            `--secure-port=${adapterPort}`,
            '--bind-address=127.0.0.1',
            `--cert-dir=${pki.kedaCertDir}`,
            `--tls-cert-file=${pki.kedaServing.certFile}`,
            `--tls-private-key-file=${pki.kedaServing.keyFile}`,
            `--lister-kubeconfig=${kubeconfig}`,
            `--authentication-kubeconfig=${kubeconfig}`,
            `--authorization-kubeconfig=${kubeconfig}`,
            `--metrics-service-address=127.0.0.1:${grpcPort}`,
            '--metrics-service-grpc-authority=localhost',
            `--port=${adapterMetricsPort}`,
            '--v=1',
          ],
          kedaEnv,
        );
        const caBundle = (await readFile(pki.ca.certFile)).toString('base64');
        await applyObjects(kubeConfig, [
          {
            apiVersion: 'v1',
            kind: 'Service',
            metadata: { name: 'keda-metrics-apiserver', namespace: 'keda' },
            // The aggregator resolves an ExternalName Service to its name and the APIService's port.
            spec: { type: 'ExternalName', externalName: 'localhost' },
          } as KubernetesObject,
          {
            apiVersion: 'apiregistration.k8s.io/v1',
            kind: 'APIService',
            metadata: { name: 'v1beta1.external.metrics.k8s.io' },
            spec: {
              group: 'external.metrics.k8s.io',
              version: 'v1beta1',
              groupPriorityMinimum: 100,
              versionPriority: 100,
              caBundle,
              service: { name: 'keda-metrics-apiserver', namespace: 'keda', port: adapterPort },
            },
          } as KubernetesObject,
        ]);
        await waitFor(
          'KEDA operator /readyz',
          () => httpProbe(`http://127.0.0.1:${probePort}/readyz`),
          this.#waitOptions(),
        );
        await waitFor(
          'external.metrics.k8s.io APIService Available',
          async () => ((await apiServiceAvailable(kubeConfig)) ? true : undefined),
          this.#waitOptions(),
        );
      });
    }

    const images: Record<string, string> = {};
    if (realNodes > 0) {
      await this.#timed('images', async () => {
        await waitFor('OCI registry', () => httpProbe(`http://${registryAddress}/v2/`), this.#waitOptions());
        const tools = await ensureNodeTools();
        const pushed = await pushNodeImages(registryAddress, tools);
        const queue = await pushQueueProxyImage(registryAddress, await bin('knative', 'queue'), this.#versions.knative);
        images.pause = pushed.pause.reference;
        images.echoWasm = pushed.echoWasm.reference;
        images.echoNative = pushed.echoNative.reference;
        images.queue = queue.pinned;
      });
      await this.#timed('real-nodes', async () => {
        const binaries = {
          kubelet: await bin('kubernetes', 'kubelet'),
          containerd: await bin('containerd', 'containerd'),
          containerdDir: dirs.containerd ?? '',
          runc: await bin('runc', 'runc'),
          cniDir: dirs.cni ?? '',
          wasmDir: dirs.node ?? '',
        };
        // Directories too, so tests can start another node from the same build.
        this.#binaries['cni-plugins'] = binaries.cniDir;
        this.#binaries['afterlife-node'] = binaries.wasmDir;
        for (let index = 0; index < realNodes; index++) {
          this.#nodes.push(
            await RealNode.start({
              name: `node-${index}`,
              clusterDir: this.#stateDir,
              apiServer,
              ca: pki.ca,
              kubeConfig,
              binaries,
              registry: registryAddress,
              sandboxImage: images.pause ?? '',
              forwarding: realNodes > 1,
              timeoutMs: this.#readyTimeoutMs,
            }),
          );
        }
      });
    }

    if (knativeControllers) {
      await this.#timed('knative-controllers', async () => {
        const serving = await startKnativeServing({
          kubeConfig,
          kubeconfigPath: kubeconfig,
          stateDir: this.#stateDir,
          logDir: this.#logDir,
          binDir: dirs.knative ?? '',
          configDir: join(dirs.knative ?? '', 'config'),
          networkingDir: dirs['knative-networking'] ?? '',
          hpaBinDir: dirs.knative ?? '',
          ...(images.queue ? { queueSidecarImage: images.queue } : {}),
          ...(registryAddress ? { registry: registryAddress } : {}),
          ...(this.#log ? { logger: this.#log } : {}),
          timeoutMs: this.#readyTimeoutMs,
        });
        this.#processes.push(...serving.processes);
      });
    }

    await this.#timed('nodes', async () => {
      const core = kubeConfig.makeApiClient(CoreV1Api);
      await waitFor(
        'kwok nodes Ready',
        async () => {
          const nodes = await core.listNode({ labelSelector: 'type=kwok' });
          const ready = nodes.items.filter((node) =>
            node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
          );
          return ready.length === (options.nodes ?? 2) ? true : undefined;
        },
        this.#waitOptions(),
      );
      await waitFor(
        'default ServiceAccount',
        async () => (await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' })) && true,
        this.#waitOptions(),
      );
      if (registryAddress) {
        await waitFor('OCI registry', () => httpProbe(`http://${registryAddress}/v2/`), this.#waitOptions());
      }
    });

    const state: DevClusterState = {
      name: this.#name,
      stateDir: this.#stateDir,
      kubeconfig,
      apiServer,
      registry: registryAddress,
      ports: { ...this.#ports },
      pids: Object.fromEntries(
        [...this.#processes, ...this.#nodes.flatMap((node) => node.processes)].map((p) => [p.spec.name, p.pid]),
      ),
      binaries: { ...this.#binaries },
      versions: this.#versions,
      ownerPid: process.pid,
      detached: options.detached ?? false,
      startedAt: new Date().toISOString(),
      timings: { ...this.#timings },
      realNodes: this.#nodes.map((node) => node.state),
      images,
    };
    await writeFile(join(this.#stateDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
    return { state, processes: this.#processes, nodes: this.#nodes };
  }

  #env(extra: Record<string, string>): NodeJS.ProcessEnv {
    return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/', ...extra };
  }

  #waitOptions(): { timeoutMs: number; intervalMs: number; guard: () => void } {
    return { timeoutMs: this.#readyTimeoutMs, intervalMs: 150, guard: this.#guard };
  }

  async #createPki(): Promise<Pki> {
    const dir = join(this.#stateDir, 'pki');
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
}

function namespace(name: string): KubernetesObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

function nodeObjects(count: number): KubernetesObject[] {
  return Array.from({ length: count }, (_, index) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: `kwok-node-${index}`,
      annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        type: 'kwok',
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/os': 'linux',
        'kubernetes.io/hostname': `kwok-node-${index}`,
        'kubernetes.io/role': 'agent',
      },
    },
    spec: { taints: [{ ...KWOK_NODE_TAINT }] },
    status: {
      allocatable: { cpu: '32', memory: '256Gi', pods: '110' },
      capacity: { cpu: '32', memory: '256Gi', pods: '110' },
    },
  }));
}

async function readYamlDir(dir: string): Promise<KubernetesObject[]> {
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.yaml'))
    .sort();
  const objects: KubernetesObject[] = [];
  for (const file of files) objects.push(...(await readManifests(join(dir, file))));
  return objects;
}

async function kwokConfigYaml(kwokDir: string): Promise<string> {
  const stage = join(kwokDir, 'stage');
  const files = [
    join(stage, 'node', 'fast', 'node-initialize.yaml'),
    join(stage, 'node', 'heartbeat-with-lease', 'node-heartbeat-with-lease.yaml'),
    join(stage, 'pod', 'fast', 'pod-ready.yaml'),
    join(stage, 'pod', 'fast', 'pod-complete.yaml'),
    join(stage, 'pod', 'fast', 'pod-delete.yaml'),
  ];
  const parts: string[] = [];
  for (const file of files) parts.push(await readFile(file, 'utf8'));
  return parts.join('\n---\n');
}

function kubeconfigYaml(server: string, caFile: string, admin: KeyPair): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'afterlife', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: 'afterlife-admin', user: { 'client-certificate': admin.certFile, 'client-key': admin.keyFile } }],
    contexts: [{ name: 'afterlife', context: { cluster: 'afterlife', user: 'afterlife-admin', namespace: 'default' } }],
    'current-context': 'afterlife',
  });
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

async function apiServiceAvailable(kubeConfig: KubeConfig): Promise<boolean> {
  const { ApiregistrationV1Api } = await import('@kubernetes/client-node');
  const api = kubeConfig.makeApiClient(ApiregistrationV1Api);
  const service = await api.readAPIService({ name: 'v1beta1.external.metrics.k8s.io' });
  const available = service.status?.conditions?.find((c) => c.type === 'Available');
  if (available?.status === 'True') return true;
  throw new Error(`APIService Available=${available?.status ?? 'unknown'}: ${available?.message ?? ''}`);
}

/** GET over plain HTTP on loopback; resolves true on 2xx, throws with the status otherwise. */
export async function httpProbe(url: string): Promise<true> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await response.arrayBuffer();
  if (response.ok) return true;
  throw new Error(`${url} answered ${response.status}`);
}

function tlsProbe(url: string, pki: Pki): Promise<true> {
  return new Promise((resolve, reject) => {
    readFile(pki.ca.certFile)
      .then(async (ca) => {
        const [cert, key] = await Promise.all([readFile(pki.admin.certFile), readFile(pki.admin.keyFile)]);
        const req = httpsRequest(url, { ca, cert, key, timeout: 2000 }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (chunk: string) => {
            body += chunk;
          });
          res.on('end', () => {
            if (res.statusCode === 200) resolve(true);
            else reject(new Error(`${url} answered ${res.statusCode}: ${body.slice(0, 500)}`));
          });
        });
        req.on('timeout', () => req.destroy(new Error(`${url} timed out`)));
        req.on('error', reject);
        req.end();
      })
      .catch((error: unknown) => reject(new Error(errorMessage(error))));
  });
}
