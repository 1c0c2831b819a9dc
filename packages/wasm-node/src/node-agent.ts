import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import {
  createLogger,
  createMetricsRegistry,
  errorMessage,
  LATENCY_BUCKETS_SECONDS,
  type Logger,
} from '@afterlife/core';
import {
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  ListWatch,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
  type V1Pod,
  type V1RuntimeClass,
  Watch,
} from '@kubernetes/client-node';
import { Counter, Gauge, Histogram } from 'prom-client';
import { loadConfig, type WasmNodeConfig } from './config.ts';
import { ModuleStore } from './module-store.ts';
import { netnsPodNetworks, type PodNetworkFactory } from './network.ts';
import { isLoopbackRegistry } from './oci.ts';
import { PodRunner } from './pod-runner.ts';

/** Node label a RuntimeClass `scheduling.nodeSelector` targets. */
export const WASM_NODE_LABEL = 'afterlife.dev/wasm';
/** Taint (NoSchedule) that keeps ordinary pods off this node; the RuntimeClass tolerates it. */
export const WASM_NODE_TAINT = { key: 'afterlife.dev/wasm', value: 'true', effect: 'NoSchedule' } as const;
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';

/**
 * The RuntimeClass that sends pods to Wasm nodes (handler `crun`, as on a real crun+WasmEdge
 * node): placement lives on the class (`scheduling.nodeSelector` + toleration), not on each Service.
 */
export function wasmRuntimeClass(name = 'wasmedge'): V1RuntimeClass {
  return {
    apiVersion: 'node.k8s.io/v1',
    kind: 'RuntimeClass',
    metadata: { name },
    handler: 'crun',
    scheduling: {
      nodeSelector: { [WASM_NODE_LABEL]: 'true' },
      tolerations: [
        { key: WASM_NODE_TAINT.key, operator: 'Equal', value: WASM_NODE_TAINT.value, effect: WASM_NODE_TAINT.effect },
      ],
    },
  };
}

export interface WasmNodeOptions {
  /** Cluster access (tests: `cluster.kubeConfig`). */
  readonly kubeConfig: KubeConfig;
  /** Settings; anything not given comes from the defaults of `loadConfig({})`. */
  readonly config?: Partial<WasmNodeConfig>;
  readonly logger?: Logger;
  /** Pod network factory (default: @afterlife/devcluster's createNetnsHost). */
  readonly networks?: PodNetworkFactory;
}

export interface LocalPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly podIp: string | undefined;
  /** PIDs of the pod host processes (one per running Wasm container). */
  readonly pids: readonly number[];
}

export interface WasmNode {
  readonly nodeName: string;
  readonly config: Readonly<WasmNodeConfig>;
  /** `http://host:port/metrics` of the Prometheus endpoint. */
  readonly metricsUrl: string;
  /** Pod IP of a running pod on this node, by namespace/name. */
  podIp(namespace: string, name: string): string | undefined;
  /** The pods this node is running right now (local view, for tests and the demo). */
  pods(): LocalPod[];
  /** Stops every local pod instance and sandbox; deletes the Node when deleteNodeOnExit. */
  close(): Promise<void>;
}

const microTime = (): string => new Date().toISOString().replace('Z', '000Z');
const seconds = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

function isStatus(error: unknown, code: number): boolean {
  return (error as { code?: number }).code === code;
}

