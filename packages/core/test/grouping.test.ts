import assert from 'node:assert/strict';
import { Grouping } from '../src/index.ts';

describe('Grouping (members in at most one group, indexed both ways)', () => {
  it('answers the groups each change touched: joined, moved, updated, left, unchanged', () => {
    const grouping = new Grouping<string, string, number>();
    assert.deepEqual(grouping.set('a', { group: 'g1', value: 1 }), ['g1']);
    assert.deepEqual(grouping.set('b', { group: 'g1', value: 2 }), ['g1']);
    assert.deepEqual(
      [...(grouping.members('g1') ?? [])],
      [
        ['a', 1],
        ['b', 2],
      ],
    );
    assert.deepEqual(grouping.set('a', { group: 'g1', value: 1 }), [], 'the same group and value touch nothing');
    assert.deepEqual(grouping.set('a', { group: 'g1', value: 3 }), ['g1'], 'a new value touches its group');
    assert.deepEqual(grouping.set('a', { group: 'g2', value: 3 }), ['g1', 'g2'], 'a move touches both');
    assert.equal(grouping.groupOf('a'), 'g2');
    assert.deepEqual([...(grouping.members('g1')?.keys() ?? [])], ['b']);
    assert.equal(grouping.size, 2);
    assert.deepEqual(grouping.set('b', undefined), ['g1']);
    assert.equal(grouping.members('g1'), undefined, 'an emptied group is gone');
    assert.deepEqual([...grouping.groups()], ['g2']);
    assert.deepEqual(grouping.set('b', undefined), [], 'removing a member that is in no group touches nothing');
    assert.deepEqual(grouping.set('a', undefined), ['g2']);
    assert.equal(grouping.size, 0);
    assert.equal(grouping.groupOf('a'), undefined);
  });
});
