import assert from 'node:assert/strict';
import { ConfigError } from '@afterlife/core';
import { loadConfig, SCALER_ENV_VARS } from '../src/config.ts';

const base = { AFTERLIFE_SCALER_GATEWAY_URLS: 'http://127.0.0.1:9090' };

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail('expected a ConfigError');
}

describe('scaler config', () => {
  it('has the documented defaults and is frozen', () => {
    const config = loadConfig(base);
    assert.deepEqual(config, {
      host: '0.0.0.0',
      port: 9090,
      metricsPort: 9091,
      gatewayUrls: ['http://127.0.0.1:9090'],
      gatewayService: undefined,
      staleAfterMs: 5000,
      pollIntervalMs: 500,
      streamIntervalMs: 1000,
      tls: undefined,
      logLevel: 'info',
    });
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.gatewayUrls));
  });

  it('reads every setting', () => {
    const config = loadConfig({
      AFTERLIFE_SCALER_HOST: '127.0.0.1',
      AFTERLIFE_SCALER_PORT: '7000',
      AFTERLIFE_SCALER_METRICS_PORT: '7001',
      AFTERLIFE_SCALER_GATEWAY_SERVICE: 'afterlife-system/afterlife-gateway',
      AFTERLIFE_SCALER_STALE_AFTER: '10s',
      AFTERLIFE_SCALER_POLL_INTERVAL: '250ms',
      AFTERLIFE_SCALER_STREAM_INTERVAL: '2s',
      AFTERLIFE_SCALER_TLS_CERT_FILE: '/tls/tls.crt',
      AFTERLIFE_SCALER_TLS_KEY_FILE: '/tls/tls.key',
      AFTERLIFE_SCALER_TLS_CA_FILE: '/tls/ca.crt',
      AFTERLIFE_SCALER_LOG_LEVEL: 'debug',
    });
    assert.deepEqual(config.gatewayService, {
      namespace: 'afterlife-system',
      name: 'afterlife-gateway',
      portName: 'admin',
    });
    assert.deepEqual(config.tls, { certFile: '/tls/tls.crt', keyFile: '/tls/tls.key', caFile: '/tls/ca.crt' });
    assert.equal(config.port, 7000);
    assert.equal(config.metricsPort, 7001);
    assert.equal(config.staleAfterMs, 10_000);
    assert.equal(config.pollIntervalMs, 250);
    assert.equal(config.streamIntervalMs, 2000);
    assert.equal(config.logLevel, 'debug');
  });

  it('normalises gateway URLs', () => {
    const config = loadConfig({ AFTERLIFE_SCALER_GATEWAY_URLS: 'http://10.0.0.1:9090/, https://gw.example:9443' });
    assert.deepEqual(config.gatewayUrls, ['http://10.0.0.1:9090', 'https://gw.example:9443']);
  });

  it('names the variable in every error', () => {
    assert.equal(configError({}).variable, 'AFTERLIFE_SCALER_GATEWAY_URLS');
    assert.equal(
      configError({ ...base, AFTERLIFE_SCALER_GATEWAY_SERVICE: 'a/b' }).variable,
      'AFTERLIFE_SCALER_GATEWAY_SERVICE',
    );
    assert.match(
      configError({ AFTERLIFE_SCALER_GATEWAY_URLS: 'ftp://x' }).message,
      /AFTERLIFE_SCALER_GATEWAY_URLS: "ftp:\/\/x" must be an http/,
    );
    assert.match(configError({ AFTERLIFE_SCALER_GATEWAY_URLS: 'not a url' }).message, /is not a URL/);
    assert.match(configError({ AFTERLIFE_SCALER_GATEWAY_SERVICE: 'just-a-name' }).message, /must be namespace\/name/);
    assert.match(
      configError({ AFTERLIFE_SCALER_GATEWAY_SERVICE: 'ns/Bad_Name' }).message,
      /not a valid Kubernetes name/,
    );
    assert.equal(configError({ ...base, AFTERLIFE_SCALER_PORT: '70000' }).variable, 'AFTERLIFE_SCALER_PORT');
    assert.equal(
      configError({ ...base, AFTERLIFE_SCALER_PORT: '9000', AFTERLIFE_SCALER_METRICS_PORT: '9000' }).variable,
      'AFTERLIFE_SCALER_METRICS_PORT',
    );
    assert.equal(
      configError({ ...base, AFTERLIFE_SCALER_STALE_AFTER: 'soon' }).variable,
      'AFTERLIFE_SCALER_STALE_AFTER',
    );
    assert.equal(
      configError({ ...base, AFTERLIFE_SCALER_POLL_INTERVAL: '5s', AFTERLIFE_SCALER_STALE_AFTER: '5s' }).variable,
      'AFTERLIFE_SCALER_POLL_INTERVAL',
    );
    assert.equal(
      configError({ ...base, AFTERLIFE_SCALER_TLS_KEY_FILE: '/k' }).variable,
      'AFTERLIFE_SCALER_TLS_CERT_FILE',
    );
    assert.equal(
      configError({ ...base, AFTERLIFE_SCALER_TLS_CERT_FILE: '/c' }).variable,
      'AFTERLIFE_SCALER_TLS_KEY_FILE',
    );
    assert.equal(
      configError({ ...base, AFTERLIFE_SCALER_TLS_CA_FILE: '/ca' }).variable,
      'AFTERLIFE_SCALER_TLS_CA_FILE',
    );
    assert.equal(configError({ ...base, AFTERLIFE_SCALER_LOG_LEVEL: 'loud' }).variable, 'AFTERLIFE_SCALER_LOG_LEVEL');
  });

  it('exports exactly the variables it reads', () => {
    const seen = new Set<string>();
    const env = new Proxy(base as Record<string, string | undefined>, {
      get(target, key: string) {
        seen.add(key);
        return target[key];
      },
    });
    loadConfig(env);
    assert.deepEqual([...seen].filter((k) => k.startsWith('AFTERLIFE_')).sort(), [...SCALER_ENV_VARS].sort());
    assert.deepEqual(
      [...seen].filter((k) => !k.startsWith('AFTERLIFE_SCALER_')),
      [],
      'reads nothing outside its own AFTERLIFE_SCALER_ prefix',
    );
  });
});
