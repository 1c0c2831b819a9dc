import assert from 'node:assert/strict';
import { functionKey, parseCountsSnapshot } from '../src/index.ts';

const valid = {
  gateway: 'gw-0',
  sequence: 3,
  at: '2026-11-26T23:00:00.000Z',
  functions: [{ namespace: 'ns', name: 'echo', pending: 2, inFlight: 1, delivered: 5, failed: 0, ratePerSecond: 1.5 }],
};

describe('parseCountsSnapshot', () => {
  it('accepts a well-formed snapshot', () => {
    const snapshot = parseCountsSnapshot(valid);
    assert.equal(snapshot.functions[0]?.pending, 2);
    assert.equal(functionKey(snapshot.functions[0] ?? { namespace: '', name: '' }), 'ns/echo');
  });

  const broken: Array<[string, unknown, RegExp]> = [
    ['null', null, /not an object/],
    ['a missing gateway', { ...valid, gateway: '' }, /"gateway"/],
    ['a fractional sequence', { ...valid, sequence: 1.5 }, /"sequence"/],
    ['a bad timestamp', { ...valid, at: 'yesterday' }, /"at"/],
    ['a negative count', { ...valid, functions: [{ ...valid.functions[0], pending: -1 }] }, /functions\[0\]\.pending/],
    ['a missing name', { ...valid, functions: [{ ...valid.functions[0], name: undefined }] }, /functions\[0\]\.name/],
  ];
  for (const [what, input, message] of broken) {
    it(`rejects ${what} with a COUNTS_INVALID error`, () => {
      assert.throws(
        () => parseCountsSnapshot(input),
        (error: unknown) =>
          error instanceof Error && 'code' in error && error.code === 'COUNTS_INVALID' && message.test(error.message),
      );
    });
  }
});
