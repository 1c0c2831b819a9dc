import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnNode } from '@afterlife/core/testing';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

describe('main (the gateway process, without a cluster)', function () {
  this.timeout(30_000);
  const dir = mkdtempSync(join(tmpdir(), 'afterlife-gateway-main-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 2 naming the variable on a bad configuration', async () => {
    const proc = spawnNode(MAIN, { env: { AFTERLIFE_GATEWAY_BODY_LIMIT: 'lots' } });
    assert.equal(await proc.exited, 2);
    assert.match(proc.output(), /"variable":"AFTERLIFE_GATEWAY_BODY_LIMIT"/);
  });

  it('keeps retrying while the API is unreachable and exits 0 at once on SIGTERM', async () => {
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    const proc = spawnNode(MAIN, {
      env: {
        KUBECONFIG: kubeconfig,
        AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
        AFTERLIFE_GATEWAY_PORT: '0',
        AFTERLIFE_GATEWAY_ADMIN_PORT: '0',
      },
    });
    try {
      await proc.waitFor('failed; retrying');
      proc.child.kill('SIGTERM');
      assert.equal(await proc.exited, 0, proc.output());
      assert.match(proc.output(), /"msg":"shutting down"/);
    } finally {
      proc.child.kill('SIGKILL');
    }
  });
});
