import assert from 'node:assert/strict';
import { ConfigError } from '@afterlife/core';
import { AUTOSCALER_ENV_VARS, loadConfig } from '../src/config.ts';

describe('autoscaler config', () => {
  it('has defaults for everything, frozen', () => {
    const config = loadConfig({});
    assert.equal(config.class, 'afterlife.dev');
    assert.equal(config.scalerAddress, 'afterlife-scaler.afterlife-system.svc:9090');
    assert.equal(config.scalerTlsAuthentication, '');
    assert.deepEqual(config.namespaces, []);
    assert.deepEqual(config.defaults, {
      maxScale: 10,
      target: 10,
      metric: 'concurrency',
      cooldownSeconds: 30,
      pollingIntervalSeconds: 5,
    });
    assert.equal(config.lease.namespace, 'afterlife-system');
    assert.equal(config.lease.durationMs, 15_000);
    assert.equal(config.resyncMs, 300_000);
    assert.equal(config.workers, 4);
    assert.equal(config.adminPort, 9090);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.defaults) && Object.isFrozen(config.lease));
  });

  it('reads every setting', () => {
    const config = loadConfig({
      AFTERLIFE_AUTOSCALER_SCALER_ADDRESS: '127.0.0.1:9999',
      AFTERLIFE_AUTOSCALER_SCALER_TLS_AUTHENTICATION: 'afterlife-scaler-tls',
      AFTERLIFE_AUTOSCALER_NAMESPACES: 'a,b',
      AFTERLIFE_AUTOSCALER_DEFAULT_COOLDOWN: '2m',
      AFTERLIFE_AUTOSCALER_DEFAULT_POLLING_INTERVAL: '1s',
      AFTERLIFE_AUTOSCALER_DEFAULT_METRIC: 'rate',
      AFTERLIFE_AUTOSCALER_WORKERS: '8',
    });
    assert.equal(config.scalerTlsAuthentication, 'afterlife-scaler-tls');
    assert.deepEqual(config.namespaces, ['a', 'b']);
    assert.equal(config.defaults.cooldownSeconds, 120);
    assert.equal(config.defaults.pollingIntervalSeconds, 1);
    assert.equal(config.defaults.metric, 'rate');
    assert.equal(config.workers, 8);
    assert.equal(AUTOSCALER_ENV_VARS.length, new Set(AUTOSCALER_ENV_VARS).size);
  });

  for (const [name, value, message] of [
    ['AFTERLIFE_AUTOSCALER_SCALER_ADDRESS', 'no-port', /host:port/],
    ['AFTERLIFE_AUTOSCALER_SCALER_TLS_AUTHENTICATION', 'Not_A_Name', /ClusterTriggerAuthentication/],
    ['AFTERLIFE_AUTOSCALER_NAMESPACES', 'ok,Bad_NS', /not a namespace name/],
    ['AFTERLIFE_AUTOSCALER_LEASE_NAMESPACE', 'x_y', /not a namespace name/],
    ['AFTERLIFE_AUTOSCALER_LEASE_RENEW_DEADLINE', '20s', /shorter than AFTERLIFE_AUTOSCALER_LEASE_DURATION/],
    ['AFTERLIFE_AUTOSCALER_DEFAULT_COOLDOWN', '1500ms', /whole seconds/],
    ['AFTERLIFE_AUTOSCALER_DEFAULT_POLLING_INTERVAL', '0s', /at least/],
    ['AFTERLIFE_AUTOSCALER_DEFAULT_METRIC', 'cpu', /one of/],
    ['AFTERLIFE_AUTOSCALER_DEFAULT_MAX_SCALE', '0', /at least 1/],
    ['AFTERLIFE_AUTOSCALER_WORKERS', 'many', /whole number/],
    ['AFTERLIFE_AUTOSCALER_LOG_LEVEL', 'loud', /one of/],
  ] as const) {
    it(`${name}=${value} is refused naming the variable`, () => {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (error: unknown) => error instanceof ConfigError && error.message.includes(name) && message.test(error.message),
      );
    });
  }

  it('a retry period not shorter than the renew deadline is refused', () => {
    assert.throws(
      () => loadConfig({ AFTERLIFE_AUTOSCALER_LEASE_RETRY_PERIOD: '10s' }),
      (error: unknown) => error instanceof ConfigError && /AFTERLIFE_AUTOSCALER_LEASE_RETRY_PERIOD/.test(error.message),
    );
  });
});
