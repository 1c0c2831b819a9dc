import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import {
  errorMessage,
  type ImageReference,
  MEDIA_TYPES,
  parseImageReference,
  WASM_VARIANT_ANNOTATION,
} from '@afterlife/core';
import { AfterlifeClusterError } from './cluster-error.ts';
import { writeTar } from './tar.ts';

export class OciError extends AfterlifeClusterError {}

/** True for registries on the loopback interface (the only ones this project talks to by default). */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : (registry.split(':')[0] ?? '');
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
}

interface Manifest {
  schemaVersion: number;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface RegistryOptions {
  readonly timeoutMs?: number;
  /** Registry hosts allowed; default: loopback only. */
  readonly allowRegistry?: (registry: string) => boolean;
}

function baseUrl(ref: ImageReference): string {
  return `http://${ref.registry}/v2/${ref.repository}`;
}

async function request(url: string, init: RequestInit, timeoutMs: number, what: string): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  } catch (error) {
    throw new OciError('REGISTRY_UNREACHABLE', `${what}: ${url}: ${errorMessage(error)}`, { cause: error });
  }
}

function checkAllowed(ref: ImageReference, options: RegistryOptions): void {
  const allow = options.allowRegistry ?? isLoopbackRegistry;
  if (!allow(ref.registry)) {
    throw new OciError(
      'REGISTRY_NOT_ALLOWED',
      `registry ${ref.registry} is not allowed (only loopback registries by default)`,
    );
  }
}

/** True when `data` starts with the WebAssembly magic number. */
export function hasWasmMagic(data: Uint8Array): boolean {
  return data.length >= 8 && data[0] === 0 && data[1] === 0x61 && data[2] === 0x73 && data[3] === 0x6d;
}

export interface PushLayer {
  readonly mediaType: string;
  readonly data: Buffer;
}

export interface PushImageOptions extends RegistryOptions {
  readonly config: object;
  readonly layers: readonly PushLayer[];
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface PushedImage {
  /** `registry/repo:tag` */
  readonly reference: string;
  /** `registry/repo@sha256:…` */
  readonly pinned: string;
  readonly digest: string;
}

async function pushBlob(ref: ImageReference, data: Buffer, timeoutMs: number): Promise<string> {
  const digest = sha256Digest(data);
  const head = await request(`${baseUrl(ref)}/blobs/${digest}`, { method: 'HEAD' }, timeoutMs, 'checking blob');
  if (head.ok) return digest;
  const start = await request(`${baseUrl(ref)}/blobs/uploads/`, { method: 'POST' }, timeoutMs, 'starting upload');
  const location = start.headers.get('location');
  if (start.status !== 202 || location === null) {
    throw new OciError('PUSH_FAILED', `starting blob upload to ${ref.registry}: HTTP ${start.status}`);
  }
  const uploadUrl = new URL(location, `http://${ref.registry}`);
  uploadUrl.searchParams.set('digest', digest);
  const put = await request(
    uploadUrl.toString(),
    { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } },
    timeoutMs,
    'uploading blob',
  );
  if (put.status !== 201)
    throw new OciError('PUSH_FAILED', `uploading blob ${digest}: HTTP ${put.status} ${await put.text()}`);
  return digest;
}

/** An image's config and manifest as the bytes a registry (or an OCI layout) stores. */
export interface ImageBlobs {
  readonly configData: Buffer;
  readonly manifestData: Buffer;
  /** Digest of the manifest: the image's identity. */
  readonly digest: string;
}

/** The config blob and OCI manifest of an image; same config and layers, same bytes. */
export function imageBlobs(options: Pick<PushImageOptions, 'config' | 'layers' | 'annotations'>): ImageBlobs {
  const configData = Buffer.from(JSON.stringify(options.config));
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256Digest(configData), size: configData.length },
    layers: options.layers.map((layer) => ({
      mediaType: layer.mediaType,
      digest: sha256Digest(layer.data),
      size: layer.data.length,
    })),
    ...(options.annotations === undefined ? {} : { annotations: { ...options.annotations } }),
  };
  const manifestData = Buffer.from(JSON.stringify(manifest));
  return { configData, manifestData, digest: sha256Digest(manifestData) };
}

/** Pushes an OCI image (config + layers + manifest annotations) to a plain-HTTP registry. */
export async function pushImage(image: string, options: PushImageOptions): Promise<PushedImage> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const ref = parseImageReference(image);
  checkAllowed(ref, options);
  const { configData, manifestData, digest } = imageBlobs(options);
  await pushBlob(ref, configData, timeoutMs);
  for (const layer of options.layers) await pushBlob(ref, layer.data, timeoutMs);
  const response = await request(
    `${baseUrl(ref)}/manifests/${ref.tag ?? digest}`,
    { method: 'PUT', body: manifestData, headers: { 'content-type': MEDIA_TYPES.ociManifest } },
    timeoutMs,
    'pushing manifest',
  );
  if (response.status !== 201) {
    throw new OciError('PUSH_FAILED', `pushing manifest of ${image}: HTTP ${response.status} ${await response.text()}`);
  }
  const base = `${ref.registry}/${ref.repository}`;
  return { reference: `${base}:${ref.tag ?? 'latest'}`, pinned: `${base}@${digest}`, digest };
}

export interface PushWasmImageOptions extends RegistryOptions {
  /** Path of the module inside the image, and the entrypoint (default `/module.wasm`). */
  readonly entrypoint?: string;
  /** crun variant annotation (default `compat-smart`, what Knative pods need). */
  readonly variant?: string;
  readonly env?: readonly string[];
}

/**
 * Packages a module the way crun+WasmEdge expect (`compat-smart` variant annotation on the
 * manifest, a gzip tar layer holding the `.wasm`, config entrypoint `["/<name>.wasm"]`, platform
 * wasi/wasm) and pushes it. Deterministic: the same module gives the same digest.
 */
export async function pushWasmImage(
  image: string,
  module: Buffer,
  options: PushWasmImageOptions = {},
): Promise<PushedImage> {
  if (!hasWasmMagic(module))
    throw new OciError('NOT_WASM', 'the module to push is not a WebAssembly binary (no \\0asm magic)');
  const entrypoint = options.entrypoint ?? '/module.wasm';
  const tar = writeTar([{ path: entrypoint, data: module }]);
  const layer = gzipSync(tar, { level: 6 });
  const config = {
    architecture: 'wasm',
    os: 'wasip1',
    config: { Entrypoint: [entrypoint], ...(options.env === undefined ? {} : { Env: [...options.env] }) },
    rootfs: { type: 'layers', diff_ids: [sha256Digest(tar)] },
  };
  return pushImage(image, {
    ...options,
    config,
    layers: [{ mediaType: MEDIA_TYPES.ociLayerTarGzip, data: layer }],
    annotations: {
      [WASM_VARIANT_ANNOTATION]: options.variant ?? 'compat-smart',
      'org.opencontainers.image.title': entrypoint.replace(/^\/+/, ''),
    },
  });
}
