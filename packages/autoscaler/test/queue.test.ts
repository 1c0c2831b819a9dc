import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue } from '../src/queue.ts';

describe('WorkQueue', () => {
  it('queues a key once and never hands it to two workers at the same time', async () => {
    const running = new Set<string>();
    const handled: string[] = [];
    let overlap = false;
    const queue = new WorkQueue({
      workers: 4,
      handle: async (key) => {
        if (running.has(key)) overlap = true;
        running.add(key);
        await sleep(20);
        running.delete(key);
        handled.push(key);
      },
    });
    queue.add('a');
    queue.add('a');
    queue.add('b');
    await sleep(5);
    queue.add('a'); // changed while being handled: handled once more afterwards
    queue.add('a');
    await queue.whenIdle();
    assert.equal(overlap, false);
    assert.deepEqual(handled.sort(), ['a', 'a', 'b']);
  });

  it('retries a failing key with growing backoff until it succeeds, and forget() cancels a retry', async () => {
    const attempts: number[] = [];
    const delays: number[] = [];
    const queue = new WorkQueue({
      workers: 1,
      baseDelayMs: 10,
      handle: async () => {
        attempts.push(Date.now());
        if (attempts.length < 3) throw new Error('conflict');
      },
      onError: (_key, _error, retryInMs) => delays.push(retryInMs),
    });
    queue.add('x');
    for (let i = 0; i < 100 && attempts.length < 3; i++) await sleep(10);
    assert.equal(attempts.length, 3);
    assert.deepEqual(delays, [10, 20]);

    let calls = 0;
    const counted = new WorkQueue({
      workers: 1,
      baseDelayMs: 30,
      handle: async () => {
        calls += 1;
        throw new Error('no');
      },
    });
    counted.add('y');
    await counted.whenIdle();
    counted.forget('y');
    await sleep(80);
    assert.equal(calls, 1);
    await counted.stop();
    await queue.stop();
  });
});
