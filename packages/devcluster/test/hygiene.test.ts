import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { cgroupPids, NODE_SYSCTLS, readSysctl } from '../src/host.ts';
import { DevCluster, reapOrphanClusters, releaseNetnsDir, waitFor } from '../src/index.ts';
import { nodeIdentity, RealNode } from '../src/node.ts';
import { PACKAGE_ROOT } from '../src/paths.ts';

const run = promisify(execFile);

/** Host paths kubelet, containerd, runc and CNI write to by default (none may appear). */
const HOST_PATHS = [
  '/var/lib/kubelet',
  '/var/lib/containerd',
  '/var/lib/cni',
  '/var/log/pods',
  '/var/log/containers',
  '/run/containerd',
  '/run/netns',
  '/run/runc',
  '/etc/cni',
  '/opt/cni',
  '/usr/libexec/kubernetes',
];

interface HostSnapshot {
  /** Node processes of the cluster under test (its state dir is on their command lines). */
  readonly processes: string[];
  readonly mounts: string[];
  /** Top-level cgroups in every hierarchy. */
  readonly cgroups: string[];
  readonly netns: string;
  /** Links other than pods' veths (other clusters' pods come and go while this test runs). */
  readonly links: string[];
  /** veths whose master is this cluster's node bridge. */
  readonly nodeVeths: string[];
  readonly iptables: string;
  readonly sysctls: Record<string, string>;
  readonly paths: string[];
}

function clusterDir(name: string): string {
  return join(process.env.AFTERLIFE_CACHE ?? join(process.env.HOME ?? '/root', '.cache', 'afterlife'), 'run', name);
}

/**
 * What the machine looks like, scoped to one cluster where other clusters (the shared test
 * cluster) may change the same thing meanwhile. Machine-wide state (mounts, iptables, sysctls,
 * host paths, named netns) is compared whole.
 */
