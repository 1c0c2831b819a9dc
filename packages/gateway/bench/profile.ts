// Gateway CPU profile under load: the gateway in this process, the receiver and the load
// generator in their own, the V8 sampling profiler on only while the load runs. Prints the top
// self-time functions (and writes the full .cpuprofile for a flame graph viewer).
// env: PROFILE_DURATION_MS (8000), PROFILE_CONCURRENCY (32), PROFILE_TOP (30), PROFILE_OUT ($TMPDIR/gateway.cpuprofile),
//      PROFILE_TARGET (`gateway`, or `bare`: the bench's bare Node.js proxy, for comparison),
//      PROFILE_SAMPLER (`on`; `off` runs the same load unprofiled, e.g. under `perf record -p`)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '@afterlife/core';
import { startGateway } from '../src/server.ts';
import { benchGatewayConfig, lineFrom, startBareProxy, startReceiver } from './harness.ts';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const DURATION_MS = Number(process.env.PROFILE_DURATION_MS ?? 8000);
const CONCURRENCY = Number(process.env.PROFILE_CONCURRENCY ?? 32);
const TOP = Number(process.env.PROFILE_TOP ?? 30);
const OUT = process.env.PROFILE_OUT ?? join(tmpdir(), 'gateway.cpuprofile');
const TARGET = process.env.PROFILE_TARGET ?? 'gateway';
const SAMPLER = process.env.PROFILE_SAMPLER !== 'off';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** Self time per function (file:line), the hottest first, as a share of all samples. */
function selfTimeTable(nodes: readonly ProfileNode[], top: number): string {
  const byFunction = new Map<string, number>();
  let total = 0;
  for (const node of nodes) {
    const hits = node.hitCount ?? 0;
    total += hits;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url
      .replace(/^.*\/node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?/, '')
      .replace(/^.*\/packages\//, '');
    const key = `${functionName || '(anonymous)'}  ${file === '' ? '' : `${file}:${lineNumber + 1}`}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + hits);
  }
  return [...byFunction]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, hits]) => `${((hits / Math.max(1, total)) * 100).toFixed(1).padStart(5)} %  ${name}`)
    .join('\n');
}

const { child: receiver, port: receiverPort } = await startReceiver('profile');
const gateway = await startGateway(
  benchGatewayConfig('profile', { AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY: String(CONCURRENCY * 2) }),
  { logger: createLogger('profile', { level: 'silent' }), defaultMetrics: false },
);
const session = new Session();
try {
  gateway.endpoints.setFunction({ namespace: 'bench', name: 'echo' }, [{ ip: '127.0.0.1', port: receiverPort }]);
  let url = `http://127.0.0.1:${gateway.eventsPort}/ns/bench/fn/echo`;
  if (TARGET === 'bare') {
    const { server: proxy, port } = await startBareProxy(receiverPort);
    proxy.unref();
    url = `http://127.0.0.1:${port}/`;
  }
  const run = async (durationMs: number) => {
    const child = spawn(process.execPath, [here('./load.mjs'), url, String(durationMs), String(CONCURRENCY)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = await lineFrom(child, /\{.*\}\n/);
    await once(child, 'exit');
    return JSON.parse(line) as { requests: number; seconds: number };
  };
  await run(1000); // warm-up: let V8 optimise the hot path before sampling
  if (SAMPLER) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  }
  const cpuBefore = process.cpuUsage();
  const result = await run(DURATION_MS);
  const cpu = process.cpuUsage(cpuBefore);
  const micros = (cpu.user + cpu.system) / Math.max(1, result.requests);
  process.stdout.write(
    `${TARGET}: ${(result.requests / result.seconds).toFixed(0)} events/s, ${micros.toFixed(0)} µs CPU per event ` +
      `(user ${(cpu.user / result.requests).toFixed(0)}, system ${(cpu.system / result.requests).toFixed(0)}; profiler ${SAMPLER ? 'on' : 'off'})\n`,
  );
  if (SAMPLER) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(OUT, JSON.stringify(profile));
    process.stdout.write(
      `top ${TOP} functions by self time (${OUT}):\n${selfTimeTable(profile.nodes as ProfileNode[], TOP)}\n`,
    );
  }
} finally {
  if (SAMPLER) session.disconnect();
  await gateway.close();
  receiver.kill('SIGTERM');
}
