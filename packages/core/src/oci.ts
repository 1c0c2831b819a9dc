import { CoreError } from './errors.ts';

/**
 * crun's Wasm detection: this annotation (on the pod, or the image manifest) with `compat` or
 * `compat-smart` runs the container's `.wasm` entrypoint on the Wasm engine.
 */
export const WASM_VARIANT_ANNOTATION = 'module.wasm.image/variant';
/** crun's alternative annotation (`wasm`, `wasm-smart`). */
export const RUN_OCI_HANDLER_ANNOTATION = 'run.oci.handler';

/** The OCI and Docker media types Afterlife reads (the webhook) and writes (the devcluster). */
export const MEDIA_TYPES = Object.freeze({
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerTarGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const);

/** Docker Hub: what a reference without a registry means, and the legacy name it also answers to. */
export const DOCKER_HUB_REGISTRY = 'docker.io';
const DOCKER_HUB_LEGACY = 'index.docker.io';
const DOCKER_HUB_OFFICIAL = 'library/';

export interface ImageReference {
  /** Registry `host[:port]` as written (`docker.io` for Docker Hub). */
  readonly registry: string;
  /** Repository path; Docker Hub's official images get their `library/` prefix. */
  readonly repository: string;
  /** The tag: as written, `latest` when neither a tag nor a digest is; undefined for a bare digest. */
  readonly tag: string | undefined;
  /** `algorithm:encoded` when the reference is pinned. */
  readonly digest: string | undefined;
  /** What to ask the registry for (`/v2/<repository>/manifests/<reference>`): the digest wins over a tag. */
  readonly reference: string;
}

// The grammar of distribution/reference (Docker) and the OCI distribution spec.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG = /^[\w][\w.-]{0,127}$/;
// OCI image spec descriptor digests; the registered algorithms fix their encoding.
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const REGISTERED_DIGESTS: Readonly<Record<string, RegExp>> = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ };
/** distribution/reference: a name (registry included) is at most 255 characters. */
const NAME_MAX_LENGTH = 255;

function invalid(image: string, what: string): CoreError {
  return new CoreError('IMAGE_REFERENCE_INVALID', `invalid ${what} in image reference "${image}"`);
}

/** True when `digest` is `algorithm:encoded` as the OCI image spec defines it. */
export function isValidDigest(digest: string): boolean {
  if (!DIGEST.test(digest)) return false;
  const colon = digest.indexOf(':');
  const encoding = REGISTERED_DIGESTS[digest.slice(0, colon)];
  return encoding === undefined || encoding.test(digest.slice(colon + 1));
}

/**
 * Parses `[registry/]repository[:tag][@digest]` the way container runtimes do: the first path
 * component is the registry when it has a `.` or a `:` or is `localhost`; otherwise the image is
 * on Docker Hub (`docker.io`, official images under `library/`). Throws a CoreError
 * `IMAGE_REFERENCE_INVALID` naming the part that breaks the grammar.
 */
export function parseImageReference(image: string): ImageReference {
  const text = image.trim();
  if (text === '' || /\s/.test(text)) {
    throw new CoreError('IMAGE_REFERENCE_INVALID', `invalid image reference "${image}"`);
  }
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isValidDigest(digest)) throw invalid(image, 'digest');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(image, 'tag');
  }
  if (rest.length > NAME_MAX_LENGTH) throw invalid(image, `name (longer than ${NAME_MAX_LENGTH} characters)`);
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  let registry = DOCKER_HUB_REGISTRY;
  let repository = rest;
  if (first.includes('.') || first.includes(':') || first === 'localhost') {
    if (!DOMAIN.test(first)) throw invalid(image, 'registry');
    registry = first === DOCKER_HUB_LEGACY ? DOCKER_HUB_REGISTRY : first;
    repository = rest.slice(slash + 1);
  }
  if (registry === DOCKER_HUB_REGISTRY && !repository.includes('/')) repository = `${DOCKER_HUB_OFFICIAL}${repository}`;
  if (!REPOSITORY.test(repository)) throw invalid(image, 'repository');
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, tag, digest, reference: digest ?? tag ?? 'latest' };
}

/** `registry/repository[:tag][@digest]`, the fully qualified form of a parsed reference. */
export function formatImageReference(ref: Pick<ImageReference, 'registry' | 'repository' | 'tag' | 'digest'>): string {
  const tag = ref.tag === undefined ? '' : `:${ref.tag}`;
  const digest = ref.digest === undefined ? '' : `@${ref.digest}`;
  return `${ref.registry}/${ref.repository}${tag}${digest}`;
}
