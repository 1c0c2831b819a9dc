import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { errorMessage, RUN_OCI_HANDLER_ANNOTATION, WASM_VARIANT_ANNOTATION } from '@afterlife/core';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { AfterlifeClusterError } from './cluster-error.ts';
import { acquireHost, createCgroup, destroyCgroupTree, releaseHost, unmountBelow, writeSysctl } from './host.ts';
import { fenceCidr } from './netns.ts';
import { cacheDir } from './paths.ts';
import { issueCertificate, type KeyPair } from './pki.ts';
import { freePort } from './ports.ts';
import { isAlive, killGroup, ManagedProcess } from './process.ts';
import { CLUSTER_DNS_IP, CLUSTER_DOMAIN, SERVICE_CIDR } from './start/apiserver.ts';
import { waitFor } from './wait.ts';

const run = promisify(execFile);

/** Real nodes' pod subnets: one /24 per node on a bridge this project creates, fenced as a whole. */
export const NODE_POD_CIDR = '10.214.0.0/16';
/** Label on every real node; the `wasmedge` RuntimeClass selects it. */
export const REAL_NODE_LABEL = 'afterlife.dev/node';
/** containerd runtime handler (RuntimeClass `handler`) with crun's compat-smart Wasm semantics. */
export const WASM_RUNTIME_HANDLER = 'wasmedge';
/** Pod annotations containerd passes to the OCI runtime (crun's Wasm detection). */
const WASM_POD_ANNOTATIONS = [WASM_VARIANT_ANNOTATION, RUN_OCI_HANDLER_ANNOTATION];

/**
 * The RuntimeClass that sends Wasm pods to the real nodes' `wasmedge` handler, as a cluster
 * operator would create it (the chart has the same one).
 */
export function wasmRuntimeClass(name = WASM_RUNTIME_HANDLER): {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  handler: string;
  scheduling: { nodeSelector: Record<string, string> };
} {
  return {
    apiVersion: 'node.k8s.io/v1',
    kind: 'RuntimeClass',
    metadata: { name },
    handler: WASM_RUNTIME_HANDLER,
    scheduling: { nodeSelector: { 'afterlife.dev/wasm': 'true' } },
  };
}

/** What a real node needs from the cluster and the build cache. */
export interface RealNodeOptions {
  readonly name: string;
  /** The cluster's state directory; the node lives in `<stateDir>/nodes/<name>`. */
  readonly clusterDir: string;
  readonly apiServer: string;
  readonly ca: KeyPair;
  readonly kubeConfig: KubeConfig;
  readonly binaries: RealNodeBinaries;
  /** `127.0.0.1:PORT` of the cluster's registry (plain HTTP). */
  readonly registry: string;
  /** Pinned sandbox image (the pause image in the local registry). */
  readonly sandboxImage: string;
  /** Turn on IPv4 forwarding (several nodes route pod traffic between their bridges). */
  readonly forwarding: boolean;
  /** Default `<cache>/wasm-compile-cache`. */
  readonly wasmCacheDir?: string;
  readonly timeoutMs: number;
}

export interface RealNodeBinaries {
  readonly kubelet: string;
  readonly containerd: string;
  /** Directory holding containerd-shim-runc-v2 (containerd finds shims on PATH). */
  readonly containerdDir: string;
  readonly runc: string;
  /** Directory with the CNI plugins bridge, host-local, loopback. */
  readonly cniDir: string;
  /** Directory with afterlife-wasm-runtime and afterlife-wasm-host. */
  readonly wasmDir: string;
}

/** What teardown needs, recorded in the cluster's state file so an orphan can be reaped too. */
export interface RealNodeState {
  readonly name: string;
  readonly dir: string;
  readonly ip: string;
  readonly subnet: string;
  readonly bridge: string;
  /** cgroup (relative to each hierarchy) holding the node's runtime, shims and pods. */
  readonly cgroup: string;
  readonly kubeletPort: number;
  /**
   * Compiled-module cache the Wasm engine shares across pods. Machine-wide by default, like a
   * node's disk that outlives its pods, so a new cluster's first Wasm pod starts warm.
   */
  readonly wasmCacheDir: string;
}

async function ip(args: readonly string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout;
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim() ?? errorMessage(error);
    throw new AfterlifeClusterError('NODE_FAILED', `ip ${args.join(' ')} failed: ${detail}`, {
      cause: error,
    });
  }
}

/** The first 10.214.N.0/24 no link on the machine uses (called under the host lock). */
async function freeSubnet(): Promise<number> {
  const routes = await ip(['-4', 'route', 'show', 'table', 'all']);
  for (let third = 1; third < 255; third++) {
    if (!routes.includes(`10.214.${third}.0/24`)) return third;
  }
  throw new AfterlifeClusterError('NODE_FAILED', `no free /24 left in ${NODE_POD_CIDR}`);
}

