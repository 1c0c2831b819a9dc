import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { ConfigError } from '@afterlife/core';
import { GATEWAY_ENV_VARS, loadConfig } from '../src/config.ts';

describe('loadConfig', () => {
  it('has documented defaults', () => {
    const config = loadConfig({});
    assert.equal(config.id, hostname());
    assert.equal(config.port, 8080);
    assert.equal(config.adminPort, 9090);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.pendingLimit, 1000);
    assert.equal(config.coldStartTimeoutMs, 60_000);
    assert.equal(config.replicaConcurrency, 10);
    assert.equal(config.rateWindowMs, 60_000);
    assert.equal(config.bodyLimitBytes, 1024 * 1024);
    assert.equal(config.discovery, 'knative');
    assert.equal(config.functionLabel, 'afterlife.dev/function');
    assert.deepEqual(config.namespaces, []);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.namespaces));
  });

  it('reads every AFTERLIFE_GATEWAY_* setting', () => {
    const config = loadConfig({
      AFTERLIFE_GATEWAY_ID: 'gw-0',
      AFTERLIFE_GATEWAY_PORT: '8081',
      AFTERLIFE_GATEWAY_ADMIN_PORT: '9091',
      AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
      AFTERLIFE_GATEWAY_PENDING_LIMIT: '5',
      AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: '90s',
      AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY: '0',
      AFTERLIFE_GATEWAY_RATE_WINDOW: '30s',
      AFTERLIFE_GATEWAY_DELIVERY_TIMEOUT: '2m',
      AFTERLIFE_GATEWAY_DRAIN_TIMEOUT: '10s',
      AFTERLIFE_GATEWAY_BODY_LIMIT: '256kib',
      AFTERLIFE_GATEWAY_RETRY_AFTER: '1500ms',
      AFTERLIFE_GATEWAY_EJECT_TIME: '1s',
      AFTERLIFE_GATEWAY_LOG_LEVEL: 'debug',
      AFTERLIFE_GATEWAY_DISCOVERY: 'label',
      AFTERLIFE_GATEWAY_FUNCTION_LABEL: 'serving.knative.dev/service',
      AFTERLIFE_GATEWAY_SERVICE_SELECTOR: 'networking.internal.knative.dev/serviceType=Private',
      AFTERLIFE_GATEWAY_NAMESPACES: 'a, b',
      AFTERLIFE_GATEWAY_PROBE_NOT_READY: 'false',
    });
    assert.deepEqual(
      { ...config, namespaces: [...config.namespaces] },
      {
        id: 'gw-0',
        port: 8081,
        adminPort: 9091,
        host: '127.0.0.1',
        pendingLimit: 5,
        coldStartTimeoutMs: 90_000,
        replicaConcurrency: 0,
        rateWindowMs: 30_000,
        deliveryTimeoutMs: 120_000,
        drainTimeoutMs: 10_000,
        bodyLimitBytes: 256 * 1024,
        retryAfterSeconds: 2,
        ejectMs: 1000,
        logLevel: 'debug',
        discovery: 'label',
        functionLabel: 'serving.knative.dev/service',
        serviceSelector: 'networking.internal.knative.dev/serviceType=Private',
        namespaces: ['a', 'b'],
        probeNotReady: false,
      },
    );
  });

  it('names the variable in every error', () => {
    const cases: [Record<string, string>, string][] = [
      [{ AFTERLIFE_GATEWAY_PORT: 'http' }, 'AFTERLIFE_GATEWAY_PORT'],
      [{ AFTERLIFE_GATEWAY_PORT: '9090' }, 'AFTERLIFE_GATEWAY_ADMIN_PORT'],
      [{ AFTERLIFE_GATEWAY_PENDING_LIMIT: '0' }, 'AFTERLIFE_GATEWAY_PENDING_LIMIT'],
      [{ AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: 'soon' }, 'AFTERLIFE_GATEWAY_COLD_START_TIMEOUT'],
      [{ AFTERLIFE_GATEWAY_RATE_WINDOW: '1500ms' }, 'AFTERLIFE_GATEWAY_RATE_WINDOW'],
      [{ AFTERLIFE_GATEWAY_BODY_LIMIT: 'lots' }, 'AFTERLIFE_GATEWAY_BODY_LIMIT'],
      [{ AFTERLIFE_GATEWAY_DISCOVERY: 'dns' }, 'AFTERLIFE_GATEWAY_DISCOVERY'],
      [{ AFTERLIFE_GATEWAY_FUNCTION_LABEL: 'not a label' }, 'AFTERLIFE_GATEWAY_FUNCTION_LABEL'],
      [{ AFTERLIFE_GATEWAY_LOG_LEVEL: 'loud' }, 'AFTERLIFE_GATEWAY_LOG_LEVEL'],
      [{ AFTERLIFE_GATEWAY_PROBE_NOT_READY: 'sometimes' }, 'AFTERLIFE_GATEWAY_PROBE_NOT_READY'],
    ];
    for (const [env, variable] of cases) {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => error instanceof ConfigError && error.variable === variable,
        `${JSON.stringify(env)} should name ${variable}`,
      );
    }
  });

  it('reads AFTERLIFE_GATEWAY_BODY_LIMIT in decimal and binary units (1mb = 1,000,000 bytes, 4mib = 4 MiB)', () => {
    const limit = (value: string) => loadConfig({ AFTERLIFE_GATEWAY_BODY_LIMIT: value }).bodyLimitBytes;
    assert.equal(limit('1mb'), 1_000_000);
    assert.equal(limit('512kb'), 512_000);
    assert.equal(limit('4mib'), 4 * 1024 * 1024);
    assert.equal(limit('256KiB'), 256 * 1024);
    assert.equal(limit('10'), 10);
    assert.throws(
      () => loadConfig({ AFTERLIFE_GATEWAY_BODY_LIMIT: '1.5mb' }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.variable === 'AFTERLIFE_GATEWAY_BODY_LIMIT' &&
        /kb\/mb\/gb = 1000ⁿ bytes, kib\/mib\/gib = 1024ⁿ bytes/.test(error.message),
    );
  });

  it('exports every variable it reads, each documented in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const source = readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8');
    const read = [...source.matchAll(/read\.\w+\('(AFTERLIFE_GATEWAY_\w+)'/g)].map((match) => match[1]);
    assert.deepEqual([...new Set(read)].sort(), [...GATEWAY_ENV_VARS].sort());
    for (const name of GATEWAY_ENV_VARS) assert.ok(readme.includes(`\`${name}\``), `${name} missing from README`);
  });
});
