import assert from 'node:assert/strict';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { KnativeIndex, revisionSlice, routeEssentials, trafficOfRoute } from '../src/knative.ts';
import { sliceEssentials } from '../src/kube.ts';
import { pickRevision, RouteTable, routableRevisions } from '../src/routes.ts';

describe('Route traffic → revisions', () => {
  it('keeps revisions with percent > 0, sums entries of the same revision, ignores tags', () => {
    assert.deepEqual(
      routableRevisions([
        { revisionName: 'echo-00001', percent: 40, tag: 'old' },
        { revisionName: 'echo-00002', percent: 50, latestRevision: true },
        { revisionName: 'echo-00001', percent: 10 },
        { revisionName: 'echo-00003', percent: 0, tag: 'candidate' },
        { revisionName: 'echo-00004', tag: 'preview' },
      ]),
      [
        { revision: 'echo-00001', percent: 50 },
        { revision: 'echo-00002', percent: 50 },
      ],
    );
  });

  it('cannot route entries without a revisionName (only a configurationName), nor empty traffic', () => {
    assert.deepEqual(routableRevisions([{ configurationName: 'echo', percent: 100, latestRevision: true }]), []);
    assert.deepEqual(routableRevisions([{ revisionName: '', percent: 100 }]), []);
    assert.deepEqual(routableRevisions([{ revisionName: 'x', percent: Number.NaN }]), []);
    assert.deepEqual(routableRevisions([]), []);
  });

  it('picks by weight with the injected random source', () => {
    const weights = [
      { revision: 'a', percent: 30 },
      { revision: 'b', percent: 70 },
    ];
    const picks = [0, 0.299, 0.3, 0.5, 0.9999].map((value) => pickRevision(weights, () => value));
    assert.deepEqual(picks, ['a', 'a', 'b', 'b', 'b']);
    // Floating-point rounding at the top end still picks a revision.
    assert.equal(
      pickRevision(weights, () => 0.999_999_999_999_999_9),
      'b',
    );
  });

  it('needs no random number for a single revision and has nothing to pick from empty traffic', () => {
    const never = () => assert.fail('random source called');
    assert.equal(pickRevision([{ revision: 'only', percent: 100 }], never), 'only');
    assert.equal(pickRevision([], never), undefined);
  });

  it('spreads roughly by percent over many picks', () => {
    const weights = routableRevisions([
      { revisionName: 'a', percent: 25 },
      { revisionName: 'b', percent: 75 },
    ]);
    let seed = 42;
    const lcg = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const tally = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const revision = pickRevision(weights, lcg) ?? '';
      tally.set(revision, (tally.get(revision) ?? 0) + 1);
    }
    const a = tally.get('a') ?? 0;
    assert.ok(a > 2300 && a < 2700, `a picked ${a} of 10000 times`);
  });

  it('RouteTable keeps a copy of the traffic and its weights', () => {
    const routes = new RouteTable();
    const ref = { namespace: 'n', name: 'echo' };
    const traffic = [{ revisionName: 'echo-1', percent: 100 }];
    assert.equal(routes.has(ref), false);
    assert.equal(routes.weights(ref), undefined);
    routes.setRoute(ref, traffic);
    traffic.push({ revisionName: 'echo-2', percent: 100 });
    assert.deepEqual(routes.traffic(ref), [{ revisionName: 'echo-1', percent: 100 }]);
    assert.deepEqual(routes.weights(ref), [{ revision: 'echo-1', percent: 100 }]);
    routes.setRoute(ref, []);
    assert.equal(routes.has(ref), true);
    assert.deepEqual(routes.weights(ref), []);
    routes.deleteRoute(ref);
    assert.equal(routes.has(ref), false);
  });
});

