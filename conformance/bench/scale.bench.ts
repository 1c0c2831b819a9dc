// Operating at scale: N opted-in Knative Services, all at zero, on the local cluster with the real
// Knative controllers, the Afterlife autoscaler, gateway and scaler, and KEDA; for N = 1, 100,
// 1,000 (`BENCH_SCALE_COUNTS`) in one run, the Services added step by step. For each N: the time
// until every revision is Ready at 0; RSS and CPU of the gateway, scaler, autoscaler (and KEDA's
// operator, for reference) while idle; KEDA's calls to the scaler per second and their p99; one
// cold start (first event → reply, traced) of a function among the N, against the same at N = 1.
// The idle functions never start a pod (`initial-scale: 0`, which Knative allows once
// `config-autoscaler` has `allow-zero-initial-scale`); the function under test runs on the real node.
// Needs root (a real node) and the cached binaries, like the tests.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { functionService, kubeRequest } from '@afterlife/core';
import { AFTERLIFE_NAMESPACE, applyObjects } from '@afterlife/devcluster';
import { type BenchRow, benchRow, writeBenchResult } from '@afterlife/devcluster/testing';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { formatTrace } from '../src/trace.ts';
import { print, tracedColdStart, withBenchStack } from './stack.ts';

const COUNTS = (process.env.BENCH_SCALE_COUNTS ?? '1,100,1000').split(',').map(Number);
const IDLE_SECONDS = Number(process.env.BENCH_SCALE_IDLE_SECONDS ?? 30);
const CREATE_CONCURRENCY = 8;
/** Cold starts per N (`BENCH_SCALE_COLD_STARTS`); the median is reported. */
const COLD_STARTS = Number(process.env.BENCH_SCALE_COLD_STARTS ?? 3);
/** KEDA's `pollingInterval` for every ScaledObject of the bench (`BENCH_SCALE_POLLING_SECONDS`). */
const POLLING_INTERVAL_SECONDS = Number(process.env.BENCH_SCALE_POLLING_SECONDS ?? 30);
/** kube-controller-manager's HPA sync period for the bench (`BENCH_SCALE_HPA_SYNC_PERIOD`). */
const HPA_SYNC_PERIOD = process.env.BENCH_SCALE_HPA_SYNC_PERIOD ?? '15s';
const NAMESPACE = 'bench-scale';
const UNDER_TEST = 'cold';
/** What is measured: the pods Afterlife ships (chart components, one replica each), then KEDA's operator process. */
const COMPONENTS = ['afterlife-gateway', 'afterlife-scaler', 'afterlife-autoscaler', 'keda-operator'] as const;
const SHIPPED = COMPONENTS.slice(0, 3);
type Measured = (typeof COMPONENTS)[number];
const CLOCK_TICKS_PER_SECOND = 100;
/** The `afterlife` CLI, built (`pnpm run build`). */
const AFTERLIFE_CLI = new URL('../../packages/cli/dist/main.js', import.meta.url).pathname;

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 1000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(intervalMs);
  }
}

interface Usage {
  rssBytes: number;
  cpuTicks: number;
}

/**
 * RSS (bytes) and CPU time (ticks) of what each component runs: a chart component's pod
 * processes (the host processes in the pod's cgroup, `pod<uid>` in the path) or a process
 * group (KEDA's operator runs as a process here).
 */
/** A chart component's pod (with its /metrics through the pod proxy), or a process group. */
interface Target {
  readonly podUid?: string;
  readonly metricsPath?: string;
  readonly groupLeader?: number;
}

/** The port serving each chart component's /metrics. */
const METRICS_PORT: Partial<Record<Measured, string>> = {
  'afterlife-gateway': 'admin',
  'afterlife-scaler': 'metrics',
  'afterlife-autoscaler': 'admin',
};

interface Heap {
  /** Live objects. */
  readonly used: number;
  /** What V8 has committed for its heap. */
  readonly committed: number;
}

/** V8's heap of a chart component (its /metrics): what of the RSS is live objects, what V8 keeps besides. */
async function heapOf(kubeConfig: KubeConfig, target: Target): Promise<Heap> {
  if (target.metricsPath === undefined) return { used: Number.NaN, committed: Number.NaN };
  const text = String(await kubeRequest(kubeConfig, 'GET', target.metricsPath));
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN);
  return {
    used: value(/^afterlife_nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\d+)/m),
    committed: value(/^afterlife_nodejs_heap_size_total_bytes(?:\{[^}]*\})? (\d+)/m),
  };
}