/** Registers this machine as a Wasm node and runs the pods the scheduler binds to it. */
export async function startWasmNode(options: WasmNodeOptions): Promise<WasmNode> {
  const config: Readonly<WasmNodeConfig> = Object.freeze({ ...loadConfig({}), ...options.config });
  const logger = options.logger ?? createLogger('wasm-node', { level: config.logLevel });
  const log = logger.child({ node: config.nodeName });
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const coordination = options.kubeConfig.makeApiClient(CoordinationV1Api);
  const networks = options.networks ?? netnsPodNetworks;
  const allowed = new Set(config.registries);
  const store = new ModuleStore(join(config.stateDir, 'modules'), {
    timeoutMs: config.pullTimeoutMs,
    allowRegistry: (registry) => isLoopbackRegistry(registry) || allowed.has(registry),
  });

  const registry = createMetricsRegistry('wasm-node');
  const boundToReady = new Histogram({
    name: 'afterlife_wasm_node_pod_bound_to_ready_seconds',
    help: 'Time from a pod being seen bound to this node to all its containers ready (Wasm cold start)',
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: [registry],
  });
  const restarts = new Counter({
    name: 'afterlife_wasm_node_container_restarts_total',
    help: 'Wasm container restarts after an exit or trap',
    registers: [registry],
  });
  const runningContainers = new Gauge({
    name: 'afterlife_wasm_node_running_containers',
    help: 'Wasm containers (pod host processes) running on this node',
    registers: [registry],
  });
  const podsGauge = new Gauge({
    name: 'afterlife_wasm_node_pods',
    help: 'Pods handled by this node',
    registers: [registry],
  });
  const eventsCounter = new Counter({
    name: 'afterlife_wasm_node_events_total',
    help: 'Kubernetes Events recorded by reason',
    labelNames: ['reason'],
    registers: [registry],
  });

  // --- the Node object ---------------------------------------------------------------------
  const nodeBody: V1Node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: config.nodeName,
      labels: {
        [WASM_NODE_LABEL]: 'true',
        'kubernetes.io/hostname': config.nodeName,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': process.arch === 'arm64' ? 'arm64' : 'amd64',
        'node.kubernetes.io/instance-type': 'afterlife-wasm-node',
      },
      annotations: { 'afterlife.dev/runtime': `node ${process.version} WASI preview1 (V8 ${process.versions.v8})` },
    },
    spec: { taints: [{ ...WASM_NODE_TAINT }] },
  };
  let node: V1Node;
  try {
    node = await core.createNode({ body: nodeBody });
  } catch (error) {
    if (!isStatus(error, 409)) throw error;
    const existing = await core.readNode({ name: config.nodeName });
    existing.metadata = {
      ...existing.metadata,
      labels: { ...existing.metadata?.labels, ...nodeBody.metadata?.labels },
    };
    const taints = (existing.spec?.taints ?? []).filter((taint) => taint.key !== WASM_NODE_TAINT.key);
    existing.spec = { ...existing.spec, taints: [...taints, { ...WASM_NODE_TAINT }] };
    node = await core.replaceNode({ name: config.nodeName, body: existing });
  }
  const nodeUid = node.metadata?.uid ?? '';
  const started = seconds();
  const nodeStatus = (): object => {
    const heartbeat = seconds();
    const condition = (type: string, status: string, reason: string, message: string): object => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: heartbeat,
      lastTransitionTime: started,
    });
    const resources = {
      cpu: config.cpu,
      memory: config.memory,
      pods: String(config.maxPods),
      'ephemeral-storage': '100Gi',
    };
    return {
      status: {
        capacity: resources,
        allocatable: resources,
        conditions: [
          condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'wasm-node has sufficient memory'),
          condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'wasm-node has no disk pressure'),
          condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'wasm-node has sufficient PID available'),
          condition('Ready', 'True', 'KubeletReady', 'wasm-node is posting ready status'),
        ],
        addresses: [
          { type: 'InternalIP', address: config.nodeAddress },
          { type: 'Hostname', address: config.nodeName },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
        nodeInfo: {
          machineID: nodeUid.replace(/-/g, ''),
          systemUUID: nodeUid,
          bootID: nodeUid,
          kernelVersion: 'wasi-preview1',
          osImage: 'Afterlife wasm-node',
          containerRuntimeVersion: `wasm-node://${process.version}`,
          kubeletVersion: 'v1.35.4',
          kubeProxyVersion: '',
          operatingSystem: 'linux',
          architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
        },
      },
    };
  };
  const postStatus = async (): Promise<void> => {
    await core.patchNodeStatus({ name: config.nodeName, body: nodeStatus() }, merge);
  };
  await postStatus();

  // --- the Lease -----------------------------------------------------------------------------
  const leaseBody = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: config.nodeName,
      namespace: NODE_LEASE_NAMESPACE,
      ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: config.nodeName, uid: nodeUid }],
    },
    spec: {
      holderIdentity: config.nodeName,
      leaseDurationSeconds: config.leaseDurationSeconds,
      renewTime: microTime(),
    },
  };
  const renewLease = async (): Promise<void> => {
    try {
      await coordination.patchNamespacedLease(
        {
          name: config.nodeName,
          namespace: NODE_LEASE_NAMESPACE,
          body: { spec: { holderIdentity: config.nodeName, renewTime: microTime() } },
        },
        merge,
      );
    } catch (error) {
      if (!isStatus(error, 404)) throw error;
      await coordination.createNamespacedLease({
        namespace: NODE_LEASE_NAMESPACE,
        body: { ...leaseBody, spec: { ...leaseBody.spec, renewTime: microTime() } } as never,
      });
    }
  };
  await renewLease();
  const leaseTimer = setInterval(() => {
    renewLease().catch((error: unknown) => log.warn({ err: errorMessage(error) }, 'lease renewal failed'));
  }, config.leaseRenewMs);
  const statusTimer = setInterval(() => {
    postStatus().catch((error: unknown) => log.warn({ err: errorMessage(error) }, 'node status update failed'));
  }, config.statusIntervalMs);

  // --- pods ----------------------------------------------------------------------------------
  const runners = new Map<string, PodRunner>();
  const podKey = (pod: V1Pod): string => `${pod.metadata?.namespace}/${pod.metadata?.name}`;
  const event = (pod: V1Pod, type: 'Normal' | 'Warning', reason: string, message: string): void => {
    eventsCounter.inc({ reason });
    const namespace = pod.metadata?.namespace ?? 'default';
    const time = seconds();
    core
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${pod.metadata?.name}.`, namespace },
          involvedObject: {
            apiVersion: 'v1',
            kind: 'Pod',
            name: pod.metadata?.name ?? '',
            namespace,
            uid: pod.metadata?.uid ?? '',
          },
          reason,
          message,
          type,
          source: { component: 'wasm-node', host: config.nodeName },
          reportingComponent: 'afterlife.dev/wasm-node',
          reportingInstance: config.nodeName,
          firstTimestamp: time as never,
          lastTimestamp: time as never,
          count: 1,
        },
      })
      .catch((error: unknown) => log.debug({ err: errorMessage(error), reason }, 'event not recorded'));
  };
  const ctx = {
    config,
    logger: log,
    store,
    networks,
    patchStatus: async (pod: V1Pod, status: object): Promise<void> => {
      await core.patchNamespacedPodStatus(
        { name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '', body: { status } },
        merge,
      );
    },
    deletePod: async (pod: V1Pod): Promise<void> => {
      try {
        await core.deleteNamespacedPod({
          name: pod.metadata?.name ?? '',
          namespace: pod.metadata?.namespace ?? '',
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata?.uid ?? '' } },
        });
      } catch (error) {
        if (!isStatus(error, 404) && !isStatus(error, 409)) throw error;
      }
    },
    event,
    onReady: (pod: V1Pod, boundToReadySeconds: number): void => {
      boundToReady.observe(boundToReadySeconds);
      log.info(
        { pod: podKey(pod), boundToReadyMs: Math.round(boundToReadySeconds * 1000) },
        `pod ready ${Math.round(boundToReadySeconds * 1000)}ms after it was bound`,
      );
    },
    onRestart: (): void => restarts.inc(),
    onContainerCount: (delta: number): void => runningContainers.inc(delta),
  };

  const handle = (pod: V1Pod): void => {
    const uid = pod.metadata?.uid;
    if (uid === undefined || pod.spec?.nodeName !== config.nodeName) return;
    let runner = runners.get(uid);
    if (pod.metadata?.deletionTimestamp) {
      if (runner === undefined) {
        // Never started here (or wasm-node restarted): nothing runs; finalize the deletion.
        runner = new PodRunner(pod, ctx);
        runners.set(uid, runner);
      }
      runner.update(pod);
      const grace = (pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30) * 1000;
      runner
        .stop(grace, { deletePod: true })
        .catch((error: unknown) => log.warn({ pod: podKey(pod), err: errorMessage(error) }, 'pod termination failed'))
        .finally(() => {
          runners.delete(uid);
          podsGauge.set(runners.size);
        });
      return;
    }
    if (runner !== undefined) {
      runner.update(pod);
      return;
    }
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return;
    runner = new PodRunner(pod, ctx);
    runners.set(uid, runner);
    podsGauge.set(runners.size);
    log.info({ pod: podKey(pod) }, 'pod bound to this node');
    runner
      .start()
      .catch((error: unknown) => log.error({ pod: podKey(pod), err: errorMessage(error) }, 'pod start failed'));
  };
  const forget = (pod: V1Pod): void => {
    const uid = pod.metadata?.uid;
    const runner = uid === undefined ? undefined : runners.get(uid);
    if (uid === undefined || runner === undefined) return;
    void runner.stop(0, { deletePod: false }).finally(() => {
      runners.delete(uid);
      podsGauge.set(runners.size);
    });
  };

  const fieldSelector = `spec.nodeName=${config.nodeName}`;
  const informer = new ListWatch<V1Pod>(
    '/api/v1/pods',
    new Watch(options.kubeConfig),
    () => core.listPodForAllNamespaces({ fieldSelector }),
    false,
    undefined,
    fieldSelector,
  );
  let closed = false;
  informer.on('add', handle);
  informer.on('update', handle);
  informer.on('delete', forget);
  informer.on('error', (error: unknown) => {
    if (closed) return;
    log.warn({ err: errorMessage(error) }, 'pod watch failed; restarting in 1s');
    setTimeout(() => {
      if (!closed)
        informer.start().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'pod watch restart failed'));
    }, 1000);
  });
  await informer.start();

  // --- metrics ---------------------------------------------------------------------------------
  const metricsServer: Server = createServer((request, response) => {
    if (request.url === '/metrics') {
      registry
        .metrics()
        .then((text) => {
          response.writeHead(200, { 'content-type': registry.contentType });
          response.end(text);
        })
        .catch((error: unknown) => {
          response.writeHead(500);
          response.end(errorMessage(error));
        });
      return;
    }
    if (request.url === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('ok');
      return;
    }
    response.writeHead(404);
    response.end();
  });
  await new Promise<void>((resolve, reject) => {
    metricsServer.once('error', reject);
    metricsServer.listen(config.metricsPort, config.metricsHost, () => resolve());
  });
  const address = metricsServer.address();
  const metricsPort = typeof address === 'object' && address !== null ? address.port : config.metricsPort;
  const metricsUrl = `http://${config.metricsHost}:${metricsPort}/metrics`;
  log.info({ metricsUrl, stateDir: config.stateDir }, 'wasm node registered and ready');

  let closing: Promise<void> | undefined;
  return {
    nodeName: config.nodeName,
    config,
    metricsUrl,
    podIp(namespace, name) {
      for (const runner of runners.values()) {
        if (runner.podIp !== undefined && runner.key === `${namespace}/${name}`) return runner.podIp;
      }
      return undefined;
    },
    pods() {
      return [...runners.values()]
        .filter((runner) => !runner.stopped)
        .map((runner) => {
          const [namespace = '', name = ''] = runner.key.split('/');
          return { namespace, name, uid: runner.uid, podIp: runner.podIp, pids: runner.pids };
        });
    },
    close() {
      closing ??= (async () => {
        closed = true;
        clearInterval(leaseTimer);
        clearInterval(statusTimer);
        informer.stop();
        await Promise.all(
          [...runners.values()].map((runner) => runner.stop(2000, { deletePod: false }).catch(() => undefined)),
        );
        runners.clear();
        metricsServer.closeAllConnections();
        await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
        if (config.deleteNodeOnExit) {
          await coordination
            .deleteNamespacedLease({ name: config.nodeName, namespace: NODE_LEASE_NAMESPACE })
            .catch(() => undefined);
          await core.deleteNode({ name: config.nodeName }).catch(() => undefined);
        }
        log.info('wasm node stopped');
      })();
      return closing;
    },
  };
}