describe('Knative objects → tables (the watcher’s mapping)', () => {
  const privateSlice = (
    revision: string | undefined,
    ports: NonNullable<V1EndpointSlice['ports']>,
    ready: boolean[],
    first = 1,
  ): V1EndpointSlice => ({
    metadata: {
      name: `${revision ?? 'x'}-private-${first}`,
      namespace: 'n',
      labels: {
        'kubernetes.io/service-name': `${revision ?? 'x'}-private`,
        'networking.internal.knative.dev/serviceType': 'Private',
        ...(revision === undefined ? {} : { 'serving.knative.dev/revision': revision }),
      },
    },
    addressType: 'IPv4',
    ports,
    endpoints: ready.map((value, index) => ({
      addresses: [`10.213.0.${first + index}`],
      conditions: { ready: value },
    })),
  });
  const KNATIVE_PORTS = [
    { name: 'http-autometric', port: 9090 },
    { name: 'http', port: 8012 },
    { name: 'http-queueadm', port: 8022 },
    { name: 'https', port: 8112 },
  ];

  it('reads a Route’s status.traffic, dropping fields of the wrong type', () => {
    assert.deepEqual(
      trafficOfRoute({
        status: {
          traffic: [
            { revisionName: 'echo-00001', percent: 100, latestRevision: true, tag: 't', url: 'http://x' },
            { configurationName: 'echo', percent: '50' },
            'garbage',
          ],
        },
      }),
      [{ revisionName: 'echo-00001', percent: 100, latestRevision: true, tag: 't' }, { configurationName: 'echo' }],
    );
    assert.deepEqual(trafficOfRoute({}), []);
    assert.deepEqual(trafficOfRoute({ status: { traffic: 'none' } }), []);
  });

  it('attributes ready addresses on the port named http to the revision label', () => {
    assert.deepEqual(revisionSlice(privateSlice('echo-00001', KNATIVE_PORTS, [true, false, true])), {
      revision: 'echo-00001',
      endpoints: [
        { ip: '10.213.0.1', port: 8012 },
        { ip: '10.213.0.3', port: 8012 },
      ],
      notReady: [{ ip: '10.213.0.2', port: 8012 }],
      h2cOnly: false,
    });
    assert.equal(revisionSlice(privateSlice(undefined, KNATIVE_PORTS, [true])), undefined);
  });

  it('lists starting pods (not ready, not terminating) apart, for the warm-up probe', () => {
    const slice = privateSlice('echo-00001', KNATIVE_PORTS, [false, false, true]);
    const [starting, leaving] = slice.endpoints ?? [];
    if (starting === undefined || leaving === undefined) throw new Error('slice endpoints');
    leaving.conditions = { ready: false, serving: true, terminating: true };
    starting.conditions = { ready: false, serving: false, terminating: false };
    assert.deepEqual(revisionSlice(slice)?.notReady, [{ ip: '10.213.0.1', port: 8012 }]);
    assert.deepEqual(revisionSlice(slice)?.endpoints, [{ ip: '10.213.0.3', port: 8012 }]);
  });

  it('gives an h2c revision (only http2) no endpoints and flags it', () => {
    const h2c = privateSlice('grpc-00001', [{ name: 'http2', port: 8013 }], [true]);
    assert.deepEqual(revisionSlice(h2c), { revision: 'grpc-00001', endpoints: [], notReady: [], h2cOnly: true });
    // No named http port at all (and no http2): not h2c, just nothing to deliver to.
    assert.deepEqual(revisionSlice(privateSlice('odd-00001', [{ name: 'web', port: 80 }], [true])), {
      revision: 'odd-00001',
      endpoints: [],
      notReady: [],
      h2cOnly: false,
    });
  });

  const indexOf = (
    routes: { metadata: { name: string }; status?: { traffic?: unknown } }[],
    slices: V1EndpointSlice[],
  ) => {
    const index = new KnativeIndex();
    for (const route of routes) index.setRoute('n', route.metadata.name, trafficOfRoute(route));
    for (const slice of slices) index.setSlice('n', slice.metadata?.name ?? '', revisionSlice(slice));
    return index;
  };

  it('maps a namespace: Routes to functions, every named or sliced revision to its endpoints', () => {
    const index = indexOf(
      [
        {
          metadata: { name: 'echo' },
          status: {
            traffic: [
              { revisionName: 'echo-00002', percent: 100, latestRevision: true },
              { revisionName: 'echo-00001', percent: 0, tag: 'previous' },
            ],
          },
        },
        { metadata: { name: 'fresh' } },
      ],
      [
        privateSlice('echo-00002', KNATIVE_PORTS, [true], 1),
        privateSlice('echo-00002', KNATIVE_PORTS, [true], 2),
        privateSlice('old-00007', KNATIVE_PORTS, [false]),
        privateSlice('grpc-00001', [{ name: 'http2', port: 8013 }], [true]),
      ],
    );
    assert.deepEqual(index.route('n', 'echo'), [
      { revisionName: 'echo-00002', percent: 100, latestRevision: true },
      { revisionName: 'echo-00001', percent: 0, tag: 'previous' },
    ]);
    assert.deepEqual(index.route('n', 'fresh'), []);
    assert.equal(index.routeCount, 2);
    assert.deepEqual(index.revision('n', 'echo-00001'), { ready: [], notReady: [], h2cOnly: false });
    assert.deepEqual(index.revision('n', 'echo-00002'), {
      ready: [
        { ip: '10.213.0.1', port: 8012 },
        { ip: '10.213.0.2', port: 8012 },
      ],
      notReady: [],
      h2cOnly: false,
    });
    assert.deepEqual(index.revision('n', 'old-00007'), {
      ready: [],
      notReady: [{ ip: '10.213.0.1', port: 8012 }],
      h2cOnly: false,
    });
    assert.deepEqual(index.revision('n', 'grpc-00001'), { ready: [], notReady: [], h2cOnly: true });
    assert.equal(index.revision('n', 'never-00001'), undefined);
    assert.equal(index.revision('other', 'echo-00002'), undefined);
  });

  it('updates per object: what a Route drops, a slice moves or a delete removes is all that changes', () => {
    const echo = (traffic: unknown[]) => ({ metadata: { name: 'echo' }, status: { traffic } });
    const index = indexOf([echo([{ revisionName: 'echo-00001', percent: 100 }])], []);
    const moved = index.setRoute('n', 'echo', trafficOfRoute(echo([{ revisionName: 'echo-00002', percent: 100 }])));
    assert.deepEqual(moved, { named: new Set(['echo-00002']), dropped: new Set(['echo-00001']) });
    assert.equal(index.revision('n', 'echo-00001'), undefined, 'named by no Route and carried by no slice');
    // A slice keeps a revision no Route names, until the slice is gone.
    assert.deepEqual(index.setSlice('n', 's1', revisionSlice(privateSlice('echo-00001', KNATIVE_PORTS, [true]))), [
      'echo-00001',
    ]);
    assert.deepEqual(index.revision('n', 'echo-00001')?.ready, [{ ip: '10.213.0.1', port: 8012 }]);
    // The same slice now says another revision: both are touched, the first one is gone.
    assert.deepEqual(index.setSlice('n', 's1', revisionSlice(privateSlice('echo-00002', KNATIVE_PORTS, [true]))), [
      'echo-00001',
      'echo-00002',
    ]);
    assert.equal(index.revision('n', 'echo-00001'), undefined);
    assert.deepEqual(index.setSlice('n', 's1', undefined), ['echo-00002']);
    assert.deepEqual(index.revision('n', 'echo-00002'), { ready: [], notReady: [], h2cOnly: false });
    assert.deepEqual(index.setRoute('n', 'echo', undefined), { named: new Set(), dropped: new Set(['echo-00002']) });
    assert.equal(index.route('n', 'echo'), undefined);
    assert.equal(index.revision('n', 'echo-00002'), undefined);
    assert.equal(index.routeCount, 0);
  });

  it('caches only what it reads: a Route’s traffic, a slice’s revision label, ports and endpoint readiness', () => {
    const route = routeEssentials({
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Route',
      metadata: {
        name: 'echo',
        namespace: 'n',
        resourceVersion: '7',
        uid: 'u',
        labels: { a: 'b' },
        annotations: { big: 'x'.repeat(1000) },
      },
      spec: { traffic: [{ latestRevision: true, percent: 100 }] },
      status: { traffic: [{ revisionName: 'echo-00001', percent: 100 }], url: 'http://echo.n' },
    } as never);
    assert.deepEqual(route, {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Route',
      metadata: { name: 'echo', namespace: 'n', resourceVersion: '7', uid: 'u' },
      status: { traffic: [{ revisionName: 'echo-00001', percent: 100 }] },
    });
    const full = privateSlice('echo-00001', KNATIVE_PORTS, [true]);
    const slice = sliceEssentials(
      {
        ...full,
        metadata: { ...full.metadata, resourceVersion: '9' },
        endpoints: (full.endpoints ?? []).map((endpoint) => ({
          ...endpoint,
          nodeName: 'node-1',
          targetRef: { kind: 'Pod', name: 'p' },
          conditions: { ...endpoint.conditions, serving: true },
        })),
      },
      ['serving.knative.dev/revision'],
    );
    assert.deepEqual(slice.metadata?.labels, { 'serving.knative.dev/revision': 'echo-00001' });
    assert.equal(slice.metadata?.resourceVersion, '9');
    assert.deepEqual(slice.endpoints, [
      { addresses: ['10.213.0.1'], conditions: { ready: true, terminating: undefined } },
    ]);
    assert.deepEqual(revisionSlice(slice), revisionSlice(full));
  });
});
