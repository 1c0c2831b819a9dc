import assert from 'node:assert/strict';
import { hasCode } from '@afterlife/core';
import { formatPreflight, type PreflightResult } from '../src/preflight.ts';
import { PROFILES, withLoad } from '../src/profile.ts';

describe('formatPreflight', () => {
  const results: PreflightResult[] = [
    { name: 'keda', ok: true, message: 'KEDA 2.20.2; v1beta1.external.metrics.k8s.io Available', fix: '' },
    {
      name: 'runtime-class',
      ok: false,
      message: 'RuntimeClass wasmedge not found',
      fix: 'kubectl apply -f - <<EOF\nkind: RuntimeClass\nEOF',
    },
  ];

  it('prints an aligned table with one row per check', () => {
    const lines = formatPreflight(results).split('\n');
    assert.equal(lines[0], 'CHECK          RESULT  DETAIL');
    assert.equal(lines[1], 'keda           ok      KEDA 2.20.2; v1beta1.external.metrics.k8s.io Available');
    assert.equal(lines[2], 'runtime-class  FAILED  RuntimeClass wasmedge not found');
  });

  it('lists the fix of every failed check, multi-line fixes indented', () => {
    const text = formatPreflight(results);
    assert.ok(
      text.includes('\nHow to fix:\n  runtime-class: kubectl apply -f - <<EOF\n    kind: RuntimeClass\n    EOF'),
    );
    assert.ok(!text.includes('keda: '), 'passed checks have no fix line');
  });

  it('has no fix section when everything passed', () => {
    assert.ok(!formatPreflight(results.slice(0, 1)).includes('How to fix'));
  });
});

describe('profiles', () => {
  it('applies load overrides and rejects nonsense', () => {
    const p = withLoad(PROFILES.short, { ratePerSecond: 10, concurrency: undefined, expectedReplicas: 3 });
    assert.equal(p.load.ratePerSecond, 10);
    assert.equal(p.load.concurrency, PROFILES.short.load.concurrency);
    assert.equal(p.expectedReplicas, 3);
    assert.throws(() => withLoad(PROFILES.short, { durationSeconds: -1 }), /durationSeconds must be a positive number/);
    assert.throws(() => withLoad(PROFILES.short, { ratePerSecond: Number.NaN }), /positive number/);
    // A bad flag value is a usage error: the command exits 2.
    assert.throws(
      () => withLoad(PROFILES.short, { concurrency: 0 }),
      (error: unknown) => hasCode(error, 'USAGE'),
    );
  });
});
