/**
 * Admission latency and throughput over HTTPS for a realistic opted-in Knative Service
 * (event scaling, flag on → 5 patch operations), against a no-op HTTPS express handler that
 * reads the same body, measured in the same run. The load generator runs in a worker thread
 * so it does not share the servers' event loop. Total run time is about 20 s.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { createLogger, createMetricsRegistry } from '@afterlife/core';
import { benchRow, writeBenchResult } from '@afterlife/devcluster/testing';
import express from 'express';
import { createWebhookMetrics } from '../src/metrics.ts';
import { startWebhookServer } from '../src/server.ts';
import { admissionReview, CONFIG, FLAG_ON, knativeService } from '../test/fixtures.ts';
import { createTestPki, issueServerCert } from '../test/tls.ts';

const RATE = 500; // requests per second in the open-loop phase
const OPEN_LOOP_MS = 2000; // per phase; phases run A-B-B-A so background load hits both servers alike
const CLOSED_LOOP_MS = 3000;
const CONCURRENCY = 16;
const WARMUP_MS = 1000;

interface PhaseResult {
  latencies: number[];
  sent: number;
  completed: number;
  errors: number;
  dropped: number;
  p50: number;
  p99: number;
  max: number;
  throughput: number;
}

const LOAD_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const https = require('node:https');
const { port, ca, body, mode, rate, durationMs, concurrency } = workerData;
const agent = new https.Agent({ keepAlive: true, maxSockets: 64, ca });
const payload = Buffer.from(body);
const latencies = [];
let sent = 0, completed = 0, errors = 0, dropped = 0, inflight = 0;
function once(done) {
  const started = process.hrtime.bigint();
  sent++; inflight++;
  const req = https.request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', agent,
    headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
    res.on('data', () => {});
    res.on('end', () => {
      inflight--;
      if (res.statusCode === 200) { completed++; latencies.push(Number(process.hrtime.bigint() - started) / 1e6); }
      else errors++;
      done();
    });
  });
  req.on('socket', (socket) => socket.setNoDelay(true));
  req.on('error', () => { inflight--; errors++; done(); });
  req.end(payload);
}
function finish(elapsedMs) {
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : NaN;
  agent.destroy();
  parentPort.postMessage({ sent, completed, errors, dropped, p50: q(0.5), p99: q(0.99), max: latencies.at(-1) ?? NaN,
    throughput: completed / (elapsedMs / 1000), latencies });
}
let start = 0;
function run() {
start = Date.now();
if (mode === 'open') {
  // Open loop: a fixed arrival rate paced on a 1 ms timer (no bursts), bounded outstanding
  // requests (excess counts as dropped).
  const timer = setInterval(() => {
    const elapsed = Date.now() - start;
    const due = Math.min(durationMs, elapsed) * rate / 1000;
    while (sent + dropped < due) { if (inflight >= 256) dropped++; else once(() => {}); }
    if (elapsed >= durationMs) {
      clearInterval(timer);
      const wait = setInterval(() => { if (inflight === 0) { clearInterval(wait); finish(Date.now() - start); } }, 5);
    }
  }, 1);
} else {
  let active = 0;
  const loop = () => { if (Date.now() - start < durationMs) once(loop); else if (--active === 0) finish(Date.now() - start); };
  for (let i = 0; i < concurrency; i++) { active++; once(loop); }
}
}
// Warm this worker's client (TLS context, connections, JIT) before measuring: 200 requests, 8 at a time.
let warm = 0, warming = 8;
const warmLoop = () => {
  if (warm < 200) { warm++; once(warmLoop); return; }
  if (--warming === 0) { sent = completed = errors = dropped = 0; latencies.length = 0; run(); }
};
for (let i = 0; i < 8; i++) { warm++; once(warmLoop); }
`;

function load(
  port: number,
  ca: string,
  body: string,
  mode: 'open' | 'closed',
  durationMs: number,
): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(LOAD_WORKER, {
      eval: true,
      workerData: { port, ca, body, mode, rate: RATE, durationMs, concurrency: CONCURRENCY },
    });
    worker.once('message', (result: PhaseResult) => {
      void worker.terminate();
      resolve(result);
    });
    worker.once('error', reject);
  });
}

function merge(phases: PhaseResult[]): PhaseResult {
  const latencies = phases.flatMap((p) => p.latencies).sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
  const sum = (f: (p: PhaseResult) => number) => phases.reduce((n, p) => n + f(p), 0);
  return {
    latencies,
    sent: sum((p) => p.sent),
    completed: sum((p) => p.completed),
    errors: sum((p) => p.errors),
    dropped: sum((p) => p.dropped),
    p50: q(0.5),
    p99: q(0.99),
    max: latencies.at(-1) ?? Number.NaN,
    throughput: sum((p) => p.throughput) / phases.length,
  };
}

async function measureBoth(a: { port: number }, b: { port: number }, ca: string, body: string) {
  await load(a.port, ca, body, 'closed', WARMUP_MS);
  await load(b.port, ca, body, 'closed', WARMUP_MS);
  const open: [PhaseResult[], PhaseResult[]] = [[], []];
  const closed: [PhaseResult[], PhaseResult[]] = [[], []];
  for (const which of [0, 1, 1, 0] as const) {
    open[which].push(await load((which === 0 ? a : b).port, ca, body, 'open', OPEN_LOOP_MS));
  }
  for (const which of [0, 1] as const) {
    closed[which].push(await load((which === 0 ? a : b).port, ca, body, 'closed', CLOSED_LOOP_MS));
  }
  return [
    { open: merge(open[0]), closed: merge(closed[0]) },
    { open: merge(open[1]), closed: merge(closed[1]) },
  ] as const;
}

async function main(): Promise<void> {
  const pki = await createTestPki();
  const { certFile, keyFile } = await issueServerCert(pki, 'bench');
  const silent = createLogger('webhook-bench', {
    level: 'info',
    destination: new Writable({ write: (_c, _e, cb) => cb() }),
  });
  const registry = createMetricsRegistry('webhook-bench', { defaultMetrics: false });
  const webhook = await startWebhookServer({
    config: {
      ...CONFIG,
      bindAddress: '127.0.0.1',
      port: 0,
      tlsCertFile: certFile,
      tlsKeyFile: keyFile,
      tlsReloadIntervalMs: 10_000,
      requestTimeoutMs: 10_000,
      keepAliveTimeoutMs: 95_000,
      bodyLimitBytes: 4 * 1024 * 1024,
    },
    features: () => FLAG_ON,
    ready: () => true,
    logger: silent,
    metrics: createWebhookMetrics(registry),
    registry,
  });

  const { readFile } = await import('node:fs/promises');
  const baselineApp = express();
  // Same express settings as the webhook app, so the ratio measures admission work only.
  baselineApp.disable('x-powered-by');
  baselineApp.set('etag', false);
  baselineApp.post('/mutate', express.raw({ type: () => true, limit: 4 * 1024 * 1024 }), (_req, res) => {
    res.json({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'x', allowed: true } });
  });
  const baseline: Server = createServer(
    {
      key: await readFile(keyFile),
      cert: await readFile(certFile),
      ALPNProtocols: ['http/1.1'],
      keepAliveTimeout: 95_000,
    },
    baselineApp,
  );
  await new Promise<void>((resolve) => baseline.listen(0, '127.0.0.1', resolve));
  const baselinePort = (baseline.address() as AddressInfo).port;

  const body = JSON.stringify(
    admissionReview(
      knativeService({
        labels: { 'afterlife.dev/runtime': 'wasmedge', 'afterlife.dev/scaling': 'events', app: 'hello' },
      }),
    ),
  );
  try {
    const [baseResult, hookResult] = await measureBoth({ port: baselinePort }, { port: webhook.port }, pki.caPem, body);
    const base = { name: 'no-op express (baseline)', ...baseResult };
    const hook = { name: 'webhook /mutate', ...hookResult };
    const ms = (n: number) => `${n.toFixed(3)} ms`;
    console.log(`\nAdmission of a ${body.length}-byte AdmissionReview over HTTPS (keep-alive), same run:\n`);
    console.log(
      `| server | p50 @${RATE}/s | p99 @${RATE}/s | max @${RATE}/s | sent/ok/err/dropped | throughput (c=${CONCURRENCY}) |`,
    );
    console.log('| --- | --- | --- | --- | --- | --- |');
    for (const r of [base, hook]) {
      console.log(
        `| ${r.name} | ${ms(r.open.p50)} | ${ms(r.open.p99)} | ${ms(r.open.max)} | ${r.open.sent}/${r.open.completed}/${r.open.errors}/${r.open.dropped} | ${Math.round(r.closed.throughput)} req/s |`,
      );
    }
    console.log(
      `\nratio webhook/baseline: p50 ${(hook.open.p50 / base.open.p50).toFixed(2)}x, p99 ${(hook.open.p99 / base.open.p99).toFixed(2)}x, throughput ${(hook.closed.throughput / base.closed.throughput).toFixed(2)}x`,
    );
    console.log(`goal: p99 < 2 ms at ${RATE} req/s → ${hook.open.p99 < 2 ? 'met' : 'NOT met'} (${ms(hook.open.p99)})`);
    const noop = 'no-op HTTPS express handler';
    writeBenchResult('webhook', [
      benchRow(`admission p50 @${RATE}/s`, hook.open.p50, 'ms', 'lower', { name: noop, value: base.open.p50 }),
      benchRow(`admission p99 @${RATE}/s`, hook.open.p99, 'ms', 'lower', { name: noop, value: base.open.p99 }),
      benchRow(`throughput (c=${CONCURRENCY})`, hook.closed.throughput, 'req/s', 'higher', {
        name: noop,
        value: base.closed.throughput,
      }),
    ]);
  } finally {
    await webhook.close(1000);
    baseline.closeAllConnections();
    await new Promise((resolve) => baseline.close(resolve));
    await pki.cleanup();
  }
}

await main();
