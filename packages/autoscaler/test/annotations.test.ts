import assert from 'node:assert/strict';
import { parseScaling, type ScalingResult } from '../src/annotations.ts';
import type { ScalingDefaults } from '../src/config.ts';

const DEFAULTS: ScalingDefaults = {
  maxScale: 10,
  target: 10,
  metric: 'concurrency',
  cooldownSeconds: 30,
  pollingIntervalSeconds: 5,
};
const parse = (annotations: Record<string, string>, reachability?: string): ScalingResult =>
  parseScaling({ annotations, ...(reachability ? { reachability } : {}) }, DEFAULTS);
const problems = (result: ScalingResult): string => (result.ok ? '' : result.problems.join('\n'));

describe('parseScaling', () => {
  it('defaults: min 0, max from config, initial 1, target and timings from config', () => {
    // Knative writes an empty metric annotation on PAs of classes it does not know.
    assert.deepEqual(
      parse({ 'autoscaling.knative.dev/class': 'afterlife.dev', 'autoscaling.knative.dev/metric': '' }),
      {
        ok: true,
        scaling: {
          minScale: 0,
          maxScale: 10,
          initialScale: 1,
          target: 10,
          metric: 'concurrency',
          cooldownSeconds: 30,
          pollingIntervalSeconds: 5,
          activationThreshold: 0,
        },
      },
    );
  });

  it('reads every honoured annotation, camelCase aliases too', () => {
    const result = parse({
      'autoscaling.knative.dev/minScale': '2',
      'autoscaling.knative.dev/max-scale': '7',
      'autoscaling.knative.dev/initial-scale': '0',
      'autoscaling.knative.dev/target': '2.5',
      'autoscaling.knative.dev/metric': 'rps',
      'afterlife.dev/cooldown-seconds': '0',
      'afterlife.dev/polling-interval-seconds': '1',
      'afterlife.dev/activation-threshold': '4',
    });
    assert.deepEqual(result, {
      ok: true,
      scaling: {
        minScale: 2,
        maxScale: 7,
        initialScale: 0,
        target: 2.5,
        metric: 'rate',
        cooldownSeconds: 0,
        pollingIntervalSeconds: 1,
        activationThreshold: 4,
      },
    });
  });

  it('max-scale 0 means the configured bound (KEDA needs one); initial scale is capped by it', () => {
    const result = parse({ 'autoscaling.knative.dev/max-scale': '0', 'autoscaling.knative.dev/initial-scale': '50' });
    assert.ok(result.ok);
    assert.equal(result.scaling.maxScale, 10);
    assert.equal(result.scaling.initialScale, 10);
  });

  it('an unreachable revision (no traffic routed to it) ignores min-scale, as Knative does', () => {
    const result = parse({ 'autoscaling.knative.dev/min-scale': '3' }, 'Unreachable');
    assert.ok(result.ok);
    assert.equal(result.scaling.minScale, 0);
  });

  it('max-scale below min-scale is refused naming both keys', () => {
    assert.match(
      problems(parse({ 'autoscaling.knative.dev/min-scale': '5', 'autoscaling.knative.dev/max-scale': '2' })),
      /min-scale \(5\) must not exceed autoscaling.knative.dev\/max-scale \(2\)/,
    );
  });

  it('a non-number target, a bad metric and bad timings are each named', () => {
    const text = problems(
      parse({
        'autoscaling.knative.dev/target': 'lots',
        'autoscaling.knative.dev/metric': 'cpu',
        'afterlife.dev/cooldown-seconds': 'soon',
        'afterlife.dev/polling-interval-seconds': '0',
        'autoscaling.knative.dev/min-scale': '-1',
      }),
    );
    assert.match(text, /autoscaling.knative.dev\/target must be a number >= 0.01, got "lots"/);
    assert.match(text, /autoscaling.knative.dev\/metric must be one of concurrency, pending, rate, rps, got "cpu"/);
    assert.match(text, /afterlife.dev\/cooldown-seconds must be a whole number >= 0, got "soon"/);
    assert.match(text, /afterlife.dev\/polling-interval-seconds must be a whole number >= 1, got "0"/);
    assert.match(text, /min-scale must be a whole number >= 0, got "-1"/);
  });

  it('a typo in a scaling key suggests the right one; other prefixes and known Knative keys are left alone', () => {
    const text = problems(
      parse({
        'afterlife.dev/coldown-seconds': '10',
        'autoscaling.knative.dev/max-scael': '3',
        'autoscaling.knative.dev/window': '60s',
        'autoscaling.knative.dev/scale-down-delay': '0s',
        'example.com/anything': 'x',
        'module.wasm.image/variant': 'compat-smart',
      }),
    );
    assert.match(
      text,
      /afterlife.dev\/coldown-seconds is not a known scaling setting; did you mean afterlife.dev\/cooldown-seconds\?/,
    );
    assert.match(
      text,
      /autoscaling.knative.dev\/max-scael is not a known scaling setting; did you mean autoscaling.knative.dev\/max-scale\?/,
    );
    assert.equal(text.split('\n').length, 2);
  });
});
