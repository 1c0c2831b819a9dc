import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { BuildError } from './errors.ts';
import { cacheDir, PACKAGE_ROOT } from './paths.ts';

const run = promisify(execFile);

/** The project's own node-side Go programs (go/): the Wasm runtime + engine, the sandbox process, the reference function. */
export const NODE_GO_DIR = join(PACKAGE_ROOT, 'go');

/** Paths of the built node tools (one cache directory per source hash). */
export interface NodeTools {
  readonly dir: string;
  /** OCI runtime wrapper registered for the `wasmedge` handler. */
  readonly wasmRuntime: string;
  /** The Wasm engine the wrapper bind-mounts into Wasm containers. */
  readonly wasmHost: string;
  /** The pod sandbox process (pause image). */
  readonly pause: string;
  /** The reference function as a WASI module and as a static native binary (the benchmark baseline). */
  readonly echoWasm: string;
  readonly echoNative: string;
  readonly sourceHash: string;
}

function goBinary(): string {
  if (process.env.AFTERLIFE_GO) return process.env.AFTERLIFE_GO;
  return existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';
}

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(path));
    else if (/\.go$|^go\.(mod|sum)$/.test(entry.name)) files.push(path);
  }
  return files.sort();
}

async function go(args: readonly string[], cwd: string, env: Record<string, string>): Promise<void> {
  try {
    await run(goBinary(), [...args], {
      cwd,
      env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-trimpath', ...env },
      maxBuffer: 32 << 20,
    });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim() ?? String(error);
    throw new BuildError(`go ${args.join(' ')} in ${cwd} failed:\n${stderr}`, { cause: error });
  }
}

/**
 * Builds the node tools once per source hash into `<cache>/bin/afterlife-node-<hash>`: one
 * `go build` for the three static node binaries, plus the reference function for wasip1 and
 * for linux. An unchanged tree reuses the cache, so CI's fresh clone starts warm.
 */
export async function ensureNodeTools(): Promise<NodeTools> {
  const hash = createHash('sha256');
  hash.update((await run(goBinary(), ['env', 'GOVERSION'])).stdout);
  for (const file of sourceFiles(NODE_GO_DIR)) {
    hash.update(`${relative(NODE_GO_DIR, file)}\n`).update(await readFile(file));
  }
  const sourceHash = hash.digest('hex').slice(0, 16);
  const dir = join(cacheDir(), 'bin', `afterlife-node-${sourceHash}`);
  const tools: NodeTools = {
    dir,
    wasmRuntime: join(dir, 'afterlife-wasm-runtime'),
    wasmHost: join(dir, 'afterlife-wasm-host'),
    pause: join(dir, 'afterlife-pause'),
    echoWasm: join(dir, 'echo.wasm'),
    echoNative: join(dir, 'echo'),
    sourceHash,
  };
  if (existsSync(join(dir, '.complete'))) return tools;
  const partial = `${dir}.${process.pid}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  const ldflags = '-ldflags=-s -w';
  await go(['build', ldflags, '-o', `${partial}/`, './cmd/...'], NODE_GO_DIR, { CGO_ENABLED: '0' });
  const echo = join(NODE_GO_DIR, 'functions', 'echo');
  await go(['build', ldflags, '-o', join(partial, 'echo.wasm'), '.'], echo, { GOOS: 'wasip1', GOARCH: 'wasm' });
  await go(['build', ldflags, '-o', join(partial, 'echo'), '.'], echo, { CGO_ENABLED: '0' });
  await writeFile(join(partial, '.complete'), `${sourceHash}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  for (const path of [tools.wasmRuntime, tools.wasmHost, tools.pause, tools.echoWasm, tools.echoNative]) {
    if (!existsSync(path) || statSync(path).size === 0) throw new BuildError(`node tools built but ${path} is missing`);
  }
  return tools;
}
