import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError } from './errors.ts';
import { type Component, SCRIPTS_DIR } from './paths.ts';

/**
 * Returns the directory with a component's binaries, building it from the Go module proxy
 * first when the per-user cache does not have it yet (scripts/build-component.sh).
 */
export async function ensureComponent(
  component: Component,
  options: { env?: NodeJS.ProcessEnv; onProgress?: (line: string) => void } = {},
): Promise<string> {
  const env = options.env ?? process.env;
  const script = join(SCRIPTS_DIR, 'build-component.sh');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, component], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      for (const line of chunk.split('\n')) if (line.trim()) options.onProgress?.(line);
    });
    child.on('error', (error) => reject(new BuildError(`could not run ${script}: ${error.message}`, { cause: error })));
    child.on('close', (code) => {
      const dir = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && dir) resolve(dir);
      else reject(new BuildError(`building ${component} failed (exit ${code}):\n${stderr.trim()}`));
    });
  });
}

/** Absolute path of one binary of a built component; fails clearly when it is missing. */
export async function binaryPath(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  try {
    await access(path, constants.X_OK);
  } catch (error) {
    throw new BuildError(`${path} is missing or not executable; delete ${dir} to rebuild it`, { cause: error });
  }
  return path;
}
