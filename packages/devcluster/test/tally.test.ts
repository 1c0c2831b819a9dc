import assert from 'node:assert/strict';
import { TestTally } from '../src/tally.ts';

describe('TestTally', () => {
  it('adds up mocha summaries across packages, even split across chunks and coloured, ignoring echoed nested runs', () => {
    const tally = new TestTally();
    tally.feed('  12 passing (47ms)\n  1 pen');
    tally.feed('ding\n\u001b[32m  30 passing\u001b[0m (2s)\n  2 failing\n');
    tally.feed('  [child]   6 passing (31s)\n');
    assert.equal(tally.summary(), 'tests: 42 passed, 2 failed, 1 skipped');
  });

  it('says nothing when no test runner reported', () => {
    const tally = new TestTally();
    tally.feed('no tests here\n');
    assert.equal(tally.summary(), undefined);
  });
});
