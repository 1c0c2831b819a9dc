/**
 * The chart against the devcluster's real kube-apiserver (KEDA and Knative CRDs installed):
 * server-side dry-run of the rendered manifests for every value set, then a real
 * `helm install` / `helm upgrade` / `helm uninstall` with RBAC checked through impersonation.
 *
 * The MutatingWebhookConfiguration is cluster-scoped and points at a Service nothing serves
 * (kwok pods do not run), so the installed one only matches objects with a label value unique
 * to this run in this run's namespace, and after() always uninstalls.
 */
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestCluster, useCluster } from '@afterlife/devcluster/testing';
import { stringify } from 'yaml';
import { CHART_DIR, helmTemplate, type K8sObject, run, runOk, tempDir, VALUE_SETS, writeValues } from './helpers.ts';

function kubectl(cluster: TestCluster, args: readonly string[]) {
  return run(cluster.binary('kubectl'), ['--kubeconfig', cluster.kubeconfigPath, ...args]);
}

async function kubectlJson(
  cluster: TestCluster,
  args: readonly string[],
): Promise<K8sObject & { items?: K8sObject[] }> {
  return JSON.parse(
    await runOk(cluster.binary('kubectl'), ['--kubeconfig', cluster.kubeconfigPath, ...args, '-o', 'json']),
  );
}

function helm(cluster: TestCluster, args: readonly string[], timeoutMs = 120_000) {
  return run(cluster.binary('helm'), ['--kubeconfig', cluster.kubeconfigPath, ...args], timeoutMs);
}

async function dryRunApply(cluster: TestCluster, objects: readonly K8sObject[], dir: string, name: string) {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, objects.map((o) => `---\n${stringify(o)}`).join(''));
  return kubectl(cluster, [
    'apply',
    '--server-side',
    '--dry-run=server',
    '--field-manager=afterlife-chart-test',
    '-f',
    file,
  ]);
}

function apiGroup(object: K8sObject): string {
  return object.apiVersion.includes('/') ? (object.apiVersion.split('/')[0] ?? '') : '';
}

