import assert from 'node:assert/strict';
import { createLogger } from '@afterlife/core';
import { DeliveryOutcome, deliveryFailure, isRetryable } from '../src/delivery-outcome.ts';
import { GatewayError, TransportError } from '../src/errors.ts';
import type { AcceptedEvent } from '../src/held-queue.ts';
import { GatewayMetrics } from '../src/metrics.ts';
import type { Reply } from '../src/transport.ts';

const REF = { namespace: 'demo', name: 'echo-00001' };

interface Answer {
  reply?: Reply;
  error?: GatewayError;
}

function event(id: string, options: { acceptedAt?: number; deadline?: number; held?: boolean } = {}) {
  const answers: Answer[] = [];
  let cleanups = 0;
  const acceptedAt = options.acceptedAt ?? Date.now();
  const accepted: AcceptedEvent = {
    message: { id, source: '/s', type: 't', headers: {}, body: Buffer.alloc(0) },
    acceptedAt,
    deadline: options.deadline ?? acceptedAt + 60_000,
    resolve: (reply) => answers.push({ reply }),
    reject: (error) => answers.push({ error }),
    done: false,
    held: options.held ?? false,
    attempts: 0,
    cleanup: () => {
      cleanups += 1;
    },
  };
  return { accepted, answers, cleanups: () => cleanups };
}

function reply(status: number): Reply {
  return { status, headers: {}, body: Buffer.from('ok') };
}

