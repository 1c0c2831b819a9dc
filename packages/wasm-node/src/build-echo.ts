import { createLogger, errorMessage } from '@afterlife/core';
import { buildEchoWasm } from './examples.ts';

/** `pnpm run build:echo`: builds the reference function (cached by source hash) and prints its path. */
const logger = createLogger('wasm-node-build');
try {
  const started = performance.now();
  const result = await buildEchoWasm();
  logger.info(
    { path: result.path, built: result.built, ms: Math.round(performance.now() - started) },
    result.built ? 'built the reference function' : 'reference function unchanged; reused the cached module',
  );
} catch (error) {
  logger.fatal(errorMessage(error));
  process.exitCode = 1;
}
