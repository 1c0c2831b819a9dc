import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { errorMessage } from '@afterlife/core';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { AfterlifeClusterError } from '../cluster-error.ts';
import { claimServiceRouting } from '../host.ts';
import { pushStaticBinaryImage } from '../images.ts';
import { applyObjects, kubeRequest } from '../kube.ts';
import { NODE_POD_CIDR, type RealNodeState } from '../node.ts';
import { PACKAGE_ROOT } from '../paths.ts';
import { freePort } from '../ports.ts';
import type { ManagedProcess } from '../process.ts';
import { type WaitOptions, waitFor } from '../wait.ts';
import { CLUSTER_DNS_IP, CLUSTER_DOMAIN, SERVICE_CIDR } from './apiserver.ts';
import { componentEnv, type Launch } from './launcher.ts';

const run = promisify(execFile);

/** The TCP bridge program (src/socket-bridge.ts), run from the build. */
const BRIDGE_PROGRAM = join(PACKAGE_ROOT, 'dist', 'socket-bridge.js');

export interface ClusterServices {
  readonly ports: Readonly<Record<string, number>>;
  readonly coredns: string;
}

export interface ClusterServicesInput {
  readonly kubeProxyBinary: string;
  readonly corednsBinary: string;
  readonly corednsVersion: string;
  readonly kubeconfig: string;
  readonly kubeConfig: KubeConfig;
  readonly stateDir: string;
  /** Port of the API server on 127.0.0.1. */
  readonly apiPort: number;
  /** The node whose bridge carries Service traffic from the machine (node-0). */
  readonly node: RealNodeState;
  readonly registry: string;
  readonly wait: WaitOptions;
}

/**
 * What any cluster gives its pods and that Eventing's data plane and in-cluster components rely
 * on: the `kubernetes` Service reaching the API server, kube-proxy programming every ClusterIP,
 * and cluster DNS (CoreDNS as a pod behind `kube-dns`). The API server stays on loopback; a TCP
 * bridge on the node's bridge address (an address this project creates) carries pods to it.
 */
export async function startClusterServices(launch: Launch, input: ClusterServicesInput): Promise<ClusterServices> {
  const { node } = input;
  await launch('kubernetes-service-bridge', process.execPath, [
    BRIDGE_PROGRAM,
    `tcp:${node.ip}:${input.apiPort}=tcp:127.0.0.1:${input.apiPort}`,
  ]);
  await waitFor('API server reachable on the node address', () => tcpOpen(node.ip, input.apiPort), input.wait);
  await applyObjects(input.kubeConfig, [kubernetesEndpointSlice(node.ip, input.apiPort)]);
  await routeServicesThroughBridge(node);
  const ports = await startKubeProxy(launch, input);
  const coredns = await pushStaticBinaryImage(
    `${input.registry}/afterlife/coredns:${input.corednsVersion}`,
    input.corednsBinary,
    { name: 'coredns' },
  );
  await applyObjects(input.kubeConfig, corednsObjects(coredns.pinned));
  await waitFor('CoreDNS (kube-system/coredns) available', () => deploymentAvailable(input, 'kube-system', 'coredns'), {
    ...input.wait,
    intervalMs: 250,
  });
  return { ports, coredns: coredns.pinned };
}

const IPTABLES_FAMILIES = [
  { save: 'iptables-save', tool: 'iptables', nft: 'ip' },
  { save: 'ip6tables-save', tool: 'ip6tables', nft: 'ip6' },
] as const;
/** Which iptables tables existed before the cluster, so teardown removes only those it created. */
const TABLES_BEFORE_FILE = 'iptables-tables-before.json';

async function iptablesTables(save: string): Promise<string[]> {
  const { stdout } = await run(save, []).catch(() => ({ stdout: '' }));
  return [...stdout.matchAll(/^\*(\w+)$/gm)].map((m) => m[1] ?? '');
}

/** Call before anything of the cluster touches iptables (its nodes' kubelets and CNI do too). */
export async function recordIptablesTables(stateDir: string): Promise<void> {
  const tables: Record<string, string[]> = {};
  for (const family of IPTABLES_FAMILIES) tables[family.nft] = await iptablesTables(family.save);
  await writeFile(join(stateDir, TABLES_BEFORE_FILE), JSON.stringify(tables));
}

/**
 * Leaves the machine's iptables as before kube-proxy: its own `--cleanup` first, then what that
 * keeps (the KUBE-FIREWALL chain and its jumps), then the tables that only exist because it ran
 * and are empty again. Run after kube-proxy stopped, also when its owner died (from the state dir).
 */
