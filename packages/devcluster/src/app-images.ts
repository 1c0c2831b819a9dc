/**
 * The one builder of Afterlife's OCI images — the four deployables and the conformance runner —
 * without a container engine: three layers (the Debian base, Node, the app deployed by pnpm
 * with production dependencies only), a config that runs `node --enable-source-maps
 * /app/dist/main.js` as uid 1000, OCI labels. Every tar is written in path order with mtime 0
 * and root ownership, every JSON with sorted keys, gzip at a fixed level: the same sources,
 * pins and Node give the same digests.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { errorMessage, type Logger, MEDIA_TYPES, parseImageReference, UsageError } from '@afterlife/core';
import { gitCommit, REPO_ROOT } from './bench.ts';
import { AfterlifeClusterError } from './cluster-error.ts';
import {
  baseLayer,
  IMAGE_NODE_PATH,
  IMAGE_USER,
  type ImageInputs,
  layerEntries,
  nodeLayer,
  pinImageInputs,
  readImageInputs,
} from './image-base.ts';
import { type Layer, layerOfTar } from './images.ts';
import {
  type ImageBlobs,
  imageBlobs,
  isLoopbackRegistry,
  type PushedImage,
  type PushLayer,
  pushImage,
  type RegistryOptions,
  sha256Digest,
} from './oci.ts';
import { PACKAGE_ROOT } from './paths.ts';
import { type TarEntry, writeTarEntries } from './tar.ts';

const run = promisify(execFile);

export const APP_IMAGE_NAMES = ['webhook', 'gateway', 'scaler', 'autoscaler', 'conformance'] as const;
export type AppImageName = (typeof APP_IMAGE_NAMES)[number];

export interface AppImageSpec {
  readonly name: AppImageName;
  /** The package's directory, relative to the repository root. */
  readonly packageDir: string;
  /** Container ports (the chart's; checked by packages/chart-tests/test/images.test.ts). */
  readonly ports: readonly number[];
}

export const APP_IMAGES: Readonly<Record<AppImageName, AppImageSpec>> = Object.freeze({
  webhook: { name: 'webhook', packageDir: 'packages/webhook', ports: [8443] },
  gateway: { name: 'gateway', packageDir: 'packages/gateway', ports: [8080, 9090] },
  scaler: { name: 'scaler', packageDir: 'packages/scaler', ports: [9090, 9091] },
  autoscaler: { name: 'autoscaler', packageDir: 'packages/autoscaler', ports: [9090] },
  // Runs the suite in the cluster as a Job: no ports.
  conformance: { name: 'conformance', packageDir: 'conformance', ports: [] },
});

/** Where the deployed package sits in the images (WorkingDir). */
export const APP_DIR = '/app';
export const APP_ENTRYPOINT: readonly string[] = [IMAGE_NODE_PATH, '--enable-source-maps', `${APP_DIR}/dist/main.js`];
/** Numeric, so the kubelet can check `runAsNonRoot` without reading /etc/passwd. */
export const APP_USER = `${IMAGE_USER.uid}:${IMAGE_USER.gid}`;
export const APP_ENV: readonly string[] = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'NODE_ENV=production',
];
/** Placeholder source until the project is published; `--source` sets the real one. */
export const DEFAULT_IMAGE_SOURCE = 'https://github.com/afterlife-dev/afterlife';

/** The image repository of an app (`afterlife-<name>`, the chart's default repository names). */
export function appImageRepository(name: AppImageName): string {
  return `afterlife-${name}`;
}

export interface BuiltAppImage {
  readonly name: AppImageName;
  /** `afterlife-<name>` */
  readonly repository: string;
  /** The package version (the chart's appVersion, its default image tag). */
  readonly tag: string;
  readonly config: Record<string, unknown>;
  readonly layers: readonly PushLayer[];
  readonly annotations: Readonly<Record<string, string>>;
  readonly blobs: ImageBlobs;
  /** `sha256:…` of the manifest. */
  readonly digest: string;
  /** Bytes a registry stores for it (compressed layers + config + manifest). */
  readonly size: number;
}

