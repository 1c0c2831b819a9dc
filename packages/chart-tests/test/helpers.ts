import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureComponent } from '@afterlife/devcluster';
import { parseAllDocuments, stringify } from 'yaml';
import { CHART_DIR } from '../scripts/chart-readme.ts';

export { CHART_DIR };

/** Kubernetes version `helm template` renders for (the chart requires >= 1.33). */
export const KUBE_VERSION = '1.35.0';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a binary (no shell) with a bounded time; never throws on a non-zero exit. */
export function run(file: string, args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        reject(new Error(`${file} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
        return;
      }
      resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
    });
  });
}

/** Like run() but fails with the command's output when it exits non-zero. */
export async function runOk(file: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  const result = await run(file, args, timeoutMs);
  if (result.code !== 0) {
    throw new Error(`${file} ${args.join(' ')} exited ${result.code}:\n${result.stderr}\n${result.stdout}`);
  }
  return result.stdout;
}

let helm: Promise<string> | undefined;
/** The helm binary built into the per-user cache by @afterlife/devcluster (no cluster needed). */
export function helmBinary(): Promise<string> {
  helm ??= ensureComponent('helm').then((dir) => join(dir, 'helm'));
  return helm;
}

/** A temporary directory removed by the returned cleanup function. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'afterlife-chart-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes values to a YAML file in dir and returns its path. */
export function writeValues(dir: string, name: string, values: object): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(values));
  return path;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked field by field in the tests
  [field: string]: any;
}

/** Parses a multi-document YAML stream into objects (empty documents dropped). */
export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]?.message}`);
      return doc.toJSON() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

/** `helm template` with the given values; rejects with helm's stderr when rendering fails. */
export async function helmTemplate(
  values: object,
  options: { release?: string; namespace?: string } = {},
): Promise<K8sObject[]> {
  const tmp = tempDir();
  try {
    const file = writeValues(tmp.dir, 'values', values);
    const stdout = await runOk(await helmBinary(), [
      'template',
      options.release ?? 'rel',
      CHART_DIR,
      '--namespace',
      options.namespace ?? 'afterlife-system',
      '--kube-version',
      KUBE_VERSION,
      '-f',
      file,
    ]);
    return parseManifests(stdout);
  } finally {
    tmp.cleanup();
  }
}

export function findObject(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (!found) {
    const have = objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ');
    throw new Error(`no ${kind}${name ? `/${name}` : ''} rendered (have: ${have})`);
  }
  return found;
}

export function kinds(objects: readonly K8sObject[]): string[] {
  return [...new Set(objects.map((o) => o.kind))].sort();
}

/**
 * Value sets the chart is rendered, linted and dry-run applied with. `crds` lists API groups
 * whose CRDs the set needs beyond Kubernetes, KEDA and Knative (those objects are only rendered
 * and linted, not sent to the devcluster, which does not have the CRDs).
 */
export const VALUE_SETS: Record<string, { values: object; crds?: readonly string[] }> = {
  default: { values: {} },
  certManager: { values: { certManager: { enabled: true } }, crds: ['cert-manager.io'] },
  certManagerIssuer: {
    values: { certManager: { enabled: true, issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer' } } },
    crds: ['cert-manager.io'],
  },
  componentsOff: {
    values: {
      webhook: { enabled: false },
      gateway: { enabled: false },
      scaler: { enabled: false },
      autoscaler: { enabled: false },
    },
  },
  // Without the autoscaler the webhook must route event scaling to knative-extensions/autoscaler-keda.
  webhookOnly: {
    values: {
      webhook: { scalingRoute: 'autoscaler-keda' },
      gateway: { enabled: false },
      scaler: { enabled: false },
      autoscaler: { enabled: false },
    },
  },
  // A cluster that runs knative-extensions/autoscaler-keda: Afterlife's own autoscaler is off.
  autoscalerKeda: {
    values: {
      webhook: { scalingRoute: 'autoscaler-keda' },
      autoscaler: { enabled: false },
      gateway: {
        discovery: {
          mode: 'label',
          functionLabel: 'serving.knative.dev/service',
          serviceSelector: 'networking.internal.knative.dev/serviceType=Private',
        },
      },
    },
  },
  networkPolicies: {
    values: {
      networkPolicies: {
        enabled: true,
        metricsFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
        eventsFrom: [{ podSelector: {} }, { ipBlock: { cidr: '10.0.0.0/8' } }],
      },
    },
  },
  runtimeClassOff: { values: { runtimeClass: { create: false } } },
  serviceMonitor: {
    values: { serviceMonitor: { enabled: true, labels: { release: 'prom' } } },
    crds: ['monitoring.coreos.com'],
  },
  tuned: {
    values: {
      imagePullSecrets: ['regcred'],
      commonLabels: { team: 'fn' },
      runtimeClass: {
        handler: 'wasmedge',
        scheduling: {
          nodeSelector: { 'afterlife.dev/wasm': 'true' },
          tolerations: [{ key: 'wasm', operator: 'Exists', effect: 'NoSchedule' }],
        },
      },
      webhook: {
        failurePolicy: 'Ignore',
        timeoutSeconds: 5,
        namespaceSelector: { matchExpressions: [{ key: 'afterlife.dev/enabled', operator: 'Exists' }] },
        image: { digest: `sha256:${'a'.repeat(64)}` },
        extraEnv: { AFTERLIFE_WEBHOOK_WASM_VARIANT: 'compat', AFTERLIFE_WEBHOOK_IMAGE_DETECTION: true },
        topologySpread: { enabled: false },
        podDisruptionBudget: { enabled: false },
      },
      gateway: {
        replicas: 3,
        watchNamespaces: ['fn-a', 'fn-b'],
        image: { tag: '1.2.3', pullPolicy: 'Always' },
        extraEnv: { AFTERLIFE_GATEWAY_PENDING_LIMIT: 50 },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'afterlife', effect: 'NoSchedule' }],
        priorityClassName: 'system-cluster-critical',
      },
      scaler: { replicas: 1, tls: { existingSecret: 'scaler-tls', clientAuth: true } },
      autoscaler: {
        replicas: 3,
        logLevel: 'debug',
        adminPort: 9190,
        watchNamespaces: ['fn-a', 'fn-b'],
        scalerTlsAuthentication: 'afterlife-scaler-tls',
        defaults: { maxScale: 50, target: 2.5, metric: 'rate', cooldownSeconds: 120, pollingIntervalSeconds: 2 },
        extraEnv: { AFTERLIFE_AUTOSCALER_WORKERS: 8, AFTERLIFE_AUTOSCALER_RESYNC: '10m' },
        podDisruptionBudget: { maxUnavailable: 2 },
      },
    },
  },
};
