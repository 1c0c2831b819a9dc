import assert from 'node:assert/strict';
import { type ColdStartTrace, epochOf, formatTrace, traceOffsets, traceWaterfall } from '../src/trace.ts';

// The rendering of a trace; the trace itself is taken on the real node by the `--local` run
// (packages/cli/test/stack/conformance-local.test.ts) and the cold-start bench.
const T0 = 1_800_000_000_000;
const trace: ColdStartTrace = {
  hops: [
    { id: 'sent', label: 'event sent', at: T0, source: 'the sender' },
    { id: 'held', label: 'gateway held it (no endpoint)', at: T0 + 2, source: 'gateway /v1/cold-starts' },
    { id: 'keda-scaled', label: 'KEDA scaled the Deployment 0 → 1', at: T0 + 20, source: 'API server watch' },
    { id: 'delivered', label: 'gateway delivered the event', at: T0 + 700, source: 'gateway /v1/cold-starts' },
    { id: 'pod-ready', label: 'pod Ready (kubelet probe)', at: T0 + 705, source: 'API server watch' },
    { id: 'reply', label: 'reply at the sender', at: T0 + 710, source: 'the sender' },
  ],
  via: 'probe',
  missing: ['scaler hop: no scaler admin URL'],
};

describe('cold-start trace rendering', () => {
  it('draws each hop as a bar from the hop before it, on the caller’s clock', () => {
    const steps = traceWaterfall(trace, 5000);
    assert.deepEqual(
      steps.map((step) => [step.label, step.start, step.end]),
      [
        ['gateway held it (no endpoint)', 5000, 5002],
        ['KEDA scaled the Deployment 0 → 1', 5002, 5020],
        ['gateway delivered the event', 5020, 5700],
        ['pod Ready (kubelet probe)', 5700, 5705],
        ['reply at the sender', 5705, 5710],
      ],
    );
  });

  it('prints one line per hop with its offset, its step and its source, then how it was delivered and what is missing', () => {
    const lines = formatTrace(trace);
    assert.match(lines[0] ?? '', /^event sent\s+\+0 ms\s+\(0 ms\)\s+the sender$/);
    assert.match(lines[3] ?? '', /^gateway delivered the event\s+\+700 ms\s+\(680 ms\)\s+gateway \/v1\/cold-starts$/);
    assert.equal(lines.at(-2), 'delivered on the queue-proxy probe, before kubelet Ready');
    assert.equal(lines.at(-1), 'missing: scaler hop: no scaler admin URL');
  });

  it('gives the offsets from the event sent, by hop', () => {
    assert.deepEqual(traceOffsets(trace), {
      sent: 0,
      held: 2,
      'keda-scaled': 20,
      delivered: 700,
      'pod-ready': 705,
      reply: 710,
    });
  });
});

describe('epochOf (watch times on the wall clock)', () => {
  it('follows the wall clock even when it was stepped after the process started', () => {
    const realNow = Date.now;
    const seen = performance.now() - 100;
    try {
      // A wall clock stepped 10 s ahead since start: every Date.now() hop of the trace moves with it.
      Date.now = () => realNow() + 10_000;
      const at = epochOf(seen);
      assert.ok(Math.abs(at - (Date.now() - 100)) < 20, `${at} vs ${Date.now() - 100}`);
    } finally {
      Date.now = realNow;
    }
  });
});
