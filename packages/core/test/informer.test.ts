import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, InformerRunner, type RestartableInformer, withoutManagedFields } from '../src/index.ts';

/** An informer whose first `failures` starts fail the way client-node's do: an 'error' callback, then start() resolves. */
class FakeInformer implements RestartableInformer {
  starts = 0;
  stops = 0;
  readonly #onError: ((error?: unknown) => void)[] = [];
  private failures: number;
  constructor(failures: number) {
    this.failures = failures;
  }
  async start(): Promise<void> {
    this.starts += 1;
    if (this.failures > 0) {
      this.failures -= 1;
      for (const callback of this.#onError) callback(new Error(`list failed (${this.starts})`));
    }
  }
  async stop(): Promise<void> {
    this.stops += 1;
  }
  on(_verb: 'error', callback: (error?: unknown) => void): void {
    this.#onError.push(callback);
  }
  /** A watch that drops after a successful start. */
  drop(): void {
    for (const callback of this.#onError) callback(new Error('watch dropped'));
  }
}

describe('InformerRunner', () => {
  const lines: string[] = [];
  const logger = createLogger('informer-test', {
    level: 'warn',
    destination: new Writable({
      write: (chunk, _e, cb) => {
        lines.push(String(chunk));
        cb();
      },
    }),
  });
  const restartDelaysMs = [10, 20];

  it('resolves start() after the first attempt, retries with backoff and reports when it synced', async () => {
    const informer = new FakeInformer(2);
    const runner = new InformerRunner(informer, { logger, what: 'things', restartDelaysMs });
    await runner.start();
    assert.equal(runner.synced, false);
    assert.equal(informer.starts, 1);
    await runner.whenSynced();
    assert.equal(runner.synced, true);
    assert.equal(informer.starts, 3);
    assert.ok(
      lines.some((line) => line.includes('watching things failed; retrying') && line.includes('"retryInMs":20')),
    );
    await runner.stop();
  });

  it('restarts a watch that drops after syncing', async () => {
    const informer = new FakeInformer(0);
    const runner = new InformerRunner(informer, { logger, what: 'things', restartDelaysMs });
    await runner.start();
    assert.equal(runner.synced, true);
    informer.drop();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(informer.starts, 2);
    await runner.stop();
  });

  it('startAll() resolves once every runner has listed, failing ones after their retries', async () => {
    const informers = [new FakeInformer(0), new FakeInformer(2)];
    const runners = informers.map(
      (informer) => new InformerRunner(informer, { logger, what: 'things', restartDelaysMs }),
    );
    await InformerRunner.startAll(runners);
    assert.deepEqual(
      runners.map((runner) => runner.synced),
      [true, true],
    );
    assert.deepEqual(
      informers.map((informer) => informer.starts),
      [1, 3],
    );
    await Promise.all(runners.map((runner) => runner.stop()));
  });

  it('stops retrying once stopped, and whenSynced() resolves then', async () => {
    const informer = new FakeInformer(1000);
    const runner = new InformerRunner(informer, { logger, what: 'things', restartDelaysMs });
    await runner.start();
    const waiting = runner.whenSynced();
    await runner.stop();
    await waiting;
    const starts = informer.starts;
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(informer.starts, starts);
    assert.equal(runner.synced, false);
    assert.equal(informer.stops, 1);
  });
});

describe('lean informer caches', () => {
  it('drops managedFields and nothing else; an object without them is returned as it is', () => {
    const object = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'config-features',
        namespace: 'knative-serving',
        labels: { a: 'b' },
        managedFields: [{ manager: 'kubectl', operation: 'Apply' }],
      },
      data: { x: 'y' },
    };
    assert.deepEqual(withoutManagedFields(object), {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'config-features', namespace: 'knative-serving', labels: { a: 'b' } },
      data: { x: 'y' },
    });
    assert.ok(object.metadata.managedFields, 'the input is not changed');
    const bare = { metadata: { name: 'n' } };
    assert.equal(withoutManagedFields(bare), bare);
  });
});