function shortId(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 6);
}

/** Where a node lives and the host names it takes (derived from its directory, so a reaper can find them). */
export function nodeIdentity(clusterDir: string, name: string): { dir: string; bridge: string; cgroup: string } {
  const dir = join(clusterDir, 'nodes', name);
  const id = shortId(dir);
  return { dir, bridge: `afl${id}`, cgroup: `afterlife-${id}` };
}

/**
 * One real Kubernetes node on this machine: containerd (runc, plus the Wasm runtime for the
 * `wasmedge` handler) and kubelet, both in a private mount namespace whose /run, /var/lib and
 * /var/log are throwaway tmpfs, so nothing they mount or write outside the node's directory
 * reaches the host; cgroups under one subtree; pods on a bridge with a /24 of NODE_POD_CIDR.
 */
export class RealNode {
  readonly state: RealNodeState;
  readonly processes: ManagedProcess[];

  private constructor(state: RealNodeState, processes: ManagedProcess[]) {
    this.state = state;
    this.processes = processes;
  }

  static async start(options: RealNodeOptions): Promise<RealNode> {
    const { dir, bridge, cgroup } = nodeIdentity(options.clusterDir, options.name);
    await mkdir(dir, { recursive: true });
    const holder = dir;
    const third = await acquireHost(holder, async () => {
      const subnet = await freeSubnet();
      await ip(['link', 'add', 'name', bridge, 'type', 'bridge']);
      await ip(['addr', 'add', `10.214.${subnet}.1/24`, 'dev', bridge]);
      await ip(['link', 'set', bridge, 'up']);
      return subnet;
    });
    const kubeletPort = await freePort();
    const state: RealNodeState = {
      name: options.name,
      dir,
      ip: `10.214.${third}.1`,
      subnet: `10.214.${third}.0/24`,
      bridge,
      cgroup,
      kubeletPort,
      wasmCacheDir: options.wasmCacheDir ?? join(cacheDir(), 'wasm-compile-cache'),
    };
    await writeFile(join(dir, 'node.json'), `${JSON.stringify(state, null, 2)}\n`);
    const processes: ManagedProcess[] = [];
    try {
      await fenceCidr(NODE_POD_CIDR);
      if (options.forwarding) writeSysctl('net/ipv4/ip_forward', '1');
      for (const child of ['pods', 'runtime', 'shims']) createCgroup(join(cgroup, child));
      const containerd = await startContainerd(state, options);
      processes.push(containerd);
      const kubelet = await startKubelet(state, options, containerd.pid);
      processes.push(kubelet);
      await waitForNodeReady(options, kubelet, containerd);
      return new RealNode(state, processes);
    } catch (error) {
      await teardownNode(state, processes);
      throw error;
    }
  }

  async stop(): Promise<void> {
    await teardownNode(this.state, this.processes);
  }
}

/**
 * Leaves the machine as the node found it: kubelet stopped, every container, shim and runtime
 * process in the node's cgroup killed, its cgroups removed, mounts gone (with the mount
 * namespace; any stragglers unmounted), the bridge deleted, and the host ledger released (the
 * last node restores the sysctls). Safe to call on a partly started or already stopped node.
 */
export async function teardownNode(state: RealNodeState, processes: readonly ManagedProcess[] = []): Promise<void> {
  const kubelet = processes.find((p) => p.spec.name.endsWith('kubelet'));
  if (kubelet) await kubelet.stop(3000);
  // Pods and shims first (they hold the runtime's mounts), then containerd itself.
  await destroyCgroupTree(join(state.cgroup, 'pods'));
  for (const process of [...processes].reverse()) await process.stop(2000);
  await destroyCgroupTree(state.cgroup);
  await unmountBelow(state.dir);
  await ip(['link', 'del', state.bridge]).catch(() => undefined);
  await releaseHost(state.dir);
}

/** Reaps a node from its recorded state (its owner died): same steps, by pid instead of handle. */
export async function reapNode(state: RealNodeState, pids: readonly number[]): Promise<void> {
  for (const pid of pids) if (isAlive(pid)) killGroup(pid, 'SIGKILL');
  await teardownNode(state);
}

