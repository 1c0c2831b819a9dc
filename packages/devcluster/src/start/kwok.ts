import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { ManagedProcess } from '../process.ts';
import { type WaitOptions, waitFor } from '../wait.ts';
import { componentEnv, type Launch, takePort } from './launcher.ts';

/** kwok assigns fake pod IPs from here; nothing ever connects to them. */
export const KWOK_POD_CIDR = '10.212.0.0/16';
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
/** Taint on kwok nodes: only pods that tolerate it (scale tests) land where nothing runs. */
export const KWOK_NODE_TAINT = { key: KWOK_NODE_ANNOTATION, value: 'fake', effect: 'NoSchedule' } as const;

export interface Kwok {
  readonly process: ManagedProcess;
  readonly ports: Readonly<Record<string, number>>;
}

/** kwok for the nodes annotated `kwok.x-k8s.io/node: fake`, with the Stages in `<stateDir>/kwok.yaml`. */
export async function startKwok(
  launch: Launch,
  input: { binary: string; kwokDir: string; stateDir: string; kubeconfig: string },
): Promise<Kwok> {
  const { kubeconfig } = input;
  const port = await takePort();
  const config = join(input.stateDir, 'kwok.yaml');
  await writeFile(config, await kwokConfigYaml(input.kwokDir));
  const process = await launch(
    'kwok',
    input.binary,
    [
      `--kubeconfig=${kubeconfig}`,
      `--config=${config}`,
      '--manage-all-nodes=false',
      `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
      `--cidr=${KWOK_POD_CIDR}`,
      '--node-ip=10.212.255.254',
      `--server-address=127.0.0.1:${port}`,
      '--node-lease-duration-seconds=40',
    ],
    componentEnv({ KUBECONFIG: kubeconfig }),
  );
  return { process, ports: { kwok: port } };
}

/** `kwok-node-0..count-1`, labelled `type=kwok` and tainted NoSchedule. */
export function kwokNodeObjects(count: number): KubernetesObject[] {
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

export async function waitKwokNodesReady(kubeConfig: KubeConfig, count: number, wait: WaitOptions): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await waitFor(
    'kwok nodes Ready',
    async () => {
      const nodes = await core.listNode({ labelSelector: 'type=kwok' });
      const ready = nodes.items.filter((node) =>
        node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
      return ready.length === count ? true : undefined;
    },
    wait,
  );
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
