import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { probeOk } from '@afterlife/core';
import { stringify } from 'yaml';
import type { ManagedProcess } from '../process.ts';
import { type WaitOptions, waitFor } from '../wait.ts';
import { componentEnv, type Launch, takePort } from './launcher.ts';

export interface Registry {
  readonly process: ManagedProcess;
  /** `127.0.0.1:PORT` (plain HTTP). */
  readonly address: string;
  readonly ports: Readonly<Record<string, number>>;
}

/** The distribution registry on plain HTTP, storage in `<stateDir>/registry`, config in `registry.yaml`. */
export async function startRegistry(launch: Launch, input: { binary: string; stateDir: string }): Promise<Registry> {
  const port = await takePort();
  const address = `127.0.0.1:${port}`;
  const config = join(input.stateDir, 'registry.yaml');
  await writeFile(
    config,
    stringify({
      version: 0.1,
      log: { level: 'warn' },
      storage: { filesystem: { rootdirectory: join(input.stateDir, 'registry') }, delete: { enabled: true } },
      http: { addr: address },
    }),
  );
  const process = await launch(
    'registry',
    input.binary,
    ['serve', config],
    componentEnv({ OTEL_TRACES_EXPORTER: 'none' }),
  );
  return { process, address, ports: { registry: port } };
}

/** The registry at `address` (`127.0.0.1:PORT`) answers `/v2/`. */
export async function waitRegistryReady(address: string, wait: WaitOptions): Promise<void> {
  await waitFor('OCI registry', () => probeOk(`http://${address}/v2/`), wait);
}
