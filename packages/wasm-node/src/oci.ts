import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { AfterlifeError, errorMessage } from '@afterlife/core';
import { readTar, writeTar } from './tar.ts';

/** OCI media types and the crun annotation this package reads and writes. */
export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerTarGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerLayerTarGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  wasmLayer: 'application/vnd.wasm.content.layer.v1+wasm',
  wasm: 'application/wasm',
} as const;

/** crun's Wasm detection: this manifest annotation with `compat` or `compat-smart`. */
export const WASM_VARIANT_ANNOTATION = 'module.wasm.image/variant';
/** crun's alternative annotation (`wasm`, `wasm-smart`). */
export const RUN_OCI_HANDLER_ANNOTATION = 'run.oci.handler';

const MAX_BLOB_BYTES = 256 << 20;

export class OciError extends AfterlifeError {}

/** The image is valid but is not a Wasm image crun would run as Wasm. */
export class NotWasmImageError extends OciError {
  constructor(message: string) {
    super('NOT_WASM_IMAGE', message);
  }
}

export interface ImageReference {
  /** `host[:port]` of the registry. */
  readonly registry: string;
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
}

/** Parses `registry/repo[:tag][@sha256:…]`; a reference without a registry host means Docker Hub. */
export function parseImageReference(image: string): ImageReference {
  const text = image.trim();
  if (text === '' || /\s/.test(text)) throw new OciError('IMAGE_REF_INVALID', `invalid image reference "${image}"`);
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new OciError('IMAGE_REF_INVALID', `invalid digest in "${image}"`);
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  let registry = 'docker.io';
  if (first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    rest = rest.slice(slash + 1);
  } else if (slash === -1) {
    rest = `library/${rest}`;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+|__)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+|__)*)*$/.test(rest)) {
    throw new OciError('IMAGE_REF_INVALID', `invalid repository "${rest}" in "${image}"`);
  }
  if (tag !== undefined && !/^[\w][\w.-]{0,127}$/.test(tag)) {
    throw new OciError('IMAGE_REF_INVALID', `invalid tag "${tag}" in "${image}"`);
  }
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository: rest, tag, digest };
}

export function formatImageReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
}

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
  annotations?: Record<string, string>;
  platform?: { architecture?: string; os?: string };
}

interface Manifest {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  annotations?: Record<string, string>;
}

interface ImageConfig {
  architecture?: string;
  os?: string;
  config?: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null };
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

async function readLimited(response: Response, what: string): Promise<Buffer> {
  const length = Number(response.headers.get('content-length') ?? '0');
  if (length > MAX_BLOB_BYTES)
    throw new OciError('BLOB_TOO_LARGE', `${what} is ${length} bytes (limit ${MAX_BLOB_BYTES})`);
  const data = Buffer.from(await response.arrayBuffer());
  if (data.length > MAX_BLOB_BYTES)
    throw new OciError('BLOB_TOO_LARGE', `${what} is larger than ${MAX_BLOB_BYTES} bytes`);
  return data;
}

function checkAllowed(ref: ImageReference, options: RegistryOptions): void {
  const allow = options.allowRegistry ?? isLoopbackRegistry;
  if (!allow(ref.registry)) {
    throw new OciError(
      'REGISTRY_NOT_ALLOWED',
      `registry ${ref.registry} is not allowed (wasm-node only pulls from loopback registries by default; see AFTERLIFE_WASM_NODE_REGISTRIES)`,
    );
  }
}

async function fetchBlob(ref: ImageReference, digest: string, timeoutMs: number, what: string): Promise<Buffer> {
  const url = `${baseUrl(ref)}/blobs/${digest}`;
  const response = await request(url, {}, timeoutMs, `fetching ${what}`);
  if (!response.ok) {
    throw new OciError('BLOB_FETCH_FAILED', `fetching ${what} ${digest} from ${ref.registry}: HTTP ${response.status}`);
  }
  const data = await readLimited(response, what);
  const actual = sha256Digest(data);
  if (actual !== digest)
    throw new OciError('DIGEST_MISMATCH', `${what} digest mismatch: expected ${digest}, got ${actual}`);
  return data;
}

const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifest,
  MEDIA_TYPES.dockerList,
].join(', ');

