import assert from 'node:assert/strict';
import { closestKey, MetadataError, metricNameFor, parseTriggerMetadata } from '../src/metadata.ts';

const parse = (scalerMetadata: Record<string, string>, namespace = 'apps') =>
  parseTriggerMetadata({ name: 'so', namespace, scalerMetadata });

function problemsOf(scalerMetadata: Record<string, string>): string {
  try {
    parse(scalerMetadata);
  } catch (error) {
    assert.ok(error instanceof MetadataError, `expected a MetadataError, got ${String(error)}`);
    assert.equal(error.code, 'METADATA_INVALID');
    return error.message;
  }
  assert.fail('expected the metadata to be rejected');
}

describe('trigger metadata', () => {
  it('applies the defaults and takes the namespace from the ScaledObject for a bare name', () => {
    const spec = parse({ function: 'hello', scalerAddress: 'afterlife-scaler:9090' });
    assert.deepEqual(
      { ...spec },
      {
        namespace: 'apps',
        name: 'hello',
        key: 'apps/hello',
        metric: 'concurrency',
        targetValue: 10,
        activationThreshold: 0,
        metricName: 'afterlife-concurrency-apps-hello',
      },
    );
    assert.ok(Object.isFrozen(spec));
  });

  it('reads namespace/name, metric, targetValue and activationThreshold', () => {
    const spec = parse({ function: 'team-a/resize', metric: 'rate', targetValue: '2.5', activationThreshold: '0.5' });
    assert.equal(spec.key, 'team-a/resize');
    assert.equal(spec.metric, 'rate');
    assert.equal(spec.targetValue, 2.5);
    assert.equal(spec.activationThreshold, 0.5);
    assert.equal(spec.metricName, 'afterlife-rate-team-a-resize');
  });

  it('ignores the keys KEDA itself puts in the map (scalerAddress, enableTLS, unsafeSsl)', () => {
    const spec = parse({ function: 'f', scalerAddress: 'x:1', enableTLS: 'true', unsafeSsl: 'false' });
    assert.equal(spec.key, 'apps/f');
  });

  it('reads <key>FromEnv keys that KEDA resolved, unless the key itself is set', () => {
    assert.equal(parse({ functionFromEnv: 'ns/from-env' }).key, 'ns/from-env');
    assert.equal(parse({ function: 'ns/direct', functionFromEnv: 'ns/from-env' }).key, 'ns/direct');
    assert.equal(parse({ function: 'f', targetValueFromEnv: '4' }).targetValue, 4);
  });

  it('names an unknown key and suggests the closest known one', () => {
    assert.match(
      problemsOf({ function: 'f', targetValu: '5' }),
      /unknown key "targetValu"; did you mean "targetValue"\?/,
    );
    assert.match(problemsOf({ function: 'f', metirc: 'rate' }), /unknown key "metirc"; did you mean "metric"\?/);
    assert.match(problemsOf({ funtion: 'f' }), /did you mean "function"\?/);
    assert.match(problemsOf({ function: 'f', TargetValue: '5' }), /did you mean "targetValue"\?/);
    assert.match(
      problemsOf({ function: 'f', activationTreshold: '1' }),
      /unknown key "activationTreshold"; did you mean "activationThreshold"\?/,
    );
  });

  it('lists the known keys when nothing is close', () => {
    const message = problemsOf({ function: 'f', queueLength: '5' });
    assert.match(
      message,
      /unknown key "queueLength" \(known keys: function, revision, metric, targetValue, activationThreshold\)/,
    );
    assert.doesNotMatch(message, /did you mean/);
  });

  it('requires function and names bad values by key', () => {
    assert.match(problemsOf({}), /exactly one of "function" or "revision" is required, got neither/);
    assert.match(problemsOf({ function: '' }), /exactly one of "function" or "revision" is required, got neither/);
    assert.match(problemsOf({ function: 'a/b/c' }), /"function" must be "namespace\/name" or "name", got "a\/b\/c"/);
    assert.match(problemsOf({ function: 'Bad_NS/x' }), /"function" has an invalid namespace "Bad_NS"/);
    assert.match(problemsOf({ function: 'ns/' }), /"function" has an invalid name ""/);
    assert.match(
      problemsOf({ function: 'f', metric: 'queue' }),
      /"metric" must be one of pending, concurrency, rate, got "queue"/,
    );
    assert.match(problemsOf({ function: 'f', targetValue: 'ten' }), /"targetValue" must be a number, got "ten"/);
    assert.match(problemsOf({ function: 'f', targetValue: '0' }), /"targetValue" must be greater than 0, got 0/);
    assert.match(problemsOf({ function: 'f', targetValue: '-3' }), /"targetValue" must be greater than 0/);
    assert.match(problemsOf({ function: 'f', targetValue: 'Infinity' }), /"targetValue" must be a number/);
    assert.match(
      problemsOf({ function: 'f', activationThreshold: '-1' }),
      /"activationThreshold" must be 0 or more, got -1/,
    );
    assert.match(problemsOf({ function: 'f', activationThreshold: 'x' }), /"activationThreshold" must be a number/);
  });

  it('reads a Knative revision, keyed like the gateway counts it (namespace/<revision>)', () => {
    const bare = parse({ revision: 'resize-00002', metric: 'pending' }, 'team-a');
    assert.deepEqual(
      { ...bare },
      {
        namespace: 'team-a',
        name: 'resize-00002',
        key: 'team-a/resize-00002',
        metric: 'pending',
        targetValue: 10,
        activationThreshold: 0,
        metricName: 'afterlife-pending-team-a-resize-00002',
      },
    );
    assert.equal(parse({ revision: 'team-b/resize-00003' }).key, 'team-b/resize-00003');
    assert.equal(parse({ revisionFromEnv: 'ns/from-env-00001' }).key, 'ns/from-env-00001');
    // An empty key is as good as absent.
    assert.equal(parse({ function: '', revision: 'r-00001' }).key, 'apps/r-00001');
  });

  it('takes exactly one of function and revision, naming both keys otherwise', () => {
    assert.match(
      problemsOf({ function: 'resize', revision: 'resize-00001' }),
      /exactly one of "function" or "revision" is required, got both \("resize" and "resize-00001"\)/,
    );
    assert.match(
      problemsOf({ functionFromEnv: 'resize', revision: 'resize-00001' }),
      /exactly one of "function" or "revision" is required, got both/,
    );
    assert.match(problemsOf({ metric: 'pending' }), /exactly one of "function" or "revision" is required, got neither/);
    assert.match(problemsOf({ revision: 'a/b/c' }), /"revision" must be "namespace\/name" or "name", got "a\/b\/c"/);
    assert.match(problemsOf({ revision: 'Bad_NS/r-1' }), /"revision" has an invalid namespace "Bad_NS"/);
    assert.match(problemsOf({ revision: 'ns/R_1' }), /"revision" has an invalid name "R_1"/);
    assert.match(problemsOf({ revison: 'r-00001' }), /unknown key "revison"; did you mean "revision"\?/);
    assert.match(problemsOf({ revision: 'r-00001', Revision: 'r' }), /did you mean "revision"\?/);
  });

  it('reports every problem at once', () => {
    try {
      parse({ function: 'f', targetValu: '1', metric: 'nope', activationThreshold: '-2' });
      assert.fail('expected an error');
    } catch (error) {
      assert.ok(error instanceof MetadataError);
      assert.equal(error.problems.length, 3);
    }
  });

  it('sanitises metric names', () => {
    assert.equal(metricNameFor('pending', 'ns', 'my.fn'), 'afterlife-pending-ns-my-fn');
    assert.equal(metricNameFor('concurrency', 'NS', 'a--b'), 'afterlife-concurrency-ns-a-b');
  });

  it('suggests no key for something that is not a typo', () => {
    assert.equal(closestKey('zzzzzzzz'), undefined);
  });
});