/** Every host process now: its pid, command, process group and CPU time so far (`/proc/<pid>/stat`). */
function* hostProcesses(): Generator<{ pid: string; command: string; group: number; cpuTicks: number }> {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // The process ended while being read.
    }
    // Fields after the parenthesised command: state ppid pgrp … utime(14) stime(15) … rss(24).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    yield {
      pid,
      command: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
      group: Number(fields[2]),
      cpuTicks: Number(fields[11]) + Number(fields[12]),
    };
  }
}

function usageOf(targets: ReadonlyMap<Measured, Target>): Map<Measured, Usage> {
  const result = new Map<Measured, Usage>([...targets.keys()].map((name) => [name, { rssBytes: 0, cpuTicks: 0 }]));
  for (const { pid, group, cpuTicks } of hostProcesses()) {
    try {
      let cgroups: string | undefined;
      for (const [name, target] of targets) {
        let matches = target.groupLeader !== undefined && group === target.groupLeader;
        if (!matches && target.podUid) {
          cgroups ??= readFileSync(`/proc/${pid}/cgroup`, 'utf8');
          matches =
            cgroups.includes(`pod${target.podUid}`) || cgroups.includes(`pod${target.podUid.replaceAll('-', '_')}`);
        }
        if (!matches) continue;
        const usage = result.get(name);
        if (!usage) continue;
        usage.cpuTicks += cpuTicks;
        const rss = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        usage.rssBytes += Number(rss?.[1] ?? 0) * 1024;
        break;
      }
    } catch {
      // The process ended while being read.
    }
  }
  return result;
}

/**
 * CPU time (ticks) of every host process but this one, summed per command name, and the host's
 * busy and total time (`/proc/stat`, ticks over all cores): where the machine's CPU went.
 */
function cpuByCommand(): { byCommand: Map<string, number>; busy: number; total: number } {
  const byCommand = new Map<string, number>();
  for (const { pid, command: name, cpuTicks } of hostProcesses()) {
    if (Number(pid) === process.pid) continue;
    // Node.js names its main thread, which the kernel shows as the command: here, the Afterlife pods.
    const command = name === 'MainThread' ? 'node (Afterlife pods)' : name;
    byCommand.set(command, (byCommand.get(command) ?? 0) + cpuTicks);
  }
  const times = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = times.slice(0, 8).reduce((sum, value) => sum + value, 0);
  const idle = (times[3] ?? 0) + (times[4] ?? 0);
  return { byCommand, busy: total - idle, total };
}

/** What `cpuByCommand` counted between two reads: the host's busy share and the top commands' CPU seconds. */
function cpuBetween(
  before: ReturnType<typeof cpuByCommand>,
  after: ReturnType<typeof cpuByCommand>,
): { busyShare: number; top: { command: string; seconds: number }[] } {
  const top = [...after.byCommand]
    .map(([command, ticks]) => ({
      command,
      seconds: (ticks - (before.byCommand.get(command) ?? 0)) / CLOCK_TICKS_PER_SECOND,
    }))
    .filter((entry) => entry.seconds > 0)
    .sort((a, b) => b.seconds - a.seconds);
  return { busyShare: (after.busy - before.busy) / Math.max(1, after.total - before.total), top };
}

/**
 * The API server's requests so far (`apiserver_request_total`), per verb and resource
 * (`verb group/resource/subresource`): which kinds of requests the N functions cost it.
 */
