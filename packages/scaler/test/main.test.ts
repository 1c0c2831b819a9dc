import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { spawnNode } from '@afterlife/core/testing';
import * as grpc from '@grpc/grpc-js';
import { call, counts, FakeGateway, ref, scalerClientConstructor, waitFor } from './helpers.ts';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

const run = (env: Record<string, string>) => spawnNode(MAIN, { env });

describe('main (the process)', function () {
  this.timeout(30_000);

  it('starts from env, answers KEDA, and exits 0 on SIGTERM', async () => {
    const gateway = await FakeGateway.start('gw-main');
    const proc = run({
      AFTERLIFE_SCALER_HOST: '127.0.0.1',
      AFTERLIFE_SCALER_PORT: '0',
      AFTERLIFE_SCALER_METRICS_PORT: '0',
      AFTERLIFE_SCALER_GATEWAY_URLS: gateway.url,
    });
    try {
      gateway.set([counts('ns', 'f', { pending: 2 })]);
      const line = await waitFor(
        'listening log line',
        () =>
          proc
            .output()
            .split('\n')
            .find((l) => l.includes('"msg":"scaler listening"')),
        15_000,
      );
      const { port } = JSON.parse(line) as { port: number };
      const ScalerClient = scalerClientConstructor();
      const client = new ScalerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      try {
        await waitFor(
          'active',
          async () => (await call(client.IsActive, client, ref({ function: 'ns/f' }))).result,
          5000,
          50,
        );
      } finally {
        client.close();
      }
      proc.child.kill('SIGTERM');
      assert.equal(await proc.exited, 0);
      assert.match(proc.output(), /"msg":"scaler stopped"/);
    } finally {
      proc.child.kill('SIGKILL');
      await gateway.close();
    }
  });

  it('exits 2 naming the variable when the config is bad, like the other components', async () => {
    const proc = run({ AFTERLIFE_SCALER_PORT: 'ninety' });
    try {
      assert.equal(await proc.exited, 2);
      assert.match(proc.output(), /AFTERLIFE_SCALER_PORT: must be a whole number, got \\"ninety\\"/);
      assert.match(proc.output(), /"variable":"AFTERLIFE_SCALER_PORT"/);
    } finally {
      proc.child.kill('SIGKILL');
    }
  });
});