describe('chart on the devcluster', function () {
  this.timeout(300_000);
  const cluster = useCluster({ namespacePrefix: 'chart' });

  describe('server-side dry-run of the rendered manifests', () => {
    const tmp = tempDir();
    after(() => tmp.cleanup());

    for (const [name, set] of Object.entries(VALUE_SETS)) {
      it(`the API server accepts every object of the "${name}" value set`, async () => {
        const values = structuredClone(set.values) as Record<string, Record<string, unknown>>;
        // Namespaces must exist for a dry-run; watch this test's own.
        if (values.gateway?.watchNamespaces) values.gateway.watchNamespaces = [cluster.namespace, 'knative-serving'];
        if (values.autoscaler?.watchNamespaces) values.autoscaler.watchNamespaces = [cluster.namespace, 'default'];
        const objects = await helmTemplate(values, {
          release: `dry-${randomBytes(2).toString('hex')}`,
          namespace: cluster.namespace,
        });
        const skipped = new Set(set.crds ?? []);
        const applied = objects.filter((o) => !skipped.has(apiGroup(o)));
        assert.ok(applied.length > 0 || name === 'componentsOff');
        if (skipped.size > 0) assert.ok(applied.length < objects.length, `${name} renders objects of ${[...skipped]}`);
        const result = await dryRunApply(cluster, applied, tmp.dir, name);
        assert.equal(result.code, 0, `kubectl apply --dry-run=server failed:\n${result.stderr}`);
        const lines = result.stdout.trim().split('\n');
        assert.equal(lines.length, applied.length, result.stdout);
        for (const line of lines) assert.match(line, /serverside-applied \(server dry run\)$/);
      });
    }

    it('is a real check: the API server rejects an invalid object', async () => {
      const objects = await helmTemplate({}, { release: 'dry-bad', namespace: cluster.namespace });
      const deployment = objects.find((o) => o.kind === 'Deployment');
      assert.ok(deployment);
      deployment.spec.template.spec.containers[0].securityContext.runAsUserr = 5;
      const result = await dryRunApply(cluster, [deployment], tmp.dir, 'bad');
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /runAsUserr/);
    });
  });

  describe('helm install, upgrade and uninstall', () => {
    const id = randomBytes(3).toString('hex');
    const release = `al-${id}`;
    const optIn = `chart-test-${id}`;
    const runtimeClass = `wasmedge-${id}`;
    const prefix = `${release}-afterlife`;
    const webhookConfig = `${prefix}-webhook`;
    const tmp = tempDir();
    let valuesFile = '';
    let namespace = '';
    let installed = false;

    const sa = (component: string) => `system:serviceaccount:${namespace}:${prefix}-${component}`;

    before(async () => {
      namespace = cluster.namespace;
      valuesFile = writeValues(tmp.dir, 'install', {
        runtimeClass: { name: runtimeClass },
        webhook: {
          objectSelector: { matchLabels: { 'afterlife.dev/runtime': optIn } },
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
        },
      });
      const result = await helm(cluster, ['install', release, CHART_DIR, '-n', namespace, '-f', valuesFile]);
      installed = result.code === 0;
      assert.equal(result.code, 0, `helm install failed:\n${result.stderr}`);
      assert.match(result.stdout, /STATUS: deployed/);
      assert.match(result.stdout, /kubernetes\.podspec-runtimeclassname/, 'NOTES tell what to change in Knative');
      assert.ok(
        result.stdout.includes(
          `"runtime-class-name":"${runtimeClass}:\\n  selector:\\n    afterlife.dev/runtime: ${optIn}\\n"`,
        ),
        `NOTES give the exact config-deployment change:\n${result.stdout}`,
      );
    });

    after(async () => {
      if (installed) await helm(cluster, ['uninstall', release, '-n', namespace, '--wait', '--timeout', '60s']);
      // Never leave a cluster-scoped webhook behind, whatever failed above.
      await kubectl(cluster, [
        'delete',
        'mutatingwebhookconfiguration',
        `${webhookConfig}-${namespace}`,
        '--ignore-not-found',
      ]);
      tmp.cleanup();
    });

    it('creates every object', async () => {
      const listed = await kubectlJson(cluster, [
        'get',
        'deployments,services,serviceaccounts,roles,rolebindings,poddisruptionbudgets,secrets',
        '-n',
        namespace,
        '-l',
        `app.kubernetes.io/instance=${release}`,
      ]);
      const names = (listed.items ?? []).map((o) => `${o.kind}/${o.metadata.name}`).sort();
      const expected: string[] = [];
      for (const component of ['webhook', 'gateway', 'scaler', 'autoscaler']) {
        for (const kind of ['Deployment', 'Service', 'ServiceAccount', 'PodDisruptionBudget']) {
          expected.push(`${kind}/${prefix}-${component}`);
        }
      }
      expected.push(`Role/${prefix}-scaler`, `RoleBinding/${prefix}-scaler`, `Secret/${prefix}-webhook-tls`);
      expected.push(`Role/${prefix}-autoscaler-lease`, `RoleBinding/${prefix}-autoscaler-lease`);
      assert.deepEqual(names, expected.sort());
      const knativeRole = await kubectlJson(cluster, ['get', 'role', `${prefix}-webhook`, '-n', 'knative-serving']);
      assert.equal(knativeRole.metadata.labels?.['app.kubernetes.io/instance'], release);
      for (const [kind, name] of [
        ['clusterrole', `${prefix}-webhook-${namespace}`],
        ['clusterrolebinding', `${prefix}-gateway-${namespace}`],
        ['clusterrole', `${prefix}-autoscaler-${namespace}`],
        ['clusterrolebinding', `${prefix}-autoscaler-${namespace}`],
        ['runtimeclass', runtimeClass],
        ['mutatingwebhookconfiguration', `${webhookConfig}-${namespace}`],
      ] as const) {
        const object = await kubectlJson(cluster, ['get', kind, name]);
        assert.equal(object.metadata.name, name);
      }
    });

    it('points the webhook configuration at the webhook Service with the CA that signed its certificate', async () => {
      const config = await kubectlJson(cluster, [
        'get',
        'mutatingwebhookconfiguration',
        `${webhookConfig}-${namespace}`,
      ]);
      const hook = config.webhooks[0];
      assert.deepEqual(hook.clientConfig.service, { name: `${prefix}-webhook`, namespace, path: '/mutate', port: 443 });
      assert.deepEqual(hook.objectSelector, { matchLabels: { 'afterlife.dev/runtime': optIn } });
      const service = await kubectlJson(cluster, ['get', 'service', `${prefix}-webhook`, '-n', namespace]);
      assert.deepEqual(
        service.spec.ports.map((p: { port: number; targetPort: string }) => [p.port, p.targetPort]),
        [[443, 'https']],
      );
      const deployment = await kubectlJson(cluster, ['get', 'deployment', `${prefix}-webhook`, '-n', namespace]);
      for (const [key, value] of Object.entries(service.spec.selector as Record<string, string>)) {
        assert.equal(deployment.spec.template.metadata.labels[key], value, `Service selects the webhook pods (${key})`);
      }
      const secret = await kubectlJson(cluster, ['get', 'secret', `${prefix}-webhook-tls`, '-n', namespace]);
      const ca = new X509Certificate(Buffer.from(hook.clientConfig.caBundle, 'base64'));
      const cert = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
      assert.ok(cert.verify(ca.publicKey), 'caBundle verifies the serving certificate');
      assert.ok(cert.checkHost(`${prefix}-webhook.${namespace}.svc`), cert.subjectAltName);
    });

    it('sends only opted-in Knative Services in its namespace to the webhook', async () => {
      const ksvc = (labels: Record<string, string>) => ({
        apiVersion: 'serving.knative.dev/v1',
        kind: 'Service',
        metadata: { name: `fn-${randomBytes(2).toString('hex')}`, namespace, labels },
        spec: { template: { spec: { containers: [{ image: 'registry.example/fn:1' }] } } },
      });
      const plain = await dryRunApply(cluster, [ksvc({})], tmp.dir, 'ksvc-plain');
      assert.equal(plain.code, 0, `a Service that did not opt in must not reach the webhook:\n${plain.stderr}`);
      // Nothing serves the webhook (kwok pods do not run) and failurePolicy is Fail, so an
      // opted-in Service is rejected by the API server calling the webhook.
      const opted = await dryRunApply(cluster, [ksvc({ 'afterlife.dev/runtime': optIn })], tmp.dir, 'ksvc-opted');
      assert.notEqual(opted.code, 0, 'an opted-in Service is sent to the webhook');
      assert.match(opted.stderr, /failed calling webhook "runtime\.webhook\.afterlife\.dev"/);
    });

    it('lets each ServiceAccount do what it needs and nothing else', async () => {
      const PA = 'podautoscalers.autoscaling.internal.knative.dev';
      const SKS = 'serverlessservices.networking.internal.knative.dev';
      const checks: [string, string[], boolean][] = [
        ['webhook', ['get', 'configmaps/config-features', '-n', 'knative-serving'], true],
        ['webhook', ['watch', 'configmaps/config-deployment', '-n', 'knative-serving'], true],
        ['webhook', ['list', 'configmaps', '-n', 'knative-serving'], true],
        ['webhook', ['get', 'secrets', '-n', 'knative-serving'], false],
        ['webhook', ['create', 'configmaps', '-n', 'knative-serving'], false],
        ['webhook', ['update', 'configmaps/config-features', '-n', 'knative-serving'], false],
        ['webhook', ['get', 'configmaps', '-n', namespace], false],
        ['webhook', ['get', 'namespaces'], true],
        ['webhook', ['watch', 'namespaces'], true],
        ['webhook', ['create', 'namespaces'], false],
        ['webhook', ['list', 'secrets', '-n', namespace], false],
        ['gateway', ['list', 'endpointslices.discovery.k8s.io', '--all-namespaces'], true],
        ['gateway', ['watch', 'endpointslices.discovery.k8s.io', '-n', 'default'], true],
        ['gateway', ['get', 'routes.serving.knative.dev', '-n', namespace], true],
        ['gateway', ['watch', 'routes.serving.knative.dev', '--all-namespaces'], true],
        ['gateway', ['create', 'routes.serving.knative.dev', '-n', namespace], false],
        ['gateway', ['list', 'services', '-n', namespace], false],
        ['gateway', ['delete', 'endpointslices.discovery.k8s.io', '-n', namespace], false],
        ['gateway', ['list', 'pods', '-n', namespace], false],
        ['gateway', ['get', 'secrets', '-n', namespace], false],
        ['scaler', ['list', 'endpointslices.discovery.k8s.io', '-n', namespace], true],
        ['scaler', ['watch', 'endpointslices.discovery.k8s.io', '-n', namespace], true],
        ['scaler', ['get', 'endpointslices.discovery.k8s.io', '-n', namespace], true],
        ['scaler', ['list', 'endpointslices.discovery.k8s.io', '-n', 'default'], false],
        ['scaler', ['list', 'endpointslices.discovery.k8s.io', '--all-namespaces'], false],
        ['scaler', ['get', 'services', '-n', namespace], false],
        ['scaler', ['get', 'secrets', '-n', namespace], false],
        ['scaler', ['create', 'endpointslices.discovery.k8s.io', '-n', namespace], false],
        ['autoscaler', ['list', PA, '--all-namespaces'], true],
        ['autoscaler', ['watch', PA, '-n', 'default'], true],
        ['autoscaler', ['get', PA, '-n', namespace], true],
        ['autoscaler', ['patch', PA, '--subresource=status', '-n', 'default'], true],
        ['autoscaler', ['update', PA, '--subresource=status', '-n', 'default'], false],
        ['autoscaler', ['update', PA, '-n', 'default'], false],
        ['autoscaler', ['delete', PA, '-n', 'default'], false],
        ['autoscaler', ['watch', SKS, '--all-namespaces'], true],
        ['autoscaler', ['create', SKS, '-n', 'default'], true],
        ['autoscaler', ['update', SKS, '-n', 'default'], true],
        ['autoscaler', ['delete', SKS, '-n', 'default'], false],
        ['autoscaler', ['list', 'scaledobjects.keda.sh', '--all-namespaces'], true],
        ['autoscaler', ['create', 'scaledobjects.keda.sh', '-n', 'default'], true],
        ['autoscaler', ['update', 'scaledobjects.keda.sh', '-n', 'default'], true],
        ['autoscaler', ['delete', 'scaledobjects.keda.sh', '-n', 'default'], false],
        ['autoscaler', ['create', 'triggerauthentications.keda.sh', '-n', 'default'], false],
        ['autoscaler', ['watch', 'deployments.apps', '--all-namespaces'], true],
        ['autoscaler', ['update', 'deployments.apps', '-n', 'default'], false],
        ['autoscaler', ['patch', 'deployments.apps', '-n', 'default'], false],
        ['autoscaler', ['get', `leases.coordination.k8s.io/${prefix}-autoscaler`, '-n', namespace], true],
        ['autoscaler', ['update', `leases.coordination.k8s.io/${prefix}-autoscaler`, '-n', namespace], true],
        ['autoscaler', ['create', 'leases.coordination.k8s.io', '-n', namespace], true],
        ['autoscaler', ['update', 'leases.coordination.k8s.io/someone-else', '-n', namespace], false],
        ['autoscaler', ['get', 'leases.coordination.k8s.io/kube-scheduler', '-n', 'kube-system'], false],
        ['autoscaler', ['create', 'leases.coordination.k8s.io', '-n', 'kube-system'], false],
        ['autoscaler', ['delete', `leases.coordination.k8s.io/${prefix}-autoscaler`, '-n', namespace], false],
        ['autoscaler', ['get', 'secrets', '-n', namespace], false],
        ['autoscaler', ['list', 'pods', '-n', 'default'], false],
      ];
      const wrong: string[] = [];
      for (const [component, args, allowed] of checks) {
        const result = await kubectl(cluster, ['auth', 'can-i', ...args, `--as=${sa(component)}`]);
        const answer = result.stdout.trim();
        if (answer !== (allowed ? 'yes' : 'no'))
          wrong.push(`${component} ${args.join(' ')}: got ${answer} ${result.stderr.trim()}`);
      }
      assert.deepEqual(wrong, []);
    });

    it('keeps the generated certificate across helm upgrade', async () => {
      const readTls = async () => {
        const secret = await kubectlJson(cluster, ['get', 'secret', `${prefix}-webhook-tls`, '-n', namespace]);
        const config = await kubectlJson(cluster, [
          'get',
          'mutatingwebhookconfiguration',
          `${webhookConfig}-${namespace}`,
        ]);
        return { data: secret.data, caBundle: config.webhooks[0].clientConfig.caBundle as string };
      };
      const before = await readTls();
      const result = await helm(cluster, [
        'upgrade',
        release,
        CHART_DIR,
        '-n',
        namespace,
        '-f',
        valuesFile,
        '--set',
        'gateway.replicas=3',
      ]);
      assert.equal(result.code, 0, `helm upgrade failed:\n${result.stderr}`);
      assert.match(result.stdout, /REVISION: 2/);
      const after = await readTls();
      assert.deepEqual(after, before);
      const gateway = await kubectlJson(cluster, ['get', 'deployment', `${prefix}-gateway`, '-n', namespace]);
      assert.equal(gateway.spec.replicas, 3, 'the upgrade applied');
    });

    it('fails an install with bad values with the schema message and creates nothing', async () => {
      const bad = `${release}-bad`;
      for (const [args, message] of [
        [['--set', 'webhook.replicas=two'], /at '\/webhook\/replicas': got string, want integer/],
        [['--set', 'gateway.colour=blue'], /additional properties 'colour' not allowed/],
        [['--set', 'webhook.tls.autoGenerate=false'], /at '\/webhook\/tls'/],
      ] as const) {
        const result = await helm(cluster, ['install', bad, CHART_DIR, '-n', namespace, ...args]);
        assert.notEqual(result.code, 0);
        assert.match(result.stderr, /values don't meet the specifications of the schema\(s\)/);
        assert.match(result.stderr, message);
      }
      const status = await helm(cluster, ['status', bad, '-n', namespace]);
      assert.notEqual(status.code, 0, 'no release was created');
    });

    it('removes everything on helm uninstall, including cluster-scoped objects', async () => {
      const result = await helm(cluster, ['uninstall', release, '-n', namespace, '--wait', '--timeout', '60s']);
      assert.equal(result.code, 0, result.stderr);
      installed = false;
      for (const [kind, name] of [
        ['mutatingwebhookconfiguration', `${webhookConfig}-${namespace}`],
        ['runtimeclass', runtimeClass],
        ['clusterrole', `${prefix}-gateway-${namespace}`],
        ['clusterrolebinding', `${prefix}-webhook-${namespace}`],
        ['clusterrole', `${prefix}-autoscaler-${namespace}`],
        ['clusterrolebinding', `${prefix}-autoscaler-${namespace}`],
      ] as const) {
        const get = await kubectl(cluster, ['get', kind, name, '--ignore-not-found', '-o', 'name']);
        assert.equal(get.stdout.trim(), '', `${kind}/${name} is gone`);
      }
      const role = await kubectl(cluster, [
        'get',
        'role',
        `${prefix}-webhook`,
        '-n',
        'knative-serving',
        '--ignore-not-found',
        '-o',
        'name',
      ]);
      assert.equal(role.stdout.trim(), '');
    });
  });
});
