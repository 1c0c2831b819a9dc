import assert from 'node:assert/strict';
import { ConfigError, EnvReader, formatSize, freezeConfig, parseDuration, parseSize } from '../src/index.ts';

describe('EnvReader', () => {
  it('reads typed values and falls back to defaults for unset or blank variables', () => {
    const env = new EnvReader({ PORT: '8443', DEBUG: 'true', BLANK: '  ', LIST: 'a, b,,c' });
    assert.equal(env.integer('PORT', 1), 8443);
    assert.equal(env.boolean('DEBUG', false), true);
    assert.equal(env.string('BLANK', 'fallback'), 'fallback');
    assert.deepEqual(env.list('LIST'), ['a', 'b', 'c']);
    assert.equal(env.duration('MISSING', 1500), 1500);
    assert.deepEqual(env.variablesRead, ['BLANK', 'DEBUG', 'LIST', 'MISSING', 'PORT']);
  });

  const invalid: Array<[string, (env: EnvReader) => unknown, RegExp]> = [
    ['a non-integer', (e) => e.integer('X', 0), /X: must be a whole number, got "1.5"/],
    [
      'an out-of-range integer',
      (e) => e.integer('X', 0, { max: 1 }),
      /X: must be at most 1, got 1.5|X: must be a whole number/,
    ],
    ['a bad boolean', (e) => e.boolean('X', false), /X: must be true or false, got "1.5"/],
    ['a bad enum', (e) => e.oneOf('X', ['a', 'b'], 'a'), /X: must be one of a, b, got "1.5"/],
    ['a missing required value', (e) => e.requiredString('Y'), /Y: is required but not set/],
  ];
  for (const [what, read, message] of invalid) {
    it(`names the variable when given ${what}`, () => {
      const env = new EnvReader({ X: '1.5' });
      assert.throws(
        () => read(env),
        (error: unknown) =>
          error instanceof ConfigError && error.code === 'CONFIG_INVALID' && message.test(error.message),
      );
    });
  }

  it('rejects durations without a known unit and enforces bounds', () => {
    assert.throws(() => new EnvReader({ T: '5 parsecs' }).duration('T', 0), /T: must be a duration/);
    assert.throws(() => new EnvReader({ T: '10ms' }).duration('T', 0, { min: 100 }), /T: must be at least 100, got 10/);
  });
});

describe('parseDuration', () => {
  it('understands ms, s, m, h and bare milliseconds', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('42'), 42);
    assert.equal(parseDuration('-1s'), undefined);
    assert.equal(parseDuration('s'), undefined);
  });
});

describe('sizes', () => {
  it('reads decimal units as powers of 1000 and binary units as powers of 1024, any case', () => {
    assert.equal(parseSize('1024'), 1024);
    assert.equal(parseSize('10b'), 10);
    assert.equal(parseSize('2KB'), 2000);
    assert.equal(parseSize('512 KB'), 512_000);
    assert.equal(parseSize('1mb'), 1_000_000);
    assert.equal(parseSize('1gb'), 1_000_000_000);
    assert.equal(parseSize('2KiB'), 2048);
    assert.equal(parseSize('4mib'), 4 * 1024 * 1024);
    assert.equal(parseSize('1gib'), 1024 ** 3);
  });

  it('refuses fractions, negatives, unknown units and absurd sizes', () => {
    for (const bad of ['1.5mb', '-1', 'lots', '5 parsecs', '4m', '', '99999999999999999999gib']) {
      assert.equal(parseSize(bad), undefined, bad);
    }
  });

  it('spells a byte count with the largest exact unit', () => {
    assert.equal(formatSize(4 * 1024 * 1024), '4mib');
    assert.equal(formatSize(1_000_000), '1mb');
    assert.equal(formatSize(1024), '1kib');
    assert.equal(formatSize(1500), '1500');
  });

  it('names the variable and the units when a size setting is bad, and enforces bounds', () => {
    const read = (value: string) =>
      new EnvReader({ LIMIT: value }).size('LIMIT', '1mib', { min: 1024, max: 1024 ** 2 });
    assert.equal(new EnvReader({}).size('LIMIT', '1mib'), 1024 ** 2);
    assert.equal(read('512kib'), 512 * 1024);
    assert.throws(
      () => read('lots'),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.variable === 'LIMIT' &&
        /LIMIT: must be a size like 512kb, 4mib or 1048576 \(kb\/mb\/gb = 1000ⁿ bytes, kib\/mib\/gib = 1024ⁿ bytes\), got "lots"/.test(
          error.message,
        ),
    );
    assert.throws(() => read('1000'), /LIMIT: must be at least 1kib, got "1000"/);
    assert.throws(() => read('2mb'), /LIMIT: must be at most 1mib, got "2mb" \(2000000 bytes\)/);
  });
});

describe('freezeConfig', () => {
  it('freezes nested objects so config cannot drift after start-up', () => {
    const config = freezeConfig({ tls: { certFile: 'a' }, names: ['x'] });
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.tls));
    assert.ok(Object.isFrozen(config.names));
    assert.equal(Reflect.set(config.tls, 'certFile', 'b'), false);
    assert.equal(config.tls.certFile, 'a');
  });
});
