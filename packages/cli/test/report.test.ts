import assert from 'node:assert/strict';
import { percentile } from '@afterlife/conformance';
import { LOCAL_GATEWAY } from '@afterlife/devcluster';
import {
  capacityOf,
  capacityText,
  DEMO_PROFILES,
  type DemoReport,
  demoHeadline,
  demoHeadlineFromJson,
  renderHtml,
  summarize,
} from '../src/index.ts';

describe('demo report', () => {
  const samples = [
    { t: 0, desiredReplicas: 0, readyReplicas: 0, pending: 0, inFlight: 0, delivered: 0 },
    { t: 1000, desiredReplicas: 1, readyReplicas: 1, pending: 1, inFlight: 0, delivered: 0 },
    { t: 2000, desiredReplicas: 3, readyReplicas: 2, pending: 4, inFlight: 5, delivered: 10 },
    { t: 3000, desiredReplicas: 3, readyReplicas: 3, pending: 0, inFlight: 5, delivered: 10 },
  ];
  const events = [
    { id: 'a', phase: 'burst', sentAt: 1, latencyMs: 900, status: 200, echoedId: 'a' },
    { id: 'b', phase: 'burst', sentAt: 2, latencyMs: 30, status: 200, echoedId: 'b' },
    { id: 'c', phase: 'burst', sentAt: 3, latencyMs: 0, status: 503, echoedId: '', retryAfter: '2' },
    { id: 'd', phase: 'burst', sentAt: 3100, latencyMs: 510, status: 200, echoedId: 'd' },
    { id: 'e', phase: 'burst', sentAt: 3200, latencyMs: 0, status: 0, echoedId: '', error: 'ECONNRESET' },
  ];
  const extra = { firstEventLatencyMs: 10, zeroToOneMs: 1000, backToZeroMs: 5000, wasmColdStartsMs: [900] };

  it('summarizes delivery, refusals with Retry-After, losses, replicas and latency once scaled', () => {
    const summary = summarize(samples, events, {
      ...extra,
      burst: { name: 'burst', start: 0, end: 4000 },
      expectedReplicas: 2,
    });
    assert.equal(summary.sent, 5);
    assert.equal(summary.delivered, 3);
    assert.equal(summary.refused, 1, '503 with Retry-After: the sender was told to retry');
    assert.equal(summary.failed, 1);
    assert.equal(summary.lost, 1, 'the reset one: neither answered nor refused');
    assert.equal(summary.echoedIds, 3);
    assert.equal(summary.maxReplicas, 3);
    assert.equal(summary.maxPending, 4);
    assert.equal(summary.timeToExpectedReplicasMs, 2000);
    assert.equal(summary.scaledAtMs, 3000, '2 ready and nothing held');
    assert.equal(summary.scaledP50Ms, 510, 'only the events sent once scaled');
    assert.equal(summary.p50Ms, 510);
    assert.equal(summary.peakDeliveredPerSecond, 2);
  });

  it('computes nearest-rank percentiles', () => {
    assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
    assert.equal(percentile([5, 1, 3, 2, 4], 100), 5);
    assert.ok(Number.isNaN(percentile([], 50)));
  });

  it('states the capacity the maximum gives: the default load is half of it, --overload beyond it', () => {
    const full = capacityOf(DEMO_PROFILES.full, LOCAL_GATEWAY.replicaConcurrency);
    assert.equal(full.eventsPerSecond, 80);
    assert.equal(full.neededReplicas, 2);
    assert.ok(full.loadPerSecond <= full.eventsPerSecond / 2, 'the default profile shows healthy behaviour');
    assert.ok(capacityOf(DEMO_PROFILES.short, 10).loadPerSecond < capacityOf(DEMO_PROFILES.short, 10).eventsPerSecond);
    assert.equal(
      capacityText(full),
      "At most 4 replicas × 10 events at a time each ÷ 500 ms of work = 80 events/s. The burst sends 40 events/s (50 % of that): 20 events in flight at a time, which the autoscaler's target of 10 events per replica turns into 2 replicas.",
    );
    const overload = capacityOf(DEMO_PROFILES.overload, 10);
    assert.ok(overload.loadPerSecond > overload.eventsPerSecond);
    assert.match(
      capacityText(overload, { pendingLimit: 200, retryAfterSeconds: 2 }),
      /150 events\/s \(188 % of that\): more than the maximum can take, so the gateway holds events up to its pending limit of 200 and answers 503 with Retry-After: 2 beyond it\.$/,
    );
  });

  const report = (over: Partial<DemoReport> = {}): DemoReport => ({
    startedAt: '2026-11-27T00:00:00Z',
    mode: 'short',
    profile: DEMO_PROFILES.short,
    capacity: capacityOf(DEMO_PROFILES.short, 10),
    gateway: { ...LOCAL_GATEWAY, pendingLimit: 5000 },
    function: { namespace: 'ns', name: '<script>', image: 'img' },
    checks: { 'a check': true, 'another <b>': false },
    summary: summarize(samples, events, { ...extra, expectedReplicas: 2 }),
    phases: [{ name: 'idle', start: 0, end: 1000 }],
    samples,
    events,
    ...over,
  });

  it('has a headline with human labels, units and bounds; --overload expects refusals, not delivery of all', () => {
    const healthy = Object.fromEntries(demoHeadline(report()).map((f) => [f.key, f]));
    assert.equal(healthy['time-to-n-replicas']?.label, 'time to 2 ready replicas in the burst');
    assert.deepEqual(healthy['scaled-p50']?.bound, {
      op: 'max',
      value: 750,
      note: '1.5 × the 500 ms of work each event asks for',
      advisory: true,
    });
    assert.deepEqual(healthy['events-refused']?.bound?.op, 'equal');
    assert.equal(healthy['events-lost']?.value, 1);
    const overload = Object.fromEntries(
      demoHeadline(report({ mode: 'overload', profile: DEMO_PROFILES.overload })).map((f) => [f.key, f]),
    );
    assert.equal(overload['scaled-p50'], undefined, 'beyond capacity nothing is "once scaled"');
    assert.deepEqual(overload['events-refused']?.bound?.op, 'min');
    assert.equal(overload['events-acknowledged']?.bound?.value, 4, 'every event not refused');
  });

  it('derives the headline of a report written before it had one (for --compare)', () => {
    const { profile: _p, capacity: _c, gateway: _g, ...older } = report();
    const headline = demoHeadlineFromJson(JSON.parse(JSON.stringify(older)));
    assert.equal(headline?.find((f) => f.key === 'first-event-reply')?.value, 10);
    assert.equal(demoHeadlineFromJson({ version: 1, results: [] }), undefined);
  });

  it('renders self-contained HTML with its charts and escapes untrusted text', () => {
    const html = renderHtml(report());
    assert.match(html, /<figure class="chart" id="replicas-chart"/);
    assert.match(html, /<figure class="chart" id="gateway-chart"/);
    assert.match(html, /<figure class="chart" id="latency-chart"/);
    assert.match(html, /data-kind="step"/);
    assert.match(html, /class="point"/);
    assert.match(html, /<details class="table-fallback">/);
    assert.doesNotMatch(html, /<script>/);
    assert.match(html, /&lt;script&gt;/);
    assert.doesNotMatch(html, /<(script|link|img)\b/);
    assert.doesNotMatch(html, /firstEventLatencyMs|zeroToOneMs|backToZeroMs/);
  });
});
