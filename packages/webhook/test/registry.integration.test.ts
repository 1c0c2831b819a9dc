import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { useCluster } from '@afterlife/devcluster/testing';
import { type InspectionResult, RegistryImageInspector } from '../src/image.ts';
import { answerReview } from '../src/review.ts';
import { admissionReview, CONFIG, FLAG_ON, knativeService } from './fixtures.ts';

const run = promisify(execFile);

describe('Wasm image detection against the real OCI registry', function () {
  this.timeout(120_000);
  const cluster = useCluster({ namespacePrefix: 'webhook-reg' });
  const repo = `afterlife-webhook-it-${randomBytes(3).toString('hex')}`;
  let dir: string;
  const image = (name: string) => `${cluster.registry}/${repo}/${name}:v1`;

  before(async function () {
    if (cluster.registry === '') this.skip();
    dir = await mkdtemp(join(tmpdir(), 'afterlife-webhook-oras-'));
    await writeFile(join(dir, 'module.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    await writeFile(join(dir, 'config.json'), '{}');
    await writeFile(join(dir, 'app.tar'), 'not really a tar');
    await writeFile(
      join(dir, 'image-config.json'),
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Labels: { 'module.wasm.image/variant': 'compat-smart' } },
        rootfs: { type: 'layers', diff_ids: [] },
      }),
    );
    const oras = (...args: string[]) => run(cluster.binary('oras'), [...args, '--plain-http'], { cwd: dir });
    // Wasm layer media type (wasm-to-oci / runwasi style).
    await oras('push', image('wasm-layer'), 'module.wasm:application/vnd.wasm.content.layer.v1+wasm');
    // Wasm config media type + W3C module layer.
    await oras(
      'push',
      image('wasm-config'),
      '--config',
      'config.json:application/vnd.wasm.config.v1+json',
      'module.wasm:application/vnd.w3c.wasm.module.v1+wasm',
    );
    // Ordinary layer, but annotated for crun.
    await oras(
      'push',
      image('annotated'),
      '--annotation',
      'module.wasm.image/variant=compat-smart',
      'app.tar:application/vnd.oci.image.layer.v1.tar',
    );
    // Image config blob carrying the variant label (what `buildah --label` produces).
    await oras(
      'push',
      image('labelled'),
      '--config',
      'image-config.json:application/vnd.oci.image.config.v1+json',
      'app.tar:application/vnd.oci.image.layer.v1.tar',
    );
    // An ordinary, non-Wasm artifact.
    await oras('push', image('plain'), 'app.tar:application/vnd.oci.image.layer.v1.tar');
    // An index whose child is a Wasm manifest.
    await oras(
      'push',
      `${cluster.registry}/${repo}/indexed:child`,
      'module.wasm:application/vnd.wasm.content.layer.v1+wasm',
    );
    await oras('manifest', 'index', 'create', image('indexed'), 'child');
  });

  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('tells Wasm images from ordinary ones by media types, annotations and config labels', async () => {
    const results: InspectionResult[] = [];
    const errors: string[] = [];
    const inspector = new RegistryImageInspector({
      timeoutMs: 5000,
      insecureRegistries: [cluster.registry],
      onResult: (result, img, error) => {
        results.push(result);
        if (error !== undefined) errors.push(`${img}: ${String(error)}`);
      },
    });
    const expected: Array<[string, boolean]> = [
      ['wasm-layer', true],
      ['wasm-config', true],
      ['annotated', true],
      ['labelled', true],
      ['indexed', true],
      ['plain', false],
      ['missing', false],
    ];
    for (const [name, wasm] of expected) assert.equal(await inspector.isWasmImage(image(name)), wasm, name);
    assert.deepEqual(results, ['wasm', 'wasm', 'wasm', 'wasm', 'wasm', 'not-wasm', 'error'], errors.join('\n'));
    assert.equal(errors.length, 1);
    assert.match(errors[0] ?? '', /missing:v1: WebhookError: registry answered 404/);
    assert.equal(await inspector.isWasmImage(image('wasm-layer')), true);
    assert.equal(results.at(-1), 'cached');
  });

  it('refuses plain HTTP to registries not listed as insecure', async () => {
    const errors: unknown[] = [];
    const inspector = new RegistryImageInspector({ timeoutMs: 2000, onResult: (_r, _i, e) => errors.push(e) });
    assert.equal(await inspector.isWasmImage(image('wasm-layer')), false);
    assert.equal(errors.length, 1);
  });

  it('opts Services in by image when detection is on', async () => {
    const inspector = new RegistryImageInspector({ timeoutMs: 5000, insecureRegistries: [cluster.registry] });
    const withImage = (img: string) =>
      knativeService({ template: { spec: { containers: [{ image: img }, { image: image('plain') }] } } });
    const wasm = await answerReview(admissionReview(withImage(image('wasm-layer'))), {
      config: CONFIG,
      features: FLAG_ON,
      imageInspector: inspector,
    });
    assert.equal(wasm.outcome, 'mutated');
    assert.equal(wasm.reason, 'opted-in-by-image');
    const plain = await answerReview(admissionReview(withImage(image('plain'))), {
      config: CONFIG,
      features: FLAG_ON,
      imageInspector: inspector,
    });
    assert.equal(plain.outcome, 'skipped');
  });
});
