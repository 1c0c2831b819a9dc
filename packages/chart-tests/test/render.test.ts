import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import {
  CHART_DIR,
  findObject,
  helmBinary,
  helmTemplate,
  type K8sObject,
  KUBE_VERSION,
  kinds,
  run,
  tempDir,
  VALUE_SETS,
  writeValues,
} from './helpers.ts';

const NS = 'afterlife-system';

function deployments(objects: readonly K8sObject[]): K8sObject[] {
  return objects.filter((o) => o.kind === 'Deployment');
}

describe('chart: helm lint --strict and helm template', function () {
  this.timeout(120_000);

  for (const [name, set] of Object.entries(VALUE_SETS)) {
    it(`lints strictly with the "${name}" value set`, async () => {
      const tmp = tempDir();
      try {
        const file = writeValues(tmp.dir, name, set.values);
        const result = await run(await helmBinary(), [
          'lint',
          '--strict',
          CHART_DIR,
          '-f',
          file,
          '--kube-version',
          KUBE_VERSION,
        ]);
        assert.equal(result.code, 0, `helm lint failed:\n${result.stdout}\n${result.stderr}`);
        assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      } finally {
        tmp.cleanup();
      }
    });
  }

  it('renders every component with its Service, ServiceAccount, RBAC and PDB by default', async () => {
    const objects = await helmTemplate({});
    assert.deepEqual(kinds(objects), [
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'MutatingWebhookConfiguration',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'RuntimeClass',
      'Secret',
      'Service',
      'ServiceAccount',
    ]);
    for (const component of ['webhook', 'gateway', 'scaler']) {
      const name = `rel-afterlife-${component}`;
      const deployment = findObject(objects, 'Deployment', name);
      assert.equal(deployment.metadata.namespace, NS);
      assert.equal(deployment.spec.template.spec.serviceAccountName, name);
      findObject(objects, 'Service', name);
      findObject(objects, 'ServiceAccount', name);
      const pdb = findObject(objects, 'PodDisruptionBudget', name);
      assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
      assert.equal(deployment.spec.replicas, 2);
    }
    // No optional extras by default.
    for (const kind of ['NetworkPolicy', 'ServiceMonitor', 'Certificate', 'Issuer']) {
      assert.equal(objects.filter((o) => o.kind === kind).length, 0, kind);
    }
  });

  it('hardens every pod and container', async () => {
    for (const set of [VALUE_SETS.default, VALUE_SETS.tuned]) {
      const objects = await helmTemplate(set?.values ?? {});
      for (const deployment of deployments(objects)) {
        const pod = deployment.spec.template.spec;
        assert.equal(pod.securityContext.runAsNonRoot, true);
        assert.ok(pod.securityContext.runAsUser > 0);
        assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
        assert.equal(pod.containers.length, 1);
        for (const container of pod.containers) {
          const sc = container.securityContext;
          assert.equal(sc.runAsNonRoot, true, deployment.metadata.name);
          assert.equal(sc.readOnlyRootFilesystem, true);
          assert.equal(sc.allowPrivilegeEscalation, false);
          assert.equal(sc.privileged, false);
          assert.equal(sc.seccompProfile.type, 'RuntimeDefault');
          assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
          assert.ok(container.resources.requests.memory, 'memory request');
          assert.ok(container.livenessProbe.httpGet.path === '/healthz');
          assert.ok(container.readinessProbe.httpGet.path === '/readyz');
          assert.ok(container.volumeMounts.some((m: { mountPath: string }) => m.mountPath === '/tmp'));
        }
      }
    }
  });

  it('uses the documented ports and probe endpoints per component', async () => {
    const objects = await helmTemplate({});
    const ports = (name: string) =>
      Object.fromEntries(
        findObject(objects, 'Deployment', name).spec.template.spec.containers[0].ports.map(
          (p: { name: string; containerPort: number }) => [p.name, p.containerPort],
        ),
      );
    assert.deepEqual(ports('rel-afterlife-webhook'), { https: 8443 });
    assert.deepEqual(ports('rel-afterlife-gateway'), { events: 8080, admin: 9090 });
    assert.deepEqual(ports('rel-afterlife-scaler'), { grpc: 9090, metrics: 9091 });
    const webhook = findObject(objects, 'Deployment', 'rel-afterlife-webhook').spec.template.spec.containers[0];
    assert.equal(webhook.readinessProbe.httpGet.scheme, 'HTTPS');
    const scaler = findObject(objects, 'Deployment', 'rel-afterlife-scaler').spec.template.spec.containers[0];
    assert.equal(scaler.livenessProbe.httpGet.port, 'metrics');
    const gatewaySvc = findObject(objects, 'Service', 'rel-afterlife-gateway');
    assert.deepEqual(
      gatewaySvc.spec.ports.map((p: { name: string }) => p.name),
      ['events', 'admin'],
      'the scaler discovers gateways through the port named admin',
    );
  });

  it('configures the mutating webhook narrowly and points it at its Service', async () => {
    const objects = await helmTemplate({});
    const config = findObject(objects, 'MutatingWebhookConfiguration');
    assert.equal(config.webhooks.length, 1);
    const hook = config.webhooks[0];
    assert.deepEqual(hook.admissionReviewVersions, ['v1']);
    assert.equal(hook.sideEffects, 'None');
    assert.equal(hook.failurePolicy, 'Fail');
    assert.equal(hook.reinvocationPolicy, 'IfNeeded');
    assert.equal(hook.timeoutSeconds, 10);
    assert.deepEqual(hook.rules, [
      {
        apiGroups: ['serving.knative.dev'],
        apiVersions: ['v1'],
        resources: ['services', 'configurations'],
        operations: ['CREATE', 'UPDATE'],
        scope: 'Namespaced',
      },
    ]);
    assert.deepEqual(hook.objectSelector, { matchLabels: { 'afterlife.dev/runtime': 'wasmedge' } });
    assert.equal(hook.namespaceSelector, undefined);
    assert.deepEqual(hook.clientConfig.service, {
      name: 'rel-afterlife-webhook',
      namespace: NS,
      path: '/mutate',
      port: 443,
    });
    const svc = findObject(objects, 'Service', 'rel-afterlife-webhook');
    assert.deepEqual(svc.spec.ports, [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }]);
  });

  it('generates a CA and a serving certificate for the webhook Service without cert-manager', async () => {
    const objects = await helmTemplate({});
    const secret = findObject(objects, 'Secret', 'rel-afterlife-webhook-tls');
    assert.equal(secret.type, 'kubernetes.io/tls');
    const decode = (key: string) => Buffer.from(secret.data[key], 'base64').toString('utf8');
    const ca = new X509Certificate(decode('ca.crt'));
    const cert = new X509Certificate(decode('tls.crt'));
    assert.ok(ca.ca, 'ca.crt is a CA');
    assert.ok(cert.verify(ca.publicKey), 'tls.crt is signed by ca.crt');
    assert.ok(cert.checkHost('rel-afterlife-webhook.afterlife-system.svc'), cert.subjectAltName);
    assert.match(decode('tls.key'), /PRIVATE KEY/);
    const hook = findObject(objects, 'MutatingWebhookConfiguration').webhooks[0];
    assert.equal(hook.clientConfig.caBundle, secret.data['ca.crt']);
    const deployment = findObject(objects, 'Deployment', 'rel-afterlife-webhook');
    const volume = deployment.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'tls');
    assert.equal(volume.secret.secretName, 'rel-afterlife-webhook-tls');
  });

  it('uses cert-manager with cainjector instead of generating certificates when enabled', async () => {
    const objects = await helmTemplate({ certManager: { enabled: true } });
    assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0);
    const certificate = findObject(objects, 'Certificate', 'rel-afterlife-webhook');
    assert.equal(certificate.spec.secretName, 'rel-afterlife-webhook-tls');
    assert.ok(certificate.spec.dnsNames.includes('rel-afterlife-webhook.afterlife-system.svc'));
    assert.equal(certificate.spec.issuerRef.name, 'rel-afterlife-webhook-ca');
    findObject(objects, 'Issuer', 'rel-afterlife-webhook-selfsigned');
    assert.equal(findObject(objects, 'Certificate', 'rel-afterlife-webhook-ca').spec.isCA, true);
    const config = findObject(objects, 'MutatingWebhookConfiguration');
    assert.equal(
      config.metadata.annotations?.['cert-manager.io/inject-ca-from'],
      'afterlife-system/rel-afterlife-webhook',
    );
    assert.equal(config.webhooks[0].clientConfig.caBundle, undefined);

    const withIssuer = await helmTemplate(VALUE_SETS.certManagerIssuer?.values ?? {});
    assert.equal(withIssuer.filter((o) => o.kind === 'Issuer').length, 0);
    assert.deepEqual(findObject(withIssuer, 'Certificate').spec.issuerRef, {
      name: 'corp-ca',
      kind: 'ClusterIssuer',
      group: 'cert-manager.io',
    });
  });

  it('uses an existing TLS Secret and its CA', async () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const objects = await helmTemplate({
      webhook: { tls: { autoGenerate: false, existingSecret: 'my-tls', caBundle: pem } },
    });
    assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0);
    const hook = findObject(objects, 'MutatingWebhookConfiguration').webhooks[0];
    assert.equal(Buffer.from(hook.clientConfig.caBundle, 'base64').toString('utf8'), pem);
    const deployment = findObject(objects, 'Deployment', 'rel-afterlife-webhook');
    assert.ok(
      deployment.spec.template.spec.volumes.some(
        (v: { secret?: { secretName: string } }) => v.secret?.secretName === 'my-tls',
      ),
    );
  });

  it('turns components off one by one', async () => {
    const none = await helmTemplate(VALUE_SETS.componentsOff?.values ?? {});
    assert.deepEqual(kinds(none), ['RuntimeClass']);
    const webhookOnly = await helmTemplate(VALUE_SETS.webhookOnly?.values ?? {});
    assert.deepEqual(
      deployments(webhookOnly).map((d) => d.metadata.name),
      ['rel-afterlife-webhook'],
    );
    assert.ok(webhookOnly.every((o) => !o.metadata.name.includes('gateway') && !o.metadata.name.includes('scaler')));
  });

  it('renders the RuntimeClass with handler and scheduling, or skips it', async () => {
    const objects = await helmTemplate(VALUE_SETS.tuned?.values ?? {});
    const rc = findObject(objects, 'RuntimeClass', 'wasmedge');
    assert.equal(rc.handler, 'wasmedge');
    assert.deepEqual(rc.scheduling, {
      nodeSelector: { 'afterlife.dev/wasm': 'true' },
      tolerations: [{ key: 'wasm', operator: 'Exists', effect: 'NoSchedule' }],
    });
    const defaults = findObject(await helmTemplate({}), 'RuntimeClass', 'wasmedge');
    assert.equal(defaults.handler, 'crun');
    assert.equal(defaults.scheduling, undefined);
    const off = await helmTemplate(VALUE_SETS.runtimeClassOff?.values ?? {});
    assert.equal(off.filter((o) => o.kind === 'RuntimeClass').length, 0);
    // The webhook still uses the configured class name.
    const env = findObject(off, 'Deployment', 'rel-afterlife-webhook').spec.template.spec.containers[0].env;
    assert.ok(
      env.some(
        (e: { name: string; value: string }) => e.name === 'AFTERLIFE_WEBHOOK_RUNTIME_CLASS' && e.value === 'wasmedge',
      ),
    );
  });

  it('applies image, scheduling, selector and policy values', async () => {
    const objects = await helmTemplate(VALUE_SETS.tuned?.values ?? {});
    const webhook = findObject(objects, 'Deployment', 'rel-afterlife-webhook').spec.template.spec;
    assert.equal(webhook.containers[0].image, `ghcr.io/afterlife-dev/afterlife-webhook@sha256:${'a'.repeat(64)}`);
    assert.deepEqual(webhook.imagePullSecrets, [{ name: 'regcred' }]);
    assert.equal(webhook.topologySpreadConstraints, undefined);
    const gateway = findObject(objects, 'Deployment', 'rel-afterlife-gateway');
    assert.equal(gateway.spec.replicas, 3);
    assert.equal(gateway.metadata.labels?.team, 'fn');
    const gatewayPod = gateway.spec.template.spec;
    assert.equal(gatewayPod.containers[0].image, 'ghcr.io/afterlife-dev/afterlife-gateway:1.2.3');
    assert.equal(gatewayPod.containers[0].imagePullPolicy, 'Always');
    assert.equal(gatewayPod.priorityClassName, 'system-cluster-critical');
    assert.equal(gatewayPod.tolerations[0].key, 'dedicated');
    assert.deepEqual(
      gatewayPod.topologySpreadConstraints.map((t: { topologyKey: string }) => t.topologyKey),
      ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'],
    );
    const hook = findObject(objects, 'MutatingWebhookConfiguration').webhooks[0];
    assert.equal(hook.failurePolicy, 'Ignore');
    assert.equal(hook.timeoutSeconds, 5);
    const webhookEnv = webhook.containers[0].env as { name: string; value: string }[];
    assert.equal(
      webhookEnv.find((e) => e.name === 'AFTERLIFE_WEBHOOK_REQUEST_TIMEOUT')?.value,
      '4500ms',
      'the webhook answers before the API server gives up',
    );
    assert.deepEqual(hook.namespaceSelector, {
      matchExpressions: [{ key: 'afterlife.dev/enabled', operator: 'Exists' }],
    });
    assert.equal(
      objects.filter((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === 'rel-afterlife-webhook').length,
      0,
    );
    const scaler = findObject(objects, 'Deployment', 'rel-afterlife-scaler').spec.template.spec;
    assert.ok(scaler.volumes.some((v: { secret?: { secretName: string } }) => v.secret?.secretName === 'scaler-tls'));
  });

  it('grants each component exactly the RBAC it needs', async () => {
    const objects = await helmTemplate({});
    const rulesOf = (kind: string, name: string) => findObject(objects, kind, name).rules;
    assert.deepEqual(rulesOf('Role', 'rel-afterlife-webhook'), [
      {
        apiGroups: [''],
        resources: ['configmaps'],
        verbs: ['get', 'list', 'watch'],
      },
    ]);
    assert.equal(findObject(objects, 'Role', 'rel-afterlife-webhook').metadata.namespace, 'knative-serving');
    assert.deepEqual(rulesOf('ClusterRole', 'rel-afterlife-webhook-afterlife-system'), [
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] },
    ]);
    const gatewayRules = [
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
    ];
    assert.deepEqual(rulesOf('ClusterRole', 'rel-afterlife-gateway-afterlife-system'), gatewayRules);
    assert.deepEqual(rulesOf('Role', 'rel-afterlife-scaler'), [
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
    ]);
    // Per-namespace gateway RBAC when watchNamespaces is set.
    const scoped = await helmTemplate(VALUE_SETS.tuned?.values ?? {});
    const gatewayRoles = scoped.filter((o) => o.kind === 'Role' && o.metadata.name === 'rel-afterlife-gateway');
    assert.deepEqual(
      gatewayRoles.map((r) => r.metadata.namespace),
      ['fn-a', 'fn-b'],
    );
    for (const role of gatewayRoles) assert.deepEqual(role.rules, gatewayRules);
    assert.equal(scoped.filter((o) => o.kind === 'ClusterRole' && o.metadata.name.includes('gateway')).length, 0);
    const env = findObject(scoped, 'Deployment', 'rel-afterlife-gateway').spec.template.spec.containers[0].env;
    assert.ok(
      env.some(
        (e: { name: string; value: string }) => e.name === 'AFTERLIFE_GATEWAY_NAMESPACES' && e.value === 'fn-a,fn-b',
      ),
    );
  });

  it('renders NetworkPolicies only when enabled, admitting KEDA to the scaler and the scaler to the gateway admin port', async () => {
    const objects = await helmTemplate(VALUE_SETS.networkPolicies?.values ?? {});
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
    assert.equal(policies.length, 3);
    const scaler = findObject(objects, 'NetworkPolicy', 'rel-afterlife-scaler');
    assert.deepEqual(scaler.spec.ingress[0], {
      ports: [{ port: 9090, protocol: 'TCP' }],
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'keda' } } }],
    });
    const gateway = findObject(objects, 'NetworkPolicy', 'rel-afterlife-gateway');
    assert.deepEqual(gateway.spec.ingress[0].from, [{ podSelector: {} }, { ipBlock: { cidr: '10.0.0.0/8' } }]);
    assert.equal(gateway.spec.ingress[1].from[0].podSelector.matchLabels['app.kubernetes.io/component'], 'scaler');
  });

  it('renders ServiceMonitors only when enabled', async () => {
    const objects = await helmTemplate(VALUE_SETS.serviceMonitor?.values ?? {});
    const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
    assert.deepEqual(monitors.map((m) => m.metadata.name).sort(), [
      'rel-afterlife-gateway',
      'rel-afterlife-scaler',
      'rel-afterlife-webhook',
    ]);
    for (const monitor of monitors) {
      assert.equal(monitor.metadata.labels?.release, 'prom');
      const svc = findObject(objects, 'Service', monitor.metadata.name);
      const portNames = svc.spec.ports.map((p: { name: string }) => p.name);
      assert.ok(portNames.includes(monitor.spec.endpoints[0].port), `${monitor.metadata.name} scrapes a Service port`);
      assert.deepEqual(monitor.spec.selector.matchLabels, svc.spec.selector);
    }
  });

  it('keeps object names within Kubernetes limits for a long release name', async () => {
    const objects = await helmTemplate({}, { release: 'a-very-long-release-name-for-testing-limits-of-names' });
    for (const o of objects) {
      const limit = ['Service', 'Deployment', 'ServiceAccount'].includes(o.kind) ? 63 : 253;
      assert.ok(o.metadata.name.length <= limit, `${o.kind}/${o.metadata.name}`);
    }
  });
});
