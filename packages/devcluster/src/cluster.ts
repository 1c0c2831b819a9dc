import { existsSync, readdirSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, type Logger } from '@afterlife/core';
import { KubeConfig } from '@kubernetes/client-node';
import { AfterlifeClusterError } from './cluster-error.ts';
import { claimServiceRouting, holdsServiceRouting, releaseServiceRouting } from './host.ts';
import { fenceCidr, releaseNetnsDir } from './netns.ts';
import { type RealNode, reapNode } from './node.ts';
import { cacheDir, readVersions } from './paths.ts';
import { assertPortFree } from './ports.ts';
import { isAlive, killGroup, ManagedProcess } from './process.ts';
import {
  apiServerUrl,
  loadKubeConfig,
  SERVICE_CIDR,
  startApiServer,
  waitApiServerReady,
  writeKubeconfig,
} from './start/apiserver.ts';
import {
  BinaryResolver,
  type ControlPlaneBinaries,
  controlPlaneBinaries,
  prepareComponents,
} from './start/binaries.ts';
import { createClusterPki, type Pki } from './start/cluster-pki.ts';
import {
  type ClusterServices,
  cleanupKubeProxy,
  recordIptablesTables,
  startClusterServices,
  writeClusterResolvConf,
} from './start/cluster-services.ts';
import { startControllerManager, startScheduler, waitDefaultServiceAccount } from './start/controllers.ts';
import { etcdPorts, startEtcd, waitEtcdReady } from './start/etcd.ts';
import { type Keda, registerExternalMetricsApi, startKeda, waitKedaReady } from './start/keda.ts';
import { startKnativeControllers } from './start/knative-controllers.ts';
import { KWOK_POD_CIDR, startKwok, waitKwokNodesReady } from './start/kwok.ts';
import { Launcher, takePort } from './start/launcher.ts';
import { applyClusterManifests, waitCrdsEstablished } from './start/manifests.ts';
import { type ClusterImages, pushClusterImages } from './start/node-images.ts';
import { planStart, type StartPlan } from './start/plan.ts';
import { realNodeBinaries, startRealNodes } from './start/real-nodes.ts';
import { type Registry, startRegistry, waitRegistryReady } from './start/registry.ts';
import { assembleState, type DevClusterState, readClusterState, writeClusterState } from './state.ts';

export { KWOK_NODE_ANNOTATION, KWOK_NODE_TAINT } from './start/kwok.ts';
export { type DevClusterState, readClusterState } from './state.ts';

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
  /**
   * Give pods what any cluster gives them (default true with real nodes): kube-proxy for every
   * ClusterIP, cluster DNS (CoreDNS behind kube-dns) and the `kubernetes` Service to the API server.
   */
  readonly clusterServices?: boolean;
  /** Run a local OCI registry (default true). */
  readonly registry?: boolean;
  /** Fixed kube-apiserver port (default: a free port). */
  readonly apiServerPort?: number;
  /** Leave the processes running after this Node process exits (`cluster up`). */
  readonly detached?: boolean;
  readonly logger?: Logger;
  /** Bound on the whole start-up once binaries exist (default 180 s). */
  readonly readyTimeoutMs?: number;
  /**
   * kube-controller-manager's `--horizontal-pod-autoscaler-sync-period` (default `5s`, so tests
   * see HPA decisions in seconds; Kubernetes' own default is `15s`, which the scale bench uses).
   */
  readonly hpaSyncPeriod?: string;
}

/** A process that is still exiting may add a file while the tree goes; retry instead of failing on ENOTEMPTY. */
const REMOVE_TREE = { recursive: true, force: true, maxRetries: 10, retryDelay: 100 } as const;

export function clusterStateDir(name: string): string {
  return join(cacheDir(), 'run', name);
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
    const kubeProxy = state.binaries['kube-proxy'];
    if (state.pids['kube-proxy'] !== undefined && kubeProxy && (await holdsServiceRouting(stateDir))) {
      await cleanupKubeProxy(kubeProxy, stateDir);
    }
    await releaseServiceRouting(stateDir);
    for (const node of state.realNodes ?? []) await reapNode(node, []);
  }
  await rm(stateDir, REMOVE_TREE);
  await releaseNetnsDir();
}

