import { join } from 'node:path';
import type { RealNode } from '../node.ts';
import { assertPortFree, freePort } from '../ports.ts';
import { ManagedProcess } from '../process.ts';
import type { WaitOptions } from '../wait.ts';

/** Starts one component process (log in `logs/<name>.log`, cwd the state directory) and tracks it. */
export type Launch = (
  name: string,
  command: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
) => Promise<ManagedProcess>;

/** The environment every component gets: PATH and HOME only, plus `extra`. */
export function componentEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/', ...extra };
}

/** A free port on 127.0.0.1, or `fixed` after checking nobody holds it (PortInUseError). */
export async function takePort(fixed?: number): Promise<number> {
  if (fixed === undefined) return freePort();
  await assertPortFree(fixed);
  return fixed;
}

/**
 * What a start has running so far, in start order: control-plane processes and real nodes.
 * Readiness waits fail fast through its guard when any of them died, the state file lists
 * them, and a failed start stops them all.
 */
export class Launcher {
  readonly processes: ManagedProcess[] = [];
  readonly nodes: RealNode[] = [];
  readonly #stateDir: string;
  readonly #logDir: string;
  readonly #readyTimeoutMs: number;

  constructor(options: { stateDir: string; logDir: string; readyTimeoutMs: number }) {
    this.#stateDir = options.stateDir;
    this.#logDir = options.logDir;
    this.#readyTimeoutMs = options.readyTimeoutMs;
  }

  launch: Launch = async (name, command, args, env) => {
    const child = await ManagedProcess.start({
      name,
      command,
      args,
      env: env ?? componentEnv(),
      logFile: join(this.#logDir, `${name}.log`),
      cwd: this.#stateDir,
    });
    this.processes.push(child);
    return child;
  };

  /** Tracks processes something else started (Knative Serving's). */
  adopt(processes: readonly ManagedProcess[]): void {
    this.processes.push(...processes);
  }

  addNode = (node: RealNode): void => {
    this.nodes.push(node);
  };

  /** Throws ComponentExitedError when anything started so far has died. */
  guard = (): void => {
    for (const process of this.processes) process.assertRunning();
    for (const node of this.nodes) for (const process of node.processes) process.assertRunning();
  };

  /** Options for every readiness wait of the start: its bound, and the guard. */
  get wait(): WaitOptions {
    return { timeoutMs: this.#readyTimeoutMs, intervalMs: 150, guard: this.guard };
  }

  /** Stops what was started: nodes first, then the processes in reverse start order. */
  async stopAll(): Promise<void> {
    for (const node of this.nodes) await node.stop().catch(() => undefined);
    for (const process of [...this.processes].reverse()) await process.stop(2000);
  }
}
