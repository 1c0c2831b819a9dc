import assert from 'node:assert/strict';
import { ConfigError, EnvReader, freezeConfig, parseDuration } from '../src/index.ts';

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
