// Load generator (own process, so it does not share the gateway's event loop).
// argv: url durationMs concurrency [ratePerSecond]
//   closed loop (no rate): `concurrency` senders, each sends its next event when the previous is answered;
//   open loop (a rate): one event every 1/rate s whatever the answers, on as many keep-alive
//   connections as needed, latency counted from when each event was due (no coordinated omission).
// Prints one JSON line {requests, errors, seconds, sent, maxLateMs, latenciesUs: [every answered event's latency, µs]}.
import { Agent, request } from 'node:http';

const [url, durationArg, concurrencyArg, rateArg] = process.argv.slice(2);
const target = new URL(url);
const duration = Number(durationArg);
const concurrency = Number(concurrencyArg);
const rate = Number(rateArg ?? 0);
const agent = new Agent({ keepAlive: true, maxSockets: rate > 0 ? Number.POSITIVE_INFINITY : concurrency });
const body = JSON.stringify({ hello: 'world', n: 42 });
const latencies = [];
let requests = 0;
let errors = 0;
let seq = 0;
let sent = 0;
let maxLateMs = 0;

/** Sends one event; `dueNs` is when it should have gone out (latency is counted from then). */
function one(dueNs = process.hrtime.bigint()) {
  return new Promise((resolve) => {
    const id = `bench-${process.pid}-${seq++}`;
    sent += 1;
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
            latencies.push(Number(process.hrtime.bigint() - dueNs) / 1e6);
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

async function closedLoop(until) {
  const worker = async () => {
    while (Date.now() < until) await one();
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

async function openLoop(until) {
  const intervalNs = BigInt(Math.round(1e9 / rate));
  const startNs = process.hrtime.bigint();
  const total = Math.floor((duration / 1000) * rate);
  const replies = [];
  let next = 0;
  await new Promise((done) => {
    const tick = () => {
      const now = process.hrtime.bigint();
      // Timers fire on millisecond boundaries (or later): send everything that is due by now.
      while (next < total && startNs + BigInt(next) * intervalNs <= now) {
        const due = startNs + BigInt(next) * intervalNs;
        maxLateMs = Math.max(maxLateMs, Number(now - due) / 1e6);
        replies.push(one(due));
        next += 1;
      }
      if (next >= total || Date.now() > until + 1000) done();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(replies);
}

const started = Date.now();
if (rate > 0) await openLoop(started + duration);
else await closedLoop(started + duration);
const seconds = (Date.now() - started) / 1000;
const latenciesUs = latencies.map((ms) => Math.round(ms * 1000));
process.stdout.write(`${JSON.stringify({ requests, errors, seconds, sent, maxLateMs, latenciesUs })}\n`);
agent.destroy();
