import assert from 'node:assert/strict';
import type { Gateway } from '../src/server.ts';
import { counts, pendingOf, type Receiver, sendBinary, startReceiver, startTestGateway, waitFor } from './helpers.ts';

const NS = 'demo';
const FN = { namespace: NS, name: 'echo' };
const PATH = '/ns/demo/fn/echo';
const revision = (name: string) => ({ namespace: NS, name });

/** A random source that returns the given values in turn. */
function sequence(values: number[]): () => number {
  let index = 0;
  return () => values[index++ % values.length] ?? 0;
}

describe('discovery knative (Routes → revisions, programmatic tables)', function () {
  this.timeout(20_000);
  let gateway: Gateway | undefined;
  const receivers: Receiver[] = [];

  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
  });

  async function start(random?: () => number, extra: Record<string, string> = {}): Promise<Gateway> {
    gateway = await startTestGateway(
      { AFTERLIFE_GATEWAY_DISCOVERY: 'knative', ...extra },
      random === undefined ? {} : { random },
    );
    return gateway;
  }

  async function receiver(): Promise<Receiver> {
    const started = await startReceiver();
    receivers.push(started);
    return started;
  }

  const at = (target: Receiver) => [{ ip: '127.0.0.1', port: target.port }];
  const echoed = (target: Receiver) => target.received.map((entry) => String(entry.headers['ce-id']));

  async function metricLine(gw: Gateway, prefix: string): Promise<string | undefined> {
    const text = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text();
    return text.split('\n').find((line) => line.startsWith(prefix));
  }

  it('answers 404 without a Route and 503 + Retry-After while no revision receives traffic', async () => {
    const gw = await start();
    const unknown = await sendBinary(gw.eventsPort, PATH, 'u1');
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: string }).error, 'unknown_function');

    for (const traffic of [
      [],
      [{ configurationName: 'echo', percent: 100, latestRevision: true }],
      [{ revisionName: 'echo-00001', percent: 0, tag: 'next' }],
    ]) {
      gw.routes.setRoute(FN, traffic);
      const res = await sendBinary(gw.eventsPort, PATH, 'n1');
      assert.equal(res.status, 503, JSON.stringify(traffic));
      assert.equal(res.headers.get('retry-after'), '2');
      assert.deepEqual(await res.json(), {
        error: 'no_routable_revision',
        message: 'no revision of demo/echo receives traffic yet',
      });
    }
    assert.deepEqual((await counts(gw.adminPort)).functions, [], 'nothing was accepted');
    assert.equal(
      await metricLine(gw, 'afterlife_gateway_events_rejected_total{reason="no_routable_revision"'),
      'afterlife_gateway_events_rejected_total{reason="no_routable_revision",component="gateway"} 3',
    );
  });

  it('holds and counts the event under its revision and delivers once the revision has an endpoint', async () => {
    const gw = await start();
    const target = await receiver();
    gw.endpoints.setFunction(revision('echo-00001'), []);
    gw.routes.setRoute(FN, [{ revisionName: 'echo-00001', percent: 100, latestRevision: true }]);

    const reply = sendBinary(gw.eventsPort, PATH, 'held-1');
    await waitFor(async () => pendingOf(await counts(gw.adminPort), 'echo-00001') === 1, 5000, 'pending=1');
    const snapshot = await counts(gw.adminPort);
    assert.deepEqual(
      snapshot.functions.map((fn) => `${fn.namespace}/${fn.name}`),
      ['demo/echo-00001'],
      'counted by revision, not by Service',
    );

    gw.endpoints.setFunction(revision('echo-00001'), at(target));
    const res = await reply;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('ce-id'), 'reply-held-1');
    assert.deepEqual(echoed(target), ['held-1']);
    assert.equal(
      await metricLine(gw, 'afterlife_gateway_events_delivered_total{namespace="demo",function="echo-00001"'),
      'afterlife_gateway_events_delivered_total{namespace="demo",function="echo-00001",component="gateway"} 1',
    );
  });

  it('splits requests by percent (deterministic random source); a batch goes to one revision', async () => {
    const gw = await start(sequence([0.1, 0.9, 0.3, 0.7, 0.6]));
    const [a, b] = [await receiver(), await receiver()];
    gw.endpoints.setFunction(revision('echo-a'), at(a));
    gw.endpoints.setFunction(revision('echo-b'), at(b));
    gw.routes.setRoute(FN, [
      { revisionName: 'echo-a', percent: 50 },
      { revisionName: 'echo-b', percent: 50, latestRevision: true },
    ]);
    for (const id of ['s1', 's2', 's3', 's4']) assert.equal((await sendBinary(gw.eventsPort, PATH, id)).status, 200);
    assert.deepEqual(
      [echoed(a), echoed(b)],
      [
        ['s1', 's3'],
        ['s2', 's4'],
      ],
    );

    const batch = await fetch(`http://127.0.0.1:${gw.eventsPort}${PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify(
        ['b1', 'b2', 'b3'].map((id) => ({ id, source: '/t', type: 't', specversion: '1.0', data: {} })),
      ),
    });
    assert.equal(batch.status, 200);
    assert.deepEqual(echoed(b).slice(2), ['b1', 'b2', 'b3'], 'one pick (0.6 → echo-b) for the whole batch');
    const byRevision = Object.fromEntries((await counts(gw.adminPort)).functions.map((fn) => [fn.name, fn.delivered]));
    assert.deepEqual(byRevision, { 'echo-a': 2, 'echo-b': 5 });
  });

  it('rollout A → B: events held for A stay A’s and reach A once it is ready; new events go to B', async () => {
    const gw = await start();
    const [a, b] = [await receiver(), await receiver()];
    gw.endpoints.setFunction(revision('echo-00001'), []);
    gw.routes.setRoute(FN, [{ revisionName: 'echo-00001', percent: 100 }]);
    const held = [sendBinary(gw.eventsPort, PATH, 'a1'), sendBinary(gw.eventsPort, PATH, 'a2')];
    await waitFor(async () => pendingOf(await counts(gw.adminPort), 'echo-00001') === 2, 5000, 'pending=2 on A');

    gw.endpoints.setFunction(revision('echo-00002'), at(b));
    gw.routes.setRoute(FN, [
      { revisionName: 'echo-00001', percent: 0, tag: 'previous' },
      { revisionName: 'echo-00002', percent: 100, latestRevision: true },
    ]);
    assert.equal((await sendBinary(gw.eventsPort, PATH, 'b1')).status, 200);
    assert.deepEqual(echoed(b), ['b1']);
    assert.equal(
      pendingOf(await counts(gw.adminPort), 'echo-00001'),
      2,
      'still held for A (its ScaledObject wakes it)',
    );

    gw.endpoints.setFunction(revision('echo-00001'), at(a));
    assert.deepEqual(
      (await Promise.all(held)).map((res) => res.status),
      [200, 200],
    );
    assert.deepEqual(echoed(a), ['a1', 'a2']);
  });

  it('re-routes events held for a revision that disappears, or answers them 503 when nothing is routable', async () => {
    const gw = await start();
    const b = await receiver();
    gw.endpoints.setFunction(revision('echo-00001'), []);
    gw.routes.setRoute(FN, [{ revisionName: 'echo-00001', percent: 100 }]);
    const moved = sendBinary(gw.eventsPort, PATH, 'moved-1');
    await waitFor(async () => pendingOf(await counts(gw.adminPort), 'echo-00001') === 1, 5000, 'pending=1 on A');

    // As the watcher orders it: the new revision and traffic first, then the gone revision.
    gw.endpoints.setFunction(revision('echo-00002'), at(b));
    gw.routes.setRoute(FN, [{ revisionName: 'echo-00002', percent: 100 }]);
    gw.endpoints.deleteFunction(revision('echo-00001'));
    const res = await moved;
    assert.equal(res.status, 200);
    assert.deepEqual(echoed(b), ['moved-1']);
    const names = (await counts(gw.adminPort)).functions.map((fn) => fn.name);
    assert.deepEqual(names, ['echo-00002'], 'the gone revision left the counts');
    assert.equal(
      await metricLine(gw, 'afterlife_gateway_events_failed_total{namespace="demo",function="echo-00001"'),
      'afterlife_gateway_events_failed_total{namespace="demo",function="echo-00001",reason="revision_gone",component="gateway"} 1',
    );

    gw.endpoints.setFunction(revision('echo-00003'), []);
    gw.routes.setRoute(FN, [{ revisionName: 'echo-00003', percent: 100 }]);
    const stranded = sendBinary(gw.eventsPort, PATH, 'stranded-1');
    await waitFor(async () => pendingOf(await counts(gw.adminPort), 'echo-00003') === 1, 5000, 'pending=1 on C');
    gw.routes.deleteRoute(FN);
    gw.endpoints.deleteFunction(revision('echo-00003'));
    const refused = await stranded;
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '2');
    assert.deepEqual(await refused.json(), {
      error: 'no_routable_revision',
      message: 'revision demo/echo-00003 is gone and no revision of demo/echo receives traffic',
    });
    assert.deepEqual(echoed(b), ['moved-1']);
  });
});