export interface BuildAppImagesOptions {
  readonly only?: readonly AppImageName[];
  /** Run `tsc -b` on the packages first (default true). */
  readonly compile?: boolean;
  /** `org.opencontainers.image.source` (default DEFAULT_IMAGE_SOURCE). */
  readonly source?: string;
  readonly inputs?: ImageInputs;
  /** The commit and creation time for the labels (default: sourceFacts() of the work tree). */
  readonly facts?: SourceFacts;
  readonly env?: NodeJS.ProcessEnv;
  readonly onProgress?: (line: string) => void;
}

function buildError(message: string, cause?: unknown): AfterlifeClusterError {
  return new AfterlifeClusterError('APP_BUILD_FAILED', message, cause === undefined ? undefined : { cause });
}

function commandOutput(error: unknown): string {
  const failed = error as { stdout?: string; stderr?: string };
  return `${failed.stdout ?? ''}\n${failed.stderr ?? ''}`.trim() || errorMessage(error);
}

/** JSON with every object's keys sorted: one serialization per value. */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) sorted[key] = sortKeys((value as Record<string, unknown>)[key]);
  return sorted;
}

interface PackageJson {
  readonly name: string;
  readonly version: string;
  readonly description?: string;
  readonly license?: string;
}

function readPackageJson(spec: AppImageSpec): PackageJson {
  return JSON.parse(readFileSync(join(REPO_ROOT, spec.packageDir, 'package.json'), 'utf8')) as PackageJson;
}

export interface SourceFacts {
  /** `git rev-parse HEAD`, `-dirty` with local changes. */
  readonly revision: string;
  /** RFC 3339, whole seconds. */
  readonly created: string;
}

/** What the labels say about the sources: the commit, and a creation time that does not move between builds. */
export function sourceFacts(env: NodeJS.ProcessEnv = process.env): SourceFacts {
  let epoch = 0;
  if (env.SOURCE_DATE_EPOCH !== undefined) {
    if (!/^\d+$/.test(env.SOURCE_DATE_EPOCH))
      throw new UsageError(`SOURCE_DATE_EPOCH must be whole seconds, got "${env.SOURCE_DATE_EPOCH}"`);
    epoch = Number(env.SOURCE_DATE_EPOCH);
  } else {
    try {
      const text = execFileSync('git', ['log', '-1', '--format=%ct', 'HEAD'], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
      if (/^\d+$/.test(text)) epoch = Number(text);
    } catch {
      // No git (a source tarball): the epoch, as SOURCE_DATE_EPOCH=0 would give.
    }
  }
  return { revision: gitCommit() ?? 'unknown', created: new Date(epoch * 1000).toISOString().replace('.000Z', 'Z') };
}

/** `tsc -b` of the packages (incremental: a no-op when dist/ is current), as each package's `build` script does. */
async function compilePackages(specs: readonly AppImageSpec[], env: NodeJS.ProcessEnv): Promise<void> {
  const tsc = join(REPO_ROOT, 'node_modules', '.bin', 'tsc');
  if (!existsSync(tsc)) throw buildError(`${tsc} is missing; run "pnpm install" at the repository root first`);
  try {
    await run(tsc, ['-b', ...specs.map((spec) => spec.packageDir)], { cwd: REPO_ROOT, env, maxBuffer: 64 << 20 });
  } catch (error) {
    throw buildError(
      `compiling ${specs.map((spec) => spec.packageDir).join(', ')} failed:\n${commandOutput(error)}`,
      error,
    );
  }
}

/** The store the workspace was installed from, so `pnpm deploy` links from it offline. */
function workspaceStoreDir(): string | undefined {
  try {
    const modules = JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', '.modules.yaml'), 'utf8')) as {
      storeDir?: string;
    };
    return modules.storeDir;
  } catch {
    return undefined;
  }
}

