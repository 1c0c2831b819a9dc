import assert from 'node:assert/strict';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { EndpointTable } from '../src/endpoints.ts';
import { functionOfService, readyEndpoints, ServiceIndex } from '../src/kube.ts';
import { RateWindow } from '../src/rate.ts';

describe('RateWindow', () => {
  it('averages events over the sliding window and forgets old seconds', () => {
    const window = new RateWindow(10);
    const t0 = 1_000_000;
    window.add(t0, 10);
    window.add(t0 + 1500, 10);
    assert.equal(window.perSecond(t0 + 2000), 2);
    assert.equal(window.perSecond(t0 + 10_999), 1); // the first second left the window
    assert.equal(window.perSecond(t0 + 11_000), 0); // …and now the second one too
    window.add(t0 + 30_000);
    assert.equal(window.perSecond(t0 + 30_000), 0.1);
  });
});

describe('EndpointTable', () => {
  it('knows functions, dedupes endpoints and only reports real changes', () => {
    const table = new EndpointTable();
    const changes: number[] = [];
    table.on('change', (_ref, endpoints) => changes.push(endpoints?.length ?? -1));
    const ref = { namespace: 'n', name: 'f' };
    assert.equal(table.has(ref), false);
    table.setFunction(ref, []);
    assert.equal(table.has(ref), true);
    table.setFunction(ref, [
      { ip: '10.0.0.2', port: 80 },
      { ip: '10.0.0.1', port: 80 },
      { ip: '10.0.0.2', port: 80 },
    ]);
    const listed = Date.now();
    table.setFunction(ref, [
      { ip: '10.0.0.1', port: 80 },
      { ip: '10.0.0.2', port: 80 },
    ]);
    assert.deepEqual(
      table.endpoints(ref)?.map(({ ip, port }) => ({ ip, port })),
      [
        { ip: '10.0.0.1', port: 80 },
        { ip: '10.0.0.2', port: 80 },
      ],
    );
    // Stamped when the table first had them, kept across updates that list them again.
    for (const endpoint of table.endpoints(ref) ?? []) {
      assert.ok((endpoint.listedAt ?? 0) <= listed && (endpoint.listedAt ?? 0) > listed - 5000);
    }
    table.deleteFunction(ref);
    assert.equal(table.endpoints(ref), undefined);
    assert.deepEqual(changes, [0, 2, -1]);
  });
});

describe('EndpointSlice reading', () => {
  const slice = (ports: NonNullable<V1EndpointSlice['ports']>, ready: (boolean | undefined)[]): V1EndpointSlice => ({
    addressType: 'IPv4',
    ports,
    endpoints: ready.map((value, index) => ({
      addresses: [`10.213.0.${index + 1}`],
      conditions: value === undefined ? {} : { ready: value },
    })),
  });

  it('takes ready addresses on the port named http', () => {
    const got = readyEndpoints(
      slice(
        [
          { name: 'metrics', port: 9090 },
          { name: 'http', port: 8012 },
        ],
        [true, false, undefined, true],
      ),
    );
    assert.deepEqual(got, [
      { ip: '10.213.0.1', port: 8012 },
      { ip: '10.213.0.4', port: 8012 },
    ]);
  });

  it('falls back to the first port and ignores FQDN slices and port-less slices', () => {
    assert.deepEqual(readyEndpoints(slice([{ name: 'web', port: 8080 }], [true])), [{ ip: '10.213.0.1', port: 8080 }]);
    assert.deepEqual(readyEndpoints({ ...slice([{ port: 80 }], [true]), addressType: 'FQDN' }), []);
    assert.deepEqual(readyEndpoints(slice([], [true])), []);
  });

  it('maps Services to functions by name or by label', () => {
    const service: V1Service = {
      metadata: { name: 'echo-00001-private', labels: { 'serving.knative.dev/service': 'echo' } },
    };
    const base = { functionLabel: 'serving.knative.dev/service', serviceSelector: '', namespaces: [] };
    assert.equal(functionOfService(service, { ...base, discovery: 'service' }), 'echo-00001-private');
    assert.equal(functionOfService(service, { ...base, discovery: 'label' }), 'echo');
    assert.equal(functionOfService({ metadata: { name: 'x' } }, { ...base, discovery: 'label' }), undefined);
  });
});

describe('ServiceIndex (service/label discovery, per object)', () => {
  const a = { ip: '10.0.0.1', port: 8080 };
  const b = { ip: '10.0.0.2', port: 8080 };
  const c = { ip: '10.0.0.3', port: 8080 };

  it('a function is known once a Service belongs to it, with every slice of every one of its Services', () => {
    const index = new ServiceIndex();
    // A slice can arrive before its Service: kept, touching no function yet.
    assert.deepEqual(index.setSlice('ns', 'echo-abc', { service: 'echo', endpoints: [a] }), []);
    assert.equal(index.endpoints('ns', 'fn'), undefined);
    assert.deepEqual(index.setService('ns', 'echo', 'fn'), ['fn']);
    assert.deepEqual(index.endpoints('ns', 'fn'), [a]);
    assert.deepEqual(index.setService('ns', 'echo-v2', 'fn'), ['fn']);
    assert.deepEqual(index.setSlice('ns', 'echo-v2-x', { service: 'echo-v2', endpoints: [b] }), ['fn']);
    assert.deepEqual(index.endpoints('ns', 'fn'), [a, b]);
    // The same name in another namespace is another function.
    assert.equal(index.endpoints('other', 'fn'), undefined);
    // An unchanged Service touches nothing.
    assert.deepEqual(index.setService('ns', 'echo', 'fn'), []);
  });

  it('updates touch only their function: a relabelled Service moves, a slice changes Service, deletes', () => {
    const index = new ServiceIndex();
    index.setService('ns', 'one', 'f1');
    index.setService('ns', 'two', 'f2');
    index.setSlice('ns', 's1', { service: 'one', endpoints: [a] });
    index.setSlice('ns', 's2', { service: 'two', endpoints: [b] });
    // The Service's function label changed: both functions are touched, f1 is left without Services.
    assert.deepEqual(index.setService('ns', 'one', 'f2'), ['f1', 'f2']);
    assert.equal(index.endpoints('ns', 'f1'), undefined);
    assert.deepEqual(
      index.endpoints('ns', 'f2')?.sort((x, y) => x.ip.localeCompare(y.ip)),
      [a, b],
    );
    // A slice re-pointed at another Service leaves the first.
    index.setService('ns', 'three', 'f3');
    assert.deepEqual(index.setSlice('ns', 's1', { service: 'three', endpoints: [c] }).sort(), ['f2', 'f3']);
    assert.deepEqual(index.endpoints('ns', 'f2'), [b]);
    assert.deepEqual(index.endpoints('ns', 'f3'), [c]);
    // Deletes.
    assert.deepEqual(index.setSlice('ns', 's2', undefined), ['f2']);
    assert.deepEqual(index.endpoints('ns', 'f2'), []);
    assert.deepEqual(index.setService('ns', 'two', undefined), ['f2']);
    assert.deepEqual(index.setService('ns', 'one', undefined), ['f2']);
    assert.equal(index.endpoints('ns', 'f2'), undefined);
    assert.deepEqual(index.setService('ns', 'gone', undefined), [], 'an unknown Service deleted touches nothing');
  });
});
