// Load generator (own process, so it does not share the gateway's event loop).
// argv: url durationMs concurrency → prints one JSON line {requests, errors, seconds, latenciesMs: [...sorted sample]}
import { Agent, request } from 'node:http';

const [url, durationArg, concurrencyArg] = process.argv.slice(2);
const target = new URL(url);
const duration = Number(durationArg);
const concurrency = Number(concurrencyArg);
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
const body = JSON.stringify({ hello: 'world', n: 42 });
const latencies = [];
let requests = 0;
let errors = 0;
let seq = 0;
const until = Date.now() + duration;

function one() {
  return new Promise((resolve) => {
    const id = `bench-${process.pid}-${seq++}`;
    const started = process.hrtime.bigint();
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        agent,
        headers: {
          'ce-id': id,
          'ce-source': '/bench',
          'ce-type': 'dev.afterlife.bench',
          'ce-specversion': '1.0',
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) {
            requests += 1;
            latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
          } else errors += 1;
          resolve();
        });
      },
    );
    req.on('error', () => {
      errors += 1;
      resolve();
    });
    req.end(body);
  });
}

async function worker() {
  while (Date.now() < until) await one();
}

const started = Date.now();
await Promise.all(Array.from({ length: concurrency }, worker));
const seconds = (Date.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
process.stdout.write(`${JSON.stringify({ requests, errors, seconds, p50: at(0.5), p99: at(0.99) })}\n`);
agent.destroy();
