import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { spawnNode, type TestProcess } from '@afterlife/core/testing';
import { createTestPki, httpsRequest, issueServerCert, type TestPki } from './tls.ts';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function exitOf(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('process did not exit in time')), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe('main (the webhook process)', function () {
  this.timeout(30_000);
  let pki: TestPki;
  let proc: TestProcess | undefined;

  before(async () => {
    pki = await createTestPki();
  });
  afterEach(() => {
    if (proc !== undefined && proc.child.exitCode === null) proc.child.kill('SIGKILL');
    proc = undefined;
  });
  after(async () => {
    await pki?.cleanup();
  });

  const start = (env: Record<string, string>) => {
    proc = spawnNode(MAIN, { env });
    return proc;
  };
  const output = () => proc?.output() ?? '';

  it('exits with code 2 and names the variable on invalid configuration', async () => {
    const webhook = start({ AFTERLIFE_WEBHOOK_RUNTIME_CLASS: 'Not Valid' });
    assert.equal(await exitOf(webhook.child, 20_000), 2);
    assert.match(output(), /AFTERLIFE_WEBHOOK_RUNTIME_CLASS/);
  });

  it('serves /healthz at once, stays unready without Knative ConfigMaps, and stops cleanly on SIGTERM', async () => {
    const { certFile, keyFile } = await issueServerCert(pki, 'main');
    const kubeconfig = join(pki.dir, 'kubeconfig');
    // An API server that is not there: the webhook must serve liveness but not readiness.
    await writeFile(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
    );
    const port = await freePort();
    const webhook = start({
      KUBECONFIG: kubeconfig,
      AFTERLIFE_WEBHOOK_BIND_ADDRESS: '127.0.0.1',
      AFTERLIFE_WEBHOOK_PORT: String(port),
      AFTERLIFE_WEBHOOK_TLS_CERT_FILE: certFile,
      AFTERLIFE_WEBHOOK_TLS_KEY_FILE: keyFile,
    });
    const deadline = Date.now() + 20_000;
    let health: number | undefined;
    while (health !== 200 && Date.now() < deadline) {
      health = await httpsRequest(port, { method: 'GET', path: '/healthz', ca: pki.caPem })
        .then((r) => r.status)
        .catch(() => undefined);
      if (health !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(health, 200, output());
    const ready = await httpsRequest(port, { method: 'GET', path: '/readyz', ca: pki.caPem });
    assert.equal(ready.status, 503);
    assert.match(ready.text, /Knative ConfigMaps not read yet/);
    webhook.child.kill('SIGTERM');
    assert.equal(await exitOf(webhook.child, 15_000), 0);
    assert.match(output(), /shutting down/);
  });
});