/**
 * Files pnpm writes for itself that differ between two deploys of the same sources: the
 * `.modules.yaml` bookkeeping (a timestamp, host paths) and `node_modules/.bin` shims (the
 * absolute deploy directory). The image runs `node dist/main.js`, never a shim.
 */
export function droppedFromApp(path: string): boolean {
  return path === 'node_modules/.modules.yaml' || /(^|\/)node_modules\/\.bin(\/|$)/.test(path);
}

/** Directory depth that no deployed package reaches; bounds the walk. */
const MAX_TREE_DEPTH = 64;

/**
 * The deployed tree as layer entries under /app: files 0644 (0755 when executable), root-owned,
 * so read-only to the app. Synchronous reads: for ~10,000 small files they are several times
 * faster than a promise per file, and nothing else runs meanwhile.
 */
function appEntries(root: string): TarEntry[] {
  const entries: TarEntry[] = [{ type: 'directory', path: APP_DIR.slice(1), mode: 0o755 }];
  const walk = (dir: string, depth: number): void => {
    if (depth > MAX_TREE_DEPTH) throw buildError(`${dir} is nested deeper than ${MAX_TREE_DEPTH} directories`);
    const names = readdirSync(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const absolute = join(dir, name);
      const path = relative(root, absolute);
      if (droppedFromApp(path)) continue;
      const inImage = `${APP_DIR.slice(1)}/${path}`;
      const stat = lstatSync(absolute);
      if (stat.isSymbolicLink()) {
        const target = readlinkSync(absolute);
        const resolved = resolve(dirname(absolute), target);
        if (!target.startsWith('/') && resolved.startsWith(`${root}/`)) {
          entries.push({ type: 'symlink', path: inImage, target });
          continue;
        }
        // pnpm hoists a link back to the workspace package itself into .pnpm/node_modules;
        // nothing in the deploy imports it, and it would dangle in the image.
        if (resolved.startsWith(`${REPO_ROOT}/`)) continue;
        throw buildError(`${path} links outside the deployed package (${target})`);
      }
      if (stat.isDirectory()) {
        entries.push({ type: 'directory', path: inImage, mode: 0o755 });
        walk(absolute, depth + 1);
      } else if (stat.isFile()) {
        entries.push({
          type: 'file',
          path: inImage,
          data: readFileSync(absolute),
          mode: stat.mode & 0o111 ? 0o755 : 0o644,
        });
      }
    }
  };
  walk(root, 0);
  return entries;
}

/** `pnpm deploy --prod` of one package into a scratch directory, returned as the app layer's tar. */
async function appTar(spec: AppImageSpec, packageName: string, env: NodeJS.ProcessEnv): Promise<Buffer> {
  const scratch = await mkdtemp(join(tmpdir(), `afterlife-image-${spec.name}-`));
  const target = join(scratch, 'app');
  try {
    const store = workspaceStoreDir();
    const args = ['--filter', packageName, 'deploy', '--prod', '--legacy', '--prefer-offline'];
    if (store !== undefined) args.push('--store-dir', store);
    await run('pnpm', [...args, target], { cwd: REPO_ROOT, env, maxBuffer: 64 << 20 }).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw buildError('pnpm is not on PATH (packages/devcluster/scripts/with-toolchain.sh puts it there)', error);
      throw buildError(`pnpm deploy of ${packageName} failed:\n${commandOutput(error)}`, error);
    });
    if (!existsSync(join(target, 'dist', 'main.js')))
      throw buildError(`the deploy of ${packageName} has no dist/main.js (was it compiled?)`);
    return writeTarEntries(layerEntries(appEntries(target)));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

interface SharedLayers {
  readonly base: Layer;
  readonly node: Layer;
  readonly inputs: ImageInputs;
}

