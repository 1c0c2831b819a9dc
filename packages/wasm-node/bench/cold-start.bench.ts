/**
 * Cold start of the reference Wasm function vs a plain Node HTTP process, same machine, same run.
 *
 * 1. Process level (no cluster): spawn → first GET /healthz answered ("start→ready"), then the
 *    first CloudEvent → its reply, for (a) the wasm-node pod host running echo.wasm and (b)
 *    `node node-echo-server.mjs`, the way a container entrypoint starts. Plus idle RSS of each.
 * 2. Cluster level (devcluster + wasm-node): pod created → Ready, wasm-node's own bound→ready
 *    histogram, and first event → first reply at podIP:8080; RSS of each idle pod host.
 *
 * Bounded: ROUNDS rounds each (env BENCH_ROUNDS, default 5); everything is stopped at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@afterlife/devcluster';
import { sharedCluster } from '@afterlife/devcluster/testing';
import { CoreV1Api, KubeConfig, NodeV1Api, type V1Pod } from '@kubernetes/client-node';

// Prefer the built package (what production runs); fall back to the sources via tsx.
const fromDist = existsSync(new URL('../dist/index.js', import.meta.url));
type Lib = typeof import('../src/index.ts');
type Paths = typeof import('../src/paths.ts');
const lib: Lib = fromDist ? await import('../dist/index.js' as string) : await import('../src/index.ts');
const paths: Paths = fromDist ? await import('../dist/paths.js' as string) : await import('../src/paths.ts');
const { pushEchoImage, startWasmNode, buildEchoWasm, wasmRuntimeClass } = lib;
const { PACKAGE_ROOT, siblingModule } = paths;

const ROUNDS = Math.min(Number(process.env.BENCH_ROUNDS ?? 5), 20);
const EVENT_HEADERS = {
  'ce-id': 'bench-1',
  'ce-source': '/bench',
  'ce-type': 'dev.afterlife.bench',
  'ce-specversion': '1.0',
  'content-type': 'application/json',
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};
const rssMiB = (pid: number): number => {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
};

async function waitHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await sleep(5);
  }
  throw new Error(`${url} did not answer within ${timeoutMs}ms`);
}

async function firstReply(base: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${base}/`, { method: 'POST', headers: EVENT_HEADERS, body: '{"n":1}' });
  await response.arrayBuffer();
  if (response.headers.get('ce-type') !== 'dev.afterlife.echo.reply') throw new Error(`bad reply ${response.status}`);
  return performance.now() - started;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

interface ProcessSample {
  readyMs: number;
  firstReplyMs: number;
  rssMiB: number;
}

async function processRound(command: string, args: string[], env: Record<string, string>): Promise<ProcessSample> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(command, args, {
    env: {
      PATH: process.env.PATH ?? '',
      ...env,
      PORT: String(port),
      HOST: '127.0.0.1',
      AFTERLIFE_WASM_POD_PORT: String(port),
      AFTERLIFE_WASM_POD_HOST: '127.0.0.1',
    },
    stdio: 'ignore',
    cwd: PACKAGE_ROOT,
  });
  try {
    await waitHttp(`http://127.0.0.1:${port}/healthz`, 30_000);
    const readyMs = performance.now() - started;
    const firstReplyMs = await firstReply(`http://127.0.0.1:${port}`);
    await sleep(500);
    return { readyMs, firstReplyMs, rssMiB: rssMiB(child.pid as number) };
  } finally {
    await stop(child);
  }
}

function summarize(label: string, samples: ProcessSample[]): ProcessSample {
  const result = {
    readyMs: median(samples.map((s) => s.readyMs)),
    firstReplyMs: median(samples.map((s) => s.firstReplyMs)),
    rssMiB: median(samples.map((s) => s.rssMiB)),
  };
  console.log(
    `${label.padEnd(34)} start→ready ${result.readyMs.toFixed(1).padStart(7)} ms   first event→reply ${result.firstReplyMs.toFixed(1).padStart(6)} ms   idle RSS ${result.rssMiB.toFixed(1).padStart(6)} MiB`,
  );
  return result;
}

async function processLevel(modulePath: string): Promise<void> {
  console.log(`\n# process level (median of ${ROUNDS}; spawn → GET /healthz answered → first CloudEvent)`);
  const wasm: ProcessSample[] = [];
  const node: ProcessSample[] = [];
  const hostScript = siblingModule('pod-host-main');
  const flags = hostScript.endsWith('.ts') ? ['--import=tsx'] : [];
  const server = fileURLToPath(new URL('./node-echo-server.mjs', import.meta.url));
  for (let round = 0; round < ROUNDS; round++) {
    wasm.push(
      await processRound(process.execPath, [...flags, '--disable-warning=ExperimentalWarning', hostScript], {
        AFTERLIFE_WASM_POD_MODULE: modulePath,
        AFTERLIFE_WASM_POD_ARGS: '["/echo.wasm"]',
      }),
    );
    node.push(await processRound(process.execPath, [server], {}));
  }
  const w = summarize('wasm (pod host + echo.wasm)', wasm);
  const n = summarize('node server.js (baseline)', node);
  console.log(
    `ratio wasm/node: start→ready ${(w.readyMs / n.readyMs).toFixed(2)}x, first reply ${(w.firstReplyMs / n.firstReplyMs).toFixed(2)}x, idle RSS ${(w.rssMiB / n.rssMiB).toFixed(2)}x`,
  );
  if (flags.length > 0)
    console.log('(pod host ran from TypeScript sources via tsx; run `pnpm build` first for dist numbers)');
}

async function clusterLevel(): Promise<void> {
  console.log(`\n# cluster level (devcluster + wasm-node; ${ROUNDS} pods, one at a time)`);
  const shared = await sharedCluster();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(shared.kubeconfigPath);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const namespace = `wasm-bench-${randomBytes(3).toString('hex')}`;
  const nodeName = `wasm-bench-${process.pid}`;
  const stateDir = await mkdtemp(join(tmpdir(), 'wasm-bench-'));
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const runtimeClasses = kubeConfig.makeApiClient(NodeV1Api);
  let createdRuntimeClass = false;
  try {
    await runtimeClasses.createRuntimeClass({ body: wasmRuntimeClass('wasmedge') });
    createdRuntimeClass = true;
  } catch {
    // exists already
  }
  const node = await startWasmNode({
    kubeConfig,
    config: { nodeName, stateDir, metricsPort: 0, deleteNodeOnExit: true, logLevel: 'warn' },
  });
  try {
    const image = await pushEchoImage(shared.registry, { repository: 'afterlife/echo', tag: 'bench' });
    const created: number[] = [];
    const replies: number[] = [];
    const rss: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const name = `echo-${round}`;
      const started = performance.now();
      await core.createNamespacedPod({
        namespace,
        body: {
          metadata: { name },
          spec: {
            runtimeClassName: 'wasmedge',
            nodeSelector: { 'kubernetes.io/hostname': nodeName },
            containers: [{ name: 'fn', image: image.reference, ports: [{ containerPort: 8080 }] }],
          },
        },
      });
      let pod: V1Pod | undefined;
      while (performance.now() - started < 60_000) {
        pod = await core.readNamespacedPod({ name, namespace });
        if (pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) break;
        await sleep(20);
      }
      created.push(performance.now() - started);
      replies.push(await firstReply(`http://${pod?.status?.podIP}:8080`));
      await sleep(300);
    }
    for (const local of node.pods()) for (const pid of local.pids) rss.push(rssMiB(pid));
    const metrics = await (await fetch(node.metricsUrl)).text();
    const sum = Number(/afterlife_wasm_node_pod_bound_to_ready_seconds_sum\{[^}]*\} ([\d.e+-]+)/.exec(metrics)?.[1]);
    const count = Number(/afterlife_wasm_node_pod_bound_to_ready_seconds_count\{[^}]*\} (\d+)/.exec(metrics)?.[1]);
    console.log(`pod created → Ready (API view, median)   ${median(created).toFixed(1)} ms`);
    console.log(`bound → ready (wasm-node histogram, mean) ${((sum / count) * 1000).toFixed(1)} ms over ${count} pods`);
    console.log(`first event → first reply (median)       ${median(replies).toFixed(1)} ms`);
    console.log(
      `idle Wasm instance (pod host) RSS        ${median(rss).toFixed(1)} MiB median, ${rss.length} instances`,
    );
  } finally {
    await node.close();
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    if (createdRuntimeClass) await runtimeClasses.deleteRuntimeClass({ name: 'wasmedge' }).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  }
}

const built = await buildEchoWasm();
console.log(`running ${fromDist ? 'dist/ (built)' : 'src/ via tsx'}`);
console.log(`echo.wasm: ${built.path} (${(readFileSync(built.path).length / 1024 / 1024).toFixed(1)} MiB)`);
await processLevel(built.path);
if (process.env.BENCH_SKIP_CLUSTER !== '1') await clusterLevel();
process.exit(0);
