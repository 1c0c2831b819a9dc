import assert from 'node:assert/strict';
import { enableFlagCommand, featuresFromConfigMaps, UNSYNCED_FEATURES } from '@afterlife/core';
import { type AdmitContext, admit, type ImageInspector, scaledObjectOverride } from '../src/admit.ts';
import { WebhookError } from '../src/errors.ts';
import { answerReview } from '../src/review.ts';
import {
  admissionReview,
  applyResult,
  CONFIG,
  FLAG_OFF,
  FLAG_ON,
  knativeService,
  responseOf,
  SELECTOR_ROUTE,
} from './fixtures.ts';

const WASM = { 'afterlife.dev/runtime': 'wasmedge' };
const EVENTS = { ...WASM, 'afterlife.dev/scaling': 'events' };
const OVERRIDE = scaledObjectOverride('afterlife-scaler.afterlife-system.svc:9090', 'demo/hello', 10);

type Json = Record<string, unknown>;
const template = (o: Json) => (o.spec as Json).template as Json;
const annotations = (o: Json) => ((template(o).metadata as Json | undefined)?.annotations ?? {}) as Json;
const labels = (o: Json) => ((template(o).metadata as Json | undefined)?.labels ?? {}) as Json;
const runtimeClass = (o: Json) => (template(o).spec as Json | undefined)?.runtimeClassName;

interface Case {
  name: string;
  object: Json;
  context?: Partial<AdmitContext>;
  review?: Parameters<typeof admissionReview>[1];
  outcome: string;
  allowed?: boolean;
  check?: (patched: Json, warnings: string[], message: string | undefined) => void;
}