function outcomeUnderTest() {
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('outcome-test', {
    level: 'debug',
    destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const outcome = new DeliveryOutcome({ ref: REF, deliveryTimeoutMs: 250, metrics, logger });
  /** A counter's value, or a histogram's observation count, for this function (and `labels`). */
  const value = async (metric: 'delivered' | 'failed' | 'hold' | 'delivery', labels: Record<string, string> = {}) => {
    const wanted: Record<string, string> = { namespace: REF.namespace, function: REF.name, ...labels };
    const { values } = await metrics[metric].get();
    return (values as { metricName?: string; labels: object; value: number }[])
      .filter((entry) => entry.metricName === undefined || entry.metricName.endsWith('_count'))
      .filter((entry) =>
        Object.entries(wanted).every(([name, want]) => (entry.labels as Record<string, unknown>)[name] === want),
      )
      .reduce((sum, entry) => sum + entry.value, 0);
  };
  return { outcome, metrics, lines, value };
}

const refused = () =>
  new TransportError('TRANSPORT_FAILED', 'delivery failed: connect ECONNREFUSED 10.0.0.1:8080', true);
const broken = () => new TransportError('TRANSPORT_FAILED', 'delivery failed: socket hang up', false);

describe('delivery outcome', () => {
  describe('error mapping', () => {
    const open = { shuttingDown: false, timedOut: false, at: Date.now() };

    it('retries only what cannot have reached the function, while the event’s window is open and the gateway runs', () => {
      const { accepted } = event('r', { deadline: open.at + 1000 });
      assert.equal(isRetryable(refused(), accepted, open), true);
      assert.equal(isRetryable(broken(), accepted, open), false);
      assert.equal(isRetryable(new Error('ECONNREFUSED'), accepted, open), false, 'only a TransportError says so');
      assert.equal(isRetryable(refused(), accepted, { ...open, shuttingDown: true }), false);
      assert.equal(isRetryable(refused(), accepted, { ...open, at: open.at + 1000 }), false, 'at the deadline');
    });

    it('maps the rest to 503 shutting down, 504 delivery timeout or 502 delivery failed, keeping the cause', () => {
      const cause = broken();
      const down = deliveryFailure('demo/echo-00001', cause, { shuttingDown: true, timedOut: true }, 250);
      assert.deepEqual(
        [down.code, down.status, down.message, down.cause],
        ['SHUTTING_DOWN', 503, 'the gateway shut down during delivery', cause],
      );
      const late = deliveryFailure('demo/echo-00001', cause, { shuttingDown: false, timedOut: true }, 250);
      assert.deepEqual(
        [late.code, late.status, late.message],
        ['DELIVERY_TIMEOUT', 504, 'demo/echo-00001 did not answer within 250 ms'],
      );
      const failed = deliveryFailure('demo/echo-00001', cause, { shuttingDown: false, timedOut: false }, 250);
      assert.deepEqual(
        [failed.code, failed.status, failed.message],
        ['DELIVERY_FAILED', 502, 'delivery to demo/echo-00001 failed: delivery failed: socket hang up'],
      );
    });
  });

  describe('replies', () => {
    it('passes a reply on as is: below 500 delivered, 500 and up failed (function_error)', async () => {
      const { outcome, value } = outcomeUnderTest();
      const ok = event('ok');
      const boom = event('boom');
      const startedAt = Date.now();
      outcome.started(ok.accepted, '10.0.0.1:8080', startedAt);
      outcome.started(boom.accepted, '10.0.0.1:8080', startedAt);
      assert.equal(outcome.inFlight, 2);
      assert.equal(ok.accepted.attempts, 1);
      const okReply = reply(202);
      outcome.replied(ok.accepted, okReply, startedAt);
      outcome.replied(boom.accepted, reply(503), startedAt);
      assert.equal(ok.answers[0]?.reply, okReply);
      assert.equal(boom.answers[0]?.reply?.status, 503);
      assert.deepEqual(
        { inFlight: outcome.inFlight, delivered: outcome.delivered, failed: outcome.failed },
        { inFlight: 0, delivered: 1, failed: 1 },
      );
      assert.equal(ok.accepted.done, true);
      assert.equal(ok.cleanups(), 1, 'the sender’s abort listener is detached');
      assert.equal(await value('delivered'), 1);
      assert.equal(await value('failed', { reason: 'function_error' }), 1);
      assert.equal(await value('delivery'), 2, 'two deliveries timed');
    });
  });

  describe('failures', () => {
    it('answers a held event once, counting it failed under its reason and timing its hold', async () => {
      const { outcome, value } = outcomeUnderTest();
      const held = event('held', { acceptedAt: Date.now() - 1500, held: true });
      outcome.fail(held.accepted, new GatewayError('COLD_START_TIMEOUT', 'no ready endpoint'));
      outcome.fail(held.accepted, new GatewayError('SENDER_GONE', 'gone'));
      assert.equal(held.answers.length, 1);
      assert.equal(held.answers[0]?.error?.code, 'COLD_START_TIMEOUT');
      assert.equal(held.cleanups(), 1);
      assert.equal(outcome.failed, 1);
      assert.equal(await value('failed', { reason: 'cold_start_timeout' }), 1);
      assert.equal(await value('failed', { reason: 'sender_gone' }), 0);
      assert.equal(await value('hold'), 1);
    });

    it('leaves a retryable attempt to the caller (logged), and answers the others with the mapped error', async () => {
      const { outcome, lines, value } = outcomeUnderTest();
      const first = event('re-1');
      const now = Date.now();
      outcome.started(first.accepted, '10.0.0.1:8080', now);
      const retry = outcome.unanswered(first.accepted, '10.0.0.1:8080', refused(), {
        shuttingDown: false,
        timedOut: false,
        at: now,
      });
      assert.equal(retry, true);
      assert.equal(first.answers.length, 0, 'not answered: it is held again');
      assert.equal(first.accepted.done, false);
      assert.equal(outcome.inFlight, 0);
      assert.equal(outcome.failed, 0);
      const warned = lines.find((line) => line.level === 'warn');
      assert.deepEqual(
        { function: warned?.function, endpoint: warned?.endpoint, eventId: warned?.eventId },
        { function: 'demo/echo-00001', endpoint: '10.0.0.1:8080', eventId: 're-1' },
      );
      assert.match(String(warned?.msg), /did not reach the endpoint.*retrying it/);

      outcome.started(first.accepted, '10.0.0.2:8080', now);
      assert.equal(first.accepted.attempts, 2);
      const again = outcome.unanswered(first.accepted, '10.0.0.2:8080', broken(), {
        shuttingDown: false,
        timedOut: true,
        at: Date.now(),
      });
      assert.equal(again, false);
      assert.equal(first.answers[0]?.error?.code, 'DELIVERY_TIMEOUT');
      assert.equal(outcome.failed, 1);
      assert.equal(await value('failed', { reason: 'delivery_timeout' }), 1);
      assert.equal(lines.at(-1)?.msg, 'delivery failed');
      assert.equal(lines.at(-1)?.endpoint, '10.0.0.2:8080');
    });
  });

  describe('cold start', () => {
    it('times the first delivery after a cold start once, and logs it', async () => {
      const { outcome, lines, metrics } = outcomeUnderTest();
      const since = Date.now() - 2000;
      assert.equal(outcome.coldStarting, false);
      outcome.coldStartFrom(since);
      outcome.coldStartFrom(since + 500); // a later event does not move the start
      assert.equal(outcome.coldStarting, true);
      const first = event('first', { acceptedAt: since, held: true });
      const second = event('second', { acceptedAt: since, held: true });
      const now = Date.now();
      outcome.started(first.accepted, '10.0.0.1:8080', now);
      outcome.started(second.accepted, '10.0.0.1:8080', now);
      assert.equal(outcome.coldStarting, false);
      assert.equal(first.accepted.held, false);
      const logged = lines.filter((line) => line.msg === 'first delivery after cold start');
      assert.equal(logged.length, 1);
      assert.deepEqual(
        { function: logged[0]?.function, coldStartMs: logged[0]?.coldStartMs, endpoint: logged[0]?.endpoint },
        { function: 'demo/echo-00001', coldStartMs: now - since, endpoint: '10.0.0.1:8080' },
      );
      const text = await metrics.registry.getSingleMetricAsString('afterlife_gateway_cold_start_seconds');
      assert.match(text, /afterlife_gateway_cold_start_seconds_count\{[^}]*function="echo-00001"[^}]*\} 1$/m);
      assert.match(text, /afterlife_gateway_cold_start_seconds_bucket\{[^}]*le="1"[^}]*\} 0\n/);
    });

    it('keeps the last cold start: held, endpoint listed/answered, delivered, replied', () => {
      const { outcome } = outcomeUnderTest();
      const record = () => outcome.lastColdStart;
      assert.equal(record(), undefined);
      const since = Date.now() - 900;
      outcome.coldStartFrom(since);
      const first = event('first', { acceptedAt: since, held: true });
      const warm = { seenAt: since + 300, answeredAt: since + 600 };
      const deliveredAt = since + 650;
      outcome.started(first.accepted, '10.0.0.1:8012', deliveredAt, {
        ip: '10.0.0.1',
        port: 8012,
        listedAt: warm.seenAt,
        warm,
      });
      assert.deepEqual(record(), {
        namespace: 'demo',
        name: 'echo-00001',
        heldAt: since,
        endpointSeenAt: warm.seenAt,
        endpointAnsweredAt: warm.answeredAt,
        via: 'probe',
        endpoint: '10.0.0.1:8012',
        deliveredAt,
        repliedAt: null,
        status: null,
        durationMs: 650,
      });
      // Another event's reply does not end the record; the first event's does.
      const second = event('second');
      outcome.started(second.accepted, '10.0.0.1:8012', Date.now());
      outcome.replied(second.accepted, reply(200), Date.now());
      assert.equal(record()?.repliedAt, null);
      outcome.replied(first.accepted, reply(202), deliveredAt);
      assert.equal(record()?.status, 202);
      assert.ok((record()?.repliedAt ?? 0) >= deliveredAt);

      // The next cold start, to an endpoint the slice said ready: replaces the record.
      outcome.coldStartFrom(Date.now());
      const third = event('third', { held: true });
      outcome.started(third.accepted, '10.0.0.2:8012', Date.now(), { ip: '10.0.0.2', port: 8012, listedAt: 5 });
      assert.equal(record()?.via, 'ready');
      assert.equal(record()?.endpointSeenAt, 5);
      assert.equal(record()?.endpointAnsweredAt, null);
      outcome.fail(third.accepted, new GatewayError('DELIVERY_FAILED', 'gone'));
      assert.equal(record()?.repliedAt, null, 'no reply: none recorded');
    });

    it('has nothing to time once nothing waits', () => {
      const { outcome, lines } = outcomeUnderTest();
      outcome.coldStartFrom(Date.now());
      outcome.coldStartOver();
      outcome.started(event('later').accepted, '10.0.0.1:8080', Date.now());
      assert.equal(
        lines.some((line) => line.msg === 'first delivery after cold start'),
        false,
      );
    });

    it('works without metrics and logger', () => {
      const outcome = new DeliveryOutcome({ ref: REF, deliveryTimeoutMs: 250 });
      const plain = event('plain', { held: true });
      outcome.coldStartFrom(Date.now());
      outcome.accepted(1);
      outcome.started(plain.accepted, '10.0.0.1:8080', Date.now());
      outcome.replied(plain.accepted, reply(200), Date.now());
      assert.equal(outcome.delivered, 1);
    });
  });
});
