import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { GatewayError } from '../src/errors.ts';
import type { EventMessage } from '../src/events.ts';
import { type AcceptedEvent, HeldQueue, pendingLimitError } from '../src/held-queue.ts';
import { waitFor } from './helpers.ts';

function message(id: string): EventMessage {
  return { id, source: '/test', type: 't', headers: { 'ce-id': id }, body: Buffer.alloc(0) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A queue whose `fail` hook records the answers (and settles the event as the dispatcher's does). */
function queueUnderTest(coldStartTimeoutMs = 10_000) {
  const failures: { id: string; code: string; message: string }[] = [];
  const dropped: boolean[] = [];
  const queue = new HeldQueue(
    { key: 'demo/echo', coldStartTimeoutMs },
    {
      fail(event, error) {
        event.done = true;
        event.cleanup?.();
        failures.push({ id: event.message.id, code: error.code, message: error.message });
      },
      dropped: (changed) => dropped.push(changed),
    },
  );
  const accept = (id: string, acceptedAt = Date.now(), signal?: AbortSignal): AcceptedEvent =>
    queue.accept(
      message(id),
      acceptedAt,
      () => undefined,
      () => undefined,
      signal,
    );
  return { queue, failures, dropped, accept };
}

function takeAll(queue: HeldQueue): string[] {
  const ids: string[] = [];
  for (let event = queue.take(); event !== undefined; event = queue.take()) ids.push(event.message.id);
  queue.scheduleExpiry();
  return ids;
}

describe('HeldQueue', () => {
  describe('pending limit', () => {
    it('admits a batch all or nothing against what the function already holds', () => {
      assert.equal(pendingLimitError('demo/echo', 1, 2, 3), undefined);
      assert.equal(pendingLimitError('demo/echo', undefined, 3, 3), undefined);
      const full = pendingLimitError('demo/echo', 2, 2, 3);
      assert.equal(full?.code, 'PENDING_LIMIT');
      assert.equal(full?.status, 503);
      assert.equal(full?.retryable, true);
      assert.equal(full?.message, 'function demo/echo already holds 2 events (limit 3)');
      assert.equal(pendingLimitError('demo/echo', undefined, 4, 3)?.message, 'batch of 4 exceeds the pending limit');
    });
  });

  describe('order', () => {
    it('hands events out oldest first, a retried one before all others; reports 0 → 1', () => {
      const { queue, accept } = queueUnderTest();
      assert.equal(queue.hold(accept('a'), false), true);
      assert.equal(queue.hold(accept('b'), false), false);
      assert.equal(queue.pending, 2);
      const a = queue.take();
      assert.equal(a?.message.id, 'a');
      assert.equal(queue.pending, 1);
      assert.ok(a);
      queue.hold(a, true); // its delivery did not reach the function: back to the front
      assert.equal(a.held, true);
      queue.hold(accept('c'), false);
      assert.deepEqual(takeAll(queue), ['a', 'b', 'c']);
      assert.equal(queue.pending, 0);
      assert.equal(queue.take(), undefined);
      assert.equal(queue.hold(accept('d'), false), true, 'empty again: the next hold is 0 → 1 again');
      takeAll(queue);
    });

    it('keeps the order over many events (the array is compacted as it is consumed)', () => {
      const { queue, accept } = queueUnderTest();
      for (let i = 0; i < 3000; i++) queue.hold(accept(`e${i}`), false);
      for (let i = 0; i < 2000; i++) assert.equal(queue.take()?.message.id, `e${i}`);
      for (let i = 3000; i < 3100; i++) queue.hold(accept(`e${i}`), false);
      const rest = takeAll(queue);
      assert.equal(rest.length, 1100);
      assert.equal(rest[0], 'e2000');
      assert.equal(rest.at(-1), 'e3099');
    });
  });

  describe('cold-start timeout', () => {
    it('answers 504 to events still held at their deadline, in deadline order, and re-arms for the next', async () => {
      const { queue, failures, dropped, accept } = queueUnderTest(40);
      const now = Date.now();
      queue.hold(accept('early', now), false);
      queue.hold(accept('late', now + 300), false);
      assert.equal(accept('x', now).deadline, now + 40);
      await waitFor(() => failures.length > 0, 2000, 'the first expiry');
      assert.deepEqual(failures, [
        { id: 'early', code: 'COLD_START_TIMEOUT', message: 'no ready endpoint for demo/echo within 40 ms' },
      ]);
      // A timer may fire a millisecond before Date.now() reaches the deadline (monotonic vs wall
      // clock): that sweep expires nothing and reports `false`, then re-arms.
      assert.deepEqual(dropped.filter(Boolean), [true]);
      assert.equal(queue.pending, 1);
      await waitFor(() => queue.pending === 0, 2000, 'the second expiry');
      assert.ok(Date.now() >= now + 340);
      assert.deepEqual(
        failures.map((failure) => failure.id),
        ['early', 'late'],
      );
      assert.equal(queue.pending, 0);
      assert.equal(dropped.at(-1), true);
    });

    it('a retried event keeps its deadline: back at the front, it expires first', async () => {
      const { queue, failures, accept } = queueUnderTest(10_000);
      queue.hold(accept('fresh'), false);
      const old = accept('old', Date.now() - 10_000);
      queue.hold(old, true);
      await sleep(20);
      assert.deepEqual(
        failures.map((failure) => failure.id),
        ['old'],
      );
      assert.deepEqual(takeAll(queue), ['fresh']);
    });

    it('stops the timer once nothing is held', async () => {
      const { queue, failures, dropped, accept } = queueUnderTest(30);
      queue.hold(accept('a'), false);
      assert.equal(queue.take()?.message.id, 'a');
      queue.scheduleExpiry();
      await sleep(60);
      assert.deepEqual(failures, []);
      assert.deepEqual(dropped, []);
    });
  });

  describe('sender gone', () => {
    it('answers 499 to a held event whose sender went away and skips it', () => {
      const { queue, failures, dropped, accept } = queueUnderTest();
      const abort = new AbortController();
      queue.hold(accept('a'), false);
      queue.hold(accept('gone', Date.now(), abort.signal), false);
      queue.hold(accept('c'), false);
      abort.abort();
      assert.deepEqual(failures, [
        { id: 'gone', code: 'SENDER_GONE', message: 'the sender disconnected while the event was held' },
      ]);
      assert.deepEqual(dropped, [true]);
      assert.equal(queue.pending, 2);
      assert.deepEqual(takeAll(queue), ['a', 'c']);
    });

    it('leaves an event in flight (not held) or already answered alone', () => {
      const { queue, failures, dropped, accept } = queueUnderTest();
      const inFlight = new AbortController();
      accept('sending', Date.now(), inFlight.signal);
      inFlight.abort();
      const answered = new AbortController();
      const event = accept('answered', Date.now(), answered.signal);
      queue.hold(event, false);
      queue.take();
      event.done = true;
      answered.abort();
      assert.deepEqual(failures, []);
      assert.deepEqual(dropped, []);
    });

    it('detaches its listener once the event is answered', () => {
      const { queue, accept } = queueUnderTest();
      const abort = new AbortController();
      const event = accept('a', Date.now(), abort.signal);
      assert.equal(getEventListeners(abort.signal, 'abort').length, 1);
      queue.hold(event, false);
      queue.releaseAll(new GatewayError('REVISION_GONE', 'gone'));
      assert.equal(event.done, true);
      assert.equal(getEventListeners(abort.signal, 'abort').length, 0);
    });
  });

  describe('release', () => {
    it('answers every held event with the given error, oldest first, and stops the timer', async () => {
      const { queue, failures, dropped, accept } = queueUnderTest(30);
      queue.hold(accept('a'), false);
      queue.hold(accept('b'), false);
      const gone = new GatewayError('REVISION_GONE', 'revision demo/echo-00001 no longer exists');
      assert.equal(queue.releaseAll(gone), 2);
      assert.deepEqual(
        failures.map((failure) => `${failure.id}:${failure.code}`),
        ['a:REVISION_GONE', 'b:REVISION_GONE'],
      );
      assert.equal(queue.pending, 0);
      assert.equal(queue.releaseAll(gone), 0);
      await sleep(60);
      assert.equal(failures.length, 2, 'nothing expired after the release');
      assert.deepEqual(dropped, []);
    });
  });
});