const cases: Case[] = [
  {
    name: 'opted-in Service, flag on: runtimeClassName and compat-smart annotation',
    object: knativeService({ labels: WASM }),
    outcome: 'mutated',
    check: (o) => {
      assert.equal(runtimeClass(o), 'wasmedge');
      assert.equal(annotations(o)['module.wasm.image/variant'], 'compat-smart');
      assert.equal(annotations(o)['autoscaling.knative.dev/target'], '10', 'keeps existing annotations');
      assert.equal(annotations(o)['autoscaling.knative.dev/class'], undefined, 'no scaling annotations unless asked');
    },
  },
  {
    name: 'event scaling requested by label: the Afterlife autoscaler class and min-scale 0, no override',
    object: knativeService({ labels: EVENTS }),
    outcome: 'mutated',
    check: (o) => {
      assert.equal(annotations(o)['autoscaling.knative.dev/class'], 'afterlife.dev');
      assert.equal(annotations(o)['autoscaling.knative.dev/min-scale'], '0');
      assert.equal(annotations(o)['autoscaling.knative.dev/scaled-object-override'], undefined);
      assert.equal(annotations(o)['autoscaling.knative.dev/target'], '10', "the template's own target is kept");
    },
  },
  {
    name: 'event scaling, Afterlife route: afterlife.dev/target-value becomes the template target',
    object: knativeService({
      labels: EVENTS,
      annotations: { 'afterlife.dev/target-value': '25' },
      template: { spec: { containers: [{ image: 'x' }] } },
    }),
    outcome: 'mutated',
    check: (o, warnings) => {
      assert.equal(annotations(o)['autoscaling.knative.dev/target'], '25');
      assert.deepEqual(warnings, []);
    },
  },
  {
    name: 'event scaling, autoscaler-keda route: HPA class, min-scale and the scaled-object-override',
    object: knativeService({ labels: EVENTS }),
    context: { config: { ...CONFIG, scalingRoute: 'autoscaler-keda' } },
    outcome: 'mutated',
    check: (o) => {
      assert.equal(annotations(o)['autoscaling.knative.dev/class'], 'hpa.autoscaling.knative.dev');
      assert.equal(annotations(o)['autoscaling.knative.dev/min-scale'], '0');
      const override = JSON.parse(annotations(o)['autoscaling.knative.dev/scaled-object-override'] as string);
      assert.deepEqual(override, {
        spec: {
          minReplicaCount: 0,
          triggers: [
            {
              type: 'external-push',
              metadata: {
                scalerAddress: 'afterlife-scaler.afterlife-system.svc:9090',
                function: 'demo/hello',
                metric: 'concurrency',
                targetValue: '10',
                activationThreshold: '0',
              },
            },
          ],
        },
      });
    },
  },
  {
    name: 'event scaling requested by annotation, target value and scaler address from config/annotation',
    object: knativeService({
      labels: WASM,
      annotations: { 'afterlife.dev/scaling': 'events', 'afterlife.dev/target-value': '25' },
    }),
    context: { config: { ...CONFIG, scalingRoute: 'autoscaler-keda', scalerAddress: 'scaler.example:1234' } },
    outcome: 'mutated',
    check: (o) => {
      const override = JSON.parse(annotations(o)['autoscaling.knative.dev/scaled-object-override'] as string);
      assert.equal(override.spec.triggers[0].metadata.targetValue, '25');
      assert.equal(override.spec.triggers[0].metadata.scalerAddress, 'scaler.example:1234');
    },
  },
  {
    name: 'user-set autoscaling annotations are kept, with warnings',
    object: knativeService({
      labels: EVENTS,
      template: {
        metadata: {
          annotations: {
            'autoscaling.knative.dev/minScale': '1',
            'autoscaling.knative.dev/class': 'kpa.autoscaling.knative.dev',
          },
        },
        spec: { containers: [{ image: 'x' }] },
      },
    }),
    outcome: 'mutated',
    check: (o, warnings) => {
      assert.equal(annotations(o)['autoscaling.knative.dev/minScale'], '1');
      assert.equal(annotations(o)['autoscaling.knative.dev/min-scale'], undefined, 'no duplicate alias');
      assert.equal(annotations(o)['autoscaling.knative.dev/class'], 'kpa.autoscaling.knative.dev');
      assert.equal(warnings.length, 2);
      assert.match(warnings.join('\n'), /kept your annotation autoscaling.knative.dev\/minScale="1"/);
      assert.match(warnings.join('\n'), /kept your annotation autoscaling.knative.dev\/class/);
    },
  },
  {
    name: 'template without metadata or spec gets whole objects added',
    object: knativeService({ labels: WASM, template: {} }),
    outcome: 'mutated',
    check: (o) => {
      assert.deepEqual(template(o), {
        metadata: { annotations: { 'module.wasm.image/variant': 'compat-smart' } },
        spec: { runtimeClassName: 'wasmedge', automountServiceAccountToken: false },
      });
    },
  },
  {
    name: 'the service account token is dropped unless the Service asks for it or sets the field',
    object: knativeService({ labels: WASM, template: { spec: { containers: [{ image: 'x' }] } } }),
    outcome: 'mutated',
    check: (o) => assert.equal((template(o).spec as Json).automountServiceAccountToken, false),
  },
  {
    name: 'afterlife.dev/service-account-token: mount (label) keeps the token',
    object: knativeService({
      labels: { ...WASM, 'afterlife.dev/service-account-token': 'mount' },
      template: { spec: { containers: [{ image: 'x' }] } },
    }),
    outcome: 'mutated',
    check: (o) => assert.equal((template(o).spec as Json).automountServiceAccountToken, undefined),
  },
  {
    name: 'afterlife.dev/service-account-token: mount (template annotation) keeps the token',
    object: knativeService({
      labels: WASM,
      template: {
        metadata: { annotations: { 'afterlife.dev/service-account-token': 'mount' } },
        spec: { containers: [{ image: 'x' }] },
      },
    }),
    outcome: 'mutated',
    check: (o) => assert.equal((template(o).spec as Json).automountServiceAccountToken, undefined),
  },
  {
    name: 'an automountServiceAccountToken the Service sets is left as it is',
    object: knativeService({
      labels: WASM,
      template: { spec: { automountServiceAccountToken: false, containers: [{ image: 'x' }] } },
    }),
    outcome: 'mutated',
    check: (o) => assert.equal((template(o).spec as Json).automountServiceAccountToken, false),
  },
  {
    name: 'template metadata with null annotations',
    object: knativeService({ labels: WASM, template: { metadata: { annotations: null }, spec: { containers: [] } } }),
    outcome: 'mutated',
    check: (o) => assert.equal(annotations(o)['module.wasm.image/variant'], 'compat-smart'),
  },
  {
    name: 'existing different runtimeClassName is left alone with a warning',
    object: knativeService({
      labels: WASM,
      template: { spec: { runtimeClassName: 'kata', containers: [{ image: 'x' }] } },
    }),
    outcome: 'mutated',
    check: (o, warnings) => {
      assert.equal(runtimeClass(o), 'kata');
      assert.match(warnings[0] ?? '', /kept spec.template.spec.runtimeClassName="kata"; Wasm needs "wasmedge"/);
    },
  },
  {
    name: 'configured runtime class and variant',
    object: knativeService({ labels: WASM }),
    context: { config: { ...CONFIG, runtimeClass: 'crun-wasm', wasmVariant: 'compat' } },
    outcome: 'mutated',
    check: (o) => {
      assert.equal(runtimeClass(o), 'crun-wasm');
      assert.equal(annotations(o)['module.wasm.image/variant'], 'compat');
    },
  },
  {
    name: 'flag "Allowed" (any case) counts as on',
    object: knativeService({ labels: WASM }),
    context: { features: featuresFromConfigMaps({ 'kubernetes.podspec-runtimeclassname': 'Allowed' }, {}) },
    outcome: 'mutated',
    check: (o) => assert.equal(runtimeClass(o), 'wasmedge'),
  },
  {
    name: 'flag off and no config-deployment route: denied with the exact command',
    object: knativeService({ labels: WASM }),
    context: { features: FLAG_OFF },
    outcome: 'denied',
    allowed: false,
    check: (_o, _w, message) => {
      assert.ok(message?.includes(enableFlagCommand('knative-serving')), message);
      assert.ok(
        message?.includes(
          `kubectl patch configmap/config-features -n knative-serving --type merge -p '{"data":{"kubernetes.podspec-runtimeclassname":"enabled"}}'`,
        ),
      );
      assert.match(message ?? '', /config-deployment key runtime-class-name/);
    },
  },
  {
    name: 'flag off, config-deployment maps wasmedge to a selector: label added, no runtimeClassName',
    object: knativeService({ labels: WASM }),
    context: { features: SELECTOR_ROUTE },
    outcome: 'mutated',
    check: (o) => {
      assert.equal(runtimeClass(o), undefined);
      assert.equal(labels(o)['afterlife.dev/wasm'], 'true');
      assert.equal(annotations(o)['module.wasm.image/variant'], 'compat-smart');
    },
  },
  {
    name: 'flag off, config-deployment selects wasmedge for every revision: nothing to add but the annotation',
    object: knativeService({ labels: WASM }),
    context: { features: featuresFromConfigMaps({}, { 'runtime-class-name': 'wasmedge: {}\n' }) },
    outcome: 'mutated',
    check: (o) => {
      assert.equal(runtimeClass(o), undefined);
      assert.deepEqual(labels(o), {});
    },
  },
  {
    name: 'flag off, a more specific class shadows ours: denied',
    object: knativeService({
      labels: WASM,
      template: { metadata: { labels: { tier: 'gold' } }, spec: { containers: [{ image: 'x' }] } },
    }),
    context: {
      features: featuresFromConfigMaps(
        {},
        { 'runtime-class-name': 'wasmedge: {}\nkata:\n  selector:\n    tier: gold\n' },
      ),
    },
    outcome: 'denied',
    allowed: false,
    check: (_o, _w, message) => assert.match(message ?? '', /would give this revision RuntimeClass "kata"/),
  },
  {
    name: 'flag off, selector label already set to another value: denied',
    object: knativeService({
      labels: WASM,
      template: { metadata: { labels: { 'afterlife.dev/wasm': 'no' } }, spec: { containers: [{ image: 'x' }] } },
    }),
    context: { features: SELECTOR_ROUTE },
    outcome: 'denied',
    allowed: false,
    check: (_o, _w, message) => assert.match(message ?? '', /template has afterlife.dev\/wasm="no"/),
  },
  {
    name: 'flag off and config-deployment runtime-class-name is broken: denial says so',
    object: knativeService({ labels: WASM }),
    context: { features: featuresFromConfigMaps({}, { 'runtime-class-name': '[not, a, map]' }) },
    outcome: 'denied',
    allowed: false,
    check: (_o, _w, message) => assert.match(message ?? '', /runtime-class-name is invalid/),
  },
  {
    name: 'Knative ConfigMaps not read yet: denied with retry',
    object: knativeService({ labels: WASM }),
    context: { features: UNSYNCED_FEATURES },
    outcome: 'denied',
    allowed: false,
    check: (_o, _w, message) => assert.match(message ?? '', /has not read Knative's config-features/),
  },
  {
    name: 'opt-out label wins over the namespace opt-in',
    object: knativeService({ labels: { 'afterlife.dev/runtime': 'disabled' } }),
    context: { namespaceOptIn: true },
    outcome: 'skipped',
  },
  {
    name: 'namespace opt-in through the namespaceSelector path',
    object: knativeService(),
    context: { namespaceOptIn: true },
    outcome: 'mutated',
    check: (o) => assert.equal(runtimeClass(o), 'wasmedge'),
  },
  {
    name: 'namespace opt-in through the namespace informer',
    object: knativeService(),
    context: {
      namespaceLabels: (ns) => (ns === 'demo' ? { 'afterlife.dev/runtime': 'wasmedge' } : undefined),
    },
    outcome: 'mutated',
  },
  {
    name: 'foreign Service (no label) is untouched',
    object: knativeService(),
    outcome: 'skipped',
  },
  {
    name: 'unknown runtime label value: untouched with a warning',
    object: knativeService({ labels: { 'afterlife.dev/runtime': 'WasmEdge' } }),
    outcome: 'skipped',
    check: (_o, warnings) => assert.match(warnings[0] ?? '', /is not "wasmedge" or "disabled"/),
  },
  {
    name: 'Configuration owned by a Service: function named after the Service',
    object: {
      ...knativeService({
        name: 'hello-config',
        labels: { ...EVENTS, 'serving.knative.dev/service': 'hello' },
      }),
      kind: 'Configuration',
    },
    review: { kind: { group: 'serving.knative.dev', version: 'v1', kind: 'Configuration' } },
    context: { config: { ...CONFIG, scalingRoute: 'autoscaler-keda' } },
    outcome: 'mutated',
    check: (o) => assert.equal(annotations(o)['autoscaling.knative.dev/scaled-object-override'], OVERRIDE),
  },
  {
    name: 'UPDATE is handled like CREATE',
    object: knativeService({ labels: WASM }),
    review: { operation: 'UPDATE', oldObject: knativeService({ labels: WASM }) },
    outcome: 'mutated',
  },
  {
    name: 'dry-run requests get the same answer',
    object: knativeService({ labels: WASM }),
    review: { dryRun: true },
    outcome: 'mutated',
  },
  {
    name: 'DELETE is allowed untouched',
    object: knativeService({ labels: WASM }),
    review: { operation: 'DELETE' },
    outcome: 'skipped',
  },
  {
    name: 'other kinds are allowed untouched',
    object: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x', labels: WASM }, spec: {} },
    review: { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } },
    outcome: 'skipped',
  },
  {
    name: 'template that is not an object: denied clearly',
    object: knativeService({ labels: WASM, template: 'oops' }),
    outcome: 'denied',
    allowed: false,
    check: (_o, _w, message) => assert.match(message ?? '', /spec.template must be an object \(got "oops"\)/),
  },
  {
    name: 'template.spec that is not an object: denied clearly',
    object: knativeService({ labels: WASM, template: { spec: [1, 2] } }),
    outcome: 'denied',
    allowed: false,
    check: (_o, _w, message) => assert.match(message ?? '', /spec.template.spec must be an object/),
  },
  {
    name: 'template annotations that are not an object: denied clearly',
    object: knativeService({ labels: WASM, template: { metadata: { annotations: 'a=b' } } }),
    outcome: 'denied',
    allowed: false,
    check: (_o, _w, message) => assert.match(message ?? '', /spec.template.metadata.annotations must be an object/),
  },
  {
    name: 'bad target value annotation: denied clearly',
    object: knativeService({ labels: EVENTS, annotations: { 'afterlife.dev/target-value': 'lots' } }),
    outcome: 'denied',
    allowed: false,
    check: (_o, _w, message) => assert.match(message ?? '', /afterlife.dev\/target-value must be a whole number >= 1/),
  },
];

