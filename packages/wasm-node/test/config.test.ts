import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { loadConfig, WASM_NODE_ENV_VARS } from '../src/index.ts';

describe('wasm-node config', () => {
  it('has defaults for everything', () => {
    const config = loadConfig({});
    assert.match(config.nodeName, /^afterlife-wasm-/);
    assert.equal(config.metricsPort, 9464);
    assert.equal(config.defaultPort, 8080);
    assert.equal(config.readinessPath, '/healthz');
    assert.equal(config.leaseDurationSeconds, 40);
    assert.equal(config.restartBackoffMs, 10_000);
    assert.equal(config.restartBackoffMaxMs, 300_000);
    assert.deepEqual(config.registries, []);
    assert.equal(config.deleteNodeOnExit, false);
    assert.ok(Object.isFrozen(config));
  });

  it('reads every AFTERLIFE_WASM_NODE_* variable it lists', () => {
    const config = loadConfig({
      AFTERLIFE_WASM_NODE_NAME: 'wasm-1',
      AFTERLIFE_WASM_NODE_METRICS_PORT: '0',
      AFTERLIFE_WASM_NODE_CPU: '500m',
      AFTERLIFE_WASM_NODE_MEMORY: '2Gi',
      AFTERLIFE_WASM_NODE_RESTART_BACKOFF: '1s',
      AFTERLIFE_WASM_NODE_RESTART_BACKOFF_MAX: '5s',
      AFTERLIFE_WASM_NODE_REGISTRIES: 'registry.internal:5000, other:443',
      AFTERLIFE_WASM_NODE_DELETE_ON_EXIT: 'true',
      AFTERLIFE_WASM_NODE_LOG_LEVEL: 'debug',
    });
    assert.equal(config.nodeName, 'wasm-1');
    assert.equal(config.metricsPort, 0);
    assert.equal(config.cpu, '500m');
    assert.equal(config.restartBackoffMs, 1000);
    assert.deepEqual(config.registries, ['registry.internal:5000', 'other:443']);
    assert.equal(config.deleteNodeOnExit, true);
    assert.equal(config.logLevel, 'debug');
    // The exported list is exactly what loadConfig reads.
    const seen: string[] = [];
    const env = new Proxy({} as Record<string, string | undefined>, {
      get: (_target, name) => {
        if (typeof name === 'string') seen.push(name);
        return undefined;
      },
    });
    loadConfig(env);
    assert.deepEqual([...new Set(seen)].sort(), [...WASM_NODE_ENV_VARS].sort());
  });

  it('names the variable in errors', () => {
    assert.throws(() => loadConfig({ AFTERLIFE_WASM_NODE_NAME: 'Bad_Name' }), /AFTERLIFE_WASM_NODE_NAME/);
    assert.throws(
      () => loadConfig({ AFTERLIFE_WASM_NODE_CPU: 'lots' }),
      /AFTERLIFE_WASM_NODE_CPU: must be a Kubernetes quantity/,
    );
    assert.throws(() => loadConfig({ AFTERLIFE_WASM_NODE_METRICS_PORT: '-1' }), /AFTERLIFE_WASM_NODE_METRICS_PORT/);
    assert.throws(
      () => loadConfig({ AFTERLIFE_WASM_NODE_RESTART_BACKOFF: '10s', AFTERLIFE_WASM_NODE_RESTART_BACKOFF_MAX: '1s' }),
      /AFTERLIFE_WASM_NODE_RESTART_BACKOFF_MAX/,
    );
    assert.throws(() => loadConfig({ AFTERLIFE_WASM_NODE_LOG_LEVEL: 'loud' }), /AFTERLIFE_WASM_NODE_LOG_LEVEL/);
  });
});