export async function cleanupKubeProxy(binary: string, stateDir: string): Promise<void> {
  // Exits 1 for modes whose tables never existed here (ipvs, nftables); what exists is removed.
  await run(binary, ['--cleanup', '--v=0'], { timeout: 30_000 }).catch(() => undefined);
  const before = JSON.parse(await readFile(join(stateDir, TABLES_BEFORE_FILE), 'utf8').catch(() => '{}')) as Record<
    string,
    string[]
  >;
  for (const family of IPTABLES_FAMILIES) {
    for (const table of await iptablesTables(family.save)) {
      const rules = (await run(family.tool, ['-t', table, '-S'])).stdout.split('\n');
      // Each step may race kube-proxy's last sync or its own --cleanup: what is gone already is fine,
      // and what is left is checked below.
      for (const rule of rules.filter((r) => r.startsWith('-A ') && / -j KUBE-/.test(r))) {
        await run(family.tool, ['-t', table, ...rule.replace(/^-A /, '-D ').split(' ')]).catch(() => undefined);
      }
      const chains = rules.filter((r) => r.startsWith('-N KUBE-')).map((r) => r.slice(3));
      // All flushed first: a chain still jumped to from another cannot be deleted.
      for (const chain of chains) await run(family.tool, ['-t', table, '-F', chain]).catch(() => undefined);
      for (const chain of chains) await run(family.tool, ['-t', table, '-X', chain]).catch(() => undefined);
      const left = (await run(family.tool, ['-t', table, '-S'])).stdout.split('\n').filter(Boolean);
      const kept = left.filter((r) => /KUBE-/.test(r));
      if (kept.length > 0) {
        throw new AfterlifeClusterError(
          'TEARDOWN_FAILED',
          `kube-proxy's rules stayed in the ${family.nft} ${table} table: ${kept.join('; ')}`,
        );
      }
      const untouched = left.every((r) => /^-P \S+ ACCEPT$/.test(r));
      if (untouched && !(before[family.nft] ?? []).includes(table)) {
        await run('nft', ['delete', 'table', family.nft, table]).catch((error: unknown) => {
          throw new AfterlifeClusterError(
            'TEARDOWN_FAILED',
            `could not delete the ${family.nft} ${table} table kube-proxy created (is Debian's nftables installed?): ${errorMessage(error)}`,
            { cause: error },
          );
        });
      }
    }
  }
}

/** What a pod with `dnsPolicy: ClusterFirst` gets, for the machine's processes that act as pods (KEDA). */
export async function writeClusterResolvConf(stateDir: string): Promise<string> {
  const file = join(stateDir, 'cluster-resolv.conf');
  await writeFile(
    file,
    `nameserver ${CLUSTER_DNS_IP}\nsearch svc.${CLUSTER_DOMAIN} ${CLUSTER_DOMAIN}\noptions ndots:5\n`,
  );
  return file;
}

/** True once `host:port` accepts a TCP connection (undefined until then, for waitFor). */
export async function tcpOpen(host: string, port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(undefined));
  });
}

/**
 * The API server runs with `--endpoint-reconciler-type=none` (its address is loopback, which may
 * not be an endpoint), so the `kubernetes` Service's endpoints are written here: the bridge.
 */
function kubernetesEndpointSlice(ip: string, port: number): KubernetesObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: 'kubernetes',
      namespace: 'default',
      labels: {
        'kubernetes.io/service-name': 'kubernetes',
        'endpointslice.kubernetes.io/managed-by': 'afterlife-devcluster',
      },
    },
    addressType: 'IPv4',
    endpoints: [{ addresses: [ip], conditions: { ready: true } }],
    ports: [{ name: 'https', port, protocol: 'TCP' }],
  } as KubernetesObject;
}

/**
 * The Service range is fenced `unreachable` on the machine; two more specific routes onto the
 * node's bridge let the machine's own processes (the API server calling a webhook Service, the
 * tests) reach ClusterIPs through kube-proxy's rules. They go with the bridge at teardown, and
 * traffic to an unprogrammed ClusterIP still never leaves the machine.
 */
async function routeServicesThroughBridge(node: RealNodeState): Promise<void> {
  const [base] = SERVICE_CIDR.split('/');
  const [a, b] = (base ?? '').split('.');
  for (const half of [`${a}.${b}.0.0/17`, `${a}.${b}.128.0/17`]) {
    await run('ip', ['route', 'replace', half, 'dev', node.bridge, 'src', node.ip]).catch((error: unknown) => {
      throw new AfterlifeClusterError('NODE_FAILED', `ip route ${half} via ${node.bridge}: ${errorMessage(error)}`, {
        cause: error,
      });
    });
  }
}

