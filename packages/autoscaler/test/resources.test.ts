import assert from 'node:assert/strict';
import type { V1Deployment } from '@kubernetes/client-node';
import type { RevisionScaling } from '../src/annotations.ts';
import { scaleTargetOnly } from '../src/controller.ts';
import {
  type Condition,
  computeStatus,
  desiredScaledObject,
  desiredServerlessService,
  type PodAutoscaler,
  type ScaledObject,
  type ServerlessService,
  type StatusInput,
  scaledObjectDiffers,
  scaledObjectRead,
  serverlessServiceRead,
} from '../src/resources.ts';

const SCALING: RevisionScaling = {
  minScale: 0,
  maxScale: 5,
  initialScale: 1,
  target: 10,
  metric: 'concurrency',
  cooldownSeconds: 30,
  pollingIntervalSeconds: 5,
  activationThreshold: 0,
};
const NOW = new Date('2026-12-01T12:00:00.000Z');

function pa(conditions: Condition[] = []): PodAutoscaler {
  return {
    metadata: {
      name: 'hello-00001',
      namespace: 'demo',
      uid: 'uid-1',
      generation: 2,
      labels: { 'serving.knative.dev/revision': 'hello-00001' },
      annotations: { 'autoscaling.knative.dev/class': 'afterlife.dev' },
    },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'hello-00001-deployment' },
      protocolType: 'http1',
    },
    status: { conditions },
  };
}

const SKS_READY: ServerlessService = {
  ...desiredServerlessService(pa()),
  status: {
    serviceName: 'hello-00001',
    privateServiceName: 'hello-00001-private',
    conditions: [{ type: 'Ready', status: 'True' }],
  },
};
const SKS_NO_BACKENDS: ServerlessService = {
  ...SKS_READY,
  status: { ...SKS_READY.status, conditions: [{ type: 'Ready', status: 'Unknown', reason: 'NoHealthyBackends' }] },
};

const status = (input: Partial<StatusInput>) =>
  computeStatus({
    pa: pa(),
    scaling: SCALING,
    sks: SKS_READY,
    target: undefined,
    scaledObject: undefined,
    now: NOW,
    ...input,
  });
const condition = (s: ReturnType<typeof computeStatus>, type: string) => s.conditions?.find((c) => c.type === type);
const INITIALIZED: Condition = {
  type: 'ScaleTargetInitialized',
  status: 'True',
  lastTransitionTime: '2026-12-01T11:00:00Z',
};

