import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { AfterlifeError, createLogger, createMetricsRegistry, errorMessage, hasCode } from '../src/index.ts';

describe('AfterlifeError', () => {
  it('keeps its code and cause', () => {
    const cause = new Error('socket hang up');
    const error = new AfterlifeError('DELIVERY_FAILED', 'could not deliver', { cause });
    assert.equal(error.code, 'DELIVERY_FAILED');
    assert.equal(error.cause, cause);
    assert.equal(error.name, 'AfterlifeError');
    assert.ok(hasCode(error, 'DELIVERY_FAILED'));
    assert.ok(!hasCode(cause, 'DELIVERY_FAILED'));
    assert.equal(errorMessage('plain'), 'plain');
  });
});

describe('createLogger', () => {
  it('writes one JSON object per line with component and level', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger('webhook', { destination, level: 'debug' });
    logger.debug({ uid: 'abc' }, 'admitted');
    const record = JSON.parse(lines.join('')) as Record<string, unknown>;
    assert.equal(record.component, 'webhook');
    assert.equal(record.level, 'debug');
    assert.equal(record.msg, 'admitted');
    assert.equal(record.uid, 'abc');
  });
});

describe('createMetricsRegistry', () => {
  it('labels every metric with the component and keeps registries apart', async () => {
    const a = createMetricsRegistry('gateway');
    const b = createMetricsRegistry('scaler', { defaultMetrics: false });
    assert.match(await a.metrics(), /afterlife_process_cpu_user_seconds_total\{component="gateway"\}/);
    assert.equal((await b.metrics()).trim(), '');
  });
});
