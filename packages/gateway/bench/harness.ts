// What the gateway benches share: the receiver child, the bare-proxy baseline, the gateway's bench settings.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config.ts';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

const outputs = new WeakMap<ChildProcess, { text: string }>();

/** Waits until the child's stdout (collected from the first call on) matches `pattern`. */
export async function lineFrom(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
  let output = outputs.get(child);
  if (output === undefined) {
    const collected = { text: '' };
    output = collected;
    outputs.set(child, collected);
    child.stdout?.on('data', (chunk) => {
      collected.text += String(chunk);
    });
  }
  for (;;) {
    const match = pattern.exec(output.text);
    if (match) return match;
    if (child.exitCode !== null) throw new Error(`child exited before printing ${pattern}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The test receiver (test/fixtures/receiver.mjs) as its own process, on a free loopback port. */
export async function startReceiver(name: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [here('../test/fixtures/receiver.mjs')], {
    env: { ...process.env, RECEIVER_HOST: '127.0.0.1', RECEIVER_PORT: '0', RECEIVER_NAME: name },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return { child, port: Number((await lineFrom(child, /listening (\d+)\n/))[1]) };
}

/**
 * The cheapest possible extra hop: a bare Node.js proxy (no CloudEvents, no holding) to the
 * receiver — what the second hop alone costs on this machine.
 */
export async function startBareProxy(receiverPort: number): Promise<{ server: Server; port: number; agent: Agent }> {
  const agent = new Agent({ keepAlive: true });
  const server = createServer((req, res) => {
    const out = request(
      { host: '127.0.0.1', port: receiverPort, path: '/', method: 'POST', headers: req.headers, agent },
      (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      },
    );
    req.pipe(out);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, agent };
}

/** The gateway's settings in every bench: loopback, silent, plain functions fed through `gateway.endpoints`. */
export function benchGatewayConfig(id: string, extra: Record<string, string>) {
  return loadConfig({
    AFTERLIFE_GATEWAY_PORT: '0',
    AFTERLIFE_GATEWAY_ADMIN_PORT: '0',
    AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
    AFTERLIFE_GATEWAY_ID: id,
    AFTERLIFE_GATEWAY_LOG_LEVEL: 'silent',
    AFTERLIFE_GATEWAY_DISCOVERY: 'service',
    ...extra,
  });
}
