import {
  DOCKER_HUB_REGISTRY,
  errorMessage,
  isRecord,
  MEDIA_TYPES,
  parseImageReference,
  WASM_VARIANT_ANNOTATION,
} from '@afterlife/core';
import type { ImageInspector } from './admit.ts';
import { WebhookError } from './errors.ts';

/** Media types that mark an OCI artifact as a Wasm image (with crun's variant annotation). */
export const WASM_LAYER_MEDIA_TYPES: readonly string[] = [
  'application/vnd.wasm.content.layer.v1+wasm',
  'application/vnd.w3c.wasm.module.v1+wasm',
];
export const WASM_CONFIG_MEDIA_TYPES: readonly string[] = ['application/vnd.wasm.config.v1+json'];

const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifest,
  MEDIA_TYPES.dockerManifestList,
].join(', ');
const IMAGE_CONFIG_MEDIA_TYPES = new Set<string>([MEDIA_TYPES.ociConfig, MEDIA_TYPES.dockerConfig]);
const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
const MAX_CONFIG_BLOB_BYTES = 256 * 1024;
const WASM_OS = new Set(['wasi', 'wasip1', 'wasip2']);

/** True when an OCI manifest, index or image config document marks a Wasm image. */
export function documentIsWasm(document: unknown): boolean {
  if (!isRecord(document)) return false;
  if (isRecord(document.annotations) && typeof document.annotations[WASM_VARIANT_ANNOTATION] === 'string') return true;
  if (typeof document.artifactType === 'string' && isWasmMediaType(document.artifactType)) return true;
  if (isRecord(document.config) && typeof document.config.mediaType === 'string') {
    if (isWasmMediaType(document.config.mediaType)) return true;
  }
  if (Array.isArray(document.layers)) {
    for (const layer of document.layers) {
      if (isRecord(layer) && typeof layer.mediaType === 'string' && isWasmMediaType(layer.mediaType)) return true;
    }
  }
  // Image config blob: labels, or a wasm/wasi platform.
  const imageConfig = isRecord(document.config) ? document.config : undefined;
  for (const labels of [imageConfig?.Labels, document.Labels]) {
    if (isRecord(labels) && typeof labels[WASM_VARIANT_ANNOTATION] === 'string') return true;
  }
  if (document.architecture === 'wasm' || (typeof document.os === 'string' && WASM_OS.has(document.os))) return true;
  return false;
}

function isWasmMediaType(mediaType: string): boolean {
  return WASM_LAYER_MEDIA_TYPES.includes(mediaType) || WASM_CONFIG_MEDIA_TYPES.includes(mediaType);
}

function descriptorIsWasm(descriptor: unknown): boolean {
  if (!isRecord(descriptor)) return false;
  if (isRecord(descriptor.annotations) && typeof descriptor.annotations[WASM_VARIANT_ANNOTATION] === 'string') {
    return true;
  }
  if (typeof descriptor.artifactType === 'string' && isWasmMediaType(descriptor.artifactType)) return true;
  const platform = descriptor.platform;
  return (
    isRecord(platform) &&
    (platform.architecture === 'wasm' || (typeof platform.os === 'string' && WASM_OS.has(platform.os)))
  );
}

export type InspectionResult = 'wasm' | 'not-wasm' | 'error' | 'cached';

export interface RegistryImageInspectorOptions {
  /** Whole-inspection deadline per image (all registry round trips together). */
  timeoutMs: number;
  /** host[:port] of registries reached over plain HTTP; every other registry is HTTPS. */
  insecureRegistries?: readonly string[];
  cacheSize?: number;
  cacheTtlMs?: number;
  /** How long a failed inspection is remembered (so a broken registry is not hammered). */
  errorTtlMs?: number;
  /** Called once per isWasmImage() call with what happened (for metrics and logs). */
  onResult?: (result: InspectionResult, image: string, error?: unknown) => void;
  fetch?: typeof fetch;
  now?: () => number;
}

interface CacheEntry {
  wasm: boolean;
  expires: number;
}

