import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AfterlifeError } from '@afterlife/core';
import { type PushedImage, pushWasmImage, type RegistryOptions } from './oci.ts';
import { PACKAGE_ROOT } from './paths.ts';

const run = promisify(execFile);

/** Source directory of the reference function (Go, built with GOOS=wasip1 GOARCH=wasm). */
export const ECHO_SOURCE_DIR = join(PACKAGE_ROOT, 'examples', 'echo');
/** Path of the module inside the reference function's image, and its entrypoint. */
export const ECHO_ENTRYPOINT = '/echo.wasm';

export interface BuildEchoOptions {
  /** The `go` binary (default: $AFTERLIFE_GO, /usr/local/go/bin/go when present, else `go` on PATH). */
  readonly goBinary?: string;
  /** Where built modules are cached by source hash (default: $AFTERLIFE_CACHE/wasm-node). */
  readonly cacheDir?: string;
  /** Go build tags (e.g. none for the wasm-node CGI build). */
  readonly tags?: readonly string[];
}

export interface BuiltModule {
  readonly path: string;
  /** sha256 of the sources + go version + tags: the cache key. */
  readonly sourceHash: string;
  /** False when the cached module was reused. */
  readonly built: boolean;
}

function defaultGo(): string {
  if (process.env.AFTERLIFE_GO) return process.env.AFTERLIFE_GO;
  return existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';
}

export function defaultCacheDir(): string {
  const root =
    process.env.AFTERLIFE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'afterlife');
  return join(root, 'wasm-node');
}

/**
 * Builds the reference function to a WASI preview1 module from source, once per source hash:
 * unchanged sources reuse the cached `.wasm` (the cache lives outside the clone, so CI and fresh
 * clones on the same machine start warm).
 */
export async function buildEchoWasm(options: BuildEchoOptions = {}): Promise<BuiltModule> {
  const go = options.goBinary ?? defaultGo();
  const tags = options.tags ?? [];
  let goVersion: string;
  try {
    goVersion = (await run(go, ['env', 'GOVERSION'])).stdout.trim();
  } catch (error) {
    throw new AfterlifeError('GO_MISSING', `cannot run ${go} (Go ≥ 1.21 builds wasip1; set AFTERLIFE_GO)`, {
      cause: error,
    });
  }
  const hash = createHash('sha256').update(`${goVersion}\n${tags.join(',')}\n`);
  for (const name of (await readdir(ECHO_SOURCE_DIR)).sort()) {
    if (!name.endsWith('.go') && name !== 'go.mod' && name !== 'go.sum') continue;
    hash.update(`${name}\n`).update(await readFile(join(ECHO_SOURCE_DIR, name)));
  }
  const sourceHash = hash.digest('hex');
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const path = join(cacheDir, `echo-${sourceHash.slice(0, 16)}.wasm`);
  if (existsSync(path)) return { path, sourceHash, built: false };
  await mkdir(cacheDir, { recursive: true });
  const partial = `${path}.${process.pid}.partial`;
  const args = ['build', '-trimpath', '-ldflags=-s -w', '-o', partial];
  if (tags.length > 0) args.push(`-tags=${tags.join(',')}`);
  args.push('.');
  try {
    await run(go, args, {
      cwd: ECHO_SOURCE_DIR,
      env: { ...process.env, GOOS: 'wasip1', GOARCH: 'wasm', CGO_ENABLED: '0' },
      maxBuffer: 16 << 20,
    });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new AfterlifeError('BUILD_FAILED', `go build of the reference function failed: ${stderr.trim()}`, {
      cause: error,
    });
  }
  await rename(partial, path);
  await writeFile(`${path}.source`, `${sourceHash}\n${goVersion}\n`);
  return { path, sourceHash, built: true };
}

/** Builds (cached) and pushes the reference function as a crun `compat-smart` Wasm image. */
export async function pushEchoImage(
  registry: string,
  options: BuildEchoOptions & RegistryOptions & { repository?: string; tag?: string } = {},
): Promise<PushedImage & { module: BuiltModule }> {
  const module = await buildEchoWasm(options);
  const image = `${registry}/${options.repository ?? 'afterlife/echo'}:${options.tag ?? 'latest'}`;
  const pushed = await pushWasmImage(image, await readFile(module.path), {
    ...options,
    entrypoint: ECHO_ENTRYPOINT,
    variant: 'compat-smart',
  });
  return { ...pushed, module };
}
