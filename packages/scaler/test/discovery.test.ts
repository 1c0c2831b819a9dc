import assert from 'node:assert/strict';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { gatewayUrlsFromSlices, staticDiscovery } from '../src/discovery.ts';

const slice = (partial: Partial<V1EndpointSlice>): V1EndpointSlice => ({
  addressType: 'IPv4',
  endpoints: [],
  ports: [
    { name: 'events', port: 8080 },
    { name: 'admin', port: 9090 },
  ],
  ...partial,
});

describe('gateway discovery from EndpointSlices (pure)', () => {
  it('lists serving endpoints on the admin port, IPv4 and IPv6, sorted and unique', () => {
    const urls = gatewayUrlsFromSlices(
      [
        slice({
          endpoints: [
            { addresses: ['10.213.0.9'], conditions: { ready: true } },
            { addresses: ['10.213.0.5'] },
            // terminating but still serving: it is draining held events, keep counting it
            { addresses: ['10.213.0.7'], conditions: { ready: false, serving: true, terminating: true } },
            { addresses: ['10.213.0.8'], conditions: { ready: false } },
            { addresses: ['10.213.0.6'], conditions: { ready: true, serving: false } },
          ],
        }),
        slice({ endpoints: [{ addresses: ['10.213.0.5'] }] }),
        slice({ addressType: 'IPv6', endpoints: [{ addresses: ['fd00::1'] }] }),
        slice({ addressType: 'FQDN', endpoints: [{ addresses: ['gw.example'] }] }),
        slice({ ports: [{ name: 'events', port: 8080 }], endpoints: [{ addresses: ['10.213.0.20'] }] }),
      ],
      'admin',
    );
    assert.deepEqual(urls, [
      'http://10.213.0.5:9090',
      'http://10.213.0.7:9090',
      'http://10.213.0.9:9090',
      'http://[fd00::1]:9090',
    ]);
    assert.deepEqual(gatewayUrlsFromSlices([], 'admin'), []);
  });

  it('static discovery reports its list once, de-duplicated', async () => {
    const seen: (readonly string[])[] = [];
    const discovery = staticDiscovery(['http://b:1', 'http://a:1', 'http://b:1']);
    await discovery.start((urls) => seen.push(urls));
    await discovery.stop();
    assert.deepEqual(seen, [['http://a:1', 'http://b:1']]);
  });
});
