import assert from 'node:assert/strict';
import { PROFILES, withLoad } from '../src/profile.ts';
import { suiteTarget } from '../src/scenarios.ts';

describe('the suite’s per-replica target', () => {
  for (const profile of Object.values(PROFILES)) {
    it(`${profile.name}: the scale-up load needs more than the expected replicas`, () => {
      const inFlight = (profile.load.ratePerSecond * profile.workMs) / 1000;
      const target = suiteTarget(profile);
      assert.ok(Math.ceil(inFlight / target) > profile.expectedReplicas, `${inFlight} in flight ÷ ${target}`);
    });
  }

  it('is 3 for short and 7 for full, and at least 1 for a light load', () => {
    assert.equal(suiteTarget(PROFILES.short), 3);
    assert.equal(suiteTarget(PROFILES.full), 7);
    assert.equal(suiteTarget(withLoad(PROFILES.short, { ratePerSecond: 1 })), 1);
  });
});