async function apiServerRequests(kubeConfig: KubeConfig): Promise<Map<string, number>> {
  const text = String(await kubeRequest(kubeConfig, 'GET', '/metrics'));
  const requests = new Map<string, number>();
  for (const match of text.matchAll(/^apiserver_request_total\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries(
      [...(match[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((label) => [label[1] ?? '', label[2] ?? '']),
    );
    const resource = [labels.group || 'core', labels.resource, labels.subresource].filter(Boolean).join('/');
    const key = `${labels.verb} ${resource}`;
    requests.set(key, (requests.get(key) ?? 0) + Number(match[2]));
  }
  return requests;
}

/** The scaler's unary RPC counts and latency histogram (from its /metrics). */
async function scalerRpcs(
  metricsUrl: string,
): Promise<{ calls: number; pushes: number; buckets: Map<number, number> }> {
  const text = await (await fetch(new URL('/metrics', metricsUrl))).text();
  let calls = 0;
  let pushes = 0;
  const buckets = new Map<number, number>();
  for (const line of text.split('\n')) {
    const bucket = /^afterlife_scaler_grpc_request_duration_seconds_bucket\{.*le="([^"]+)".*\} (\d+)$/.exec(line);
    if (bucket) {
      const le = bucket[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(bucket[1]);
      buckets.set(le, (buckets.get(le) ?? 0) + Number(bucket[2]));
    }
    const count = /^afterlife_scaler_grpc_request_duration_seconds_count\{.*\} (\d+)$/.exec(line);
    if (count) calls += Number(count[1]);
    const push = /^afterlife_scaler_stream_is_active_pushes_total\{.*\} (\d+)$/.exec(line);
    if (push) pushes += Number(push[1]);
  }
  return { calls, pushes, buckets };
}

/** The smallest bucket bound holding 99 % of the calls between two histograms (ms). */
function p99BoundMs(before: Map<number, number>, after: Map<number, number>): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Number.POSITIVE_INFINITY) ?? 0) - (before.get(Number.POSITIVE_INFINITY) ?? 0);
  if (total <= 0) return Number.NaN;
  for (const le of bounds) {
    if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= 0.99 * total) return le * 1000;
  }
  return Number.NaN;
}

/** What a Service turns into, in the order the controllers make it: kind → API path in the bench namespace. */
const PIPELINE: readonly (readonly [string, string])[] = [
  ['Service (Knative)', '/apis/serving.knative.dev/v1/namespaces/NS/services'],
  ['Configuration', '/apis/serving.knative.dev/v1/namespaces/NS/configurations'],
  ['Revision', '/apis/serving.knative.dev/v1/namespaces/NS/revisions'],
  ['Deployment', '/apis/apps/v1/namespaces/NS/deployments'],
  ['ReplicaSet', '/apis/apps/v1/namespaces/NS/replicasets'],
  ['PodAutoscaler', '/apis/autoscaling.internal.knative.dev/v1alpha1/namespaces/NS/podautoscalers'],
  ['ServerlessService', '/apis/networking.internal.knative.dev/v1alpha1/namespaces/NS/serverlessservices'],
  ['ScaledObject', '/apis/keda.sh/v1alpha1/namespaces/NS/scaledobjects'],
  ['HorizontalPodAutoscaler', '/apis/autoscaling/v2/namespaces/NS/horizontalpodautoscalers'],
];

interface Listed {
  metadata: { creationTimestamp?: string };
  status?: { conditions?: { type: string; status: string; lastTransitionTime?: string }[] };
}

/**
 * Where the time to "all Ready at 0" goes: for each kind the Services turn into, when (seconds after
 * `startedAt`) the last one was created and the last one's Ready turned True (apiserver timestamps,
 * one-second granularity), so the slowest stage of the pipeline shows.
 */
