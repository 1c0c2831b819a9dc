import assert from 'node:assert/strict';
import { percentile } from '@afterlife/conformance';
import { renderHtml, summarize } from '../src/index.ts';

describe('demo report', () => {
  const samples = [
    { t: 0, desiredReplicas: 0, readyReplicas: 0, pending: 0, inFlight: 0, delivered: 0 },
    { t: 1000, desiredReplicas: 1, readyReplicas: 1, pending: 1, inFlight: 0, delivered: 0 },
    { t: 2000, desiredReplicas: 3, readyReplicas: 3, pending: 0, inFlight: 5, delivered: 10 },
  ];
  const events = [
    { id: 'a', phase: 'burst', sentAt: 1, latencyMs: 10, status: 200, echoedId: 'a' },
    { id: 'b', phase: 'burst', sentAt: 2, latencyMs: 30, status: 200, echoedId: 'b' },
    { id: 'c', phase: 'burst', sentAt: 3, latencyMs: 0, status: 503, echoedId: '' },
  ];

  it('summarizes delivery, echoes, replicas and latency percentiles', () => {
    const summary = summarize(samples, events, {
      firstEventLatencyMs: 10,
      zeroToOneMs: 1000,
      backToZeroMs: 5000,
      wasmColdStartsMs: [900],
    });
    assert.equal(summary.sent, 3);
    assert.equal(summary.delivered, 2);
    assert.equal(summary.failed, 1);
    assert.equal(summary.echoedIds, 2);
    assert.equal(summary.maxReplicas, 3);
    assert.equal(summary.p50Ms, 10);
    assert.equal(summary.p99Ms, 30);
  });

  it('computes nearest-rank percentiles', () => {
    assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
    assert.equal(percentile([5, 1, 3, 2, 4], 100), 5);
    assert.ok(Number.isNaN(percentile([], 50)));
  });

  it('renders self-contained HTML with both charts and escapes untrusted text', () => {
    const html = renderHtml({
      startedAt: '2026-11-27T00:00:00Z',
      mode: 'short',
      function: { namespace: 'ns', name: '<script>', image: 'img' },
      checks: { 'a check': true, 'another <b>': false },
      summary: summarize(samples, events, {
        firstEventLatencyMs: 1,
        zeroToOneMs: 1,
        backToZeroMs: 1,
        wasmColdStartsMs: [],
      }),
      phases: [{ name: 'idle', start: 0, end: 1000 }],
      samples,
      events,
    });
    assert.match(html, /<svg id="replicas-chart"/);
    assert.match(html, /<svg id="latency-chart"/);
    assert.match(html, /class="series"/);
    assert.match(html, /class="point"/);
    assert.doesNotMatch(html, /<script>/);
    assert.match(html, /&lt;script&gt;/);
    assert.doesNotMatch(html, /<(script|link|img)\b/);
  });
});
