import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RealNode, RealNodeState } from './node.ts';
import type { Versions } from './paths.ts';
import type { ManagedProcess } from './process.ts';

export interface DevClusterState {
  readonly name: string;
  readonly stateDir: string;
  readonly kubeconfig: string;
  readonly apiServer: string;
  /** `127.0.0.1:PORT` of the local OCI registry, or '' when not running. */
  readonly registry: string;
  readonly ports: Readonly<Record<string, number>>;
  readonly pids: Readonly<Record<string, number>>;
  readonly binaries: Readonly<Record<string, string>>;
  readonly versions: Versions;
  readonly ownerPid: number;
  readonly detached: boolean;
  readonly startedAt: string;
  /** Seconds spent per phase of the last start (build, etcd, apiserver, …). */
  readonly timings: Readonly<Record<string, number>>;
  /** Real nodes: what teardown (and the orphan reaper) needs. */
  readonly realNodes: readonly RealNodeState[];
  /** Images pushed to the registry for the real nodes ('' when none). */
  readonly images: Readonly<Record<string, string>>;
}

const STATE_FILE = 'state.json';

/** What a finished start knows; `assembleState` turns it into the state file's content. */
export interface StateParts {
  readonly name: string;
  readonly stateDir: string;
  readonly kubeconfig: string;
  readonly apiServer: string;
  readonly registry: string;
  /** Every component's ports, in start order. */
  readonly ports: Readonly<Record<string, number>>;
  /** Control-plane processes in start order (their pids come first), then the real nodes. */
  readonly processes: readonly ManagedProcess[];
  readonly nodes: readonly RealNode[];
  readonly binaries: Readonly<Record<string, string>>;
  readonly versions: Versions;
  readonly detached: boolean;
  readonly timings: Readonly<Record<string, number>>;
  readonly images: Readonly<Record<string, string>>;
}

/** The cluster's state as of now (owned by this process), from what its start produced. */
export function assembleState(parts: StateParts): DevClusterState {
  return {
    name: parts.name,
    stateDir: parts.stateDir,
    kubeconfig: parts.kubeconfig,
    apiServer: parts.apiServer,
    registry: parts.registry,
    ports: { ...parts.ports },
    pids: Object.fromEntries(
      [...parts.processes, ...parts.nodes.flatMap((node) => node.processes)].map((p) => [p.spec.name, p.pid]),
    ),
    binaries: { ...parts.binaries },
    versions: parts.versions,
    ownerPid: process.pid,
    detached: parts.detached,
    startedAt: new Date().toISOString(),
    timings: { ...parts.timings },
    realNodes: parts.nodes.map((node) => node.state),
    images: { ...parts.images },
  };
}

export async function readClusterState(stateDir: string): Promise<DevClusterState | undefined> {
  try {
    return JSON.parse(await readFile(join(stateDir, STATE_FILE), 'utf8')) as DevClusterState;
  } catch {
    return undefined;
  }
}

/** Writes `<stateDir>/state.json`: what `down`, `status`, shared test runs and the orphan reaper read. */
export async function writeClusterState(state: DevClusterState): Promise<void> {
  await writeFile(join(state.stateDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}
