import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '@afterlife/core';
import { KubeConfig } from '@kubernetes/client-node';
import { KnativeConfigWatcher, NamespaceLabelWatcher } from '../src/watch.ts';

describe('watchers without a reachable API server', () => {
  const lines: string[] = [];
  const logger = createLogger('webhook-test', {
    level: 'warn',
    destination: new Writable({
      write: (chunk, _e, cb) => {
        lines.push(String(chunk));
        cb();
      },
    }),
  });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u', token: 'x' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });

  it('stay unsynced (not ready), log the failure and retry until stopped', async () => {
    const knative = new KnativeConfigWatcher(kubeConfig, 'knative-serving', logger);
    const namespaces = new NamespaceLabelWatcher(kubeConfig, logger);
    await knative.start();
    await namespaces.start();
    assert.equal(knative.synced, false);
    assert.equal(knative.features.synced, false);
    assert.equal(namespaces.labels('demo'), undefined);
    await assert.rejects(knative.waitForSync(100), /not synced after 100 ms/);
    await knative.stop();
    await namespaces.stop();
    assert.ok(
      lines.some((line) => line.includes('watching ConfigMaps in knative-serving failed; retrying')),
      lines.join(''),
    );
  });
});
