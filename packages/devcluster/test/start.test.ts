import assert from 'node:assert/strict';
import { AfterlifeClusterError, readVersions } from '../src/index.ts';
import type { RealNode } from '../src/node.ts';
import type { ManagedProcess } from '../src/process.ts';
import { startControllerManager } from '../src/start/controllers.ts';
import { planStart } from '../src/start/plan.ts';
import { assembleState } from '../src/state.ts';

const processOf = (name: string, pid: number) => ({ spec: { name }, pid }) as unknown as ManagedProcess;

describe('devcluster start plan and state (no cluster)', () => {
  it('builds every component by default, in build order', () => {
    const plan = planStart({});
    assert.deepEqual(
      { ...plan, components: [...plan.components] },
      {
        keda: true,
        knative: true,
        knativeControllers: false,
        registry: true,
        clusterServices: true,
        kwokNodes: 2,
        realNodes: 1,
        components: [
          'kubernetes',
          'etcd',
          'kwok',
          'keda',
          'knative-config',
          'knative',
          'registry',
          'oras',
          'containerd',
          'runc',
          'cni',
          'coredns',
          'helm',
        ],
      },
    );
  });

  it('runs cluster services only with a real node, and refuses them asked for without one', () => {
    assert.equal(planStart({ realNodes: 0 }).clusterServices, false);
    assert.equal(planStart({ clusterServices: false }).components.includes('coredns'), false);
    assert.throws(
      () => planStart({ realNodes: 0, clusterServices: true }),
      (error: Error & { code?: string }) => error.code === 'OPTIONS_INVALID' && /real node/.test(error.message),
    );
  });

  it('builds only the control plane for a minimal cluster, and no Knative controllers without Knative', () => {
    const minimal = planStart({ keda: false, knative: false, registry: false, realNodes: 0, nodes: 1 });
    assert.deepEqual([...minimal.components], ['kubernetes', 'etcd', 'kwok', 'helm']);
    assert.equal(minimal.kwokNodes, 1);
    assert.equal(planStart({ knative: false, knativeControllers: true }).knativeControllers, false);
    assert.deepEqual(
      [...planStart({ knativeControllers: true, realNodes: 0 }).components],
      [
        'kubernetes',
        'etcd',
        'kwok',
        'keda',
        'knative-config',
        'knative',
        'knative-networking',
        'registry',
        'oras',
        'helm',
      ],
    );
  });

  it('refuses real nodes without the registry they pull from', () => {
    assert.throws(
      () => planStart({ registry: false }),
      (error: unknown) => error instanceof AfterlifeClusterError && error.code === 'OPTIONS_INVALID',
    );
  });

  it('assembles the state: control-plane pids in start order, then the nodes', () => {
    const nodeState = {
      name: 'node-0',
      dir: '/state/nodes/node-0',
      ip: '10.214.1.1',
      subnet: '10.214.1.0/24',
      bridge: 'afl000000',
      cgroup: 'afterlife-000000',
      kubeletPort: 4,
      wasmCacheDir: '/cache',
    };
    const node = { state: nodeState, processes: [processOf('node-0-containerd', 21), processOf('node-0-kubelet', 22)] };
    const timings = { binaries: 1, etcd: 0.5 };
    const state = assembleState({
      name: 'n',
      stateDir: '/state',
      kubeconfig: '/state/kubeconfig',
      apiServer: 'https://127.0.0.1:2',
      registry: '127.0.0.1:3',
      ports: { etcd: 1, 'kube-apiserver': 2 },
      processes: [processOf('etcd', 11), processOf('kube-apiserver', 12)],
      nodes: [node as unknown as RealNode],
      binaries: { etcd: '/bin/etcd' },
      versions: readVersions(),
      detached: false,
      timings,
      images: { pause: '127.0.0.1:3/afterlife/pause:1' },
    });
    assert.deepEqual(Object.entries(state.pids), [
      ['etcd', 11],
      ['kube-apiserver', 12],
      ['node-0-containerd', 21],
      ['node-0-kubelet', 22],
    ]);
    assert.deepEqual(state.realNodes, [nodeState]);
    assert.equal(state.ownerPid, process.pid);
    assert.ok(!Number.isNaN(Date.parse(state.startedAt)));
    // A copy: later phases of the caller cannot change what was written.
    assert.notEqual(state.timings, timings);
    assert.deepEqual(state.timings, timings);
  });
});

describe('kube-controller-manager flags (no cluster)', () => {
  const launched = async (hpaSyncPeriod: string): Promise<string[]> => {
    let captured: string[] = [];
    const launch = async (_name: string, _command: string, args: string[]) => {
      captured = args;
      return processOf('kube-controller-manager', 1);
    };
    const keyPair = { certFile: '/pki/ca.crt', keyFile: '/pki/ca.key' };
    const pki = { ca: keyPair, serviceAccount: { privateKeyFile: '/pki/sa.key', publicKeyFile: '/pki/sa.pub' } };
    await startControllerManager(launch, {
      binary: '/bin/kube-controller-manager',
      stateDir: '/state',
      kubeconfig: '/state/kubeconfig',
      pki: pki as unknown as Parameters<typeof startControllerManager>[1]['pki'],
      hpaSyncPeriod,
    });
    return captured;
  };

  it('syncs HPAs at the period asked for: 5 s by default for tests, 15 s for the scale bench', async () => {
    assert.ok((await launched('5s')).includes('--horizontal-pod-autoscaler-sync-period=5s'));
    const bench = await launched('15s');
    assert.ok(bench.includes('--horizontal-pod-autoscaler-sync-period=15s'));
    assert.equal(bench.filter((arg) => arg.startsWith('--horizontal-pod-autoscaler-sync-period')).length, 1);
  });
});