function containerdConfig(state: RealNodeState, options: RealNodeOptions): string {
  const c = join(state.dir, 'containerd');
  const runtimeOptions = (binary: string): string =>
    [`BinaryName = '${binary}'`, `Root = '${join(c, 'runc')}'`, `ShimCgroup = '/${state.cgroup}/shims'`].join('\n');
  return `version = 3
root = '${join(c, 'root')}'
state = '${join(c, 'state')}'
disabled_plugins = [
  'io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.blockfile', 'io.containerd.snapshotter.v1.erofs', 'io.containerd.nri.v1.nri',
  'io.containerd.tracing.processor.v1.otlp', 'io.containerd.internal.v1.tracing',
]

[grpc]
  address = '${join(state.dir, 'containerd.sock')}'
[ttrpc]
  address = '${join(state.dir, 'containerd.sock.ttrpc')}'
[debug]
  level = 'info'
[metrics]
  address = ''

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  use_local_image_pull = true
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '${options.sandboxImage}'
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '${join(c, 'certs.d')}'

[plugins.'io.containerd.cri.v1.runtime']
  # The VM's capability bounding set lacks CAP_SYS_RESOURCE: sandboxes cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = false
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
${indent(runtimeOptions(options.binaries.runc), 8)}
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.${WASM_RUNTIME_HANDLER}]
      runtime_type = 'io.containerd.runc.v2'
      pod_annotations = [${WASM_POD_ANNOTATIONS.map((a) => `'${a}'`).join(', ')}]
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.${WASM_RUNTIME_HANDLER}.options]
${indent(runtimeOptions(join(options.binaries.wasmDir, 'afterlife-wasm-runtime')), 8)}
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['${options.binaries.cniDir}']
    conf_dir = '${join(state.dir, 'cni', 'net.d')}'
    max_conf_num = 1
    use_internal_loopback = true

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
`;
}

function indent(text: string, spaces: number): string {
  return text
    .split('\n')
    .map((line) => `${' '.repeat(spaces)}${line}`)
    .join('\n');
}

function cniConfig(state: RealNodeState): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'afterlife',
      plugins: [
        {
          type: 'bridge',
          bridge: state.bridge,
          // No default route and no masquerade: pods reach only the project's own ranges.
          isGateway: false,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: state.subnet, gateway: state.ip }]],
            // Pods reach the other nodes' pods and the Service range (kube-proxy DNATs it on the host).
            routes: [
              { dst: NODE_POD_CIDR, gw: state.ip },
              { dst: SERVICE_CIDR, gw: state.ip },
            ],
            dataDir: join(state.dir, 'cni', 'ipam'),
          },
        },
      ],
    },
    null,
    2,
  );
}