/**
 * Reads an image's manifest (and, when needed, its config) from its registry to tell whether it is
 * a Wasm image. Anonymous registry token auth is supported; results are kept in an LRU cache with
 * a TTL, and concurrent lookups of one image share a single fetch. Never throws: an image that
 * cannot be inspected counts as not Wasm.
 */
export class RegistryImageInspector implements ImageInspector {
  readonly #options: Required<Omit<RegistryImageInspectorOptions, 'onResult'>> &
    Pick<RegistryImageInspectorOptions, 'onResult'>;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inflight = new Map<string, Promise<boolean>>();
  readonly #insecure: Set<string>;

  constructor(options: RegistryImageInspectorOptions) {
    this.#options = {
      insecureRegistries: [],
      cacheSize: 1000,
      cacheTtlMs: 600_000,
      errorTtlMs: 30_000,
      fetch: globalThis.fetch,
      now: Date.now,
      ...options,
    };
    this.#insecure = new Set(this.#options.insecureRegistries);
  }

  get cacheSize(): number {
    return this.#cache.size;
  }

  async isWasmImage(image: string): Promise<boolean> {
    const now = this.#options.now();
    const cached = this.#cache.get(image);
    if (cached !== undefined) {
      if (cached.expires > now) {
        this.#cache.delete(image);
        this.#cache.set(image, cached);
        this.#options.onResult?.('cached', image);
        return cached.wasm;
      }
      this.#cache.delete(image);
    }
    const running = this.#inflight.get(image);
    if (running !== undefined) return running;
    const promise = this.#inspect(image).finally(() => this.#inflight.delete(image));
    this.#inflight.set(image, promise);
    return promise;
  }

  async #inspect(image: string): Promise<boolean> {
    try {
      const wasm = await this.inspect(image);
      this.#remember(image, wasm, this.#options.cacheTtlMs);
      this.#options.onResult?.(wasm ? 'wasm' : 'not-wasm', image);
      return wasm;
    } catch (error) {
      this.#remember(image, false, Math.min(this.#options.errorTtlMs, this.#options.cacheTtlMs));
      this.#options.onResult?.('error', image, error);
      return false;
    }
  }

  #remember(image: string, wasm: boolean, ttl: number): void {
    if (ttl <= 0) return;
    this.#cache.set(image, { wasm, expires: this.#options.now() + ttl });
    while (this.#cache.size > this.#options.cacheSize) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#cache.delete(oldest.value);
    }
  }

  /**
   * Inspects without the cache; throws WebhookError when the registry cannot answer (and core's
   * `IMAGE_REFERENCE_INVALID` for a reference that cannot be parsed).
   */
  async inspect(image: string): Promise<boolean> {
    const ref = parseImageReference(image);
    const signal = AbortSignal.timeout(this.#options.timeoutMs);
    const host = ref.registry === DOCKER_HUB_REGISTRY ? 'registry-1.docker.io' : ref.registry;
    const base = `${this.#insecure.has(ref.registry) ? 'http' : 'https'}://${host}/v2/${ref.repository}`;
    const session = { token: undefined as string | undefined };
    const manifest = await this.#getJson(`${base}/manifests/${ref.reference}`, MANIFEST_ACCEPT, signal, session, image);
    if (documentIsWasm(manifest)) return true;
    if (isRecord(manifest) && Array.isArray(manifest.manifests)) {
      if (manifest.manifests.some(descriptorIsWasm)) return true;
      const first = manifest.manifests.find((d) => isRecord(d) && typeof d.digest === 'string');
      if (!isRecord(first)) return false;
      const child = await this.#getJson(`${base}/manifests/${first.digest}`, MANIFEST_ACCEPT, signal, session, image);
      if (documentIsWasm(child)) return true;
      return this.#configIsWasm(child, base, signal, session, image);
    }
    return this.#configIsWasm(manifest, base, signal, session, image);
  }

  async #configIsWasm(
    manifest: unknown,
    base: string,
    signal: AbortSignal,
    session: { token: string | undefined },
    image: string,
  ): Promise<boolean> {
    if (!isRecord(manifest) || !isRecord(manifest.config)) return false;
    const { mediaType, digest, size } = manifest.config;
    if (typeof mediaType !== 'string' || !IMAGE_CONFIG_MEDIA_TYPES.has(mediaType) || typeof digest !== 'string') {
      return false;
    }
    if (typeof size === 'number' && size > MAX_CONFIG_BLOB_BYTES) return false;
    const config = await this.#getJson(`${base}/blobs/${digest}`, mediaType, signal, session, image);
    return documentIsWasm(config);
  }

  async #getJson(
    url: string,
    accept: string,
    signal: AbortSignal,
    session: { token: string | undefined },
    image: string,
  ): Promise<unknown> {
    let response = await this.#fetch(url, accept, signal, session.token, image);
    if (response.status === 401 && session.token === undefined) {
      const challenge = response.headers.get('www-authenticate');
      await response.body?.cancel();
      session.token = await this.#anonymousToken(challenge, signal, image);
      response = await this.#fetch(url, accept, signal, session.token, image);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new WebhookError(
        'REGISTRY_FAILED',
        `registry answered ${response.status} for ${image} (${new URL(url).pathname})`,
      );
    }
    const length = Number(response.headers.get('content-length') ?? '0');
    if (length > MAX_DOCUMENT_BYTES) {
      await response.body?.cancel();
      throw new WebhookError('REGISTRY_FAILED', `registry document for ${image} is too large`);
    }
    const text = await response.text();
    if (text.length > MAX_DOCUMENT_BYTES) {
      throw new WebhookError('REGISTRY_FAILED', `registry document for ${image} is too large`);
    }
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new WebhookError('REGISTRY_FAILED', `registry sent invalid JSON for ${image}`, { cause: error });
    }
  }

  async #fetch(
    url: string,
    accept: string,
    signal: AbortSignal,
    token: string | undefined,
    image: string,
  ): Promise<Response> {
    try {
      return await this.#options.fetch(url, {
        headers: { accept, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
        signal,
        redirect: 'follow',
      });
    } catch (error) {
      const reason = signal.aborted ? `timed out after ${this.#options.timeoutMs} ms` : errorMessage(error);
      throw new WebhookError('REGISTRY_FAILED', `cannot fetch ${image}: ${reason}`, { cause: error });
    }
  }

  /** Anonymous Bearer token flow (Docker Hub, GHCR, Quay, ...). */
  async #anonymousToken(challenge: string | null, signal: AbortSignal, image: string): Promise<string> {
    const params = parseBearerChallenge(challenge);
    if (params === undefined || params.realm === undefined) {
      throw new WebhookError('REGISTRY_FAILED', `registry requires credentials for ${image}`);
    }
    const realm = new URL(params.realm);
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && this.#insecure.has(realm.host))) {
      throw new WebhookError('REGISTRY_FAILED', `refusing non-HTTPS token realm ${realm.origin} for ${image}`);
    }
    if (params.service !== undefined) realm.searchParams.set('service', params.service);
    if (params.scope !== undefined) realm.searchParams.set('scope', params.scope);
    const response = await this.#fetch(realm.toString(), 'application/json', signal, undefined, image);
    if (!response.ok) {
      await response.body?.cancel();
      throw new WebhookError('REGISTRY_FAILED', `token endpoint answered ${response.status} for ${image}`);
    }
    const body: unknown = await response.json().catch(() => undefined);
    const token = isRecord(body) ? (body.token ?? body.access_token) : undefined;
    if (typeof token !== 'string' || token === '') {
      throw new WebhookError('REGISTRY_FAILED', `token endpoint sent no token for ${image}`);
    }
    return token;
  }
}

/** Parses `Bearer realm="...",service="...",scope="..."`. */
export function parseBearerChallenge(header: string | null): Record<string, string> | undefined {
  if (header === null) return undefined;
  const match = /^\s*Bearer\s+(.*)$/i.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const part of (match[1] ?? '').matchAll(/([A-Za-z]+)="([^"]*)"/g)) {
    if (part[1] !== undefined && part[2] !== undefined) params[part[1].toLowerCase()] = part[2];
  }
  return params;
}