function assemble(
  spec: AppImageSpec,
  pkg: PackageJson,
  shared: SharedLayers,
  app: Layer,
  facts: SourceFacts & { readonly source: string },
): BuiltAppImage {
  const repository = appImageRepository(spec.name);
  const labels: Record<string, string> = {
    'org.opencontainers.image.created': facts.created,
    'org.opencontainers.image.description': pkg.description ?? '',
    'org.opencontainers.image.licenses': pkg.license ?? 'NOASSERTION',
    'org.opencontainers.image.revision': facts.revision,
    'org.opencontainers.image.source': facts.source,
    'org.opencontainers.image.title': repository,
    'org.opencontainers.image.version': pkg.version,
  };
  const debian = shared.inputs.debian.packages.map((pin) => `${pin.name}=${pin.version}`).join(' ');
  const history = [
    `afterlife-devcluster images: Debian ${shared.inputs.debian.versionId} packages ${debian}`,
    `afterlife-devcluster images: ${shared.inputs.node.package}@${shared.inputs.node.version} at ${IMAGE_NODE_PATH}`,
    `afterlife-devcluster images: pnpm --filter ${pkg.name} deploy --prod at ${APP_DIR}`,
  ].map((createdBy) => ({ created: facts.created, created_by: createdBy }));
  const config = sortKeys({
    architecture: 'amd64',
    os: 'linux',
    created: facts.created,
    config: {
      User: APP_USER,
      Env: [...APP_ENV],
      Entrypoint: [...APP_ENTRYPOINT],
      WorkingDir: APP_DIR,
      ...(spec.ports.length === 0
        ? {}
        : { ExposedPorts: Object.fromEntries(spec.ports.map((port) => [`${port}/tcp`, {}])) }),
      Labels: labels,
      StopSignal: 'SIGTERM',
    },
    rootfs: { type: 'layers', diff_ids: [shared.base.tarDigest, shared.node.tarDigest, app.tarDigest] },
    history,
  }) as Record<string, unknown>;
  const layers = [shared.base, shared.node, app].map((layer) => ({
    mediaType: MEDIA_TYPES.ociLayerTarGzip,
    data: layer.gzip,
  }));
  const annotations = sortKeys(labels) as Record<string, string>;
  const blobs = imageBlobs({ config, layers, annotations });
  const size =
    blobs.configData.length + blobs.manifestData.length + layers.reduce((sum, layer) => sum + layer.data.length, 0);
  return {
    name: spec.name,
    repository,
    tag: pkg.version,
    config,
    layers,
    annotations,
    blobs,
    digest: blobs.digest,
    size,
  };
}

/** Builds the app images (all five by default), in APP_IMAGE_NAMES order. */
export async function buildAppImages(options: BuildAppImagesOptions = {}): Promise<BuiltAppImage[]> {
  const env = options.env ?? process.env;
  const progress = options.onProgress ?? (() => undefined);
  const specs = (options.only ?? APP_IMAGE_NAMES).map((name) => APP_IMAGES[name]);
  const inputs = options.inputs ?? readImageInputs();
  const facts = { ...(options.facts ?? sourceFacts(env)), source: options.source ?? DEFAULT_IMAGE_SOURCE };
  if (options.compile !== false) {
    progress(`compiling ${specs.map((spec) => spec.packageDir).join(', ')}`);
    await compilePackages(specs, env);
  }
  const sharedLayers = Promise.all([baseLayer(inputs, progress), nodeLayer(inputs, progress)]).then(([base, node]) => ({
    base,
    node,
    inputs,
  }));
  // Two deploys at a time: pnpm deploy waits on the disk about half of its time, and this
  // machine has two cores. Each app layer compresses on the thread pool meanwhile.
  const images: Promise<BuiltAppImage>[] = new Array(specs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let index = next++; index < specs.length; index = next++) {
      const spec = specs[index] as AppImageSpec;
      const pkg = readPackageJson(spec);
      progress(`deploying ${pkg.name} (production dependencies)`);
      const app = layerOfTar(await appTar(spec, pkg.name, env));
      const image = Promise.all([sharedLayers, app]).then(([shared, layer]) =>
        assemble(spec, pkg, shared, layer, facts),
      );
      // Surface a failed compression through Promise.all below, not as an unhandled rejection.
      image.catch(() => undefined);
      images[index] = image;
    }
  };
  await Promise.all([worker(), worker()]);
  return Promise.all(images);
}

