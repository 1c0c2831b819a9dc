// Gateway bench, every number next to a baseline measured in the same run: events/s through the
// gateway vs straight to the receiver and vs a bare Node.js proxy (closed loop, saturation), the
// CPU each costs per event, the latency the gateway adds at a fixed arrival rate (open loop), and
// the memory of 10k held requests vs a bare node:http server holding as many. Loopback only.
// env: BENCH_ROUNDS (3), BENCH_DURATION_MS (2000, closed loop), BENCH_OPEN_DURATION_MS (3000),
//      BENCH_RATE (1000 events/s, open loop), BENCH_CONCURRENCY (32), BENCH_HELD (10000)
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createLogger } from '@afterlife/core';
import { benchRow, writeBenchResult } from '@afterlife/devcluster/testing';
import type { EventMessage } from '../src/events.ts';
import { startGateway } from '../src/server.ts';
import { benchGatewayConfig, lineFrom, startBareProxy, startReceiver } from './harness.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CLOSED_MS = Number(process.env.BENCH_DURATION_MS ?? 2000);
const OPEN_MS = Number(process.env.BENCH_OPEN_DURATION_MS ?? 3000);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const HELD = Number(process.env.BENCH_HELD ?? 10_000);

interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  maxLateMs: number;
  latenciesUs: number[];
}

/** One target's runs pooled over the rounds. */
class Pooled {
  requests = 0;
  errors = 0;
  seconds = 0;
  cpuMicros = 0;
  userMicros = 0;
  maxLateMs = 0;
  readonly latenciesUs: number[] = [];
  /** Each round's latencies, sorted (µs). */
  readonly rounds: number[][] = [];
  #sorted = false;

  add(result: LoadResult, cpu?: NodeJS.CpuUsage): void {
    this.requests += result.requests;
    this.errors += result.errors;
    this.seconds += result.seconds;
    this.maxLateMs = Math.max(this.maxLateMs, result.maxLateMs);
    for (const latency of result.latenciesUs) this.latenciesUs.push(latency);
    this.rounds.push([...result.latenciesUs].sort((a, b) => a - b));
    this.#sorted = false;
    if (cpu !== undefined) {
      this.cpuMicros += cpu.user + cpu.system;
      this.userMicros += cpu.user;
    }
  }

  get rate(): number {
    return this.requests / Math.max(1e-9, this.seconds);
  }

  /** CPU of this process per answered event (µs). */
  get cpuPerEvent(): number {
    return this.cpuMicros / Math.max(1, this.requests);
  }

  get userPerEvent(): number {
    return this.userMicros / Math.max(1, this.requests);
  }

  /** Latency percentile over every event of every round (ms). */
  percentile(q: number): number {
    if (!this.#sorted) {
      this.latenciesUs.sort((a, b) => a - b);
      this.#sorted = true;
    }
    return at(this.latenciesUs, q);
  }

  /** The latency percentile of round `round` (ms). */
  roundPercentile(round: number, q: number): number {
    return at(this.rounds[round] ?? [], q);
  }
}