async function startContainerd(state: RealNodeState, options: RealNodeOptions): Promise<ManagedProcess> {
  const c = join(state.dir, 'containerd');
  await mkdir(join(c, 'certs.d', options.registry), { recursive: true });
  await mkdir(join(state.dir, 'cni', 'net.d'), { recursive: true });
  await writeFile(
    join(c, 'certs.d', options.registry, 'hosts.toml'),
    `server = 'http://${options.registry}'\n\n[host.'http://${options.registry}']\n  capabilities = ['pull', 'resolve']\n`,
  );
  await writeFile(join(state.dir, 'cni', 'net.d', '10-afterlife.conflist'), cniConfig(state));
  const config = join(c, 'config.toml');
  await writeFile(config, containerdConfig(state, options));
  // The runtime joins the node's cgroup (so teardown finds every shim and container it forks),
  // then gets private tmpfs over the host paths containerd, runc, CNI and kubelet write to.
  const runtimeCgroup = join(state.cgroup, 'runtime');
  const script = [
    'set -e',
    `if [ -f /sys/fs/cgroup/cgroup.controllers ]; then h=/sys/fs/cgroup; else h=/sys/fs/cgroup/pids; fi; echo $$ > "$h/${runtimeCgroup}/cgroup.procs"`,
    'for d in /run /var/lib /var/log; do mount -t tmpfs -o mode=755 afterlife-node "$d"; done',
    'exec "$@"',
  ].join('\n');
  const containerdProcess = await ManagedProcess.start({
    name: `${state.name}-containerd`,
    command: 'unshare',
    args: [
      '--mount',
      '--propagation',
      'private',
      '--',
      'bash',
      '-c',
      script,
      'containerd',
      options.binaries.containerd,
      '--config',
      config,
    ],
    env: {
      PATH: `${options.binaries.containerdDir}:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: '/root',
      // Read by the Wasm runtime wrapper, which containerd's runc shim runs with this environment.
      AFTERLIFE_RUNC: options.binaries.runc,
      AFTERLIFE_WASM_HOST_DIR: options.binaries.wasmDir,
      AFTERLIFE_WASM_CACHE_DIR: state.wasmCacheDir,
    },
    logFile: join(state.dir, 'containerd.log'),
    cwd: state.dir,
  });
  const socket = join(state.dir, 'containerd.sock');
  await waitFor(`${state.name} containerd socket`, async () => (existsSync(socket) ? true : undefined), {
    timeoutMs: options.timeoutMs,
    intervalMs: 50,
    guard: () => containerdProcess.assertRunning(),
  });
  return containerdProcess;
}

async function startKubelet(
  state: RealNodeState,
  options: RealNodeOptions,
  containerdPid: number,
): Promise<ManagedProcess> {
  const k = join(state.dir, 'kubelet');
  const pki = join(k, 'pki');
  const [client, serving] = await Promise.all([
    issueCertificate(options.ca, pki, 'kubelet-client', {
      commonName: `system:node:${state.name}`,
      organization: 'system:nodes',
      usage: 'client',
    }),
    issueCertificate(options.ca, pki, 'kubelet-serving', {
      commonName: state.name,
      dnsNames: [state.name, 'localhost'],
      ipAddresses: [state.ip, '127.0.0.1'],
      usage: 'server',
    }),
  ]);
  const kubeconfig = join(k, 'kubeconfig');
  await writeFile(
    kubeconfig,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'afterlife', cluster: { server: options.apiServer, 'certificate-authority': options.ca.certFile } },
      ],
      users: [{ name: 'kubelet', user: { 'client-certificate': client.certFile, 'client-key': client.keyFile } }],
      contexts: [{ name: 'kubelet', context: { cluster: 'afterlife', user: 'kubelet' } }],
      'current-context': 'kubelet',
    }),
  );
  const healthzPort = await freePort();
  const config = join(k, 'config.yaml');
  await mkdir(join(k, 'logs'), { recursive: true });
  await writeFile(join(k, 'resolv.conf'), '# pods on this node resolve nothing outside the cluster\n');
  await writeFile(
    config,
    stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: state.ip,
      port: state.kubeletPort,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: options.ca.certFile },
      },
      authorization: { mode: 'Webhook' },
      tlsCertFile: serving.certFile,
      tlsPrivateKeyFile: serving.keyFile,
      // cgroups here are v1 (hybrid); kubelet 1.35 refuses v1 unless told otherwise.
      cgroupDriver: 'cgroupfs',
      failCgroupV1: false,
      cgroupRoot: `/${state.cgroup}/pods`,
      containerRuntimeEndpoint: `unix://${join(state.dir, 'containerd.sock')}`,
      failSwapOn: false,
      // No iptables chains: teardown must leave the host's rules as they were.
      makeIPTablesUtilChains: false,
      resolvConf: join(k, 'resolv.conf'),
      // kube-dns (CoreDNS, when the cluster runs its services) for pods with dnsPolicy ClusterFirst.
      clusterDNS: [CLUSTER_DNS_IP],
      clusterDomain: CLUSTER_DOMAIN,
      podLogsDir: join(k, 'logs'),
      volumePluginDir: join(k, 'volume-plugins'),
      serializeImagePulls: false,
      registerNode: true,
      nodeStatusUpdateFrequency: '4s',
      syncFrequency: '10s',
      // Pod status reaches the apiserver as soon as it changes (default is already event driven).
      evictionHard: {
        'memory.available': '100Mi',
        'nodefs.available': '1%',
        'imagefs.available': '1%',
        'nodefs.inodesFree': '1%',
      },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      enableControllerAttachDetach: true,
      localStorageCapacityIsolation: false,
      shutdownGracePeriod: '0s',
      containerLogMaxSize: '10Mi',
      staticPodPath: '',
    }),
  );
  return ManagedProcess.start({
    name: `${state.name}-kubelet`,
    command: 'nsenter',
    args: [
      `--mount=/proc/${containerdPid}/ns/mnt`,
      '--',
      options.binaries.kubelet,
      `--config=${config}`,
      `--kubeconfig=${kubeconfig}`,
      `--root-dir=${join(k, 'root')}`,
      `--cert-dir=${pki}`,
      `--hostname-override=${state.name}`,
      `--node-ip=${state.ip}`,
      `--node-labels=${REAL_NODE_LABEL}=${state.name},afterlife.dev/wasm=true`,
      '--v=1',
    ],
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' },
    logFile: join(state.dir, 'kubelet.log'),
    cwd: state.dir,
  });
}

async function waitForNodeReady(
  options: RealNodeOptions,
  kubelet: ManagedProcess,
  containerd: ManagedProcess,
): Promise<void> {
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  await waitFor(
    `node ${options.name} Ready`,
    async () => {
      const node = await core.readNode({ name: options.name });
      const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
      if (ready?.status === 'True') return true;
      throw new Error(`Ready=${ready?.status ?? 'missing'}: ${ready?.message ?? ''}`);
    },
    {
      timeoutMs: options.timeoutMs,
      intervalMs: 200,
      guard: () => {
        kubelet.assertRunning();
        containerd.assertRunning();
      },
    },
  );
}
