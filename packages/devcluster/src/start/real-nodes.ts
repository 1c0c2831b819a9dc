import { RealNode, type RealNodeBinaries, type RealNodeOptions } from '../node.ts';
import type { BinaryResolver } from './binaries.ts';

/** kubelet, containerd, runc and the CNI and Wasm runtime directories; the directories are recorded too. */
export async function realNodeBinaries(bins: BinaryResolver): Promise<RealNodeBinaries> {
  const binaries = {
    kubelet: await bins.bin('kubernetes', 'kubelet'),
    containerd: await bins.bin('containerd', 'containerd'),
    containerdDir: bins.dir('containerd'),
    runc: await bins.bin('runc', 'runc'),
    cniDir: bins.dir('cni'),
    wasmDir: bins.dir('node'),
  };
  // Directories too, so tests can start another node from the same build.
  bins.record('cni-plugins', binaries.cniDir);
  bins.record('afterlife-node', binaries.wasmDir);
  return binaries;
}

/**
 * What every node shares; each gets its name. Forwarding is on when there are several nodes or
 * `routesServices` (kube-proxy DNATs a pod's ClusterIP traffic to another pod: routed, not bridged).
 */
export type RealNodesInput = Omit<RealNodeOptions, 'name' | 'forwarding' | 'wasmCacheDir'> & {
  readonly count: number;
  readonly routesServices: boolean;
};

/** Starts `node-0..count-1` one after the other; `started` sees each as soon as it is Ready. */
export async function startRealNodes(input: RealNodesInput, started: (node: RealNode) => void): Promise<RealNode[]> {
  const nodes: RealNode[] = [];
  for (let index = 0; index < input.count; index++) {
    const node = await RealNode.start({
      name: `node-${index}`,
      clusterDir: input.clusterDir,
      apiServer: input.apiServer,
      ca: input.ca,
      kubeConfig: input.kubeConfig,
      binaries: input.binaries,
      registry: input.registry,
      sandboxImage: input.sandboxImage,
      forwarding: input.count > 1 || input.routesServices,
      timeoutMs: input.timeoutMs,
    });
    started(node);
    nodes.push(node);
  }
  return nodes;
}
