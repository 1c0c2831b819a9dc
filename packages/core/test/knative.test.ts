import assert from 'node:assert/strict';
import {
  featuresFromConfigMaps,
  functionService,
  knativeRuntimeClassFor,
  parseRuntimeClassNames,
  runtimeClassFieldAllowed,
} from '../src/index.ts';

describe('Knative features', () => {
  it('treats a missing or unset flag as disabled (Knative default)', () => {
    assert.equal(runtimeClassFieldAllowed(featuresFromConfigMaps(undefined, undefined)), false);
    assert.equal(runtimeClassFieldAllowed(featuresFromConfigMaps({ _example: 'x' }, {})), false);
    assert.equal(
      runtimeClassFieldAllowed(featuresFromConfigMaps({ 'kubernetes.podspec-runtimeclassname': 'Disabled' }, {})),
      false,
    );
    assert.equal(
      runtimeClassFieldAllowed(featuresFromConfigMaps({ 'kubernetes.podspec-runtimeclassname': ' Enabled ' }, {})),
      true,
    );
  });

  it('parses config-deployment runtime-class-name like Knative', () => {
    const { map, error } = parseRuntimeClassNames(
      '"":\n  selector:\n    use-default-runc: "yes"\nkata: {}\ngvisor:\n  selector:\n    use-gvisor: please\n',
    );
    assert.equal(error, undefined);
    assert.deepEqual([...map.keys()].sort(), ['', 'gvisor', 'kata']);
    assert.deepEqual(map.get('gvisor'), { selector: { 'use-gvisor': 'please' } });
    assert.deepEqual(map.get('kata'), {});
  });

  it('reports invalid runtime-class-name documents', () => {
    assert.match(parseRuntimeClassNames('a: [').error ?? '', /not valid YAML/);
    assert.match(parseRuntimeClassNames('- a\n- b\n').error ?? '', /must be a YAML mapping/);
    assert.match(parseRuntimeClassNames('a:\n  selector:\n    x: 1\n').error ?? '', /string values/);
    assert.deepEqual(parseRuntimeClassNames('').map.size, 0);
  });

  it('picks the RuntimeClass the way Knative does (most specific, then alphabetical; "" means none)', () => {
    const { map } = parseRuntimeClassNames(
      'kata: {}\nwasmedge:\n  selector:\n    wasm: "true"\nbeta:\n  selector:\n    wasm: "true"\n"":\n  selector:\n    a: b\n    c: d\n',
    );
    assert.equal(knativeRuntimeClassFor(map, {}), 'kata');
    assert.equal(knativeRuntimeClassFor(map, { wasm: 'true' }), 'beta');
    assert.equal(knativeRuntimeClassFor(map, { wasm: 'true', a: 'b', c: 'd' }), undefined);
    assert.equal(knativeRuntimeClassFor(new Map(), { wasm: 'true' }), undefined);
  });
});

describe('functionService', () => {
  it('is an opted-in Knative Service serving 8080 with the template annotations', () => {
    const svc = functionService({
      name: 'echo',
      namespace: 'ns',
      image: 'registry/echo@sha256:abc',
      labels: { team: 'a' },
      annotations: { 'autoscaling.knative.dev/max-scale': '4' },
    });
    assert.deepEqual(svc, {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: {
        name: 'echo',
        namespace: 'ns',
        labels: { 'afterlife.dev/runtime': 'wasmedge', 'afterlife.dev/scaling': 'events', team: 'a' },
      },
      spec: {
        template: {
          metadata: { annotations: { 'autoscaling.knative.dev/max-scale': '4' } },
          spec: { containers: [{ image: 'registry/echo@sha256:abc', ports: [{ containerPort: 8080 }] }] },
        },
      },
    });
  });

  it('without optIn carries only the labels given (an opted-out Service)', () => {
    const svc = functionService({ name: 'plain', namespace: 'ns', image: 'img', optIn: false });
    assert.deepEqual(svc.metadata.labels, {});
  });
});
