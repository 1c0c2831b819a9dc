import assert from 'node:assert/strict';
import { runtimeClassFlagResult } from '../src/preflight.ts';

describe('preflight runtime-class-flag (Knative settings read the way the webhook reads them)', () => {
  const check = (features: Record<string, string>, deployment: Record<string, string> = {}) =>
    runtimeClassFlagResult('knative-serving', 'wasmedge', features, deployment);

  it('passes when the flag is "enabled" or "allowed", in any case and with spaces', () => {
    for (const flag of ['enabled', 'allowed', 'Allowed', ' Enabled ']) {
      const result = check({ 'kubernetes.podspec-runtimeclassname': flag });
      assert.equal(result.ok, true, `flag "${flag}": ${result.message}`);
    }
  });

  it('fails when the flag is unset or disabled and runtime-class-name is unset', () => {
    assert.equal(check({}).ok, false);
    const disabled = check({ 'kubernetes.podspec-runtimeclassname': 'disabled' });
    assert.equal(disabled.ok, false);
    assert.match(disabled.fix, /kubectl patch configmap\/config-features -n knative-serving/);
  });

  it('passes when runtime-class-name maps the RuntimeClass itself', () => {
    assert.equal(
      check({}, { 'runtime-class-name': 'wasmedge:\n  selector:\n    afterlife.dev/wasm: "true"\n' }).ok,
      true,
    );
    assert.equal(check({}, { 'runtime-class-name': 'wasmedge: {}\n' }).ok, true);
  });

  it('fails when runtime-class-name only mentions the name inside another entry (no substring match)', () => {
    const cases = ['wasmedge-gpu: {}\n', 'kata:\n  selector:\n    runtime: wasmedge\n', '# wasmedge: {}\nkata: {}\n'];
    for (const mapping of cases) {
      const result = check({}, { 'runtime-class-name': mapping });
      assert.equal(result.ok, false, `${JSON.stringify(mapping)} passed: ${result.message}`);
    }
  });

  it('fails and says why when runtime-class-name is not a valid mapping', () => {
    const result = check({}, { 'runtime-class-name': 'wasmedge: [' });
    assert.equal(result.ok, false);
    assert.match(result.message, /runtime-class-name is invalid: not valid YAML/);
  });
});
