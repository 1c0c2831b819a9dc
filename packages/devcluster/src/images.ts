import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { MEDIA_TYPES } from '@afterlife/core';
import { type PushedImage, pushImage, pushWasmImage, sha256Digest } from './oci.ts';
import { cacheDir } from './paths.ts';
import { writeTar } from './tar.ts';

/** Where the reference function's module sits in its image, and its entrypoint (crun runs `.wasm` entrypoints as Wasm). */
export const ECHO_WASM_ENTRYPOINT = '/echo.wasm';

/** A gzip layer and the digest of its uncompressed tar (the config's `diff_id`). */
export interface Layer {
  readonly tarDigest: string;
  readonly gzip: Buffer;
}

const gzipAsync = promisify(gzip);

function layersDir(): string {
  return join(cacheDir(), 'layers');
}

async function writeAtomically(file: string, data: Buffer | string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  // Unique per write: two builds in one process may store the same layer at once.
  const partial = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(partial, data);
  await rename(partial, file);
}

/**
 * The deterministic gzip (level 6) of a tar, cached by content in `<cache>/layers` so a new
 * cluster's registry is filled without compressing 30 MB binaries again. Compresses on the
 * thread pool, so several layers compress in parallel.
 */
export async function layerOfTar(tar: Buffer): Promise<Layer> {
  const tarDigest = sha256Digest(tar);
  const file = join(layersDir(), `${tarDigest.slice(7)}.tar.gz`);
  if (existsSync(file)) return { tarDigest, gzip: await readFile(file) };
  const compressed = await gzipAsync(tar, { level: 6 });
  await writeAtomically(file, compressed);
  return { tarDigest, gzip: compressed };
}

/**
 * A layer remembered by what it is made of (`key`, e.g. the pins of its inputs) rather than by
 * its bytes: a warm build neither downloads nor unpacks nor hashes those inputs again.
 */
export async function layerByInputs(key: string, buildTar: () => Promise<Buffer>): Promise<Layer> {
  const index = join(layersDir(), 'inputs', `${createHash('sha256').update(key).digest('hex')}.digest`);
  if (existsSync(index)) {
    const tarDigest = (await readFile(index, 'utf8')).trim();
    const file = join(layersDir(), `${tarDigest.slice(7)}.tar.gz`);
    if (existsSync(file)) return { tarDigest, gzip: await readFile(file) };
  }
  const layer = await layerOfTar(await buildTar());
  await writeAtomically(index, layer.tarDigest);
  return layer;
}

/** A layer holding `files` (mode 0755, see writeTar). */
async function layerOf(files: ReadonlyArray<{ path: string; data: Buffer }>): Promise<Layer> {
  return layerOfTar(writeTar(files));
}

/**
 * Pushes a single static Linux binary as an image with no base (FROM scratch): the binary at
 * `/<name>` is the entrypoint. Same bytes, same digest.
 */
export async function pushStaticBinaryImage(
  image: string,
  binary: string,
  options: {
    readonly name: string;
    readonly env?: readonly string[];
    readonly labels?: Record<string, string>;
    /** Numeric user the entrypoint runs as (images for `runAsNonRoot` pods need one). */
    readonly user?: string;
  },
): Promise<PushedImage> {
  const layer = await layerOf([{ path: options.name, data: await readFile(binary) }]);
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: {
      Entrypoint: [`/${options.name}`],
      ...(options.env ? { Env: [...options.env] } : {}),
      ...(options.labels ? { Labels: { ...options.labels } } : {}),
      ...(options.user ? { User: options.user } : {}),
    },
    rootfs: { type: 'layers', diff_ids: [layer.tarDigest] },
  };
  return pushImage(image, { config, layers: [{ mediaType: MEDIA_TYPES.ociLayerTarGzip, data: layer.gzip }] });
}

/** The images a local cluster's real nodes run, in its registry. */
export interface NodeImages {
  /** containerd's pinned sandbox image. */
  readonly pause: PushedImage;
  /** The reference function as a crun compat-smart Wasm image. */
  readonly echoWasm: PushedImage;
  /** The same function as a static native image (the benchmark baseline). */
  readonly echoNative: PushedImage;
}

export async function pushNodeImages(
  registry: string,
  tools: { pause: string; echoWasm: string; echoNative: string },
): Promise<NodeImages> {
  const [pause, echoWasm, echoNative] = await Promise.all([
    pushStaticBinaryImage(`${registry}/afterlife/pause:${await contentTag(tools.pause)}`, tools.pause, {
      name: 'pause',
    }),
    pushWasmImage(`${registry}/afterlife/echo:latest`, await readFile(tools.echoWasm), {
      entrypoint: ECHO_WASM_ENTRYPOINT,
      variant: 'compat-smart',
    }),
    pushStaticBinaryImage(`${registry}/afterlife/echo-native:latest`, tools.echoNative, { name: 'echo' }),
  ]);
  return { pause, echoWasm, echoNative };
}

/** Knative's queue-proxy (built from knative.dev/serving/cmd/queue) as a no-base image. */
export async function pushQueueProxyImage(
  registry: string,
  queueBinary: string,
  version: string,
): Promise<PushedImage> {
  // Knative runs queue-proxy with runAsNonRoot: 65532 is the non-root user its own (ko) images use.
  return pushStaticBinaryImage(`${registry}/knative/queue:${version}`, queueBinary, { name: 'queue', user: '65532' });
}

async function contentTag(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex')
    .slice(0, 16);
}
