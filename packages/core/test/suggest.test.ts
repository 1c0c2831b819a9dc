import assert from 'node:assert/strict';
import { closestMatch, editDistance } from '../src/suggest.ts';

describe('closestMatch / editDistance', () => {
  it('measures edit distance with transpositions', () => {
    assert.equal(editDistance('metric', 'metirc'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });

  it('suggests the nearest candidate for a typo, case-insensitively, and nothing for another word', () => {
    const keys = ['afterlife.dev/cooldown-seconds', 'afterlife.dev/polling-interval-seconds'];
    assert.equal(closestMatch('afterlife.dev/coldown-seconds', keys), 'afterlife.dev/cooldown-seconds');
    assert.equal(closestMatch('AFTERLIFE.DEV/COOLDOWN-SECONDS', keys), 'afterlife.dev/cooldown-seconds');
    assert.equal(closestMatch('zzzzzzzz', keys), undefined);
    assert.equal(closestMatch('anything', []), undefined);
  });
});
