/**
 * The user's path, end to end on the devcluster: the images from the one image builder pushed to
 * the cluster's registry, `helm install` of the chart with their digests (every component a pod
 * on the real node, with the chart's Services, RBAC, certificate and webhook configuration), a
 * port-forward through the real kubelet to the gateway Service, and then `afterlife-conformance`
 * in cluster mode with only a kubeconfig and those URLs — exactly what a user runs.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AfterlifeInstall, installAfterlife, kubeRequest } from '@afterlife/devcluster';
import { useCluster, useKnativeFeatures, useKnativeServing } from '@afterlife/devcluster/testing';
import type { ConformanceResult } from '../src/report.ts';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

/** `kubectl port-forward` to local ports it picks; resolves with them once it forwards. */
function portForward(
  kubectl: string,
  kubeconfig: string,
  target: string,
  ports: readonly number[],
): Promise<{ child: ChildProcess; local: number[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      kubectl,
      ['--kubeconfig', kubeconfig, '-n', 'afterlife-system', 'port-forward', target, ...ports.map((p) => `:${p}`)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`port-forward ${target} did not start: ${output}`));
    }, 30_000);
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      const local = [...output.matchAll(/Forwarding from 127\.0\.0\.1:(\d+) ->/g)].map((m) => Number(m[1]));
      if (local.length === ports.length) {
        clearTimeout(timer);
        resolve({ child, local });
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`port-forward ${target} exited ${code}: ${output}`));
    });
  });
}

function runConformance(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(packageDir, 'src/main.ts'), ...args], {
      cwd: packageDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk.toString().replace(/^(?=.)/gm, '    [conformance] '));
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGINT'), 420_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('cluster mode against the chart installed with helm (images from the builder, pods on the real node)', function () {
  this.timeout(600_000);
  const cluster = useCluster({ namespacePrefix: 'inst' });
  useKnativeServing(cluster, { hpa: false });
  useKnativeFeatures(cluster, { 'kubernetes.podspec-runtimeclassname': 'enabled' });
  let install: AfterlifeInstall | undefined;
  let forward: ChildProcess | undefined;
  let gatewayUrl = '';
  let gatewayAdminUrl = '';
  let reportDir = '';

  before(async function () {
    if (!cluster.state?.images.coredns) this.skip();
    install = await installAfterlife({
      kubeConfig: cluster.kubeConfig,
      kubeconfigPath: cluster.kubeconfigPath,
      helm: cluster.binary('helm'),
      registry: cluster.registry,
      values: {
        // Short windows so scale-to-zero scenarios fit the test's time.
        autoscaler: { defaults: { cooldownSeconds: 5, pollingIntervalSeconds: 1 } },
      },
    });
    const services = (await kubeRequest(
      cluster.kubeConfig,
      'GET',
      '/api/v1/namespaces/afterlife-system/services?labelSelector=app.kubernetes.io/component%3Dgateway',
    )) as { items: { metadata: { name: string }; spec: { ports: { name: string; port: number }[] } }[] };
    const gateway = services.items[0];
    assert.ok(gateway, 'the chart made a gateway Service');
    const ports = gateway.spec.ports.map((p) => p.port);
    const { child, local } = await portForward(
      cluster.binary('kubectl'),
      cluster.kubeconfigPath,
      `svc/${gateway.metadata.name}`,
      ports,
    );
    forward = child;
    const admin = gateway.spec.ports.findIndex((p) => p.name === 'admin');
    const events = gateway.spec.ports.findIndex((p) => p.name !== 'admin');
    gatewayUrl = `http://127.0.0.1:${local[events]}`;
    gatewayAdminUrl = `http://127.0.0.1:${local[admin]}`;
    reportDir = await mkdtemp(join(tmpdir(), 'afterlife-installed-'));
  });

  after(async function () {
    this.timeout(180_000);
    forward?.kill();
    await install?.uninstall();
    if (reportDir) await rm(reportDir, { recursive: true, force: true });
  });

  it('every component runs as a pod from the pushed image digests', async () => {
    const pods = (await kubeRequest(cluster.kubeConfig, 'GET', '/api/v1/namespaces/afterlife-system/pods')) as {
      items: {
        metadata: { name: string };
        spec: { nodeName?: string };
        status: { containerStatuses?: { imageID: string; ready: boolean }[] };
      }[];
    };
    const digests = Object.values(install?.images ?? {}).map((ref: string) => ref.split('@')[1]);
    assert.equal(digests.length, 4);
    for (const digest of digests) {
      const running = pods.items.filter((pod) =>
        pod.status.containerStatuses?.some((c) => c.ready && c.imageID.endsWith(digest ?? '')),
      );
      assert.ok(running.length > 0, `a ready pod runs ${digest}`);
      for (const pod of running) assert.match(pod.spec.nodeName ?? '', /^node-/, `${pod.metadata.name} on a real node`);
    }
  });

  it('afterlife-conformance passes in cluster mode with only a kubeconfig and the port-forward', async () => {
    const image = cluster.state?.images.echoWasm ?? '';
    const result = await runConformance([
      '--kubeconfig',
      cluster.kubeconfigPath,
      '--gateway-url',
      gatewayUrl,
      '--gateway-admin-url',
      gatewayAdminUrl,
      '--workload-image',
      image,
      '--profile',
      'short',
      '--report-dir',
      reportDir,
    ]);
    const report = JSON.parse(await readFile(join(reportDir, 'conformance.json'), 'utf8')) as ConformanceResult;
    await writeFile(join(reportDir, 'output.txt'), result.output);
    const failed = [
      ...report.preflight.filter((p) => !p.ok).map((p) => `preflight ${p.name}: ${p.message} (fix: ${p.fix})`),
      ...report.scenarios.filter((t) => t.state === 'failed').map((t) => `${t.title}: ${t.error}`),
    ];
    assert.deepEqual(failed, [], 'no preflight check or scenario failed');
    assert.equal(result.code, 0, result.output.slice(-2000));
  });
});
