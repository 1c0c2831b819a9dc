import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ManagedProcess } from '@afterlife/devcluster';

const require = createRequire(import.meta.url);

/** The `dist/main.js` of a workspace component package (what its container image runs). */
export function componentMain(
  pkg: '@afterlife/webhook' | '@afterlife/gateway' | '@afterlife/scaler' | '@afterlife/autoscaler',
): string {
  return join(dirname(require.resolve(pkg)), 'main.js');
}

/** Starts a component the way its container would: `node dist/main.js` with env config. */
export function startComponent(
  name: string,
  pkg: Parameters<typeof componentMain>[0],
  env: Record<string, string>,
  logDir: string,
): Promise<ManagedProcess> {
  return ManagedProcess.start({
    name,
    command: process.execPath,
    args: [componentMain(pkg)],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/', ...env },
    logFile: join(logDir, `${name}.log`),
  });
}