describe('desired objects', () => {
  it('SKS: named after and controlled by the PA, Serve mode, objectRef = scaleTargetRef', () => {
    const sks = desiredServerlessService(pa());
    assert.equal(sks.metadata.name, 'hello-00001');
    assert.deepEqual(sks.metadata.ownerReferences, [
      {
        apiVersion: 'autoscaling.internal.knative.dev/v1alpha1',
        kind: 'PodAutoscaler',
        name: 'hello-00001',
        uid: 'uid-1',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    assert.deepEqual(sks.spec, {
      mode: 'Serve',
      objectRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'hello-00001-deployment' },
      protocolType: 'http1',
      numActivators: 0,
    });
  });

  it('ScaledObject: targets the Deployment, external-push keyed by revision; min held at initial scale until initialized', () => {
    const before = desiredScaledObject({
      pa: pa(),
      scaling: SCALING,
      scalerAddress: 'scaler:9090',
      initialized: false,
    });
    assert.deepEqual(before.spec, {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'hello-00001-deployment' },
      minReplicaCount: 1,
      maxReplicaCount: 5,
      pollingInterval: 5,
      cooldownPeriod: 30,
      triggers: [
        {
          type: 'external-push',
          metadata: { scalerAddress: 'scaler:9090', revision: 'hello-00001', metric: 'concurrency', targetValue: '10' },
        },
      ],
    });
    assert.equal(before.metadata.labels?.['app.kubernetes.io/managed-by'], 'afterlife-autoscaler');
    const after = desiredScaledObject({ pa: pa(), scaling: SCALING, scalerAddress: 'scaler:9090', initialized: true });
    assert.equal(after.spec.minReplicaCount, 0);
    assert.ok(scaledObjectDiffers(before, after));
    // A scaler serving TLS: KEDA takes the CA (and client cert) from a ClusterTriggerAuthentication.
    const tls = desiredScaledObject({
      pa: pa(),
      scaling: SCALING,
      scalerAddress: 'scaler:9090',
      scalerTlsAuthentication: 'afterlife-scaler-tls',
      initialized: true,
    });
    assert.equal(tls.spec.triggers[0]?.metadata.enableTLS, 'true');
    assert.deepEqual(tls.spec.triggers[0]?.authenticationRef, {
      name: 'afterlife-scaler-tls',
      kind: 'ClusterTriggerAuthentication',
    });
    assert.ok(scaledObjectDiffers(after, tls), 'turning TLS on updates the ScaledObject');
    // Fields KEDA adds do not count as a difference.
    const withKedaFields = { ...after, spec: { ...after.spec, advanced: {} }, status: { conditions: [] } };
    assert.equal(scaledObjectDiffers(withKedaFields as typeof after, after), false);
  });
});

describe('computeStatus', () => {
  it('before the Deployment has ready pods: initializing, nothing False (a False Ready would fail the revision)', () => {
    const s = status({ target: { desired: 1, ready: 0 }, sks: SKS_NO_BACKENDS });
    assert.equal(condition(s, 'ScaleTargetInitialized')?.status, 'Unknown');
    assert.equal(condition(s, 'Active')?.reason, 'Queued');
    assert.equal(condition(s, 'Ready')?.status, 'Unknown');
    assert.ok(!s.conditions?.some((c) => c.status === 'False'));
    assert.equal(s.serviceName, 'hello-00001');
    assert.equal(s.metricsServiceName, 'hello-00001-private');
    assert.equal(s.observedGeneration, 2);
    assert.equal(s.desiredScale, 1);
    assert.equal(s.actualScale, 0);
  });

  it('initial scale reached: initialized, active, Ready', () => {
    const s = status({ target: { desired: 1, ready: 1 } });
    for (const type of ['ScaleTargetInitialized', 'Active', 'SKSReady', 'Ready'])
      assert.equal(condition(s, type)?.status, 'True', type);
  });

  it('initialized stays initialized; at zero Active is False/NoTraffic (Knative shows the revision Ready, inactive)', () => {
    const s = computeStatus({
      pa: pa([INITIALIZED]),
      scaling: SCALING,
      sks: SKS_NO_BACKENDS,
      target: { desired: 0, ready: 0 },
      scaledObject: undefined,
      now: NOW,
    });
    assert.equal(condition(s, 'ScaleTargetInitialized')?.status, 'True');
    assert.equal(
      condition(s, 'ScaleTargetInitialized')?.lastTransitionTime,
      '2026-12-01T11:00:00Z',
      'transition time kept',
    );
    assert.equal(condition(s, 'Active')?.status, 'False');
    assert.equal(condition(s, 'Active')?.reason, 'NoTraffic');
    assert.equal(condition(s, 'Ready')?.status, 'False');
    assert.equal(s.desiredScale, 0);
  });

  it('scaling from zero: Activating while KEDA asked for replicas and none is ready', () => {
    const s = computeStatus({
      pa: pa([INITIALIZED]),
      scaling: SCALING,
      sks: SKS_NO_BACKENDS,
      target: { desired: 1, ready: 0 },
      scaledObject: undefined,
      now: NOW,
    });
    assert.equal(condition(s, 'Active')?.reason, 'Activating');
    assert.equal(condition(s, 'Ready')?.status, 'Unknown');
  });

  it('initial scale 0: initialized as soon as the SKS gave a serviceName, without ever running a pod', () => {
    const s = status({
      scaling: { ...SCALING, initialScale: 0 },
      sks: SKS_NO_BACKENDS,
      target: { desired: 0, ready: 0 },
    });
    assert.equal(condition(s, 'ScaleTargetInitialized')?.status, 'True');
    const noService = status({
      scaling: { ...SCALING, initialScale: 0 },
      sks: undefined,
      target: { desired: 0, ready: 0 },
    });
    assert.equal(condition(noService, 'ScaleTargetInitialized')?.status, 'Unknown');
  });

  it('min-scale above the initial scale decides what "initialized" needs', () => {
    const s = status({ scaling: { ...SCALING, minScale: 2 }, target: { desired: 2, ready: 1 } });
    assert.equal(condition(s, 'ScaleTargetInitialized')?.status, 'Unknown');
    assert.match(condition(s, 'ScaleTargetInitialized')?.message ?? '', /waiting for 2 ready/);
  });

  it('bad annotations: Active False with every problem; no serviceName so Knative does not fail the revision', () => {
    const s = status({ scaling: { problems: ['annotation a is bad', 'annotation b is bad'] }, sks: undefined });
    assert.equal(condition(s, 'Active')?.status, 'False');
    assert.equal(condition(s, 'Active')?.reason, 'InvalidAnnotations');
    assert.equal(condition(s, 'Ready')?.message, 'annotation a is bad; annotation b is bad');
    assert.equal(s.serviceName, undefined);
  });

  it('an object owned by someone else is reported on Active: Unknown before initialization (not failing the revision), False after', () => {
    const failure = {
      reason: 'NotOwned',
      message: 'There is an existing ScaledObject "hello-00001" that we do not own.',
    };
    const early = status({ failure, target: { desired: 1, ready: 0 } });
    assert.equal(condition(early, 'Active')?.reason, 'NotOwned');
    assert.equal(condition(early, 'Active')?.status, 'Unknown');
    assert.equal(condition(early, 'Ready')?.status, 'Unknown');
    const later = status({ failure, target: { desired: 1, ready: 1 } });
    assert.equal(condition(later, 'Active')?.status, 'False');
    assert.equal(condition(later, 'Ready')?.status, 'False');
  });

  it("at zero, KEDA's complaint about the ScaledObject is carried in the message", () => {
    const s = computeStatus({
      pa: pa([INITIALIZED]),
      scaling: SCALING,
      sks: SKS_NO_BACKENDS,
      target: { desired: 0, ready: 0 },
      scaledObject: {
        ...desiredScaledObject({ pa: pa(), scaling: SCALING, scalerAddress: 's:1', initialized: true }),
        status: {
          conditions: [
            { type: 'Ready', status: 'False', reason: 'ScaledObjectCheckFailed', message: 'scaler unreachable' },
          ],
        },
      },
      now: NOW,
    });
    assert.match(
      condition(s, 'Active')?.message ?? '',
      /KEDA reports a problem: .*ScaledObjectCheckFailed.*scaler unreachable/,
    );
  });
});

describe('what the caches keep', () => {
  // Objects as the API server returns them: the status fields nobody here reads, timestamps, a
  // Deployment with its pod template, annotations and conditions.
  const fullSks: ServerlessService = {
    ...SKS_NO_BACKENDS,
    metadata: { ...SKS_NO_BACKENDS.metadata, annotations: { a: 'b' }, ...({ finalizers: ['keep/me'] } as object) },
    status: {
      ...SKS_NO_BACKENDS.status,
      conditions: [
        {
          type: 'Ready',
          status: 'Unknown',
          reason: 'NoHealthyBackends',
          message: 'm',
          severity: 'Info',
          lastTransitionTime: '2026-12-01T11:00:00Z',
        },
      ],
      ...({ observedGeneration: 3, annotations: { x: 'y' } } as object),
    },
  };
  const fullScaledObject: ScaledObject = {
    ...desiredScaledObject({ pa: pa(), scaling: SCALING, scalerAddress: 's:1', initialized: true }),
    status: {
      conditions: [
        { type: 'Ready', status: 'False', reason: 'ScaledObjectCheckFailed', message: 'scaler unreachable' },
        { type: 'Active', status: 'False', ...({ lastTransitionTime: '2026-12-01T11:00:00Z' } as object) },
      ],
      ...({ externalMetricNames: ['s0-afterlife'], hpaName: 'keda-hpa-x', health: { s0: {} } } as object),
    },
  };
  const fullDeployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'hello-00001-deployment',
      namespace: 'demo',
      uid: 'd-1',
      resourceVersion: '42',
      labels: { 'serving.knative.dev/revision': 'hello-00001', 'serving.knative.dev/service': 'hello' },
      annotations: { 'deployment.kubernetes.io/revision': '1' },
      ownerReferences: [{ apiVersion: 'serving.knative.dev/v1', kind: 'Revision', name: 'hello-00001', uid: 'r-1' }],
    },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'hello' } },
      template: { metadata: { labels: { app: 'hello' } }, spec: { containers: [{ name: 'user-container' }] } },
    },
    status: {
      replicas: 2,
      readyReplicas: 1,
      conditions: [{ type: 'Available', status: 'False', message: 'Deployment does not have minimum availability.' }],
    },
  };

  it('an SKS and a ScaledObject keep metadata and spec whole, and every status field computeStatus reads', () => {
    const sks = serverlessServiceRead(fullSks);
    const scaledObject = scaledObjectRead(fullScaledObject);
    assert.deepEqual(sks.metadata, fullSks.metadata, 'finalizers and annotations survive a replace from the cache');
    assert.deepEqual(sks.spec, fullSks.spec);
    assert.deepEqual(scaledObject.spec, fullScaledObject.spec);
    assert.deepEqual(Object.keys(sks.status ?? {}).sort(), ['conditions', 'privateServiceName', 'serviceName']);
    assert.deepEqual(Object.keys(scaledObject.status ?? {}), ['conditions']);
    assert.equal(sks.status?.conditions?.[0]?.lastTransitionTime, undefined);
    for (const initialized of [[], [INITIALIZED]]) {
      const input = { pa: pa(initialized), scaling: SCALING, target: { desired: 0, ready: 0 }, now: NOW };
      assert.deepEqual(
        computeStatus({ ...input, sks, scaledObject }),
        computeStatus({ ...input, sks: fullSks, scaledObject: fullScaledObject }),
      );
    }
    assert.deepEqual(serverlessServiceRead(SKS_READY).status, SKS_READY.status);
  });

  it('a revision Deployment keeps its identity, revision label, replicas and ready replicas only', () => {
    const kept = scaleTargetOnly(fullDeployment);
    assert.deepEqual(kept.metadata, {
      name: 'hello-00001-deployment',
      namespace: 'demo',
      uid: 'd-1',
      resourceVersion: '42',
      labels: { 'serving.knative.dev/revision': 'hello-00001' },
    });
    assert.equal(kept.spec?.replicas, 2);
    assert.deepEqual(kept.status, { readyReplicas: 1 });
    assert.ok(JSON.stringify(kept).length < JSON.stringify(fullDeployment).length / 2);
  });
});
