import { AssertionError } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';

/** A Node process started by a test, with everything it printed. */
export interface TestProcess {
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** stdout and stderr so far, interleaved. */
  output(): string;
  /** Resolves once `text` was printed; rejects when the process exits first or after `timeoutMs`. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
}

/**
 * Runs a TypeScript (or JavaScript) entry point the way its container would (`node --import tsx
 * <script>`), with only PATH, HOME and `env` in its environment.
 */
export function spawnNode(
  script: string,
  options: { args?: readonly string[]; env?: Record<string, string> } = {},
): TestProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...(options.args ?? [])], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitFor = async (text: string, timeoutMs = 15_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!output.includes(text)) {
      if (Date.now() > deadline || child.exitCode !== null || child.signalCode !== null) {
        throw new AssertionError({ message: `no "${text}" in the output of ${script}:\n${output}` });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return { child, exited, output: () => output, waitFor };
}
