import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { ComponentExitedError } from './errors.ts';

export interface ProcessSpec {
  /** Short component name used in errors and the log file name. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Returns the last `count` non-empty lines of a log file ('' when it cannot be read). */
export function tailFile(path: string, count: number): string[] {
  try {
    const lines = readFileSync(path, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '');
    return lines.slice(-count);
  } catch {
    return [];
  }
}

/**
 * One control-plane process in its own process group, its output appended to a log file.
 * It remembers how it ended so readiness waits can fail fast with the component's last words.
 */
export class ManagedProcess {
  readonly spec: ProcessSpec;
  readonly pid: number;
  #exit: ProcessExit | undefined;
  readonly exited: Promise<ProcessExit>;
  #stopping = false;

  private constructor(spec: ProcessSpec, child: ChildProcess) {
    this.spec = spec;
    if (child.pid === undefined) throw new Error(`${spec.name} did not start`);
    this.pid = child.pid;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  static start(spec: ProcessSpec): Promise<ManagedProcess> {
    const log = openSync(spec.logFile, 'a');
    try {
      const child = spawn(spec.command, [...spec.args], {
        env: spec.env ?? process.env,
        cwd: spec.cwd,
        stdio: ['ignore', log, log],
        // Its own process group, so stop() reaches anything it forks and Ctrl-C in the terminal
        // goes to us first (we then tear down in order).
        detached: true,
      });
      return new Promise((resolve, reject) => {
        child.once('error', (error) => reject(new ComponentExitedError(spec.name, error.message, [], spec.logFile)));
        child.once('spawn', () => {
          // Never keep our event loop alive: tests end, then the exit hook or stop() ends us.
          child.unref();
          resolve(new ManagedProcess(spec, child));
        });
      });
    } finally {
      closeSync(log);
    }
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Throws ComponentExitedError (with its last log lines) when the process has ended. */
  assertRunning(): void {
    if (this.#exit === undefined || this.#stopping) return;
    const how = this.#exit.signal ? `signal ${this.#exit.signal}` : `exit code ${this.#exit.code}`;
    throw new ComponentExitedError(this.spec.name, how, tailFile(this.spec.logFile, 15), this.spec.logFile);
  }

  /** SIGTERM to the process group, SIGKILL after the grace period. */
  async stop(graceMs = 5000): Promise<void> {
    this.#stopping = true;
    if (this.#exit !== undefined) return;
    killGroup(this.pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(this.pid, 'SIGKILL'), graceMs);
    // The child is unref'd; hold the event loop open until its exit is seen, or Node could end
    // mid-teardown once the SIGKILL timer has fired and leave later processes running.
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
      clearInterval(keepAlive);
    }
  }
}

/** Signals a whole process group; a group that is already gone is not an error. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** True when a pid is alive (signal 0 probes without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
