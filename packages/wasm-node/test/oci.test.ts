import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { binaryPath, ensureComponent, freePort } from '@afterlife/devcluster';
import { after, before, describe, it } from 'mocha';
import {
  checkWasmBinary,
  hasWasmMagic,
  isLoopbackRegistry,
  MEDIA_TYPES,
  NotWasmImageError,
  parseImageReference,
  pullWasmImage,
  pushImage,
  pushWasmImage,
  readTar,
  sha256Digest,
  WASM_VARIANT_ANNOTATION,
  writeTar,
} from '../src/index.ts';
import { eventually, trapModule } from './helpers.ts';

describe('OCI images for crun (push and pull)', function () {
  this.timeout(120_000);

  describe('references, tar and module checks', () => {
    it('parses image references', () => {
      assert.deepEqual(parseImageReference('127.0.0.1:5000/afterlife/echo:v1'), {
        registry: '127.0.0.1:5000',
        repository: 'afterlife/echo',
        tag: 'v1',
        digest: undefined,
      });
      const digest = `sha256:${'a'.repeat(64)}`;
      assert.deepEqual(parseImageReference(`localhost/echo@${digest}`), {
        registry: 'localhost',
        repository: 'echo',
        tag: undefined,
        digest,
      });
      assert.deepEqual(parseImageReference('nginx'), {
        registry: 'docker.io',
        repository: 'library/nginx',
        tag: 'latest',
        digest: undefined,
      });
      assert.equal(parseImageReference('gcr.io/knative-releases/queue:1').registry, 'gcr.io');
      assert.throws(() => parseImageReference(''), /invalid image reference/);
      assert.throws(() => parseImageReference('127.0.0.1:5000/Bad/Repo'), /invalid repository/);
      assert.throws(() => parseImageReference('127.0.0.1:5000/a@sha256:xyz'), /invalid digest/);
    });

    it('only treats loopback registries as local', () => {
      assert.ok(isLoopbackRegistry('127.0.0.1:5000'));
      assert.ok(isLoopbackRegistry('localhost:80'));
      assert.ok(isLoopbackRegistry('[::1]:5000'));
      assert.ok(!isLoopbackRegistry('docker.io'));
      assert.ok(!isLoopbackRegistry('10.0.0.1:5000'));
    });

    it('round-trips tar archives', () => {
      const data = Buffer.from('hello');
      const entries = readTar(
        writeTar([
          { path: '/echo.wasm', data },
          { path: 'a/b.txt', data: Buffer.alloc(0) },
        ]),
      );
      assert.deepEqual(
        entries.map((e) => [e.path, e.type, e.data.toString()]),
        [
          ['echo.wasm', 'file', 'hello'],
          ['a/b.txt', 'file', ''],
        ],
      );
      assert.throws(
        () => readTar(Buffer.concat([writeTar([{ path: 'x', data: Buffer.alloc(600) }]).subarray(0, 700)])),
        /truncated/,
      );
    });

    it('accepts core modules and refuses other files', () => {
      assert.ok(hasWasmMagic(trapModule()));
      checkWasmBinary(trapModule(), 'trap');
      assert.throws(() => checkWasmBinary(Buffer.from('\x7fELF....'), 'elf'), NotWasmImageError);
      const component = Buffer.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]);
      assert.throws(() => checkWasmBinary(component, 'component'), /component/);
    });
  });

  describe('against a real OCI registry (distribution v3)', () => {
    let registry: string;
    let child: ChildProcess | undefined;
    let dir: string;

    before(async () => {
      const bin = await binaryPath(await ensureComponent('registry'), 'registry');
      dir = await mkdtemp(join(tmpdir(), 'wasm-oci-'));
      registry = `127.0.0.1:${await freePort()}`;
      const config = join(dir, 'config.yml');
      await writeFile(
        config,
        `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: ${registry}\n`,
      );
      child = spawn(bin, ['serve', config], { stdio: 'ignore', env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' } });
      await eventually('registry', async () => ((await fetch(`http://${registry}/v2/`)).ok ? true : undefined), 20_000);
    });
    after(async () => {
      child?.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    });

    it('pushes a compat-smart Wasm image and pulls the module back by tag and by digest', async () => {
      const module = trapModule();
      const pushed = await pushWasmImage(`${registry}/afterlife/trap:v1`, module, { entrypoint: '/trap.wasm' });
      assert.equal(pushed.reference, `${registry}/afterlife/trap:v1`);
      const again = await pushWasmImage(`${registry}/afterlife/trap:v2`, module, { entrypoint: '/trap.wasm' });
      assert.equal(again.digest, pushed.digest, 'packaging is deterministic');
      const manifest = (await (
        await fetch(`http://${registry}/v2/afterlife/trap/manifests/v1`, {
          headers: { accept: MEDIA_TYPES.ociManifest },
        })
      ).json()) as { annotations: Record<string, string>; layers: { mediaType: string }[] };
      assert.equal(manifest.annotations[WASM_VARIANT_ANNOTATION], 'compat-smart');
      assert.equal(manifest.layers[0]?.mediaType, MEDIA_TYPES.ociLayerTarGzip);
      for (const image of [pushed.reference, pushed.pinned]) {
        const pulled = await pullWasmImage(image);
        assert.equal(pulled.manifestDigest, pushed.digest);
        assert.equal(pulled.moduleDigest, sha256Digest(module));
        assert.deepEqual(pulled.entrypoint, ['/trap.wasm']);
        assert.equal(pulled.variant, 'compat-smart');
        assert.deepEqual(pulled.module, module);
      }
    });

    it('pulls a raw Wasm-layer artifact and an image index with a wasi platform', async () => {
      const module = trapModule();
      const raw = await pushImage(`${registry}/afterlife/raw:v1`, {
        config: { architecture: 'wasm', os: 'wasip1' },
        layers: [{ mediaType: MEDIA_TYPES.wasmLayer, data: module }],
        annotations: { [WASM_VARIANT_ANNOTATION]: 'compat' },
      });
      assert.deepEqual((await pullWasmImage(raw.reference)).module, module);
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.ociIndex,
          manifests: [
            {
              mediaType: MEDIA_TYPES.ociManifest,
              digest: raw.digest,
              size: 1,
              platform: { architecture: 'wasm', os: 'wasip1' },
            },
          ],
        }),
      );
      const put = await fetch(`http://${registry}/v2/afterlife/raw/manifests/multi`, {
        method: 'PUT',
        body: index,
        headers: { 'content-type': MEDIA_TYPES.ociIndex },
      });
      assert.equal(put.status, 201);
      assert.equal((await pullWasmImage(`${registry}/afterlife/raw:multi`)).manifestDigest, raw.digest);
    });

    it('refuses a Linux container image with a clear NotWasmImage error', async () => {
      const layer = gzipSync(writeTar([{ path: 'server.js', data: Buffer.from('console.log(1)') }]));
      const linux = await pushImage(`${registry}/afterlife/linux:v1`, {
        config: { architecture: 'amd64', os: 'linux', config: { Entrypoint: ['node', '/server.js'] } },
        layers: [{ mediaType: MEDIA_TYPES.ociLayerTarGzip, data: layer }],
      });
      await assert.rejects(pullWasmImage(linux.reference), (error: unknown) => {
        assert.ok(error instanceof NotWasmImageError);
        assert.match(error.message, /is not a Wasm image: its manifest has no "module\.wasm\.image\/variant"/);
        return true;
      });
      const nativeEntrypoint = await pushImage(`${registry}/afterlife/linux:smart`, {
        config: { architecture: 'amd64', os: 'linux', config: { Entrypoint: ['/server'] } },
        layers: [{ mediaType: MEDIA_TYPES.ociLayerTarGzip, data: layer }],
        annotations: { [WASM_VARIANT_ANNOTATION]: 'compat-smart' },
      });
      await assert.rejects(
        pullWasmImage(nativeEntrypoint.reference),
        /does not end in \.wasm: with variant compat-smart crun runs it natively/,
      );
      const missingFile = await pushImage(`${registry}/afterlife/linux:missing`, {
        config: { config: { Entrypoint: ['/fn.wasm'] } },
        layers: [{ mediaType: MEDIA_TYPES.ociLayerTarGzip, data: layer }],
        annotations: { [WASM_VARIANT_ANNOTATION]: 'compat' },
      });
      await assert.rejects(pullWasmImage(missingFile.reference), /entrypoint \/fn\.wasm is not in any layer/);
    });

    it('reports missing images and never contacts non-loopback registries', async () => {
      await assert.rejects(pullWasmImage(`${registry}/afterlife/none:v1`), /not found/);
      await assert.rejects(pullWasmImage('gcr.io/knative-releases/queue:v1'), /registry gcr\.io is not allowed/);
      await assert.rejects(pushWasmImage('docker.io/x/y:1', trapModule()), /not allowed/);
      await assert.rejects(pushWasmImage(`${registry}/x/y:1`, Buffer.from('nope')), NotWasmImageError);
    });
  });
});
