import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CountsSnapshot, createLogger, type Environment, fetchCounts } from '@afterlife/core';
import { loadConfig } from '../src/config.ts';
import { type Gateway, type StartOptions, startGateway } from '../src/server.ts';

export const silent = createLogger('gateway-test', { level: 'silent' });

export interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly at: number;
}

export interface Receiver {
  readonly port: number;
  readonly received: Received[];
  /** Requests currently being handled. */
  active: number;
  maxActive: number;
  /** Hold each reply for this long (ms). */
  delayMs: number;
  close(): Promise<void>;
}

/** A real HTTP function stand-in on 127.0.0.1: records each request, replies with a CloudEvent. */
export async function startReceiver(options: { delayMs?: number; status?: number } = {}): Promise<Receiver> {
  const receiver: Receiver = {
    port: 0,
    received: [],
    active: 0,
    maxActive: 0,
    delayMs: options.delayMs ?? 0,
    close: async () => undefined,
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      receiver.active += 1;
      receiver.maxActive = Math.max(receiver.maxActive, receiver.active);
      receiver.received.push({ headers: req.headers, body: Buffer.concat(chunks), at: Date.now() });
      setTimeout(() => {
        receiver.active -= 1;
        res.writeHead(options.status ?? 200, {
          'content-type': 'application/json',
          'ce-id': `reply-${String(req.headers['ce-id'])}`,
          'ce-source': '/receiver',
          'ce-type': 'dev.afterlife.reply',
          'ce-specversion': '1.0',
        });
        res.end(JSON.stringify({ echoed: String(req.headers['ce-id']), port: receiver.port }));
      }, receiver.delayMs);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  (receiver as { port: number }).port = (server.address() as AddressInfo).port;
  receiver.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return receiver;
}

export function testConfig(extra: Environment = {}) {
  return loadConfig({
    AFTERLIFE_GATEWAY_PORT: '0',
    AFTERLIFE_GATEWAY_ADMIN_PORT: '0',
    AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
    AFTERLIFE_GATEWAY_ID: 'gateway-test',
    AFTERLIFE_GATEWAY_LOG_LEVEL: 'silent',
    AFTERLIFE_GATEWAY_DRAIN_TIMEOUT: '1s',
    // These tests feed plain functions; the Knative tests set `knative` themselves.
    AFTERLIFE_GATEWAY_DISCOVERY: 'service',
    ...extra,
  });
}

export async function startTestGateway(extra: Environment = {}, options: StartOptions = {}): Promise<Gateway> {
  return startGateway(testConfig(extra), { logger: silent, defaultMetrics: false, ...options });
}

export function binaryHeaders(id: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'ce-id': id,
    'ce-source': '/test',
    'ce-type': 'dev.afterlife.test',
    'ce-specversion': '1.0',
    'content-type': 'application/json',
    ...extra,
  };
}

export async function sendBinary(
  port: number,
  path: string,
  id: string,
  extra: Record<string, string> = {},
  body = '{"hello":"world"}',
): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: binaryHeaders(id, extra), body });
}

/** Polls `check` every 10 ms until it returns true, failing after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function counts(adminPort: number): Promise<CountsSnapshot> {
  return fetchCounts(`http://127.0.0.1:${adminPort}`);
}

export function pendingOf(snapshot: CountsSnapshot, name: string): number {
  return snapshot.functions.find((fn) => fn.name === name)?.pending ?? 0;
}
