import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WASI } from 'node:wasi';
import { AfterlifeError } from '@afterlife/core';

/**
 * The wasm-node ABI: CGI/1.1 (RFC 3875) over WASI preview1, one run of the module's `_start` per
 * HTTP request (the WAGI model). Node's WASI has no sockets, so the host owns the TCP listener:
 *
 * - request meta-variables (REQUEST_METHOD, PATH_INFO, QUERY_STRING, CONTENT_TYPE, CONTENT_LENGTH,
 *   SERVER_*, REMOTE_*, and every request header as HTTP_<NAME>) are the module's environment,
 *   on top of the container's own env;
 * - the request body is the module's stdin;
 * - the module writes a CGI response on stdout: header lines (`Status: 200 OK`, `Content-Type: …`,
 *   any others), an empty line, then the body;
 * - exit code 0 (or returning from `_start`) ends the request normally. A trap or a non-zero
 *   `proc_exit` is a crash of the "container": the host answers 502 and exits with that code
 *   (a trap is reported as exit code 134, like an abort).
 */
export interface CgiRequest {
  readonly method: string;
  /** Path and query as received, e.g. `/?workMs=5`. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  readonly body: Uint8Array;
  readonly serverName?: string;
  readonly serverPort?: number;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
}

export interface CgiResponse {
  readonly status: number;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
}

export type InvocationResult =
  | { readonly kind: 'response'; readonly response: CgiResponse; readonly stderr: string }
  | { readonly kind: 'exit'; readonly exitCode: number; readonly stderr: string }
  | { readonly kind: 'trap'; readonly exitCode: number; readonly message: string; readonly stderr: string };

/** Exit code reported when the module traps (what a WASI runtime's abort looks like: 128 + SIGABRT). */
export const TRAP_EXIT_CODE = 134;

export class CgiProtocolError extends AfterlifeError {
  constructor(message: string) {
    super('CGI_PROTOCOL', message);
  }
}

/** The hop-by-hop headers that never go to the module (RFC 3875 4.1.18 and RFC 9110 7.6.1). */
const SKIPPED_HEADERS = new Set(['connection', 'keep-alive', 'proxy-authorization', 'te', 'trailer', 'upgrade']);

/** Builds the CGI meta-variables for one request (RFC 3875 section 4.1). */
export function cgiEnvironment(request: CgiRequest): Record<string, string> {
  const queryIndex = request.url.indexOf('?');
  const path = queryIndex === -1 ? request.url : request.url.slice(0, queryIndex);
  const query = queryIndex === -1 ? '' : request.url.slice(queryIndex + 1);
  const env: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_SOFTWARE: 'afterlife-wasm-node',
    SERVER_NAME: request.serverName ?? 'localhost',
    SERVER_PORT: String(request.serverPort ?? 8080),
    REQUEST_METHOD: request.method.toUpperCase(),
    REQUEST_URI: request.url,
    SCRIPT_NAME: '',
    PATH_INFO: path === '' ? '/' : path,
    QUERY_STRING: query,
    REMOTE_ADDR: request.remoteAddress ?? '127.0.0.1',
    REMOTE_PORT: String(request.remotePort ?? 0),
    CONTENT_LENGTH: String(request.body.byteLength),
  };
  for (const [rawName, rawValue] of Object.entries(request.headers)) {
    if (rawValue === undefined) continue;
    const name = rawName.toLowerCase();
    if (SKIPPED_HEADERS.has(name)) continue;
    const value = Array.isArray(rawValue) ? rawValue.join(', ') : String(rawValue);
    if (name === 'content-type') {
      env.CONTENT_TYPE = value;
      continue;
    }
    if (name === 'content-length') continue;
    env[`HTTP_${name.toUpperCase().replace(/-/g, '_')}`] = value;
  }
  if (env.HTTP_HOST === undefined) env.HTTP_HOST = `${env.SERVER_NAME}:${env.SERVER_PORT}`;
  return env;
}

