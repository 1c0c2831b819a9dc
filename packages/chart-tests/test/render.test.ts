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
    for (const component of ['webhook', 'gateway', 'scaler', 'autoscaler']) {
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
    assert.deepEqual(ports('rel-afterlife-autoscaler'), { admin: 9090 });
    const webhook = findObject(objects, 'Deployment', 'rel-afterlife-webhook').spec.template.spec.containers[0];
    assert.equal(webhook.readinessProbe.httpGet.scheme, 'HTTPS');
    const scaler = findObject(objects, 'Deployment', 'rel-afterlife-scaler').spec.template.spec.containers[0];
    assert.equal(scaler.livenessProbe.httpGet.port, 'metrics');
    const autoscaler = findObject(objects, 'Deployment', 'rel-afterlife-autoscaler').spec.template.spec.containers[0];
    assert.deepEqual(autoscaler.livenessProbe.httpGet, { path: '/healthz', port: 'admin' });
    assert.deepEqual(autoscaler.readinessProbe.httpGet, { path: '/readyz', port: 'admin' });
    assert.deepEqual(
      findObject(objects, 'Service', 'rel-afterlife-autoscaler').spec.ports,
      [{ name: 'admin', port: 9090, targetPort: 'admin', protocol: 'TCP' }],
      'the autoscaler Service only exposes the admin port (metrics)',
    );
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
    // autoscaler.enabled=false renders nothing of the autoscaler, in every optional template too.
    const withoutAutoscaler = await helmTemplate({
      ...(VALUE_SETS.autoscalerKeda?.values ?? {}),
      networkPolicies: { enabled: true },
      serviceMonitor: { enabled: true },
    });
    const autoscalerObjects = withoutAutoscaler.filter(
      (o) =>
        o.metadata.labels?.['app.kubernetes.io/component'] === 'autoscaler' || o.metadata.name.includes('autoscaler'),
    );
    assert.deepEqual(
      autoscalerObjects.map((o) => `${o.kind}/${o.metadata.name}`),
      [],
    );
    assert.deepEqual(
      deployments(withoutAutoscaler)
        .map((d) => d.metadata.name)
        .sort(),
      ['rel-afterlife-gateway', 'rel-afterlife-scaler', 'rel-afterlife-webhook'],
    );
  });

  it('refuses an event-scaling route nobody serves, with a message that says what to set', async () => {
    const render = async (values: object) => {
      const tmp = tempDir();
      try {
        const file = writeValues(tmp.dir, 'values', values);
        return await run(await helmBinary(), [
          'template',
          'rel',
          CHART_DIR,
          '--kube-version',
          KUBE_VERSION,
          '-f',
          file,
        ]);
      } finally {
        tmp.cleanup();
      }
    };
    const noAutoscaler = await render({ autoscaler: { enabled: false } });
    assert.notEqual(noAutoscaler.code, 0, 'route afterlife without the autoscaler renders');
    assert.match(
      noAutoscaler.stderr,
      /webhook\.scalingRoute=afterlife needs autoscaler\.enabled=true .*set webhook\.scalingRoute=autoscaler-keda on clusters running knative-extensions\/autoscaler-keda/,
    );
    // The rule is about the webhook's route: without the webhook, or with the other route, it renders.
    const perServiceGateway = {
      discovery: {
        mode: 'label',
        functionLabel: 'serving.knative.dev/service',
        serviceSelector: 'networking.internal.knative.dev/serviceType=Private',
      },
    };
    for (const values of [
      { autoscaler: { enabled: false }, webhook: { enabled: false } },
      { autoscaler: { enabled: false }, webhook: { scalingRoute: 'autoscaler-keda' }, gateway: perServiceGateway },
    ]) {
      const result = await render(values);
      assert.equal(result.code, 0, `${JSON.stringify(values)}: ${result.stderr}`);
    }
    // The chart's scaler serving TLS needs the ClusterTriggerAuthentication for the triggers.
    const tlsWithoutAuth = await render({ scaler: { tls: { existingSecret: 'scaler-tls' } } });
    assert.notEqual(tlsWithoutAuth.code, 0, 'a TLS scaler with plaintext triggers renders');
    assert.match(
      tlsWithoutAuth.stderr,
      /scaler\.tls\.existingSecret makes the scaler serve TLS: set autoscaler\.scalerTlsAuthentication/,
    );
    // autoscaler-keda's triggers name the Service: a gateway counting per revision would never wake them.
    const kedaPerRevision = await render({
      autoscaler: { enabled: false },
      webhook: { scalingRoute: 'autoscaler-keda' },
    });
    assert.notEqual(kedaPerRevision.code, 0, 'route autoscaler-keda with discovery knative renders');
    assert.match(
      kedaPerRevision.stderr,
      /webhook\.scalingRoute=autoscaler-keda needs the gateway to count per Knative Service: set gateway\.discovery\.mode=label/,
    );
    const noScaler = await render({ scaler: { enabled: false } });
    assert.notEqual(noScaler.code, 0, 'the autoscaler without any scaler renders');
    assert.match(
      noScaler.stderr,
      /autoscaler\.enabled needs a scaler .*set scaler\.enabled=true or autoscaler\.scalerAddress/,
    );
    const external = await helmTemplate({
      scaler: { enabled: false },
      autoscaler: { scalerAddress: 'scaler.shared.svc:9090' },
    });
    const env = findObject(external, 'Deployment', 'rel-afterlife-autoscaler').spec.template.spec.containers[0].env;
    assert.deepEqual(
      env.find((e: { name: string }) => e.name === 'AFTERLIFE_AUTOSCALER_SCALER_ADDRESS'),
      { name: 'AFTERLIFE_AUTOSCALER_SCALER_ADDRESS', value: 'scaler.shared.svc:9090' },
    );
  });

  it('sets the webhook scaling route and the autoscaler settings from values', async () => {
    const envOf = (objects: readonly K8sObject[], component: string) =>
      Object.fromEntries(
        (
          findObject(objects, 'Deployment', `rel-afterlife-${component}`).spec.template.spec.containers[0].env as {
            name: string;
            value?: string;
          }[]
        ).map((e) => [e.name, e.value]),
      );
    assert.equal(envOf(await helmTemplate({}), 'webhook').AFTERLIFE_WEBHOOK_SCALING_ROUTE, 'afterlife');
    const keda = await helmTemplate(VALUE_SETS.autoscalerKeda?.values ?? {});
    assert.equal(envOf(keda, 'webhook').AFTERLIFE_WEBHOOK_SCALING_ROUTE, 'autoscaler-keda');

    const defaults = envOf(await helmTemplate({}), 'autoscaler');
    assert.deepEqual(defaults, {
      AFTERLIFE_AUTOSCALER_ADMIN_PORT: '9090',
      AFTERLIFE_AUTOSCALER_LOG_LEVEL: 'info',
      AFTERLIFE_AUTOSCALER_SCALER_ADDRESS: 'rel-afterlife-scaler.afterlife-system.svc:9090',
      AFTERLIFE_AUTOSCALER_SCALER_TLS_AUTHENTICATION: '',
      AFTERLIFE_AUTOSCALER_NAMESPACES: '',
      AFTERLIFE_AUTOSCALER_LEASE_NAMESPACE: NS,
      AFTERLIFE_AUTOSCALER_LEASE_NAME: 'rel-afterlife-autoscaler',
      AFTERLIFE_AUTOSCALER_IDENTITY: undefined,
      AFTERLIFE_AUTOSCALER_DEFAULT_MAX_SCALE: '10',
      AFTERLIFE_AUTOSCALER_DEFAULT_TARGET: '10',
      AFTERLIFE_AUTOSCALER_DEFAULT_METRIC: 'concurrency',
      AFTERLIFE_AUTOSCALER_DEFAULT_COOLDOWN: '30s',
      AFTERLIFE_AUTOSCALER_DEFAULT_POLLING_INTERVAL: '5s',
    });

    const tuned = await helmTemplate(VALUE_SETS.tuned?.values ?? {});
    const deployment = findObject(tuned, 'Deployment', 'rel-afterlife-autoscaler');
    assert.equal(deployment.spec.replicas, 3);
    const env = envOf(tuned, 'autoscaler');
    assert.equal(env.AFTERLIFE_AUTOSCALER_NAMESPACES, 'fn-a,fn-b');
    assert.equal(env.AFTERLIFE_AUTOSCALER_ADMIN_PORT, '9190');
    assert.equal(env.AFTERLIFE_AUTOSCALER_DEFAULT_TARGET, '2.5');
    assert.equal(env.AFTERLIFE_AUTOSCALER_DEFAULT_COOLDOWN, '120s');
    assert.equal(env.AFTERLIFE_AUTOSCALER_DEFAULT_POLLING_INTERVAL, '2s');
    assert.equal(env.AFTERLIFE_AUTOSCALER_WORKERS, '8');
    assert.equal(env.AFTERLIFE_AUTOSCALER_SCALER_TLS_AUTHENTICATION, 'afterlife-scaler-tls');
    const container = deployment.spec.template.spec.containers[0];
    assert.deepEqual(container.ports, [{ name: 'admin', containerPort: 9190, protocol: 'TCP' }]);
    assert.equal(findObject(tuned, 'Service', 'rel-afterlife-autoscaler').spec.ports[0].port, 9190);
    assert.equal(findObject(tuned, 'PodDisruptionBudget', 'rel-afterlife-autoscaler').spec.maxUnavailable, 2);
    // Whole-number targets are written as such, not in Helm's float notation.
    const big = envOf(await helmTemplate({ autoscaler: { defaults: { target: 2_500_000 } } }), 'autoscaler');
    assert.equal(big.AFTERLIFE_AUTOSCALER_DEFAULT_TARGET, '2500000');
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
    // Discovery `knative` (the default): Routes name the revisions, their private EndpointSlices the pods.
    const gatewayRules = [
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['serving.knative.dev'], resources: ['routes'], verbs: ['get', 'list', 'watch'] },
    ];
    assert.deepEqual(rulesOf('ClusterRole', 'rel-afterlife-gateway-afterlife-system'), gatewayRules);
    assert.deepEqual(rulesOf('Role', 'rel-afterlife-scaler'), [
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
    ]);
    // The autoscaler: exactly the calls of src/controller.ts (no delete: the garbage collector removes
    // the SKS and ScaledObject through their owner references; no update of the PA, only a status patch).
    const knativeAutoscaling = 'autoscaling.internal.knative.dev';
    const autoscalerRules = [
      { apiGroups: [knativeAutoscaling], resources: ['podautoscalers'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [knativeAutoscaling], resources: ['podautoscalers/status'], verbs: ['patch'] },
      // For OwnerReferencesPermissionEnforcement (blockOwnerDeletion on the owner reference to the PA).
      { apiGroups: [knativeAutoscaling], resources: ['podautoscalers/finalizers'], verbs: ['update'] },
      {
        apiGroups: ['networking.internal.knative.dev'],
        resources: ['serverlessservices'],
        verbs: ['get', 'list', 'watch', 'create', 'update'],
      },
      { apiGroups: ['keda.sh'], resources: ['scaledobjects'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
      { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'watch'] },
    ];
    assert.deepEqual(rulesOf('ClusterRole', 'rel-afterlife-autoscaler-afterlife-system'), autoscalerRules);
    const leaseRules = [
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: ['rel-afterlife-autoscaler'],
        verbs: ['get', 'update'],
      },
      // create cannot be restricted by resourceNames.
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    ];
    assert.deepEqual(rulesOf('Role', 'rel-afterlife-autoscaler-lease'), leaseRules);
    assert.equal(findObject(objects, 'Role', 'rel-afterlife-autoscaler-lease').metadata.namespace, NS);
    const autoscalerSubject = [{ kind: 'ServiceAccount', name: 'rel-afterlife-autoscaler', namespace: NS }];
    const clusterBinding = findObject(objects, 'ClusterRoleBinding', 'rel-afterlife-autoscaler-afterlife-system');
    assert.deepEqual(clusterBinding.roleRef, {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'rel-afterlife-autoscaler-afterlife-system',
    });
    assert.deepEqual(clusterBinding.subjects, autoscalerSubject);
    const leaseBinding = findObject(objects, 'RoleBinding', 'rel-afterlife-autoscaler-lease');
    assert.equal(leaseBinding.metadata.namespace, NS);
    assert.equal(leaseBinding.roleRef.name, 'rel-afterlife-autoscaler-lease');
    assert.deepEqual(leaseBinding.subjects, autoscalerSubject);
    // Per-namespace gateway RBAC when watchNamespaces is set.
    const scoped = await helmTemplate(VALUE_SETS.tuned?.values ?? {});
    const gatewayRoles = scoped.filter((o) => o.kind === 'Role' && o.metadata.name === 'rel-afterlife-gateway');
    assert.deepEqual(
      gatewayRoles.map((r) => r.metadata.namespace),
      ['fn-a', 'fn-b'],
    );
    for (const role of gatewayRoles) assert.deepEqual(role.rules, gatewayRules);
    assert.equal(scoped.filter((o) => o.kind === 'ClusterRole' && o.metadata.name.includes('gateway')).length, 0);
    // Per-namespace autoscaler RBAC when its watchNamespaces is set; the Lease Role stays in the release namespace.
    const autoscalerRoles = scoped.filter((o) => o.kind === 'Role' && o.metadata.name === 'rel-afterlife-autoscaler');
    assert.deepEqual(
      autoscalerRoles.map((r) => r.metadata.namespace),
      ['fn-a', 'fn-b'],
    );
    for (const role of autoscalerRoles) assert.deepEqual(role.rules, autoscalerRules);
    const autoscalerBindings = scoped.filter(
      (o) => o.kind === 'RoleBinding' && o.metadata.name === 'rel-afterlife-autoscaler',
    );
    assert.deepEqual(
      autoscalerBindings.map((b) => [b.metadata.namespace, b.roleRef.kind, b.roleRef.name, b.subjects]),
      ['fn-a', 'fn-b'].map((ns) => [ns, 'Role', 'rel-afterlife-autoscaler', autoscalerSubject]),
    );
    assert.equal(
      scoped.filter((o) => o.kind.startsWith('Cluster') && o.metadata.name.includes('autoscaler')).length,
      0,
    );
    assert.deepEqual(findObject(scoped, 'Role', 'rel-afterlife-autoscaler-lease').rules, leaseRules);
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
    assert.equal(policies.length, 4);
    const scaler = findObject(objects, 'NetworkPolicy', 'rel-afterlife-scaler');
    assert.deepEqual(scaler.spec.ingress[0], {
      ports: [{ port: 9090, protocol: 'TCP' }],
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'keda' } } }],
    });
    const gateway = findObject(objects, 'NetworkPolicy', 'rel-afterlife-gateway');
    assert.deepEqual(gateway.spec.ingress[0].from, [{ podSelector: {} }, { ipBlock: { cidr: '10.0.0.0/8' } }]);
    assert.equal(gateway.spec.ingress[1].from[0].podSelector.matchLabels['app.kubernetes.io/component'], 'scaler');
    const autoscaler = findObject(objects, 'NetworkPolicy', 'rel-afterlife-autoscaler');
    assert.deepEqual(autoscaler.spec.podSelector.matchLabels['app.kubernetes.io/component'], 'autoscaler');
    assert.deepEqual(autoscaler.spec.ingress, [
      {
        ports: [{ port: 9090, protocol: 'TCP' }],
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      },
    ]);
  });

  it('renders ServiceMonitors only when enabled', async () => {
    const objects = await helmTemplate(VALUE_SETS.serviceMonitor?.values ?? {});
    const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
    assert.deepEqual(monitors.map((m) => m.metadata.name).sort(), [
      'rel-afterlife-autoscaler',
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