describe('answerReview() → admit()', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const context: AdmitContext = { config: CONFIG, features: FLAG_ON, ...c.context };
      const review = admissionReview(c.object, c.review);
      const result = await answerReview(review, context);
      assert.equal(result.httpStatus, 200);
      const response = responseOf(result);
      assert.equal(response.uid, (review.request as { uid: string }).uid, 'uid echoed');
      assert.equal(result.outcome, c.outcome, JSON.stringify(response));
      assert.equal(response.allowed, c.allowed ?? true);
      if (c.outcome !== 'mutated') assert.equal(response.patch, undefined);
      else assert.equal(response.patchType, 'JSONPatch');
      for (const warning of response.warnings ?? []) assert.ok(warning.length < 256, `warning too long: ${warning}`);
      const { patched } = applyResult(c.object, result);
      c.check?.(patched, response.warnings ?? [], response.status?.message);

      if (c.outcome === 'mutated') {
        // Idempotent: admitting our own output changes nothing (reinvocation, re-apply, UPDATE).
        const again = await answerReview(admissionReview(patched, c.review), context);
        assert.equal(again.outcome, 'unchanged', JSON.stringify(responseOf(again)));
        assert.equal(responseOf(again).patch, undefined);
      }
    });
  }

  it('emits minimal patches: one op per missing key, JSON Pointer escaped', async () => {
    const result = await answerReview(admissionReview(knativeService({ labels: EVENTS })), {
      config: CONFIG,
      features: FLAG_ON,
    });
    assert.deepEqual(
      result.patch.map((op) => op.path),
      [
        '/spec/template/metadata/annotations/module.wasm.image~1variant',
        '/spec/template/metadata/annotations/autoscaling.knative.dev~1class',
        '/spec/template/metadata/annotations/autoscaling.knative.dev~1min-scale',
        '/spec/template/spec/runtimeClassName',
        '/spec/template/spec/automountServiceAccountToken',
      ],
    );
    assert.ok(result.patch.every((op) => op.op === 'add'));
  });

  it('detects Wasm images when an inspector is configured, and only then', async () => {
    const seen: string[] = [];
    const inspector: ImageInspector = {
      isWasmImage: async (image) => {
        seen.push(image);
        return image.includes('wasm');
      },
    };
    const object = knativeService();
    const detected = await answerReview(admissionReview(object), {
      config: CONFIG,
      features: FLAG_ON,
      imageInspector: inspector,
    });
    assert.equal(detected.outcome, 'mutated');
    assert.equal(detected.reason, 'opted-in-by-image');
    assert.deepEqual(seen, ['ghcr.io/afterlife/hello-wasm:1.0.0']);
    const native = knativeService({
      template: { spec: { containers: [{ image: 'nginx:1.27' }] } },
    });
    const skipped = await answerReview(admissionReview(native), {
      config: CONFIG,
      features: FLAG_ON,
      imageInspector: inspector,
    });
    assert.equal(skipped.outcome, 'skipped');
    const optedOut = await answerReview(
      admissionReview(knativeService({ labels: { 'afterlife.dev/runtime': 'disabled' } })),
      {
        config: CONFIG,
        features: FLAG_ON,
        imageInspector: inspector,
      },
    );
    assert.equal(optedOut.outcome, 'skipped');
    assert.equal(seen.length, 2, 'opted-out Services are not inspected');
  });

  it('warns when our own runtimeClassName is already set but Knative will reject it', async () => {
    const object = knativeService({
      labels: WASM,
      template: { spec: { runtimeClassName: 'wasmedge', containers: [{ image: 'x' }] } },
    });
    const result = await answerReview(admissionReview(object), { config: CONFIG, features: FLAG_OFF });
    assert.equal(result.outcome, 'mutated');
    assert.match(responseOf(result).warnings?.[0] ?? '', /Knative rejects runtimeClassName/);
    assert.ok((responseOf(result).warnings?.[0] ?? '').length < 256);
  });

  it('admit() takes the request alone and answers without the envelope (no apiVersion, no uid)', async () => {
    const review = admissionReview(knativeService({ labels: WASM }), { uid: 'u-env' });
    const result = await admit(review.request as Json, { config: CONFIG, features: FLAG_ON });
    assert.equal(result.outcome, 'mutated');
    assert.deepEqual(Object.keys(result.response).sort(), ['allowed', 'patch', 'patchType']);
    assert.equal(JSON.stringify(result).includes('u-env'), false);
    assert.equal(JSON.stringify(result).includes('AdmissionReview'), false);
  });

  it('admit() refuses by throwing an ADMISSION_DENIED WebhookError (an AfterlifeError) with its reason', async () => {
    const review = admissionReview(knativeService({ labels: WASM }));
    await assert.rejects(admit(review.request as Json, { config: CONFIG, features: FLAG_OFF }), (error: unknown) => {
      assert.ok(error instanceof WebhookError);
      assert.equal(error.code, 'ADMISSION_DENIED');
      assert.equal(error.reason, 'runtimeclass-flag-disabled');
      return true;
    });
  });

  it('answers an unexpected failure of the policy with a 500 Status, echoing the uid', async () => {
    const broken: ImageInspector = {
      isWasmImage: () => {
        throw new TypeError('inspector exploded');
      },
    };
    const result = await answerReview(admissionReview(knativeService(), { uid: 'u-500' }), {
      config: CONFIG,
      features: FLAG_ON,
      imageInspector: broken,
    });
    assert.equal(result.httpStatus, 200);
    assert.equal(result.outcome, 'error');
    const response = responseOf(result);
    assert.equal(response.uid, 'u-500');
    assert.equal(response.allowed, false);
    assert.equal(response.status?.code, 500);
    assert.match(response.status?.message ?? '', /internal error: inspector exploded/);
  });

  describe('bad reviews', () => {
    const context: AdmitContext = { config: CONFIG, features: FLAG_ON };
    const bad: Array<[string, unknown, 200 | 400, RegExp]> = [
      ['a JSON array', [1, 2], 400, /JSON AdmissionReview object/],
      ['null', null, 400, /JSON AdmissionReview object/],
      [
        'wrong apiVersion without uid',
        { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' },
        400,
        /v1beta1/,
      ],
      [
        'wrong apiVersion with uid',
        { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u-1' } },
        200,
        /expected apiVersion admission.k8s.io\/v1 kind AdmissionReview, got apiVersion "admission.k8s.io\/v1beta1"/,
      ],
      [
        'wrong kind with uid',
        { apiVersion: 'admission.k8s.io/v1', kind: 'Pod', request: { uid: 'u-1' } },
        200,
        /kind "Pod"/,
      ],
      ['missing request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, 400, /no request/],
      [
        'request without uid',
        { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: {} },
        400,
        /no uid/,
      ],
      [
        'object that is not an object',
        {
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          request: {
            uid: 'u-1',
            operation: 'CREATE',
            kind: { group: 'serving.knative.dev', kind: 'Service' },
            object: 7,
          },
        },
        200,
        /request.object must be an object/,
      ],
    ];
    for (const [what, body, status, message] of bad) {
      it(`answers ${what} clearly (${status})`, async () => {
        const result = await answerReview(body, context);
        assert.equal(result.httpStatus, status);
        assert.equal(result.outcome, 'invalid');
        if (status === 400) {
          assert.match((result.body as { error: string }).error, message);
        } else {
          const response = responseOf(result);
          assert.equal(response.uid, 'u-1');
          assert.equal(response.allowed, false);
          assert.match(response.status?.message ?? '', message);
        }
      });
    }
  });
});