async function snapshot(cluster: string): Promise<HostSnapshot> {
  const dir = clusterDir(cluster);
  const { bridge } = nodeIdentity(dir, 'node-0');
  const processes: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(`${dir}/`)) processes.push(cmdline.trim());
    } catch {
      // Exited while we looked.
    }
  }
  const cgroups = readdirSync('/sys/fs/cgroup').flatMap((hierarchy) => {
    try {
      return readdirSync(join('/sys/fs/cgroup', hierarchy), { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => `${hierarchy}/${entry.name}`);
    } catch {
      return [];
    }
  });
  const linkLines = (await run('ip', ['-o', 'link', 'show'])).stdout.split('\n').filter(Boolean);
  const linkName = (line: string) => line.split(':')[1]?.trim().split('@')[0] ?? '';
  const iptables = await run('iptables-save').then(
    ({ stdout }) => stdout.replace(/^#.*$/gm, '').replace(/\[\d+:\d+\]/g, ''),
    () => 'iptables-save unavailable',
  );
  return {
    processes: processes.sort(),
    mounts: readFileSync('/proc/self/mounts', 'utf8').split('\n').sort(),
    cgroups: cgroups.sort(),
    netns: (await run('ip', ['netns', 'list'])).stdout,
    links: linkLines
      .map(linkName)
      .filter((name) => name && !name.startsWith('veth'))
      .sort(),
    nodeVeths: linkLines.filter((line) => line.includes(`master ${bridge} `)).map(linkName),
    iptables,
    sysctls: Object.fromEntries(NODE_SYSCTLS.map((key) => [key, readSysctl(key)])),
    paths: HOST_PATHS.filter((path) => existsSync(path)),
  };
}

function assertSameHost(before: HostSnapshot, after: HostSnapshot): void {
  assert.deepEqual(after.processes, [], 'no node process is left');
  assert.deepEqual(after.mounts, before.mounts, 'no mount is left');
  assert.deepEqual(after.cgroups, before.cgroups, 'no cgroup is left');
  assert.equal(after.netns, before.netns, 'no network namespace is left');
  assert.deepEqual(after.links, before.links, 'no bridge is left');
  assert.deepEqual(after.nodeVeths, [], 'no pod veth is left');
  assert.equal(after.iptables, before.iptables, 'iptables rules are as they were');
  assert.deepEqual(after.sysctls, before.sysctls, 'sysctls are restored (or still held by another live cluster)');
  assert.deepEqual(after.paths, before.paths, 'nothing was created outside the state dir');
}

const MINIMAL = { keda: false, knative: false, nodes: 0, realNodes: 1 } as const;

/** Runs a pod on the cluster's real node so teardown has containers, mounts and veths to undo. */
async function runAPod(cluster: DevCluster): Promise<void> {
  const core = cluster.kubeConfig().makeApiClient(CoreV1Api);
  await waitFor(
    'default ServiceAccount',
    async () => (await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' })) && true,
    { timeoutMs: 30_000 },
  );
  await core.createNamespacedPod({
    namespace: 'default',
    body: {
      metadata: { name: 'hygiene' },
      spec: { containers: [{ name: 'echo', image: cluster.state.images.echoNative ?? '' }] },
    },
  });
  await waitFor(
    'hygiene pod Running',
    async () =>
      (await core.readNamespacedPod({ name: 'hygiene', namespace: 'default' })).status?.phase === 'Running'
        ? true
        : undefined,
    { timeoutMs: 90_000, intervalMs: 200 },
  );
}

describe('devcluster: real-node teardown leaves the host as it found it', function () {
  this.timeout(300_000);
  // Test hosts made with `ip netns add` leave /run/netns mounted until a cluster stops (and
  // releases it); start each test from the released state so before and after compare.
  beforeEach(() => releaseNetnsDir());

  it('stop() after a running pod: no process, mount, cgroup, netns, link, iptables rule, sysctl or host path left', async () => {
    const name = `hygiene-${process.pid}`;
    const before = await snapshot(name);
    const cluster = await DevCluster.start({ ...MINIMAL, name });
    try {
      await runAPod(cluster);
      const during = await snapshot(name);
      assert.ok(
        during.processes.some((p) => p.includes('kubelet')),
        'kubelet ran',
      );
      assert.ok(during.nodeVeths.length > 0, 'the pod had a veth on the node bridge');
    } finally {
      await cluster.stop();
    }
    assertSameHost(before, await snapshot(name));
  });

  it('the orphan reaper undoes a cluster whose owner was SIGKILLed', async () => {
    const name = `hygiene-orphan-${process.pid}`;
    const before = await snapshot(name);
    // An owner process that starts a cluster with a running pod and is then killed without a word.
    const code = [
      `import { DevCluster } from ${JSON.stringify(join(PACKAGE_ROOT, 'src', 'index.ts'))};`,
      `const cluster = await DevCluster.start(${JSON.stringify({ ...MINIMAL, name })});`,
      `process.stdout.write('READY ' + JSON.stringify(cluster.state.images) + '\\n');`,
      'setInterval(() => undefined, 1000);',
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: PACKAGE_ROOT,
    });
    let output = '';
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('READY ')) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.once('exit', (code) => reject(new Error(`owner exited (${code}) before the cluster was up:\n${output}`)));
    });
    try {
      await Promise.race([
        ready,
        sleep(240_000).then(() => Promise.reject(new Error(`no cluster after 240 s:\n${output}`))),
      ]);
      const during = await snapshot(name);
      assert.ok(
        during.processes.some((p) => p.includes('kubelet')),
        'kubelet ran',
      );
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((resolve) =>
      child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(null),
    );
    const reaped = await reapOrphanClusters();
    assert.ok(reaped.includes(name), `reaped ${reaped.join(', ')}`);
    assertSameHost(before, await snapshot(name));
  });

  it('exec interrupted (SIGTERM) while the cluster starts: it finishes starting, stops everything, exits 143', async () => {
    const name = `hygiene-term-${process.pid}`;
    const before = await snapshot(name);
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/main.ts',
        'exec',
        '--name',
        name,
        '--no-keda',
        '--no-knative',
        '--nodes',
        '0',
        '--',
        'sleep',
        '120',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: PACKAGE_ROOT },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Interrupted once the control plane runs (etcd's data dir exists), long before the cluster is up.
    await waitFor('the start under way', async () => existsSync(join(clusterDir(name), 'etcd')) || undefined, {
      timeoutMs: 120_000,
      intervalMs: 20,
    });
    child.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(240_000).then(() => 'hung' as const)]);
    if (code === 'hung') child.kill('SIGKILL');
    assert.equal(code, 143, output);
    assert.ok(!existsSync(clusterDir(name)), 'its state dir is gone');
    assertSameHost(before, await snapshot(name));
  });

  it('a kubelet that cannot start names the cause with its last log lines, and the node is undone', async () => {
    const cluster = await DevCluster.start({ ...MINIMAL, name: `hygiene-bad-${process.pid}` });
    const dir = await mkdtemp(join(tmpdir(), 'afterlife-bad-kubelet-'));
    try {
      const before = await snapshot(cluster.state.name);
      const fakeKubelet = join(dir, 'kubelet');
      await writeFile(
        fakeKubelet,
        '#!/bin/sh\necho "E1201 kubelet: failed to run Kubelet: invalid configuration: cgroup driver" >&2\nexit 1\n',
      );
      await chmod(fakeKubelet, 0o755);
      const state = cluster.state;
      const pki = join(state.stateDir, 'pki');
      const binaries = {
        kubelet: fakeKubelet,
        containerd: state.binaries.containerd ?? '',
        containerdDir: dirname(state.binaries.containerd ?? ''),
        runc: state.binaries.runc ?? '',
        cniDir: state.binaries['cni-plugins'] ?? '',
        wasmDir: state.binaries['afterlife-node'] ?? '',
      };
      await assert.rejects(
        RealNode.start({
          name: 'node-bad',
          clusterDir: state.stateDir,
          apiServer: state.apiServer,
          ca: { certFile: join(pki, 'ca.crt'), keyFile: join(pki, 'ca.key') },
          kubeConfig: cluster.kubeConfig(),
          binaries,
          registry: state.registry,
          sandboxImage: state.images.pause ?? '',
          forwarding: false,
          timeoutMs: 30_000,
        }),
        (error: Error) => {
          assert.match(error.message, /node-bad-kubelet exited early/);
          assert.match(error.message, /invalid configuration: cgroup driver/);
          return true;
        },
      );
      const after = await snapshot(cluster.state.name);
      assert.deepEqual(after.links, before.links, 'the failed node removed its bridge');
      assert.deepEqual(after.cgroups, before.cgroups, 'the failed node removed its cgroups');
    } finally {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('devcluster: cgroup walk during teardown', () => {
  it('skips a container cgroup removed while it walks (runc deletes them concurrently)', async () => {
    // A hierarchy whose walk finds a directory without cgroup.procs: the state right after runc
    // removed it. Before the fix this threw ENOENT and failed `conformance --local`'s teardown.
    const hierarchy = await mkdtemp(join(tmpdir(), 'afterlife-cgroup-'));
    try {
      await mkdir(join(hierarchy, 'pods', 'pod-a', 'gone'), { recursive: true });
      await writeFile(join(hierarchy, 'pods', 'cgroup.procs'), '');
      await writeFile(join(hierarchy, 'pods', 'pod-a', 'cgroup.procs'), '4242\n4243\n');
      assert.deepEqual(cgroupPids('pods', [hierarchy]).sort(), [4242, 4243]);
      assert.deepEqual(cgroupPids('absent', [hierarchy]), []);
    } finally {
      await rm(hierarchy, { recursive: true, force: true });
    }
  });
});
