import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { MEDIA_TYPES } from '@afterlife/core';
import { type PushedImage, pushImage, pushWasmImage, sha256Digest } from './oci.ts';
import { cacheDir } from './paths.ts';
import { writeTar } from './tar.ts';

/** Where the reference function's module sits in its image, and its entrypoint (crun runs `.wasm` entrypoints as Wasm). */
export const ECHO_WASM_ENTRYPOINT = '/echo.wasm';

interface Layer {
  readonly tarDigest: string;
  readonly gzip: Buffer;
}

/**
 * A deterministic gzip layer holding `files`, cached by content in `<cache>/layers` so a new
 * cluster's registry is filled without compressing 30 MB binaries again.
 */
async function layerOf(files: ReadonlyArray<{ path: string; data: Buffer }>): Promise<Layer> {
  const tar = writeTar(files);
  const tarDigest = sha256Digest(tar);
  const dir = join(cacheDir(), 'layers');
  const file = join(dir, `${tarDigest.slice(7)}.tar.gz`);
  if (existsSync(file)) return { tarDigest, gzip: await readFile(file) };
  const gzip = gzipSync(tar, { level: 6 });
  await mkdir(dir, { recursive: true });
  const partial = `${file}.${process.pid}`;
  await writeFile(partial, gzip);
  await rename(partial, file);
  return { tarDigest, gzip };
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