async function fetchManifest(
  ref: ImageReference,
  reference: string,
  timeoutMs: number,
): Promise<{ manifest: Manifest; digest: string; mediaType: string }> {
  const url = `${baseUrl(ref)}/manifests/${reference}`;
  const response = await request(url, { headers: { accept: MANIFEST_ACCEPT } }, timeoutMs, 'fetching manifest');
  if (response.status === 404) {
    throw new OciError('IMAGE_NOT_FOUND', `image ${formatImageReference(ref)} not found in ${ref.registry}`);
  }
  if (!response.ok) throw new OciError('MANIFEST_FETCH_FAILED', `fetching manifest ${url}: HTTP ${response.status}`);
  const data = await readLimited(response, 'manifest');
  const digest = sha256Digest(data);
  if (reference.startsWith('sha256:') && digest !== reference) {
    throw new OciError('DIGEST_MISMATCH', `manifest digest mismatch: expected ${reference}, got ${digest}`);
  }
  let manifest: Manifest;
  try {
    manifest = JSON.parse(data.toString('utf8')) as Manifest;
  } catch (error) {
    throw new OciError('MANIFEST_INVALID', `manifest of ${formatImageReference(ref)} is not JSON`, { cause: error });
  }
  const mediaType =
    manifest.mediaType ?? response.headers.get('content-type')?.split(';')[0] ?? MEDIA_TYPES.ociManifest;
  return { manifest, digest, mediaType };
}

export interface WasmImage {
  readonly reference: string;
  /** Digest of the image manifest that was run (like a container's imageID). */
  readonly manifestDigest: string;
  /** Digest of the module bytes themselves (the compile cache key). */
  readonly moduleDigest: string;
  readonly variant: string;
  readonly entrypoint: readonly string[];
  readonly env: readonly string[];
  readonly module: Buffer;
}

/** Picks the Wasm entry of an image index (platform wasm or wasi*), or its only entry. */
function pickFromIndex(index: Manifest): Descriptor {
  const entries = index.manifests ?? [];
  const wasm = entries.find(
    (entry) => entry.platform?.architecture === 'wasm' || (entry.platform?.os ?? '').startsWith('wasi'),
  );
  const only = entries.length === 1 ? entries[0] : undefined;
  const chosen = wasm ?? only;
  if (chosen === undefined) {
    throw new NotWasmImageError(
      'the image index has no wasm/wasi platform entry (crun would not run any of them as Wasm)',
    );
  }
  return chosen;
}

/** True when `data` starts with the WebAssembly magic number. */
export function hasWasmMagic(data: Uint8Array): boolean {
  return data.length >= 8 && data[0] === 0 && data[1] === 0x61 && data[2] === 0x73 && data[3] === 0x6d;
}

/** Checks that `data` is a core WebAssembly module (not a component, not a .wat, not an ELF). */
export function checkWasmBinary(data: Buffer, what: string): void {
  if (!hasWasmMagic(data)) {
    throw new NotWasmImageError(`${what} is not a WebAssembly binary (no \\0asm magic)`);
  }
  const version = data.readUInt32LE(4);
  if (version !== 1) {
    throw new NotWasmImageError(
      `${what} is a WebAssembly component or unknown version (${version}); wasm-node runs core WASI preview1 modules`,
    );
  }
}