/** Percentile `q` of sorted latencies in µs, in ms. */
function at(sorted: readonly number[], q: number): number {
  return (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) / 1000;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Runs the load generator against `url`: closed loop, or open loop at `rate` events/s. */
async function load(url: string, durationMs: number, rate = 0): Promise<[LoadResult, NodeJS.CpuUsage]> {
  const args = [here('./load.mjs'), url, String(durationMs), String(CONCURRENCY), String(rate)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const before = process.cpuUsage();
  const [line] = await lineFrom(child, /\{.*\}\n/);
  const cpu = process.cpuUsage(before);
  await exited;
  return [JSON.parse(line) as LoadResult, cpu];
}

async function held(mode: 'gateway' | 'bare') {
  const child = spawn(process.execPath, [here('./held.ts'), mode, String(HELD)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = await lineFrom(child, /\{.*\}\n/);
  await once(child, 'exit');
  return JSON.parse(line) as {
    heap: number;
    rss: number;
    rssFresh: number;
    releaseSeconds: number;
    ok: number;
    errors: number;
  };
}

const children: ChildProcess[] = [];
const { child: receiver, port: receiverPort } = await startReceiver('bench');
children.push(receiver);
const gateway = await startGateway(
  benchGatewayConfig('bench', {
    AFTERLIFE_GATEWAY_PENDING_LIMIT: String(HELD * 3),
    AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: '10m',
    AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY: String(CONCURRENCY * 2),
  }),
  { logger: createLogger('bench', { level: 'silent' }), defaultMetrics: false },
);
try {
  const fn = { namespace: 'bench', name: 'echo' };
  gateway.endpoints.setFunction(fn, [{ ip: '127.0.0.1', port: receiverPort }]);

  // Reference: the cheapest possible extra hop (see bench/harness.ts).
  const { server: proxy, port: proxyPort, agent } = await startBareProxy(receiverPort);
  const targets = {
    direct: `http://127.0.0.1:${receiverPort}/`,
    gateway: `http://127.0.0.1:${gateway.eventsPort}/ns/bench/fn/echo`,
    bare: `http://127.0.0.1:${proxyPort}/`,
  };
  type Name = keyof typeof targets;
  const names = Object.keys(targets) as Name[];
  const closed = Object.fromEntries(names.map((name) => [name, new Pooled()])) as Record<Name, Pooled>;
  const open = Object.fromEntries(names.map((name) => [name, new Pooled()])) as Record<Name, Pooled>;

  for (const name of names) await load(targets[name], 1000); // warm-up (V8 optimises the hot paths)
  // Rounds, each target's order rotated, so that a machine getting busier or quieter meanwhile
  // does not favour one of them; percentiles over every event of every round.
  for (let round = 0; round < ROUNDS; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length] as Name);
    for (const name of order) closed[name].add(...(await load(targets[name], CLOSED_MS)));
    for (const name of order) open[name].add(...(await load(targets[name], OPEN_MS, RATE)));
  }
  proxy.close();
  proxy.closeAllConnections();
  agent.destroy();

  // Memory, core only: 10k events held in the dispatcher (no sockets).
  const heapUsed = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const cold = { namespace: 'bench', name: 'cold' };
  gateway.endpoints.setFunction(cold, []);
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
  const heapBefore = heapUsed();
  const heldCore = Array.from({ length: HELD }, (_, i) => gateway.dispatcher.submit(cold, [message(i)])[0]);
  const corePerEvent = (heapUsed() - heapBefore) / HELD;
  gateway.endpoints.setFunction(cold, [{ ip: '127.0.0.1', port: receiverPort }]);
  await Promise.all(heldCore);

  // Memory end to end: HELD open HTTP requests, each holder in a process of its own.
  const heldGateway = await held('gateway');
  const heldBare = await held('bare');

  const { direct: d, gateway: g, bare: p } = closed;
  const { direct: od, gateway: og, bare: op } = open;
  const fixed = (value: number, digits = 2) => value.toFixed(digits);
  const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  const line = (label: string, r: Pooled, cpu: boolean) =>
    `  ${label.padEnd(20)}: ${fixed(r.rate, 0).padStart(6)} events/s  p50 ${fixed(r.percentile(0.5))} ms  p99 ${fixed(r.percentile(0.99))} ms` +
    `${cpu ? `  CPU ${fixed(r.cpuPerEvent, 0)} µs/event (user ${fixed(r.userPerEvent, 0)})` : ''}  errors ${r.errors}`;
  console.log(
    `gateway bench (loopback; ${ROUNDS} rounds; closed loop ${CONCURRENCY} senders × ${CLOSED_MS / 1000} s, open loop ${RATE} events/s × ${OPEN_MS / 1000} s)`,
  );
  console.log('closed loop (saturation):');
  console.log(line('direct to receiver', d, false));
  console.log(line('through gateway', g, true));
  console.log(line('bare Node.js proxy', p, true));
  console.log(
    `  ratios             : gateway/bare proxy ${fixed(g.rate / p.rate)}, gateway/direct ${fixed(g.rate / d.rate)}, bare proxy/direct ${fixed(p.rate / d.rate)}; ` +
      `CPU gateway/bare proxy ${fixed(g.cpuPerEvent / p.cpuPerEvent)}`,
  );
  console.log(`open loop (${RATE} events/s, latency from when each event was due):`);
  console.log(line('direct to receiver', od, false));
  console.log(line('through gateway', og, true));
  console.log(line('bare Node.js proxy', op, true));
  // What the hop adds, round by round (each round measures the targets back to back), then the
  // median over the rounds: a burst of load from elsewhere on the machine spoils one round, not the result.
  const added = (r: Pooled, q: number) =>
    median(Array.from({ length: ROUNDS }, (_, round) => r.roundPercentile(round, q) - od.roundPercentile(round, q)));
  console.log(
    `  added latency      : gateway p50 +${fixed(added(og, 0.5))} ms, p99 +${fixed(added(og, 0.99))} ms ` +
      `(bare proxy p50 +${fixed(added(op, 0.5))} ms, p99 +${fixed(added(op, 0.99))} ms; median over rounds); ` +
      `load generator at most ${fixed(Math.max(od.maxLateMs, og.maxLateMs, op.maxLateMs), 1)} ms late`,
  );
  console.log(`  10k held (core)    : ${fixed(corePerEvent, 0)} B heap per event (dispatcher only)`);
  for (const [label, r] of [
    ['gateway', heldGateway],
    ['bare node:http', heldBare],
  ] as const) {
    console.log(
      `  ${HELD} held (${label})`.padEnd(22) +
        `: heap +${mib(r.heap)} (${fixed(r.heap / HELD, 0)} B/request), RSS +${mib(r.rss)} warm, +${mib(r.rssFresh)} in a fresh process; ` +
        `released in ${fixed(r.releaseSeconds)} s (${r.ok} ok, ${r.errors} errors)`,
    );
  }
  console.log(
    `  held ratios        : heap gateway/bare ${fixed(heldGateway.heap / heldBare.heap)}, RSS (warm) gateway/bare ${fixed(heldGateway.rss / heldBare.rss)}`,
  );
  const directBaseline = { name: 'direct to receiver' };
  const bareBaseline = { name: 'bare Node.js proxy' };
  const bareServer = { name: 'bare node:http server holding as many' };
  writeBenchResult('gateway', [
    benchRow(`throughput vs direct (c=${CONCURRENCY})`, g.rate, 'events/s', 'higher', {
      ...directBaseline,
      value: d.rate,
    }),
    benchRow(`throughput vs bare proxy (c=${CONCURRENCY})`, g.rate, 'events/s', 'higher', {
      ...bareBaseline,
      value: p.rate,
    }),
    benchRow('CPU per event', g.cpuPerEvent, 'µs', 'lower', { ...bareBaseline, value: p.cpuPerEvent }),
    benchRow(`CPU per event (open loop ${RATE}/s)`, og.cpuPerEvent, 'µs', 'lower', {
      ...bareBaseline,
      value: op.cpuPerEvent,
    }),
    benchRow('latency p50', g.percentile(0.5), 'ms', 'lower', { ...directBaseline, value: d.percentile(0.5) }),
    benchRow('latency p99', g.percentile(0.99), 'ms', 'lower', { ...directBaseline, value: d.percentile(0.99) }),
    benchRow(`latency p50 (open loop ${RATE}/s)`, og.percentile(0.5), 'ms', 'lower', {
      ...directBaseline,
      value: od.percentile(0.5),
    }),
    benchRow(`latency p99 (open loop ${RATE}/s)`, og.percentile(0.99), 'ms', 'lower', {
      ...directBaseline,
      value: od.percentile(0.99),
    }),
    benchRow(`added latency p50 (open loop ${RATE}/s)`, added(og, 0.5), 'ms', 'lower'),
    benchRow(`added latency p99 (open loop ${RATE}/s)`, added(og, 0.99), 'ms', 'lower'),
    benchRow('10k held (core): heap per event', corePerEvent, 'B', 'lower'),
    benchRow('10k held (HTTP): heap per request', heldGateway.heap / HELD, 'B', 'lower', {
      ...bareServer,
      value: heldBare.heap / HELD,
    }),
    benchRow('10k held (HTTP): RSS per request', heldGateway.rss / HELD, 'B', 'lower', {
      ...bareServer,
      value: heldBare.rss / HELD,
    }),
    benchRow('release 10k held', heldGateway.releaseSeconds, 's', 'lower'),
  ]);
} finally {
  await gateway.close();
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
