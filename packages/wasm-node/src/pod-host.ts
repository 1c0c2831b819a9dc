import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AfterlifeError, createLogger, type Environment, EnvReader, errorMessage, type Logger } from '@afterlife/core';
import { type CgiRequest, type InvocationResult, TRAP_EXIT_CODE } from './cgi.ts';
import { WorkerPool } from './worker-pool.ts';

/**
 * The pod host: one per Wasm container, started by wasm-node inside the pod's network namespace.
 * It plays the part crun+WasmEdge play on a real node: loads the module, listens on $PORT
 * (the module cannot, Node's WASI has no sockets) and runs each request through the module
 * (CGI over WASI, see cgi.ts). A trap or a non-zero exit of the module ends this process with
 * that exit code, which wasm-node reports as the container's termination.
 */
export interface PodHostSettings {
  readonly modulePath: string;
  readonly port: number;
  readonly host: string;
  readonly concurrency: number;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly maxBodyBytes: number;
}

/** The variables wasm-node sets for a pod host (not user settings; listed for completeness). */
export const POD_HOST_ENV_VARS = [
  'AFTERLIFE_WASM_POD_MODULE',
  'AFTERLIFE_WASM_POD_PORT',
  'AFTERLIFE_WASM_POD_HOST',
  'AFTERLIFE_WASM_POD_CONCURRENCY',
  'AFTERLIFE_WASM_POD_ARGS',
  'AFTERLIFE_WASM_POD_ENV',
  'AFTERLIFE_WASM_POD_MAX_BODY_BYTES',
] as const;

export function podHostSettings(env: Environment): PodHostSettings {
  const reader = new EnvReader(env);
  const parseJson = <T>(name: string, fallback: T): T => {
    const raw = reader.string(name);
    if (raw === undefined) return fallback;
    try {
      return JSON.parse(raw) as T;
    } catch (error) {
      throw new AfterlifeError('CONFIG_INVALID', `${name}: not valid JSON`, { cause: error });
    }
  };
  return {
    modulePath: reader.requiredString('AFTERLIFE_WASM_POD_MODULE'),
    port: reader.integer('AFTERLIFE_WASM_POD_PORT', 8080, { min: 0, max: 65535 }),
    host: reader.string('AFTERLIFE_WASM_POD_HOST', '0.0.0.0'),
    concurrency: reader.integer('AFTERLIFE_WASM_POD_CONCURRENCY', 4, { min: 1, max: 256 }),
    args: parseJson<string[]>('AFTERLIFE_WASM_POD_ARGS', ['/module.wasm']),
    env: parseJson<Record<string, string>>('AFTERLIFE_WASM_POD_ENV', {}),
    maxBodyBytes: reader.integer('AFTERLIFE_WASM_POD_MAX_BODY_BYTES', 8 << 20, { min: 1 }),
  };
}

export interface RunningPodHost {
  readonly server: Server;
  readonly port: number;
  /** Resolves with the exit code the process should end with (a crash of the module, or 0 on close). */
  readonly exited: Promise<number>;
  close(): Promise<void>;
}

function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    request.on('end', () => resolve(size > limit ? undefined : Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

function sendText(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  response.end(text);
}

/** Starts the HTTP listener and worker pool for one module. */
export async function startPodHost(settings: PodHostSettings, logger: Logger): Promise<RunningPodHost> {
  const started = performance.now();
  const module = await WebAssembly.compile(await readFile(settings.modulePath));
  const compileMs = performance.now() - started;
  const pool = new WorkerPool(module, { size: settings.concurrency, args: settings.args, env: settings.env });
  pool.warm();
  let crash: ((code: number) => void) | undefined;
  const exited = new Promise<number>((resolve) => {
    crash = resolve;
  });
  let crashed = false;
  const onCrash = (result: InvocationResult & { kind: 'exit' | 'trap' }): void => {
    if (crashed) return;
    crashed = true;
    const detail = result.kind === 'trap' ? `trapped: ${result.message}` : `exited with code ${result.exitCode}`;
    logger.error({ exitCode: result.exitCode, stderr: result.stderr.slice(-2000) }, `wasm module ${detail}`);
    crash?.(result.exitCode);
  };

  const server = createServer(async (request, response) => {
    try {
      const body = await readBody(request, settings.maxBodyBytes);
      if (body === undefined) {
        sendText(response, 413, `request body larger than ${settings.maxBodyBytes} bytes\n`);
        return;
      }
      const cgiRequest: CgiRequest = {
        method: request.method ?? 'GET',
        url: request.url ?? '/',
        headers: request.headers,
        body,
        serverName: request.headers.host?.split(':')[0] ?? 'localhost',
        serverPort: settings.port,
        remoteAddress: request.socket.remoteAddress ?? '127.0.0.1',
        remotePort: request.socket.remotePort ?? 0,
      };
      const result = await pool.invoke(cgiRequest);
      if (result.kind === 'response') {
        if (result.stderr !== '') logger.info({ stderr: result.stderr.slice(-2000) }, 'module stderr');
        response.writeHead(result.response.status, result.response.headers.flat());
        response.end(result.response.body);
        return;
      }
      sendText(
        response,
        502,
        `the Wasm module ${result.kind === 'trap' ? 'trapped' : `exited with code ${result.exitCode}`}\n`,
      );
      onCrash(result);
    } catch (error) {
      logger.warn({ err: errorMessage(error) }, 'request failed');
      if (!response.headersSent) sendText(response, 502, `${errorMessage(error)}\n`);
      else response.destroy();
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : settings.port;
  logger.info({ port, compileMs: Math.round(compileMs), module: settings.modulePath }, 'pod host listening');
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await pool.close();
      crash?.(0);
    })();
    return closing;
  };
  return { server, port, exited, close };
}

/** Process entry: runs until SIGTERM (graceful, exit 0) or a module crash (exit with its code). */
export async function runPodHostProcess(env: Environment = process.env): Promise<void> {
  const logger = createLogger('wasm-pod-host');
  let host: RunningPodHost;
  try {
    host = await startPodHost(podHostSettings(env), logger);
  } catch (error) {
    logger.fatal({ err: errorMessage(error) }, 'pod host failed to start');
    logger.flush();
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100).unref();
    return;
  }
  const stop = (): void => {
    logger.info('SIGTERM: stopping');
    void host.close();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const code = await host.exited;
  logger.flush();
  // Give the in-flight 502 a moment to leave, then end like a crashed container would.
  setTimeout(() => process.exit(code), code === 0 ? 0 : 50);
}

export { TRAP_EXIT_CODE };
