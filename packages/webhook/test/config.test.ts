import assert from 'node:assert/strict';
import { ConfigError } from '@afterlife/core';
import { loadConfig, WEBHOOK_ENV_VARS } from '../src/config.ts';

describe('loadConfig', () => {
  it('has production defaults', () => {
    const config = loadConfig({});
    assert.equal(config.port, 8443);
    assert.equal(config.runtimeClass, 'wasmedge');
    assert.equal(config.wasmVariant, 'compat-smart');
    assert.equal(config.scalerAddress, 'afterlife-scaler.afterlife-system.svc:9090');
    assert.equal(config.defaultTargetValue, 10);
    assert.equal(config.imageDetection, false);
    assert.equal(config.knativeNamespace, 'knative-serving');
    assert.equal(config.bodyLimitBytes, 4 * 1024 * 1024);
    assert.ok(Object.isFrozen(config));
  });

  it('reads every variable in WEBHOOK_ENV_VARS and nothing else', () => {
    const seen = new Set<string>();
    const env = new Proxy(
      {},
      {
        get: (_t, name) => {
          if (typeof name === 'string') seen.add(name);
          return undefined;
        },
      },
    );
    loadConfig(env);
    assert.deepEqual([...seen].sort(), [...WEBHOOK_ENV_VARS].sort());
  });

  it('parses typed values', () => {
    const config = loadConfig({
      AFTERLIFE_WEBHOOK_PORT: '9443',
      AFTERLIFE_WEBHOOK_RUNTIME_CLASS: 'crun-wasm',
      AFTERLIFE_WEBHOOK_IMAGE_DETECTION: 'true',
      AFTERLIFE_WEBHOOK_INSECURE_REGISTRIES: '127.0.0.1:5000, registry.local',
      AFTERLIFE_WEBHOOK_REQUEST_TIMEOUT: '5s',
      AFTERLIFE_WEBHOOK_BODY_LIMIT: '1mb',
      AFTERLIFE_WEBHOOK_LOG_LEVEL: 'debug',
    });
    assert.equal(config.port, 9443);
    assert.equal(config.runtimeClass, 'crun-wasm');
    assert.equal(config.imageDetection, true);
    assert.deepEqual(config.insecureRegistries, ['127.0.0.1:5000', 'registry.local']);
    assert.equal(config.requestTimeoutMs, 5000);
    assert.equal(config.bodyLimitBytes, 1_000_000);
    assert.equal(config.logLevel, 'debug');
  });

  const invalid: Array<[string, string]> = [
    ['AFTERLIFE_WEBHOOK_RUNTIME_CLASS', 'Not_A_Name'],
    ['AFTERLIFE_WEBHOOK_SCALER_ADDRESS', 'no-port'],
    ['AFTERLIFE_WEBHOOK_BODY_LIMIT', 'huge'],
    ['AFTERLIFE_WEBHOOK_PORT', '70000'],
    ['AFTERLIFE_WEBHOOK_WASM_VARIANT', 'wasm'],
    ['AFTERLIFE_WEBHOOK_SCALING_ROUTE', 'keda'],
    ['AFTERLIFE_WEBHOOK_INSECURE_REGISTRIES', 'http://x'],
    ['AFTERLIFE_WEBHOOK_DEFAULT_TARGET_VALUE', '0'],
    ['AFTERLIFE_WEBHOOK_KNATIVE_NAMESPACE', 'Knative'],
  ];
  for (const [name, value] of invalid) {
    it(`rejects ${name}=${value} naming the variable`, () => {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (error: unknown) => error instanceof ConfigError && error.variable === name && error.code === 'CONFIG_INVALID',
      );
    });
  }

  it('reads AFTERLIFE_WEBHOOK_BODY_LIMIT in decimal and binary units (1mb = 1,000,000 bytes, 1gib = 1024³)', () => {
    const limit = (value: string) => loadConfig({ AFTERLIFE_WEBHOOK_BODY_LIMIT: value }).bodyLimitBytes;
    assert.equal(limit('4mib'), 4 * 1024 * 1024);
    assert.equal(limit('512 KB'), 512_000);
    assert.equal(limit('1024'), 1024);
    assert.equal(limit('64MiB'), 64 * 1024 * 1024);
    for (const [value, message] of [
      ['1.5mb', /kb\/mb\/gb = 1000ⁿ bytes, kib\/mib\/gib = 1024ⁿ bytes/],
      ['1gib', /must be at most 64mib, got "1gib"/],
      ['1000', /must be at least 1kib, got "1000"/],
    ] as const) {
      assert.throws(
        () => loadConfig({ AFTERLIFE_WEBHOOK_BODY_LIMIT: value }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.variable === 'AFTERLIFE_WEBHOOK_BODY_LIMIT' &&
          message.test(error.message),
        value,
      );
    }
  });
});
