import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hasCode } from '@afterlife/core';
import { documentIsWasm, type InspectionResult, RegistryImageInspector } from '../src/image.ts';

// Image reference parsing is core's (`packages/core/test/oci.test.ts`).

describe('Wasm detection from OCI documents', () => {
  const cases: Array<[string, unknown, boolean]> = [
    ['variant annotation on the manifest', { annotations: { 'module.wasm.image/variant': 'compat' } }, true],
    ['wasm layer', { layers: [{ mediaType: 'application/vnd.wasm.content.layer.v1+wasm' }] }, true],
    ['w3c wasm module layer', { layers: [{ mediaType: 'application/vnd.w3c.wasm.module.v1+wasm' }] }, true],
    ['wasm config', { config: { mediaType: 'application/vnd.wasm.config.v1+json' } }, true],
    ['wasm artifactType', { artifactType: 'application/vnd.wasm.config.v1+json' }, true],
    [
      'variant label in an image config blob',
      { config: { Labels: { 'module.wasm.image/variant': 'compat-smart' } } },
      true,
    ],
    ['wasi platform in an image config blob', { architecture: 'wasm', os: 'wasip1' }, true],
    ['a plain container image', { layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }] }, false],
    ['garbage', 'not a manifest', false],
  ];
  for (const [what, document, wasm] of cases) {
    it(`${wasm ? 'detects' : 'does not detect'} ${what}`, () => assert.equal(documentIsWasm(document), wasm));
  }
});

/**
 * A tiny registry stand-in for what the real registry (tested in registry.integration.test.ts)
 * cannot be made to do on demand: token challenges, hangs and request counting.
 */
describe('RegistryImageInspector behaviour', () => {
  let server: Server;
  let host: string;
  let requests: string[] = [];
  const manifests: Record<string, unknown> = {
    '/v2/fn/wasm/manifests/v1': {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.wasm.config.v1+json', digest: 'sha256:00', size: 2 },
      layers: [],
    },
    '/v2/fn/plain/manifests/v1': {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:cfg', size: 40 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }],
    },
    '/v2/fn/plain/blobs/sha256:cfg': { architecture: 'amd64', os: 'linux', config: {} },
    '/v2/fn/labelled/manifests/v1': {
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:lab', size: 40 },
      layers: [],
    },
    '/v2/fn/labelled/blobs/sha256:lab': { config: { Labels: { 'module.wasm.image/variant': 'compat-smart' } } },
    '/v2/fn/index/manifests/v1': {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ digest: 'sha256:child', mediaType: 'application/vnd.oci.image.manifest.v1+json' }],
    },
    '/v2/fn/index/manifests/sha256:child': {
      schemaVersion: 2,
      layers: [{ mediaType: 'application/vnd.wasm.content.layer.v1+wasm' }],
    },
  };

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://x');
      requests.push(url.pathname);
      if (url.pathname === '/token') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ token: `tok-${url.searchParams.get('scope')}` }));
        return;
      }
      if (url.pathname.startsWith('/v2/private/')) {
        if (req.headers.authorization !== 'Bearer tok-repository:private/fn:pull') {
          res.statusCode = 401;
          res.setHeader(
            'www-authenticate',
            `Bearer realm="http://${host}/token",service="test",scope="repository:private/fn:pull"`,
          );
          res.end();
          return;
        }
        res.end(JSON.stringify({ annotations: { 'module.wasm.image/variant': 'compat' } }));
        return;
      }
      if (url.pathname.startsWith('/v2/slow/')) return; // never answers
      const body = manifests[url.pathname];
      if (body === undefined) {
        res.statusCode = 404;
        res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        return;
      }
      assert.match(String(req.headers.accept), /application\/vnd.oci.image.manifest.v1\+json|image.config/);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    requests = [];
  });

  const inspector = (extra: { cacheSize?: number; results?: InspectionResult[]; timeoutMs?: number } = {}) =>
    new RegistryImageInspector({
      timeoutMs: extra.timeoutMs ?? 2000,
      insecureRegistries: [host],
      ...(extra.cacheSize === undefined ? {} : { cacheSize: extra.cacheSize }),
      onResult: (result) => extra.results?.push(result),
    });

  it('detects Wasm manifests, labelled configs and indexes; plain images are not Wasm', async () => {
    const i = inspector();
    assert.equal(await i.isWasmImage(`${host}/fn/wasm:v1`), true);
    assert.equal(await i.isWasmImage(`${host}/fn/plain:v1`), false);
    assert.equal(await i.isWasmImage(`${host}/fn/labelled:v1`), true);
    assert.equal(await i.isWasmImage(`${host}/fn/index:v1`), true);
  });

  it('follows an anonymous Bearer token challenge', async () => {
    assert.equal(await inspector().isWasmImage(`${host}/private/fn:v1`), true);
    assert.deepEqual(requests, ['/v2/private/fn/manifests/v1', '/token', '/v2/private/fn/manifests/v1']);
  });

  it('caches results (LRU) and shares concurrent lookups', async () => {
    const results: InspectionResult[] = [];
    const i = inspector({ cacheSize: 2, results });
    const image = `${host}/fn/wasm:v1`;
    await Promise.all([i.isWasmImage(image), i.isWasmImage(image), i.isWasmImage(image)]);
    assert.equal(requests.length, 1, 'one fetch for concurrent lookups');
    assert.equal(await i.isWasmImage(image), true);
    assert.deepEqual(results, ['wasm', 'cached']);
    await i.isWasmImage(`${host}/fn/plain:v1`);
    await i.isWasmImage(`${host}/fn/labelled:v1`);
    assert.equal(i.cacheSize, 2, 'bounded');
    requests = [];
    await i.isWasmImage(image);
    assert.equal(requests.length, 1, 'the oldest entry was evicted');
  });

  it('times out, counts the image as not Wasm and reports the error', async () => {
    const results: InspectionResult[] = [];
    const started = Date.now();
    assert.equal(await inspector({ results, timeoutMs: 200 }).isWasmImage(`${host}/slow/fn:v1`), false);
    assert.ok(Date.now() - started < 2000);
    assert.deepEqual(results, ['error']);
  });

  it('treats missing images and unreachable registries as not Wasm', async () => {
    const errors: unknown[] = [];
    const i = new RegistryImageInspector({
      timeoutMs: 1000,
      insecureRegistries: [host],
      onResult: (_r, _i, error) => errors.push(error),
    });
    assert.equal(await i.isWasmImage(`${host}/fn/missing:v1`), false);
    assert.match(String(errors[0]), /registry answered 404/);
    // Not listed as insecure: HTTPS is required, and this server only speaks HTTP.
    const strict = new RegistryImageInspector({ timeoutMs: 1000, onResult: (_r, _i, error) => errors.push(error) });
    assert.equal(await strict.isWasmImage(`${host}/fn/wasm:v1`), false);
    assert.match(String(errors[1]), /cannot fetch/);
  });

  it('counts an unparsable reference as not Wasm without asking any registry', async () => {
    const errors: unknown[] = [];
    const results: InspectionResult[] = [];
    const i = new RegistryImageInspector({
      timeoutMs: 1000,
      insecureRegistries: [host],
      onResult: (result, _i, error) => {
        results.push(result);
        errors.push(error);
      },
    });
    assert.equal(await i.isWasmImage(`${host}/fn/wasm@sha256:abc`), false);
    assert.deepEqual(results, ['error']);
    assert.ok(hasCode(errors[0], 'IMAGE_REFERENCE_INVALID'));
    assert.deepEqual(requests, []);
  });
});