/** kube-proxy's rules outlive it: once it stopped, its own `--cleanup` removes them. */
async function cleanupAfterKubeProxy(processes: readonly ManagedProcess[], stateDir: string): Promise<void> {
  const kubeProxy = processes.find((p) => p.spec.name === 'kube-proxy');
  if (kubeProxy && (await holdsServiceRouting(stateDir))) await cleanupKubeProxy(kubeProxy.spec.command, stateDir);
  await releaseServiceRouting(stateDir);
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
    await cleanupAfterKubeProxy(this.#processes, this.state.stateDir);
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
    await writeClusterState(this.#state);
  }

  /**
   * Stops one of the cluster's processes (SIGTERM, as systemd restarting a unit would) and starts
   * it again with the same command, env and log file — for fault tests (restart the
   * kube-apiserver under load). Resolves once the new process runs; the caller waits for its
   * readiness. Returns the seconds it was down.
   */
  async restartProcess(name: string): Promise<number> {
    const index = this.#processes.findIndex((p) => p.spec.name === name);
    const current = this.#processes[index];
    if (!current) {
      throw new AfterlifeClusterError(
        'OPTIONS_INVALID',
        `no process ${name} in cluster ${this.state.name} (have: ${this.#processes.map((p) => p.spec.name).join(', ')})`,
      );
    }
    const stopped = performance.now();
    await current.stop();
    const next = await ManagedProcess.start(current.spec);
    this.#processes[index] = next;
    this.#state = { ...this.#state, pids: { ...this.#state.pids, [name]: next.pid } };
    await writeClusterState(this.#state);
    return (performance.now() - stopped) / 1000;
  }

  /** Last-resort synchronous kill for process 'exit' handlers. */
  killNow(): void {
    for (const node of this.#nodes) for (const process of node.processes) killGroup(process.pid, 'SIGKILL');
    for (const process of this.#processes) killGroup(process.pid, 'SIGKILL');
  }
}

/** What a successful start hands to DevCluster. */
interface StartedCluster {
  readonly state: DevClusterState;
  readonly processes: ManagedProcess[];
  readonly nodes: RealNode[];
}

/** etcd, kube-apiserver, controller-manager, scheduler and kwok, up; and how to reach the API server. */
interface ControlPlane {
  readonly apiServer: string;
  readonly kubeconfig: string;
  readonly kubeConfig: KubeConfig;
  /** Each component's result, in start order (their ports go to the state). */
  readonly components: readonly { readonly ports: Readonly<Record<string, number>> }[];
}

/**
 * Starts a cluster's components in order, each in its own timed phase (start, then wait for
 * readiness), and assembles the state from what they report. Everything started is tracked by
 * the launcher, so `abort()` undoes a start that failed anywhere.
 */
class Starter {
  readonly #options: DevClusterOptions;
  readonly #name: string;
  readonly #stateDir: string;
  readonly #logDir: string;
  readonly #launcher: Launcher;
  readonly #timings: Record<string, number> = {};
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
    this.#launcher = new Launcher({
      stateDir: this.#stateDir,
      logDir: this.#logDir,
      readyTimeoutMs: this.#readyTimeoutMs,
    });
  }

  async abort(): Promise<void> {
    await this.#launcher.stopAll();
    await cleanupAfterKubeProxy(this.#launcher.processes, this.#stateDir).catch(() => undefined);
    await rm(this.#stateDir, REMOVE_TREE);
  }

  async #timed<T>(phase: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.#timings[phase] = Math.round(performance.now() - started) / 1000;
      this.#log?.debug({ phase, seconds: this.#timings[phase] }, 'devcluster phase done');
    }
  }

  async run(): Promise<StartedCluster> {
    await this.#claimStateDir();
    const plan = await this.#claimServiceRouting(planStart(this.#options));
    if (plan.clusterServices) await recordIptablesTables(this.#stateDir);
    const bins = new BinaryResolver(await this.#timed('binaries', () => prepareComponents(plan, this.#log)));
    const binaries = await controlPlaneBinaries(bins);
    const pki = await this.#timed('pki', () => createClusterPki(this.#stateDir));
    await this.#fenceFakeAddressRanges();
    const controlPlane = await this.#startControlPlane(binaries, bins, pki);
    const { kubeConfig } = controlPlane;

    let registry: Registry | undefined;
    if (plan.registry) registry = await this.#timed('registry', () => this.#startRegistry(bins));
    const registryAddress = registry?.address ?? '';

    await this.#timed('manifests', async () => {
      const crds = await applyClusterManifests(kubeConfig, {
        kwokNodes: plan.kwokNodes,
        kedaDir: plan.keda ? bins.dir('keda') : undefined,
        knativeConfigDir: plan.knative ? bins.dir('knative-config') : undefined,
      });
      await waitCrdsEstablished(kubeConfig, crds, this.#launcher.wait);
    });

    let keda: Keda | undefined;
    if (plan.keda) {
      const resolvConf = plan.clusterServices ? await writeClusterResolvConf(this.#stateDir) : undefined;
      keda = await this.#timed('keda', () => this.#startKeda(bins, pki, controlPlane, resolvConf));
    }

    let images: ClusterImages | undefined;
    if (plan.realNodes > 0)
      images = await this.#startRealNodes(
        plan.realNodes,
        bins,
        pki,
        controlPlane,
        registryAddress,
        plan.clusterServices,
      );

    let services: ClusterServices | undefined;
    if (plan.clusterServices) {
      services = await this.#timed('cluster-services', () =>
        this.#startClusterServices(bins, controlPlane, registryAddress),
      );
    }

    if (plan.knativeControllers) {
      await this.#timed('knative-controllers', () =>
        this.#startKnativeControllers(bins, controlPlane, registryAddress, images?.queue),
      );
    }

    await this.#timed('nodes', async () => {
      await waitKwokNodesReady(kubeConfig, plan.kwokNodes, this.#launcher.wait);
      await waitDefaultServiceAccount(kubeConfig, this.#launcher.wait);
      if (registryAddress) await waitRegistryReady(registryAddress, this.#launcher.wait);
    });

    const state = assembleState({
      name: this.#name,
      stateDir: this.#stateDir,
      kubeconfig: controlPlane.kubeconfig,
      apiServer: controlPlane.apiServer,
      registry: registryAddress,
      ports: Object.fromEntries(
        [...controlPlane.components, registry, keda, services].flatMap((part) => Object.entries(part?.ports ?? {})),
      ),
      processes: this.#launcher.processes,
      nodes: this.#launcher.nodes,
      binaries: bins.resolved,
      versions: this.#versions,
      detached: this.#options.detached ?? false,
      timings: this.#timings,
      images: { ...images, ...(services ? { coredns: services.coredns } : {}) },
    });
    await writeClusterState(state);
    return { state, processes: this.#launcher.processes, nodes: this.#launcher.nodes };
  }

  /**
   * Cluster services are machine-wide (kube-proxy's chains, the Service routes): the first
   * cluster on the machine runs them. A later one runs without them, or, when they were asked
   * for explicitly, refuses to start naming the cluster that has them.
   */
  async #claimServiceRouting(plan: StartPlan): Promise<StartPlan> {
    if (!plan.clusterServices) return plan;
    const other = await claimServiceRouting(this.#stateDir);
    if (other === undefined) return plan;
    if (this.#options.clusterServices === true) {
      throw new AfterlifeClusterError(
        'HOST_LOCKED',
        `cluster services (kube-proxy, cluster DNS) already run for the cluster in ${other}; stop it or start this one with clusterServices: false`,
      );
    }
    this.#log?.warn({ other }, 'another cluster runs cluster services on this machine: starting without them');
    return { ...plan, clusterServices: false, components: plan.components.filter((c) => c !== 'coredns') };
  }

  /** Refuses a running cluster of the same name, clears what a dead one left, checks a fixed API port. */
  async #claimStateDir(): Promise<void> {
    const existing = await readClusterState(this.#stateDir);
    if (existing && isClusterRunning(existing)) {
      throw new AfterlifeClusterError(
        'CLUSTER_ALREADY_RUNNING',
        `a cluster named "${this.#name}" is already running (state in ${this.#stateDir}); stop it first with "down"`,
      );
    }
    await destroyFromState(this.#stateDir);
    await mkdir(this.#logDir, { recursive: true });
    if (this.#options.apiServerPort !== undefined) await assertPortFree(this.#options.apiServerPort);
  }

  /** Nothing may ever reach the real network through a fake Service or kwok pod address. */
  async #fenceFakeAddressRanges(): Promise<void> {
    for (const cidr of [SERVICE_CIDR, KWOK_POD_CIDR]) {
      await fenceCidr(cidr).catch((error: unknown) =>
        this.#log?.warn({ cidr, err: errorMessage(error) }, 'could not fence fake address range (not root?)'),
      );
    }
  }

  /** Phases etcd, kube-apiserver (after writing the kubeconfig) and controllers (with kwok). */
  async #startControlPlane(binaries: ControlPlaneBinaries, bins: BinaryResolver, pki: Pki): Promise<ControlPlane> {
    const stateDir = this.#stateDir;
    const { launch, wait } = this.#launcher;
    const etcdPortPair = await etcdPorts();
    const etcd = await this.#timed('etcd', async () => {
      const etcd = await startEtcd(launch, {
        binary: binaries.etcd,
        dataDir: join(stateDir, 'etcd'),
        ports: etcdPortPair,
      });
      await waitEtcdReady(etcd, wait);
      return etcd;
    });

    const apiPort = await takePort(this.#options.apiServerPort);
    const apiServer = apiServerUrl(apiPort);
    const kubeconfig = await writeKubeconfig(stateDir, apiServer, pki);
    const api = await this.#timed('kube-apiserver', async () => {
      const api = await startApiServer(launch, {
        binary: binaries.kubeApiServer,
        stateDir,
        etcdUrl: etcd.url,
        port: apiPort,
        pki,
      });
      await waitApiServerReady(api, pki, wait);
      return api;
    });
    const kubeConfig = loadKubeConfig(kubeconfig);

    const controllers = await this.#timed('controllers', async () => [
      await startControllerManager(launch, {
        binary: binaries.kubeControllerManager,
        stateDir,
        kubeconfig,
        pki,
        hpaSyncPeriod: this.#options.hpaSyncPeriod ?? '5s',
      }),
      await startScheduler(launch, { binary: binaries.kubeScheduler, stateDir, kubeconfig }),
      await startKwok(launch, { binary: binaries.kwok, kwokDir: bins.dir('kwok'), stateDir, kubeconfig }),
    ]);
    return { apiServer, kubeconfig, kubeConfig, components: [etcd, api, ...controllers] };
  }

  async #startRegistry(bins: BinaryResolver): Promise<Registry> {
    const binary = await bins.bin('registry', 'registry');
    await bins.bin('oras', 'oras');
    return startRegistry(this.#launcher.launch, { binary, stateDir: this.#stateDir });
  }

  async #startKeda(
    bins: BinaryResolver,
    pki: Pki,
    controlPlane: ControlPlane,
    resolvConf: string | undefined,
  ): Promise<Keda> {
    const operatorBinary = await bins.bin('keda', 'operator');
    const adapterBinary = await bins.bin('keda', 'adapter');
    const keda = await startKeda(this.#launcher.launch, {
      operatorBinary,
      adapterBinary,
      kubeconfig: controlPlane.kubeconfig,
      pki,
      ...(resolvConf ? { resolvConf } : {}),
    });
    await registerExternalMetricsApi(controlPlane.kubeConfig, keda, pki);
    await waitKedaReady(controlPlane.kubeConfig, keda, this.#launcher.wait);
    return keda;
  }

  /** Phases images (pushed to the registry once it answers) and real-nodes. */
  async #startRealNodes(
    count: number,
    bins: BinaryResolver,
    pki: Pki,
    controlPlane: ControlPlane,
    registry: string,
    routesServices: boolean,
  ): Promise<ClusterImages> {
    const images = await this.#timed('images', async () => {
      await waitRegistryReady(registry, this.#launcher.wait);
      return pushClusterImages(registry, { bins, knativeVersion: this.#versions.knative });
    });
    await this.#timed('real-nodes', async () => {
      const binaries = await realNodeBinaries(bins);
      const input = {
        count,
        clusterDir: this.#stateDir,
        apiServer: controlPlane.apiServer,
        ca: pki.ca,
        kubeConfig: controlPlane.kubeConfig,
        binaries,
        registry,
        sandboxImage: images.pause,
        timeoutMs: this.#readyTimeoutMs,
        routesServices,
      };
      await startRealNodes(input, this.#launcher.addNode);
    });
    return images;
  }

  async #startClusterServices(bins: BinaryResolver, controlPlane: ControlPlane, registry: string) {
    const node = this.#launcher.nodes[0];
    if (!node) throw new AfterlifeClusterError('OPTIONS_INVALID', 'cluster services need a real node');
    return startClusterServices(this.#launcher.launch, {
      kubeProxyBinary: await bins.bin('kubernetes', 'kube-proxy'),
      corednsBinary: await bins.bin('coredns', 'coredns'),
      corednsVersion: this.#versions.coredns,
      kubeconfig: controlPlane.kubeconfig,
      kubeConfig: controlPlane.kubeConfig,
      stateDir: this.#stateDir,
      apiPort: Number(new URL(controlPlane.apiServer).port),
      node: node.state,
      registry,
      wait: this.#launcher.wait,
    });
  }

  async #startKnativeControllers(
    bins: BinaryResolver,
    controlPlane: ControlPlane,
    registry: string,
    queueSidecarImage: string | undefined,
  ): Promise<void> {
    const serving = await startKnativeControllers({
      kubeConfig: controlPlane.kubeConfig,
      kubeconfig: controlPlane.kubeconfig,
      stateDir: this.#stateDir,
      logDir: this.#logDir,
      bins,
      queueSidecarImage,
      registry,
      log: this.#log,
      timeoutMs: this.#readyTimeoutMs,
    });
    this.#launcher.adopt(serving.processes);
  }
}
