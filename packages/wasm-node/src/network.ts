import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { createNetnsHost } from '@afterlife/devcluster';

/** A pod sandbox's network: its own namespace with a veth pair and a routable pod IP. */
export interface PodNetwork {
  readonly name: string;
  readonly ip: string;
  /** Starts a process inside the namespace, in its own process group. */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Kills its processes and removes the namespace and veth pair. Idempotent. */
  destroy(): Promise<void>;
}

/** Creates pod networks; the default is @afterlife/devcluster's netns helper (10.213.0.0/16). */
export type PodNetworkFactory = (label: string) => Promise<PodNetwork>;

export const netnsPodNetworks: PodNetworkFactory = (label) => createNetnsHost({ label });
