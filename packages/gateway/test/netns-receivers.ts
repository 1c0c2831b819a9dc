import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNetnsHost, type NetnsHost } from '@afterlife/devcluster';
import { waitFor } from './helpers.ts';

const RECEIVER = fileURLToPath(new URL('./fixtures/receiver.mjs', import.meta.url));
/** The port every receiver listens on inside its network namespace. */
export const RECEIVER_PORT = 8080;

export interface NetnsReceiver {
  readonly name: string;
  readonly host: NetnsHost;
  readonly child: ChildProcess;
  readonly log: string;
}

/**
 * Real HTTP receivers (`fixtures/receiver.mjs`), each in its own network namespace at a
 * pod-network address: EndpointSlices refuse loopback addresses, so the cluster tests point
 * slices at these.
 */
export class NetnsReceivers {
  readonly #dir = mkdtempSync(join(tmpdir(), 'afterlife-gateway-'));
  readonly #receivers: NetnsReceiver[] = [];

  /** `probeStatus`: how it answers queue-proxy's activator probe (503: not ready, as a starting pod). */
  async start(name: string, delayMs = 0, probeStatus = 503): Promise<NetnsReceiver> {
    const host = await createNetnsHost({ label: `gw-${name}` });
    const log = join(this.#dir, `${name}.log`);
    const child = host.spawn(process.execPath, [RECEIVER], {
      env: {
        ...process.env,
        RECEIVER_PORT: String(RECEIVER_PORT),
        RECEIVER_LOG: log,
        RECEIVER_NAME: name,
        RECEIVER_DELAY_MS: String(delayMs),
        RECEIVER_PROBE_STATUS: String(probeStatus),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const receiver = { name, host, child, log };
    this.#receivers.push(receiver);
    let output = '';
    child.stdout?.on('data', (chunk) => {
      output += String(chunk);
    });
    await waitFor(() => output.includes('listening'), 15_000, `receiver ${name} to listen`);
    return receiver;
  }

  /** Event ids the receiver got, in order. */
  received(receiver: NetnsReceiver): string[] {
    try {
      return readFileSync(receiver.log, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.#receivers.map(({ host }) => host.destroy()));
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
