import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import {
  AfterlifeError,
  ConfigError,
  CoreError,
  createLogger,
  createMetricsRegistry,
  errorMessage,
  hasCode,
  isUsageError,
  UsageError,
} from '../src/index.ts';

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

describe('core errors', () => {
  it('are AfterlifeErrors with codes from the closed CoreErrorCode union', () => {
    const usage = new UsageError('--profile must be short or full');
    assert.ok(usage instanceof CoreError && usage instanceof AfterlifeError);
    assert.equal(usage.code, 'USAGE');
    assert.equal(usage.name, 'UsageError');
    assert.ok(isUsageError(usage));
    assert.ok(isUsageError(Object.assign(new TypeError('x'), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' })));
    assert.ok(!isUsageError(new CoreError('PROBE_FAILED', 'x')));
    const config = new ConfigError('X', 'is bad');
    assert.equal(config.code, 'CONFIG_INVALID');
    assert.equal(config.message, 'X: is bad');
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