async function pipelineTimes(
  kubeConfig: KubeConfig,
  startedAt: number,
): Promise<{ kind: string; count: number; lastCreatedS: number; lastReadyS: number | undefined }[]> {
  const rows = [];
  for (const [kind, path] of PIPELINE) {
    const list = (await kubeRequest(kubeConfig, 'GET', path.replace('NS', NAMESPACE))) as { items: Listed[] };
    const seconds = (stamp: string | undefined) => (stamp ? (Date.parse(stamp) - startedAt) / 1000 : Number.NaN);
    const created = list.items.map((item) => seconds(item.metadata.creationTimestamp));
    const ready = list.items
      .map((item) => item.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True'))
      .filter((c) => c !== undefined)
      .map((c) => seconds(c.lastTransitionTime))
      // KEDA's conditions carry no transition time.
      .filter(Number.isFinite);
    rows.push({
      kind,
      count: list.items.length,
      lastCreatedS: Math.max(...created),
      lastReadyS: ready.length > 0 ? Math.max(...ready) : undefined,
    });
  }
  return rows;
}

/** Per log file of the cluster's processes: how often client-go throttled itself (client-go logs waits over 1 s at any level, at most one line per interval: a lower bound). */
function clientThrottling(
  logDir: string,
  offsets: Map<string, number>,
): Map<string, { waits: number; longestS: number }> {
  const result = new Map<string, { waits: number; longestS: number }>();
  for (const file of readdirSync(logDir)) {
    if (!file.endsWith('.log')) continue;
    const text = readFileSync(join(logDir, file), 'utf8');
    const from = offsets.get(file) ?? 0;
    offsets.set(file, text.length);
    let waits = 0;
    let longestS = 0;
    for (const match of text
      .slice(from)
      .matchAll(/(?:Waited for |delay=\\?")([\d.]+)(ms|s)\b[^\n]*client-side throttling/g)) {
      waits += 1;
      longestS = Math.max(longestS, Number(match[1]) / (match[2] === 'ms' ? 1000 : 1));
    }
    if (waits > 0) result.set(file.replace(/\.log$/, ''), { waits, longestS });
  }
  return result;
}

function knativeService(name: string, image: string, annotations: Record<string, string>): KubernetesObject {
  return functionService({
    name,
    namespace: NAMESPACE,
    image,
    // Polled every 30 s (KEDA's own default): activation is pushed, so this costs no cold start.
    annotations: {
      'afterlife.dev/cooldown-seconds': '3',
      'afterlife.dev/polling-interval-seconds': String(POLLING_INTERVAL_SECONDS),
      ...annotations,
    },
  }) as KubernetesObject;
}

await withBenchStack(
  'bench-scale',
  async (local) => {
    const { kubeConfig } = local;
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    const apps = kubeConfig.makeApiClient(AppsV1Api);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const kedaPid = local.cluster.state.pids['keda-operator'];
    if (kedaPid === undefined) throw new Error('no keda-operator process in the cluster');
    /** Each component's pod (one replica each in this bench) or process, read again per N (pods do not move). */
    const targets = async (): Promise<Map<Measured, Target>> => {
      const map = new Map<Measured, Target>([['keda-operator', { groupLeader: kedaPid }]]);
      for (const name of SHIPPED) {
        const component = name.replace('afterlife-', '');
        const pods = await core.listNamespacedPod({
          namespace: AFTERLIFE_NAMESPACE,
          labelSelector: `app.kubernetes.io/component=${component}`,
        });
        const pod = pods.items.find((p) => p.status?.phase === 'Running');
        const uid = pod?.metadata?.uid;
        const port = pod?.spec?.containers
          .flatMap((c) => c.ports ?? [])
          .find((p) => p.name === METRICS_PORT[name])?.containerPort;
        if (!uid || !port) throw new Error(`no running ${component} pod with a ${METRICS_PORT[name]} port`);
        map.set(name, {
          podUid: uid,
          metricsPath: `/api/v1/namespaces/${AFTERLIFE_NAMESPACE}/pods/${pod?.metadata?.name}:${port}/proxy/metrics`,
        });
      }
      return map;
    };
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
    // What an operator with many mostly idle functions sets: revisions may start at zero.
    await applyObjects(kubeConfig, [
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'config-autoscaler', namespace: 'knative-serving' },
        data: { 'allow-zero-initial-scale': 'true' },
      } as KubernetesObject,
    ]);
    const create = (object: KubernetesObject) =>
      custom.createNamespacedCustomObject({
        group: 'serving.knative.dev',
        version: 'v1',
        namespace: NAMESPACE,
        plural: 'services',
        body: object,
      });
    /**
     * When every revision is Ready and its Deployment at 0: the epoch ms of the last revision's
     * Ready transition (the API server's clock, so the poll interval does not blur it), else undefined.
     */
    const revisionsReadyAtZero = async (expected: number): Promise<number | undefined> => {
      const [revisions, deployments] = await Promise.all([
        custom.listNamespacedCustomObject({
          group: 'serving.knative.dev',
          version: 'v1',
          namespace: NAMESPACE,
          plural: 'revisions',
        }) as Promise<{ items: Listed[] }>,
        apps.listNamespacedDeployment({ namespace: NAMESPACE }),
      ]);
      const ready = revisions.items
        .map((r) => r.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True'))
        .filter((c) => c !== undefined);
      const atZero = deployments.items.filter((d) => (d.spec?.replicas ?? 1) === 0).length;
      if (ready.length !== expected || atZero !== expected) return undefined;
      return Math.max(...ready.map((c) => Date.parse(c.lastTransitionTime ?? '') || Date.now()));
    };

    print(
      `scale bench: N = ${COUNTS.join(', ')}; KEDA pollingInterval ${POLLING_INTERVAL_SECONDS} s; ` +
        `HPA sync period ${HPA_SYNC_PERIOD}; ${COLD_STARTS} cold starts per N`,
    );
    const rows: BenchRow[] = [];
    const results = new Map<
      number,
      { rss: Record<string, number>; heaps: Map<string, Heap>; coldMs: number; untilScheduledMs: number }
    >();
    let existing = 0;
    const logDir = join(local.cluster.state.stateDir, 'logs');
    const logOffsets = new Map<string, number>();
    clientThrottling(logDir, logOffsets);
    for (const count of COUNTS) {
      // N Services in all: the function under test first, then idle ones that never start a pod.
      const firstRow = rows.length;
      const started = performance.now();
      const startedAt = Date.now();
      const cpuAtStart = cpuByCommand();
      const requestsAtStart = await apiServerRequests(kubeConfig);
      const wanted: KubernetesObject[] = [];
      if (existing === 0) wanted.push(knativeService(UNDER_TEST, local.image, {}));
      for (let index = Math.max(existing, 1); index < count; index++) {
        wanted.push(
          knativeService(`idle-${String(index).padStart(5, '0')}`, local.image, {
            'autoscaling.knative.dev/initial-scale': '0',
          }),
        );
      }
      for (let offset = 0; offset < wanted.length; offset += CREATE_CONCURRENCY) {
        await Promise.all(wanted.slice(offset, offset + CREATE_CONCURRENCY).map(create));
      }
      const createdMs = performance.now() - started;
      existing = count;
      // Each poll lists every revision and Deployment: at 1,000 that is load on this machine's API
      // server, so poll seldom; the time comes from the last Ready transition, not the poll.
      const lastReadyAt = await until(
        `${count} revisions Ready at 0`,
        () => revisionsReadyAtZero(count),
        900_000,
        count >= 100 ? 10_000 : 1000,
      );
      // Up to the poll that saw them all Ready (at most one poll interval after the last one).
      const createCpu = cpuBetween(cpuAtStart, cpuByCommand());
      const requestsUntilReady = await apiServerRequests(kubeConfig);
      // Whole seconds (apiserver timestamps): never less than the time it took to create them.
      const readyMs = Math.max(lastReadyAt - startedAt, createdMs);
      print(
        `\nN = ${count}: created in ${(createdMs / 1000).toFixed(1)} s, all Ready at 0 after ${(readyMs / 1000).toFixed(1)} s`,
      );
      print('  stage                     objects  last created  last Ready (s after the first create)');
      for (const stage of await pipelineTimes(kubeConfig, startedAt)) {
        print(
          `  ${stage.kind.padEnd(25)} ${String(stage.count).padStart(7)}  ${stage.lastCreatedS.toFixed(0).padStart(12)}  ${stage.lastReadyS === undefined ? '—' : stage.lastReadyS.toFixed(0).padStart(10)}`,
        );
      }
      print(
        `  host CPU from the first create until all were seen Ready: ${(createCpu.busyShare * 100).toFixed(0)}% busy over ${cpus().length} cores; ` +
          createCpu.top
            .slice(0, 10)
            .map((entry) => `${entry.command} ${entry.seconds.toFixed(0)} s`)
            .join(', '),
      );
      const addedServices = count - (COUNTS[COUNTS.indexOf(count) - 1] ?? 0);
      const requests = [...requestsUntilReady]
        .map(([key, total]) => ({ key, made: total - (requestsAtStart.get(key) ?? 0) }))
        .filter((entry) => entry.made > 0)
        .sort((a, b) => b.made - a.made);
      const allRequests = requests.reduce((sum, entry) => sum + entry.made, 0);
      print(
        `  API server requests until all Ready: ${allRequests} (${(allRequests / addedServices).toFixed(1)} per added Service); per added Service: ` +
          requests
            .slice(0, 14)
            .map((entry) => `${entry.key} ${(entry.made / addedServices).toFixed(1)}`)
            .join(', '),
      );
      for (const [process, throttled] of clientThrottling(logDir, logOffsets)) {
        print(
          `  ${process}: ${throttled.waits} client-side throttling waits over 1 s, longest ${throttled.longestS.toFixed(1)} s`,
        );
      }

      // KEDA makes each ScaledObject's HPA after the revision is Ready: measure once it has them all.
      await until(
        `an HPA for each of the ${count} ScaledObjects`,
        async () =>
          (
            (await kubeRequest(
              kubeConfig,
              'GET',
              `/apis/autoscaling/v2/namespaces/${NAMESPACE}/horizontalpodautoscalers`,
            )) as { items: unknown[] }
          ).items.length === count
            ? true
            : undefined,
        300_000,
        count >= 100 ? 10_000 : 1000,
      );
      print(`  KEDA had an HPA for every ScaledObject after ${((performance.now() - started) / 1000).toFixed(0)} s`);
      // Idle: let informers and KEDA settle, then measure a window.
      await sleep(10_000);
      const scalerUrl = local.scalerAdminUrl;
      const measured = await targets();
      const before = Object.fromEntries(usageOf(measured));
      const rpcsBefore = await scalerRpcs(scalerUrl);
      const windowStart = performance.now();
      await sleep(IDLE_SECONDS * 1000);
      const seconds = (performance.now() - windowStart) / 1000;
      const after = Object.fromEntries(usageOf(measured));
      const heaps = new Map<string, Heap>();
      for (const [name, target] of measured)
        if (target.metricsPath) {
          const heap = await heapOf(kubeConfig, target);
          heaps.set(name, heap);
        }
      const rpcsAfter = await scalerRpcs(scalerUrl);
      const callsPerSecond = (rpcsAfter.calls - rpcsBefore.calls) / seconds;
      const pushesPerSecond = (rpcsAfter.pushes - rpcsBefore.pushes) / seconds;
      const p99Ms = p99BoundMs(rpcsBefore.buckets, rpcsAfter.buckets);

      // What an operator runs: `afterlife status` over the N functions (the CLI as a process).
      const statusStarted = performance.now();
      const status = spawnSync(process.execPath, [AFTERLIFE_CLI, 'status', '-n', NAMESPACE, '-o', 'json'], {
        env: { ...process.env, KUBECONFIG: local.cluster.kubeconfigPath },
        encoding: 'utf8',
        maxBuffer: 256 * 2 ** 20,
      });
      const statusMs = performance.now() - statusStarted;
      const listed =
        status.status === 0 ? (JSON.parse(status.stdout) as { functions: unknown[] }).functions.length : -1;
      if (listed !== count) throw new Error(`afterlife status listed ${listed} of ${count}: ${status.stderr}`);

      // Cold starts of the function under test, among the N (kubelet's one-second PLEG relist makes
      // single starts vary by up to a second: the median of several), each once its last pod is gone
      // (a pod still stopping on the node slows the next start).
      const replies: number[] = [];
      const untilScheduled: number[] = [];
      for (let round = 0; round < COLD_STARTS; round++) {
        await until(
          `${UNDER_TEST} back at zero`,
          async () =>
            (await apps.readNamespacedDeployment({ namespace: NAMESPACE, name: `${UNDER_TEST}-00001-deployment` })).spec
              ?.replicas === 0
              ? true
              : undefined,
          180_000,
          1000,
        );
        await until(
          'no pod left in the namespace',
          async () => ((await core.listNamespacedPod({ namespace: NAMESPACE })).items.length === 0 ? true : undefined),
          120_000,
        );
        const { outcome, trace } = await tracedColdStart(local, NAMESPACE, UNDER_TEST);
        print(`  cold start ${round + 1}/${COLD_STARTS}: ${outcome.latencyMs.toFixed(0)} ms`);
        for (const line of formatTrace(trace)) print(`    ${line}`);
        replies.push(outcome.latencyMs);
        // Up to the pod being scheduled is the part of the chain the N functions share (gateway,
        // scaler, KEDA, kube-controller-manager, scheduler); from there on it is one pod on one
        // node, where kubelet's relist (0–1 s, at random) overlaps the function's own start.
        const at = (id: string) => trace.hops.find((hop) => hop.id === id)?.at;
        const sent = at('sent');
        const scheduled = at('pod-scheduled');
        if (sent !== undefined && scheduled !== undefined) untilScheduled.push(scheduled - sent);
      }
      const coldMs = median(replies);
      const untilScheduledMs = median(untilScheduled);

      const rss = Object.fromEntries(COMPONENTS.map((name) => [name, after[name]?.rssBytes ?? 0]));
      results.set(count, { rss, heaps, coldMs, untilScheduledMs });
      const base = results.get(COUNTS[0] ?? 1);
      rows.push(
        benchRow(`N=${count}: all revisions Ready at 0`, readyMs / 1000, 's', 'lower'),
        benchRow(`N=${count}: host CPU busy until all Ready`, createCpu.busyShare * 100, '%', 'lower'),
        benchRow(`N=${count}: first event → reply (median of ${COLD_STARTS})`, coldMs, 'ms', 'lower', {
          name: `N=${COUNTS[0]}`,
          value: base?.coldMs ?? Number.NaN,
        }),
        benchRow(`N=${count}: first event → pod scheduled (median)`, untilScheduledMs, 'ms', 'lower', {
          name: `N=${COUNTS[0]}`,
          value: base?.untilScheduledMs ?? Number.NaN,
        }),
        benchRow(`N=${count}: scaler calls from KEDA`, callsPerSecond, 'calls/s', 'lower'),
        benchRow(`N=${count}: scaler p99 (histogram bucket)`, p99Ms, 'ms', 'lower'),
        benchRow(`N=${count}: StreamIsActive messages to KEDA`, pushesPerSecond, 'messages/s', 'lower'),
        benchRow(`N=${count}: afterlife status (all functions)`, statusMs, 'ms', 'lower'),
      );
      for (const name of COMPONENTS) {
        const cpu = ((after[name]?.cpuTicks ?? 0) - (before[name]?.cpuTicks ?? 0)) / CLOCK_TICKS_PER_SECOND / seconds;
        rows.push(
          benchRow(`N=${count}: ${name} RSS`, (after[name]?.rssBytes ?? 0) / 2 ** 20, 'MiB', 'lower'),
          ...(heaps.has(name)
            ? [
                benchRow(`N=${count}: ${name} V8 heap used`, (heaps.get(name)?.used ?? 0) / 2 ** 20, 'MiB', 'lower'),
                benchRow(
                  `N=${count}: ${name} V8 heap committed`,
                  (heaps.get(name)?.committed ?? 0) / 2 ** 20,
                  'MiB',
                  'lower',
                ),
              ]
            : []),
          benchRow(`N=${count}: ${name} CPU`, cpu * 100, '% of a core', 'lower'),
        );
      }
      // Per function added since the previous N: the marginal cost. The first step after N = 1 also
      // holds what a component allocates once when it first has work (JIT code, HTTP agents, pools).
      const previousCount = COUNTS[COUNTS.indexOf(count) - 1];
      const previous = previousCount === undefined ? undefined : results.get(previousCount);
      if (previous !== undefined && previousCount !== undefined) {
        const added = count - previousCount;
        const step = `N=${previousCount}→${count}`;
        const rssPerFunction = (name: string) => ((rss[name] ?? 0) - (previous.rss[name] ?? 0)) / added;
        const heapPerFunction = (name: string) =>
          ((heaps.get(name)?.used ?? 0) - (previous.heaps.get(name)?.used ?? 0)) / added;
        const sum = (per: (name: string) => number) => SHIPPED.reduce((total, name) => total + per(name), 0);
        rows.push(
          benchRow(
            `${step}: gateway + scaler + autoscaler RSS per added idle function`,
            sum(rssPerFunction) / 1024,
            'KiB',
            'lower',
          ),
          benchRow(`${step}: their V8 heap per added idle function`, sum(heapPerFunction) / 1024, 'KiB', 'lower'),
          ...SHIPPED.map((name) =>
            benchRow(`${step}: ${name} RSS per added idle function`, rssPerFunction(name) / 1024, 'KiB', 'lower'),
          ),
          benchRow(
            `${step}: keda-operator RSS per added idle function`,
            rssPerFunction('keda-operator') / 1024,
            'KiB',
            'lower',
          ),
        );
      }
      for (const row of rows.slice(firstRow)) {
        const baseline =
          row.baseline === null
            ? ''
            : `  vs ${row.baseline}: ${row.baselineValue?.toFixed(0)} (${row.ratio?.toFixed(2)}×)`;
        print(
          `  ${row.name.padEnd(62)} ${row.value.toFixed(row.value < 10 ? 2 : 0).padStart(8)} ${row.unit}${baseline}`,
        );
      }
    }
    writeBenchResult('scale', rows);
  },
  { gateway: { replicas: 1 } },
  // Kubernetes' default: at the devcluster's 5 s (for tests) the HPA controller read 1,000 idle
  // Deployments' scale 34.5 times per Service until all were Ready, 20 times at 15 s.
  { hpaSyncPeriod: HPA_SYNC_PERIOD },
);