/** Parses a CGI response document (RFC 3875 section 6): headers, blank line, body. */
export function parseCgiResponse(output: Buffer): CgiResponse {
  let headerEnd = -1;
  let separatorLength = 0;
  for (let i = 0; i < output.length; i++) {
    if (output[i] !== 0x0a) continue;
    if (output[i + 1] === 0x0a) {
      headerEnd = i + 1;
      separatorLength = 1;
      break;
    }
    if (output[i + 1] === 0x0d && output[i + 2] === 0x0a) {
      headerEnd = i + 1;
      separatorLength = 2;
      break;
    }
  }
  if (output.length === 0)
    throw new CgiProtocolError('the module wrote nothing on stdout (a CGI response is required)');
  if (headerEnd === -1) throw new CgiProtocolError('the module output has no blank line ending the CGI headers');
  const headerText = output.subarray(0, headerEnd).toString('latin1');
  const body = output.subarray(headerEnd + separatorLength);
  let status = 200;
  let sawContentType = false;
  let location: string | undefined;
  const headers: [string, string][] = [];
  for (const line of headerText.split(/\r?\n/)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new CgiProtocolError(`bad CGI header line "${line}"`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    const lower = name.toLowerCase();
    if (lower === 'status') {
      const code = Number(value.split(' ')[0]);
      if (!Number.isInteger(code) || code < 100 || code > 599) throw new CgiProtocolError(`bad CGI Status "${value}"`);
      status = code;
      continue;
    }
    if (lower === 'content-type') sawContentType = true;
    if (lower === 'location') location = value;
    headers.push([name, value]);
  }
  if (location !== undefined && status === 200 && !headerText.toLowerCase().includes('status:')) status = 302;
  if (!sawContentType && location === undefined && body.length > 0) {
    throw new CgiProtocolError('the CGI response has a body but no Content-Type header');
  }
  return { status, headers, body };
}

export interface InvokeOptions {
  /** argv for the module; argv[0] is the entrypoint path, as crun passes it. */
  readonly args?: readonly string[];
  /** The container's environment; CGI variables are laid over it. */
  readonly env?: Readonly<Record<string, string>>;
  /** Directory for the per-request stdin/stdout files (default: a tmpfs when there is one). */
  readonly scratchDir?: string;
}

function defaultScratchRoot(): string {
  try {
    const probe = mkdtempSync('/dev/shm/afterlife-wasm-');
    rmSync(probe, { recursive: true, force: true });
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

let scratchRoot: string | undefined;

/**
 * Runs one request through a compiled module: a fresh instance, fresh memory, synchronous
 * (blocks the calling thread until the module returns, so the pod host calls it from workers).
 */
export function invokeModule(
  module: WebAssembly.Module,
  request: CgiRequest,
  options: InvokeOptions = {},
): InvocationResult {
  scratchRoot ??= defaultScratchRoot();
  const dir = mkdtempSync(join(options.scratchDir ?? scratchRoot, 'afterlife-cgi-'));
  const stdinPath = join(dir, 'stdin');
  const stdoutPath = join(dir, 'stdout');
  const stderrPath = join(dir, 'stderr');
  writeFileSync(stdinPath, request.body);
  const stdin = openSync(stdinPath, 'r');
  const stdout = openSync(stdoutPath, 'w+');
  const stderr = openSync(stderrPath, 'w+');
  try {
    const wasi = new WASI({
      version: 'preview1',
      args: [...(options.args ?? ['/module.wasm'])],
      env: { ...options.env, ...cgiEnvironment(request) },
      stdin,
      stdout,
      stderr,
      returnOnExit: true,
    });
    let exitCode: number;
    try {
      const instance = new WebAssembly.Instance(module, wasi.getImportObject() as WebAssembly.Imports);
      exitCode = wasi.start(instance) ?? 0;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return { kind: 'trap', exitCode: TRAP_EXIT_CODE, message, stderr: readFileSync(stderrPath, 'utf8') };
    }
    const errText = readFileSync(stderrPath, 'utf8');
    if (exitCode !== 0) return { kind: 'exit', exitCode, stderr: errText };
    const response = parseCgiResponse(readFileSync(stdoutPath));
    return { kind: 'response', response, stderr: errText };
  } finally {
    closeSync(stdin);
    closeSync(stdout);
    closeSync(stderr);
    rmSync(dir, { recursive: true, force: true });
  }
}
