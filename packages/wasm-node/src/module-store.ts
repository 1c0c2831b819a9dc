import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AfterlifeError } from '@afterlife/core';
import { pullWasmImage, type RegistryOptions, type WasmImage } from './oci.ts';

/** A pulled module: image metadata and where its verified bytes are on disk. */
export interface StoredModule extends Omit<WasmImage, 'module'> {
  readonly path: string;
  readonly pullMs: number;
}

/**
 * Pulled Wasm modules, kept on disk by content digest (pulling a new tag of an unchanged module
 * writes nothing) and compiled at most once per digest in this process (a module that does not
 * compile is refused before any pod host starts). V8 cannot hand compiled code to another process,
 * so each pod host compiles its module again from these bytes (Liftoff: tens of ms).
 */
export class ModuleStore {
  readonly #dir: string;
  readonly #registry: RegistryOptions;
  readonly #compiled = new Map<string, Promise<WebAssembly.Module>>();
  readonly #byReference = new Map<string, StoredModule>();
  readonly #inFlight = new Map<string, Promise<StoredModule>>();

  constructor(dir: string, registry: RegistryOptions) {
    this.#dir = dir;
    this.#registry = registry;
  }

  /** Pulls (or, for `IfNotPresent`/`Never`, reuses) the image and stores the module by digest. */
  async pull(image: string, policy: string | undefined): Promise<StoredModule> {
    const pinned = image.includes('@');
    const effective = policy ?? (pinned || !image.endsWith(':latest') ? 'IfNotPresent' : 'Always');
    const known = this.#byReference.get(image);
    if (known !== undefined && effective !== 'Always') return known;
    if (effective === 'Never') {
      throw new AfterlifeError('IMAGE_NOT_PRESENT', `image ${image} is not present and imagePullPolicy is Never`);
    }
    // Pods of one Deployment start together: one pull per image at a time.
    let pulling = this.#inFlight.get(image);
    if (pulling === undefined) {
      pulling = this.#pull(image).finally(() => this.#inFlight.delete(image));
      this.#inFlight.set(image, pulling);
    }
    return pulling;
  }

  async #pull(image: string): Promise<StoredModule> {
    const started = performance.now();
    const pulled = await pullWasmImage(image, this.#registry);
    const path = join(this.#dir, `${pulled.moduleDigest.replace(':', '-')}.wasm`);
    if (!existsSync(path)) {
      await mkdir(this.#dir, { recursive: true });
      const partial = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
      await writeFile(partial, pulled.module);
      await rename(partial, path);
    }
    const { module, ...meta } = pulled;
    const stored: StoredModule = { ...meta, path, pullMs: performance.now() - started };
    await this.compile(stored.moduleDigest, module);
    this.#byReference.set(image, stored);
    return stored;
  }

  /** Compiles once per digest; rejects with MODULE_INVALID when V8 refuses the module. */
  compile(digest: string, bytes: Uint8Array): Promise<WebAssembly.Module> {
    let compiled = this.#compiled.get(digest);
    if (compiled === undefined) {
      compiled = WebAssembly.compile(new Uint8Array(bytes)).catch((error: unknown) => {
        this.#compiled.delete(digest);
        throw new AfterlifeError(
          'MODULE_INVALID',
          `module ${digest} does not compile: ${error instanceof Error ? error.message : String(error)}`,
          { cause: error },
        );
      });
      this.#compiled.set(digest, compiled);
    }
    return compiled;
  }

  get compiledCount(): number {
    return this.#compiled.size;
  }
}