/** Pushes built images as `<registry>/afterlife-<name>:<tag>` (plain HTTP; loopback unless `allowRegistry` says otherwise). */
export async function pushAppImages(
  images: readonly BuiltAppImage[],
  registry: string,
  options: RegistryOptions = {},
): Promise<PushedImage[]> {
  const pushed: PushedImage[] = [];
  for (const image of images) {
    const result = await pushImage(`${registry.replace(/\/+$/, '')}/${image.repository}:${image.tag}`, {
      ...options,
      config: image.config,
      layers: image.layers,
      annotations: image.annotations,
    });
    if (result.digest !== image.digest)
      throw buildError(`${image.repository} was pushed as ${result.digest}, built as ${image.digest}`);
    pushed.push(result);
  }
  return pushed;
}

/**
 * Writes each image as an OCI image layout `<dir>/afterlife-<name>` (tag as its ref.name), what
 * `oras cp --from-oci-layout`, `skopeo copy oci:` and `crane push` take to any registry, with
 * that registry's auth and TLS.
 */
export async function writeAppImageLayouts(images: readonly BuiltAppImage[], dir: string): Promise<string[]> {
  const written: string[] = [];
  for (const image of images) {
    const layout = join(dir, image.repository);
    const blobs = join(layout, 'blobs', 'sha256');
    await rm(layout, { recursive: true, force: true });
    await mkdir(blobs, { recursive: true });
    const write = (data: Buffer) => writeFile(join(blobs, sha256Digest(data).slice('sha256:'.length)), data);
    await write(image.blobs.configData);
    for (const layer of image.layers) await write(layer.data);
    await write(image.blobs.manifestData);
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [
        {
          mediaType: MEDIA_TYPES.ociManifest,
          digest: image.digest,
          size: image.blobs.manifestData.length,
          annotations: { 'org.opencontainers.image.ref.name': image.tag },
        },
      ],
    };
    await writeFile(join(layout, 'oci-layout'), `${JSON.stringify({ imageLayoutVersion: '1.0.0' })}\n`);
    await writeFile(join(layout, 'index.json'), `${JSON.stringify(index)}\n`);
    written.push(layout);
  }
  return written;
}

