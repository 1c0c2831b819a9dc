// Gateway bench: events/s through the gateway vs straight to the same receiver (ratio), the
// latency the gateway adds (p50/p99), and memory per 10k held events. Loopback only, < 60 s.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createLogger } from '@afterlife/core';
import { benchRow, writeBenchResult } from '@afterlife/devcluster/testing';
import { loadConfig } from '../src/config.ts';
import type { EventMessage } from '../src/events.ts';
import { startGateway } from '../src/server.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 5000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const HELD = 10_000;

interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
}

const outputs = new WeakMap<ChildProcess, { text: string }>();

/** Waits until the child's stdout (collected from the start) matches `pattern`. */
async function lineFrom(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
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

async function load(url: string, durationMs: number): Promise<LoadResult> {
  const child = spawn(process.execPath, [here('./load.mjs'), url, String(durationMs), String(CONCURRENCY)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  const [line] = await lineFrom(child, /\{.*\}\n/);
  await exited;
  return JSON.parse(line) as LoadResult;
}

function heap(): { heap: number; rss: number } {
  gc();
  gc();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, rss: usage.rss };
}

const children: ChildProcess[] = [];
const receiver = spawn(process.execPath, [here('../test/fixtures/receiver.mjs')], {
  env: { ...process.env, RECEIVER_HOST: '127.0.0.1', RECEIVER_PORT: '0', RECEIVER_NAME: 'bench' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(receiver);
const receiverPort = Number((await lineFrom(receiver, /listening (\d+)\n/))[1]);
const config = loadConfig({
  AFTERLIFE_GATEWAY_PORT: '0',
  AFTERLIFE_GATEWAY_ADMIN_PORT: '0',
  AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
  AFTERLIFE_GATEWAY_ID: 'bench',
  AFTERLIFE_GATEWAY_LOG_LEVEL: 'silent',
  AFTERLIFE_GATEWAY_PENDING_LIMIT: String(HELD * 3),
  AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: '10m',
  AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY: String(CONCURRENCY * 2),
  AFTERLIFE_GATEWAY_DISCOVERY: 'service', // plain functions fed through gateway.endpoints
});
const gateway = await startGateway(config, {
  logger: createLogger('bench', { level: 'silent' }),
  defaultMetrics: false,
});
try {
  const fn = { namespace: 'bench', name: 'echo' };
  gateway.endpoints.setFunction(fn, [{ ip: '127.0.0.1', port: receiverPort }]);
  const direct = `http://127.0.0.1:${receiverPort}/`;
  const through = `http://127.0.0.1:${gateway.eventsPort}/ns/bench/fn/echo`;

  // Reference: the cheapest possible extra hop (a bare Node.js proxy in this same process, no
  // CloudEvents, no express, no holding) — what the second hop alone costs on this machine.
  const agent = new Agent({ keepAlive: true });
  const proxy = createServer((req, res) => {
    const out = request(
      { host: '127.0.0.1', port: receiverPort, path: '/', method: 'POST', headers: req.headers, agent },
      (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      },
    );
    req.pipe(out);
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const bare = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/`;

  await load(direct, 1000); // warm-up
  await load(through, 1000);
  await load(bare, 1000);
  const cpuMicros = async (url: string): Promise<[LoadResult, number]> => {
    const before = process.cpuUsage();
    const result = await load(url, DURATION_MS);
    const used = process.cpuUsage(before);
    return [result, (used.user + used.system) / Math.max(1, result.requests)];
  };
  const d = await load(direct, DURATION_MS);
  const [g, gatewayCpu] = await cpuMicros(through);
  const [p, bareCpu] = await cpuMicros(bare);
  proxy.close();
  proxy.closeAllConnections();
  agent.destroy();
  const bareRate = p.requests / p.seconds;
  const directRate = d.requests / d.seconds;
  const gatewayRate = g.requests / g.seconds;

  // Memory, core only: 10k events held in the dispatcher (no sockets).
  const cold = { namespace: 'bench', name: 'cold' };
  gateway.endpoints.setFunction(cold, []);
  const before = heap();
  const message = (i: number): EventMessage => ({
    id: `core-${i}`,
    source: '/bench',
    type: 'dev.afterlife.bench',
    headers: {
      'ce-id': `core-${i}`,
      'ce-source': '/bench',
      'ce-type': 'dev.afterlife.bench',
      'ce-specversion': '1.0',
      'content-type': 'application/json',
    },
    body: Buffer.from('{"held":true}'),
  });
  const heldCore = Array.from({ length: HELD }, (_, i) => gateway.dispatcher.submit(cold, [message(i)])[0]);
  const afterCore = heap();
  gateway.endpoints.setFunction(cold, [{ ip: '127.0.0.1', port: receiverPort }]);
  await Promise.all(heldCore);
  gateway.endpoints.setFunction(cold, []);

  // Memory end to end: 10k open HTTP requests held by the gateway.
  const beforeHttp = heap();
  const holder = spawn(
    process.execPath,
    [here('./hold.mjs'), `http://127.0.0.1:${gateway.eventsPort}/ns/bench/fn/cold`, String(HELD)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.push(holder);
  const opened = lineFrom(holder, /opened\n/);
  const until = Date.now() + 30_000;
  while (gateway.dispatcher.snapshot().functions.find((f) => f.name === 'cold')?.pending !== HELD) {
    if (Date.now() > until) throw new Error('the held requests did not all arrive within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await opened;
  const afterHttp = heap();
  const released = Date.now();
  gateway.endpoints.setFunction(cold, [{ ip: '127.0.0.1', port: receiverPort }]);
  const outcome = JSON.parse((await lineFrom(holder, /\{.*\}\n/))[0]) as { ok: number; errors: number };
  const releaseSeconds = (Date.now() - released) / 1000;

  const kb = (bytes: number) => `${(bytes / 1024).toFixed(2)} KB`;
  console.log(`gateway bench (loopback, concurrency ${CONCURRENCY}, ${DURATION_MS / 1000} s per run)`);
  console.log(
    `  direct to receiver : ${directRate.toFixed(0)} events/s  p50 ${d.p50.toFixed(2)} ms  p99 ${d.p99.toFixed(2)} ms  errors ${d.errors}`,
  );
  console.log(
    `  through gateway    : ${gatewayRate.toFixed(0)} events/s  p50 ${g.p50.toFixed(2)} ms  p99 ${g.p99.toFixed(2)} ms  errors ${g.errors}`,
  );
  console.log(
    `  bare Node.js proxy : ${bareRate.toFixed(0)} events/s  p50 ${p.p50.toFixed(2)} ms  p99 ${p.p99.toFixed(2)} ms  errors ${p.errors}`,
  );
  console.log(
    `  ratio gateway/direct: ${(gatewayRate / directRate).toFixed(2)}  (bare proxy/direct: ${(bareRate / directRate).toFixed(2)}, gateway/bare proxy: ${(gatewayRate / bareRate).toFixed(2)})`,
  );
  console.log(
    `  CPU per event      : gateway ${gatewayCpu.toFixed(0)} µs, bare proxy ${bareCpu.toFixed(0)} µs (this process)`,
  );
  console.log(`  added latency      : p50 +${(g.p50 - d.p50).toFixed(2)} ms  p99 +${(g.p99 - d.p99).toFixed(2)} ms`);
  console.log(
    `  10k held (core)    : heap +${kb(afterCore.heap - before.heap)} total, ${((afterCore.heap - before.heap) / HELD).toFixed(0)} B/event`,
  );
  console.log(
    `  10k held (HTTP)    : heap +${kb(afterHttp.heap - beforeHttp.heap)}, rss +${kb(afterHttp.rss - beforeHttp.rss)}; ` +
      `${((afterHttp.heap - beforeHttp.heap) / HELD).toFixed(0)} B heap, ${((afterHttp.rss - beforeHttp.rss) / HELD).toFixed(0)} B rss per held request`,
  );
  console.log(
    `  release 10k held   : ${releaseSeconds.toFixed(2)} s to deliver all (${outcome.ok} ok, ${outcome.errors} errors)`,
  );
  const directBaseline = { name: 'direct to receiver' };
  const bareBaseline = { name: 'bare Node.js proxy' };
  writeBenchResult('gateway', [
    benchRow(`throughput vs direct (c=${CONCURRENCY})`, gatewayRate, 'events/s', 'higher', {
      ...directBaseline,
      value: directRate,
    }),
    benchRow(`throughput vs bare proxy (c=${CONCURRENCY})`, gatewayRate, 'events/s', 'higher', {
      ...bareBaseline,
      value: bareRate,
    }),
    benchRow('CPU per event', gatewayCpu, 'µs', 'lower', { ...bareBaseline, value: bareCpu }),
    benchRow('latency p50', g.p50, 'ms', 'lower', { ...directBaseline, value: d.p50 }),
    benchRow('latency p99', g.p99, 'ms', 'lower', { ...directBaseline, value: d.p99 }),
    benchRow('10k held (core): heap per event', (afterCore.heap - before.heap) / HELD, 'B', 'lower'),
    benchRow('10k held (HTTP): RSS per request', (afterHttp.rss - beforeHttp.rss) / HELD, 'B', 'lower'),
    benchRow('release 10k held', releaseSeconds, 's', 'lower'),
  ]);
} finally {
  await gateway.close();
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
