import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { closeServer, countsOf, fetchCounts, functionKey, hasCode, listen, parseCountsSnapshot } from '../src/index.ts';

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

describe('fetchCounts (the one client of GET /v1/counts)', () => {
  let server: Server;
  let base = '';
  let answer: { status: number; body: string } = { status: 200, body: JSON.stringify(valid) };

  before(async () => {
    server = createServer((req, res) => {
      if (req.url !== '/v1/counts') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
    });
    base = `http://127.0.0.1:${await listen(server, 0, '127.0.0.1')}`;
  });
  after(() => closeServer(server, 0));

  it('fetches and validates a snapshot; countsOf finds one function', async () => {
    answer = { status: 200, body: JSON.stringify(valid) };
    const snapshot = await fetchCounts(`${base}/ignored/path`);
    assert.equal(snapshot.gateway, 'gw-0');
    assert.equal(countsOf(snapshot, { namespace: 'ns', name: 'echo' })?.pending, 2);
    assert.equal(countsOf(snapshot, { namespace: 'ns', name: 'other' }), undefined);
  });

  const failures: Array<[string, { status: number; body: string } | undefined, string, RegExp]> = [
    ['a non-200 answer', { status: 503, body: '{}' }, 'COUNTS_UNAVAILABLE', /answered 503/],
    ['a body that is not JSON', { status: 200, body: 'nope' }, 'COUNTS_INVALID', /not JSON/],
    ['a body that breaks the contract', { status: 200, body: '{"gateway":""}' }, 'COUNTS_INVALID', /"gateway"/],
    ['an unreachable gateway', undefined, 'COUNTS_UNAVAILABLE', /failed/],
  ];
  for (const [what, reply, code, message] of failures) {
    it(`rejects ${what} with ${code}`, async () => {
      if (reply !== undefined) answer = reply;
      const url = reply === undefined ? 'http://127.0.0.1:1' : base;
      await assert.rejects(fetchCounts(url), (error: unknown) => {
        assert.ok(hasCode(error, code), String(error));
        assert.match((error as Error).message, message);
        return true;
      });
    });
  }
});
