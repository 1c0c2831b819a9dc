import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CountsSnapshot } from '../src/counts.ts';
import { fetchAllCounts, gatewayAdmins, parseColdStarts, sumCounts } from '../src/gateway-admin.ts';

function snapshot(gateway: string, pending: number, delivered: number): CountsSnapshot {
  return {
    gateway,
    sequence: 1,
    at: '2026-12-01T00:00:00.000Z',
    functions: [{ namespace: 'ns', name: 'fn-00001', pending, inFlight: 1, delivered, failed: 0, ratePerSecond: 2 }],
  };
}

describe('gateway admins', () => {
  const servers: Server[] = [];
  const serve = async (body: unknown, status = 200): Promise<string> => {
    const server = createServer((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  after(() => {
    for (const server of servers) server.close();
  });

  it('sums one function over every gateway that knows it', () => {
    const sum = sumCounts([snapshot('a', 3, 10), snapshot('b', 2, 5), { ...snapshot('c', 9, 9), functions: [] }], {
      namespace: 'ns',
      name: 'fn-00001',
    });
    assert.deepEqual(sum, {
      namespace: 'ns',
      name: 'fn-00001',
      pending: 5,
      inFlight: 2,
      delivered: 15,
      failed: 0,
      ratePerSecond: 4,
    });
    assert.equal(sumCounts([snapshot('a', 1, 1)], { namespace: 'ns', name: 'other' }), undefined);
  });

  it('asks the URLs given; one that fails is named, the others still count', async () => {
    const a = await serve(snapshot('a', 1, 4));
    const b = await serve(snapshot('b', 2, 6));
    const broken = await serve({ message: 'no' }, 503);
    const admins = await gatewayAdmins(undefined as never, { urls: [a, b, broken] });
    assert.deepEqual(
      admins.map((x) => x.where),
      [a, b, broken],
    );
    const { snapshots, unreachable } = await fetchAllCounts(admins);
    assert.equal(sumCounts(snapshots, { namespace: 'ns', name: 'fn-00001' })?.delivered, 10);
    assert.equal(unreachable.length, 1);
    assert.match(unreachable[0] ?? '', new RegExp(`^${broken}: GET ${broken}/v1/counts answered 503`));
  });

  it('an answer that breaks the counts contract is unreachable with the reason', async () => {
    const bad = await serve({ gateway: 'x', functions: 'nope' });
    const { snapshots, unreachable } = await fetchAllCounts(await gatewayAdmins(undefined as never, { urls: [bad] }));
    assert.deepEqual(snapshots, []);
    assert.match(unreachable[0] ?? '', /invalid counts snapshot/);
  });

  it('reads the well-formed /v1/cold-starts records, the nullable times as null', () => {
    const good = { namespace: 'ns', name: 'fn-00001', heldAt: 1, deliveredAt: 5, via: 'probe', endpointAnsweredAt: 4 };
    assert.deepEqual(
      parseColdStarts({
        coldStarts: [
          good,
          { ...good, via: 'other' },
          { ...good, heldAt: '1' },
          'x',
          { ...good, name: 'b', via: 'ready', repliedAt: 9, endpointAnsweredAt: null },
        ],
      }),
      [
        { ...good, repliedAt: null },
        { ...good, name: 'b', via: 'ready', endpointAnsweredAt: null, repliedAt: 9 },
      ],
    );
    assert.deepEqual(parseColdStarts(undefined), [], 'a gateway from before /v1/cold-starts');
    assert.deepEqual(parseColdStarts({ coldStarts: 'nope' }), []);
  });
});
