// Memory to hold N open HTTP requests, in a process of its own: `gateway` (events held for a
// function at zero, then delivered to a receiver) or `bare` (a plain node:http server that holds
// each request and answers it on release — the floor of any Node.js server that holds requests).
// Two cycles of hold → release: the first warms the heap up, the second is measured, so the
// numbers are what holding costs in a process that has run, not V8 growing a fresh heap.
// argv: gateway|bare count → prints one JSON line.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createLogger } from '@afterlife/core';
import { startGateway } from '../src/server.ts';
import { benchGatewayConfig, lineFrom, startReceiver } from './harness.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const [mode = 'gateway', countArg = '10000'] = process.argv.slice(2);
const COUNT = Number(countArg);

interface Target {
  url: string;
  /** Requests held right now. */
  held(): number;
  /** Lets every held request go (delivered, or answered). */
  release(): void;
  /** Back to holding. */
  rearm(): void;
  close(): Promise<void>;
}

async function gatewayTarget(): Promise<Target> {
  const { child: receiver, port: receiverPort } = await startReceiver('held');
  const gateway = await startGateway(
    benchGatewayConfig('held', {
      AFTERLIFE_GATEWAY_PENDING_LIMIT: String(COUNT * 2),
      AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: '10m',
      AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY: '64',
    }),
    { logger: createLogger('held', { level: 'silent' }), defaultMetrics: false },
  );
  const cold = { namespace: 'bench', name: 'cold' };
  gateway.endpoints.setFunction(cold, []);
  return {
    url: `http://127.0.0.1:${gateway.eventsPort}/ns/bench/fn/cold`,
    held: () => gateway.dispatcher.snapshot().functions.find((fn) => fn.name === 'cold')?.pending ?? 0,
    release: () => gateway.endpoints.setFunction(cold, [{ ip: '127.0.0.1', port: receiverPort }]),
    rearm: () => gateway.endpoints.setFunction(cold, []),
    close: async () => {
      await gateway.close();
      receiver.kill('SIGTERM');
    },
  };
}

async function bareTarget(): Promise<Target> {
  let waiting: ServerResponse[] = [];
  let holding = true;
  const answer = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (holding) waiting.push(res);
      else answer(res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    held: () => waiting.length,
    release: () => {
      holding = false;
      const all = waiting;
      waiting = [];
      for (const res of all) answer(res);
    },
    rearm: () => {
      holding = true;
    },
    close: async () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

function memory(): { heap: number; rss: number } {
  gc();
  gc();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, rss: usage.rss };
}

/** Holds COUNT requests, measures, releases them; returns the deltas and the release time. */
async function cycle(target: Target) {
  const before = memory();
  const holder = spawn(process.execPath, [here('./hold.mjs'), target.url, String(COUNT)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = lineFrom(holder, /\{.*\}\n/);
  const until = Date.now() + 60_000;
  while (target.held() !== COUNT) {
    if (Date.now() > until) throw new Error(`only ${target.held()} of ${COUNT} requests arrived within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const after = memory();
  const released = Date.now();
  target.release();
  const outcome = JSON.parse((await lines)[0]) as { ok: number; errors: number };
  const releaseSeconds = (Date.now() - released) / 1000;
  await once(holder, 'exit');
  target.rearm();
  return { heap: after.heap - before.heap, rss: after.rss - before.rss, releaseSeconds, ...outcome };
}

const target = mode === 'bare' ? await bareTarget() : await gatewayTarget();
try {
  const fresh = await cycle(target); // warms the heap up
  const measured = await cycle(target);
  // `rssFresh`: how much the fresh process grew to hold them the first time (V8 sizing its heap included).
  process.stdout.write(`${JSON.stringify({ mode, count: COUNT, ...measured, rssFresh: fresh.rss })}\n`);
} finally {
  await target.close();
}