export interface ImagesCommandInput {
  /** `[]` builds; `['pin']` re-pins the base. */
  readonly positionals: readonly string[];
  readonly only?: string | undefined;
  readonly push?: string | undefined;
  readonly out?: string | undefined;
  readonly noCompile?: boolean | undefined;
  readonly source?: string | undefined;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** `afterlife-devcluster images [pin] [--only …] [--push REGISTRY] [--out DIR] [--no-compile] [--source URL]`. */
export async function runImagesCommand(
  input: ImagesCommandInput,
  io: { readonly out: (text: string) => void; readonly logger: Logger },
): Promise<number> {
  const [action, ...extra] = input.positionals;
  if (extra.length > 0 || (action !== undefined && action !== 'pin'))
    throw new UsageError(`images takes no argument but "pin", got "${input.positionals.join(' ')}"`);
  const started = performance.now();
  const seconds = () => `${((performance.now() - started) / 1000).toFixed(1)}s`;
  if (action === 'pin') {
    const pinned = await pinImageInputs({ onProgress: (line) => io.logger.info(line) });
    for (const pin of pinned.debian.packages) io.out(`${pin.name} ${pin.version} sha256:${pin.sha256}`);
    io.out(`${pinned.node.package} ${pinned.node.version} bin/node sha256:${pinned.node.binarySha256}`);
    return 0;
  }
  if (input.push !== undefined && !isLoopbackRegistry(parseImageReference(`${input.push}/probe`).registry)) {
    throw new UsageError(
      `--push speaks plain HTTP to registries on this machine only; for ${input.push} write layouts with --out DIR and copy them with oras, skopeo or crane (docs/images.md)`,
    );
  }
  const only = input.only?.split(',').map((name) => name.trim());
  const unknown = only?.filter((name) => !(APP_IMAGE_NAMES as readonly string[]).includes(name)) ?? [];
  if (unknown.length > 0)
    throw new UsageError(`unknown image "${unknown.join(', ')}" (known: ${APP_IMAGE_NAMES.join(', ')})`);
  const images = await buildAppImages({
    ...(only ? { only: only as AppImageName[] } : {}),
    compile: !input.noCompile,
    ...(input.source ? { source: input.source } : {}),
    onProgress: (line) => io.logger.info(line),
  });
  io.out(`built ${images.length} images in ${seconds()}`);
  for (const image of images) io.out(`  ${image.repository}:${image.tag}  ${image.digest}  ${megabytes(image.size)}`);
  if (input.out !== undefined) {
    const dir = resolve(process.env.INIT_CWD ?? process.cwd(), input.out);
    const layouts = await writeAppImageLayouts(images, dir);
    io.out(`OCI layouts in ${dir}; push each to your registry, e.g.:`);
    for (const [index, layout] of layouts.entries()) {
      const image = images[index];
      if (image) io.out(`  oras cp --from-oci-layout ${layout}:${image.tag} REGISTRY/${image.repository}:${image.tag}`);
    }
  }
  if (input.push !== undefined) {
    const pushed = await pushAppImages(images, input.push);
    io.out(`pushed to ${input.push} (${seconds()}); chart values:`);
    for (const [index, result] of pushed.entries()) {
      const image = images[index];
      if (!image || image.name === 'conformance') {
        io.out(`  conformance image: ${result.pinned}`);
        continue;
      }
      const repository = result.pinned.slice(0, result.pinned.indexOf('@'));
      io.out(`  --set ${image.name}.image.repository=${repository} --set ${image.name}.image.digest=${result.digest}`);
    }
  }
  return 0;
}

/** The Node.js echo function (functions/echo-node.ts), the bench's runtime-initialization baseline. */
export const NODE_FUNCTION_SOURCE = join(PACKAGE_ROOT, 'functions', 'echo-node.ts');

/**
 * Pushes a Node.js function image built the same way as the app images (the same Debian base and
 * Node layers) with `source` as its one file under /app, run by that Node as TypeScript.
 */
export async function pushNodeFunctionImage(
  image: string,
  source = NODE_FUNCTION_SOURCE,
  options: RegistryOptions = {},
): Promise<PushedImage> {
  const inputs = readImageInputs();
  const [base, node] = await Promise.all([baseLayer(inputs), nodeLayer(inputs)]);
  const file = `${APP_DIR.slice(1)}/function.ts`;
  const app = await layerOfTar(
    writeTarEntries(layerEntries([{ type: 'file', path: file, data: readFileSync(source), mode: 0o644 }])),
  );
  const config = sortKeys({
    architecture: 'amd64',
    os: 'linux',
    config: {
      User: APP_USER,
      Env: [...APP_ENV],
      Entrypoint: [IMAGE_NODE_PATH, `/${file}`],
      WorkingDir: APP_DIR,
      ExposedPorts: { '8080/tcp': {} },
    },
    rootfs: { type: 'layers', diff_ids: [base.tarDigest, node.tarDigest, app.tarDigest] },
  }) as Record<string, unknown>;
  const layers = [base, node, app].map((layer) => ({ mediaType: MEDIA_TYPES.ociLayerTarGzip, data: layer.gzip }));
  return pushImage(image, { ...options, config, layers });
}