/** Finds the entrypoint file in the image's layers (last layer wins, like an overlay). */
function extractEntrypoint(
  layers: ReadonlyArray<{ descriptor: Descriptor; data: Buffer }>,
  entrypoint: string,
): Buffer {
  const wanted = entrypoint.replace(/^\/+/, '').replace(/^\.\//, '');
  for (const { descriptor, data } of [...layers].reverse()) {
    const mediaType = descriptor.mediaType ?? '';
    if (mediaType === MEDIA_TYPES.wasmLayer || mediaType === MEDIA_TYPES.wasm) return data;
    let tar: Buffer;
    if (mediaType.endsWith('gzip')) {
      try {
        tar = gunzipSync(data);
      } catch (error) {
        throw new OciError('LAYER_INVALID', `layer ${descriptor.digest} is not valid gzip`, { cause: error });
      }
    } else if (mediaType === MEDIA_TYPES.ociLayerTar || mediaType.endsWith('.tar')) {
      tar = data;
    } else {
      throw new OciError('LAYER_INVALID', `layer ${descriptor.digest} has unsupported media type "${mediaType}"`);
    }
    for (const entry of readTar(tar).reverse()) {
      if (entry.path.replace(/^\.?\/+/, '') !== wanted) continue;
      if (entry.type !== 'file') {
        throw new OciError(
          'LAYER_INVALID',
          `entrypoint ${entrypoint} is a ${entry.type} in the image, not a regular file`,
        );
      }
      return entry.data;
    }
  }
  throw new OciError('ENTRYPOINT_MISSING', `entrypoint ${entrypoint} is not in any layer of the image`);
}

/**
 * Pulls a Wasm image built for crun (`module.wasm.image/variant: compat|compat-smart` or
 * `run.oci.handler: wasm|wasm-smart`, entrypoint ending in `.wasm`) and returns the module bytes.
 * Throws NotWasmImageError for images crun would run natively.
 */
export async function pullWasmImage(image: string, options: RegistryOptions = {}): Promise<WasmImage> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const ref = parseImageReference(image);
  checkAllowed(ref, options);
  let { manifest, digest, mediaType } = await fetchManifest(ref, ref.digest ?? ref.tag ?? 'latest', timeoutMs);
  let indexAnnotations: Record<string, string> = {};
  if (mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerList || manifest.manifests !== undefined) {
    indexAnnotations = manifest.annotations ?? {};
    const chosen = pickFromIndex(manifest);
    ({ manifest, digest, mediaType } = await fetchManifest(ref, chosen.digest, timeoutMs));
  }
  if (manifest.config === undefined || manifest.layers === undefined) {
    throw new OciError(
      'MANIFEST_INVALID',
      `manifest ${digest} of ${image} has no config or layers (media type ${mediaType})`,
    );
  }
  const annotations = { ...indexAnnotations, ...(manifest.annotations ?? {}) };
  const variant = annotations[WASM_VARIANT_ANNOTATION] ?? annotations[RUN_OCI_HANDLER_ANNOTATION];
  const knownVariants = ['compat', 'compat-smart', 'wasm', 'wasm-smart'];
  if (variant === undefined) {
    throw new NotWasmImageError(
      `image ${image} is not a Wasm image: its manifest has no "${WASM_VARIANT_ANNOTATION}" (or "${RUN_OCI_HANDLER_ANNOTATION}") annotation, so crun would run it as a Linux container, which this Wasm node cannot do`,
    );
  }
  if (!knownVariants.includes(variant)) {
    throw new NotWasmImageError(
      `image ${image} has unknown ${WASM_VARIANT_ANNOTATION} "${variant}" (want compat or compat-smart)`,
    );
  }
  const configData = await fetchBlob(ref, manifest.config.digest, timeoutMs, 'image config');
  let config: ImageConfig;
  try {
    config = JSON.parse(configData.toString('utf8')) as ImageConfig;
  } catch (error) {
    throw new OciError('CONFIG_INVALID', `image config of ${image} is not JSON`, { cause: error });
  }
  const entrypoint = [...(config.config?.Entrypoint ?? []), ...(config.config?.Cmd ?? [])];
  const program = entrypoint[0];
  const rawWasmLayer = manifest.layers.find(
    (layer) => layer.mediaType === MEDIA_TYPES.wasmLayer || layer.mediaType === MEDIA_TYPES.wasm,
  );
  if (rawWasmLayer === undefined) {
    if (program === undefined) throw new NotWasmImageError(`image ${image} has no entrypoint (want e.g. ["/fn.wasm"])`);
    if (!program.endsWith('.wasm')) {
      throw new NotWasmImageError(
        `image ${image} has entrypoint "${program}", which does not end in .wasm: with variant ${variant} crun runs it natively, not as Wasm`,
      );
    }
  }
  const layers = [];
  for (const descriptor of rawWasmLayer === undefined ? manifest.layers : [rawWasmLayer]) {
    if ((descriptor.size ?? 0) > MAX_BLOB_BYTES)
      throw new OciError('BLOB_TOO_LARGE', `layer ${descriptor.digest} is too large`);
    layers.push({ descriptor, data: await fetchBlob(ref, descriptor.digest, timeoutMs, 'layer') });
  }
  const module = extractEntrypoint(layers, program ?? '/module.wasm');
  checkWasmBinary(module, `entrypoint ${program ?? '(wasm layer)'} of ${image}`);
  return {
    reference: image,
    manifestDigest: digest,
    moduleDigest: sha256Digest(module),
    variant,
    entrypoint: entrypoint.length > 0 ? entrypoint : ['/module.wasm'],
    env: config.config?.Env ?? [],
    module,
  };
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

/** Pushes an OCI image (config + layers + manifest annotations) to a plain-HTTP registry. */
export async function pushImage(image: string, options: PushImageOptions): Promise<PushedImage> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const ref = parseImageReference(image);
  checkAllowed(ref, options);
  const configData = Buffer.from(JSON.stringify(options.config));
  const configDigest = await pushBlob(ref, configData, timeoutMs);
  const layers: Descriptor[] = [];
  for (const layer of options.layers) {
    layers.push({
      mediaType: layer.mediaType,
      digest: await pushBlob(ref, layer.data, timeoutMs),
      size: layer.data.length,
    });
  }
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: configDigest, size: configData.length },
    layers,
    ...(options.annotations === undefined ? {} : { annotations: { ...options.annotations } }),
  };
  const manifestData = Buffer.from(JSON.stringify(manifest));
  const digest = sha256Digest(manifestData);
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
  checkWasmBinary(module, 'the module to push');
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