async function startKubeProxy(launch: Launch, input: ClusterServicesInput): Promise<Record<string, number>> {
  const healthzPort = await freePort();
  const metricsPort = await freePort();
  const config = join(input.stateDir, 'kube-proxy.yaml');
  await writeFile(
    config,
    stringify({
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig: input.kubeconfig },
      hostnameOverride: input.node.name,
      mode: 'iptables',
      clusterCIDR: NODE_POD_CIDR,
      healthzBindAddress: `127.0.0.1:${healthzPort}`,
      metricsBindAddress: `127.0.0.1:${metricsPort}`,
      // NodePorts only on the node's own address; none on loopback (that would need route_localnet).
      nodePortAddresses: [`${input.node.ip}/32`],
      iptables: {
        // Pods on one bridge reach each other's ClusterIPs without br_netfilter (no sysctl to change).
        masqueradeAll: true,
        localhostNodePorts: false,
        syncPeriod: '30s',
        minSyncPeriod: '0s',
      },
      // Zeros leave the machine's conntrack sysctls alone.
      conntrack: {
        maxPerCore: 0,
        min: 0,
        tcpEstablishedTimeout: '0s',
        tcpCloseWaitTimeout: '0s',
        udpTimeout: '0s',
        udpStreamTimeout: '0s',
      },
    }),
  );
  const proxy: ManagedProcess = await launch(
    'kube-proxy',
    input.kubeProxyBinary,
    [`--config=${config}`, '--v=1'],
    componentEnv(),
  );
  // A detached cluster's starter exits: from now the claim lives as long as kube-proxy does.
  await claimServiceRouting(input.stateDir, proxy.pid);
  await waitFor(
    'kube-proxy /healthz',
    async () => {
      try {
        const response = await fetch(`http://127.0.0.1:${healthzPort}/healthz`, { signal: AbortSignal.timeout(1000) });
        return response.ok ? true : undefined;
      } catch {
        return undefined;
      }
    },
    { ...input.wait, guard: () => proxy.assertRunning() },
  );
  return { 'kube-proxy-healthz': healthzPort, 'kube-proxy-metrics': metricsPort };
}

async function deploymentAvailable(
  input: Pick<ClusterServicesInput, 'kubeConfig'>,
  namespace: string,
  name: string,
): Promise<true | undefined> {
  const deployment = (await kubeRequest(
    input.kubeConfig,
    'GET',
    `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`,
  ).catch(() => undefined)) as { status?: { conditions?: { type: string; status: string }[] } } | undefined;
  const available = deployment?.status?.conditions?.find((c) => c.type === 'Available');
  return available?.status === 'True' ? true : undefined;
}

/** CoreDNS serving `cluster.local` from the API (no upstream: nothing here resolves outside names). */
function corednsObjects(image: string): KubernetesObject[] {
  const labels = { 'k8s-app': 'kube-dns' };
  const corefile = [
    '.:53 {',
    '    errors',
    '    health :8080',
    '    ready :8181',
    `    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {`,
    '        pods insecure',
    '        fallthrough in-addr.arpa ip6.arpa',
    '        ttl 5',
    '    }',
    '    cache 5',
    '    loop',
    '    reload',
    '}',
    '',
  ].join('\n');
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: 'kube-system' } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'system:coredns' },
      rules: [
        { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'system:coredns' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
      subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: 'kube-system' }],
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'coredns', namespace: 'kube-system' },
      data: { Corefile: corefile },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'coredns', namespace: 'kube-system', labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'coredns',
            // CoreDNS itself must not resolve through the Service it serves.
            dnsPolicy: 'Default',
            containers: [
              {
                name: 'coredns',
                image,
                args: ['-conf', '/etc/coredns/Corefile'],
                ports: [
                  { name: 'dns', containerPort: 53, protocol: 'UDP' },
                  { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                ],
                readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 1 },
                livenessProbe: { httpGet: { path: '/health', port: 8080 }, periodSeconds: 10 },
                resources: { requests: { cpu: '50m', memory: '32Mi' } },
                volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'coredns' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system', labels },
      spec: {
        clusterIP: CLUSTER_DNS_IP,
        selector: labels,
        ports: [
          { name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, targetPort: 53, protocol: 'TCP' },
        ],
      },
    },
  ] as KubernetesObject[];
}
