import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BuildError,
  ComponentExitedError,
  DevCluster,
  ensureComponent,
  PortInUseError,
  waitFor,
} from '../src/index.ts';
import { isAlive, ManagedProcess } from '../src/process.ts';
import { useCluster } from '../src/testing.ts';

describe('devcluster lifecycle and failure modes', function () {
  this.timeout(300_000);
  const shared = useCluster({ namespacePrefix: 'lifecycle' });

  it('starts a second, independent cluster and leaves no process or directory behind when stopped', async () => {
    const cluster = await DevCluster.start({
      name: `lifecycle-${process.pid}`,
      keda: false,
      knative: false,
      registry: false,
      nodes: 1,
      realNodes: 0,
    });
    const pids = Object.values(cluster.state.pids);
    assert.ok(
      pids.length >= 5,
      `expected etcd, apiserver, controller-manager, scheduler, kwok; got ${Object.keys(cluster.state.pids)}`,
    );
    assert.ok(pids.every(isAlive));
    assert.ok(cluster.state.apiServer.startsWith('https://127.0.0.1:'));
    await cluster.stop();
    assert.deepEqual(pids.filter(isAlive), []);
    assert.equal(existsSync(cluster.state.stateDir), false);
  });

  it('refuses a kube-apiserver port that is already taken, before starting anything', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      await assert.rejects(
        DevCluster.start({ name: `port-${process.pid}`, apiServerPort: port }),
        (error: unknown) =>
          error instanceof PortInUseError && error.port === port && /already in use/.test(error.message),
      );
    } finally {
      blocker.close();
    }
  });

  it('reports a component that exits early with its exit code and last log lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'afterlife-exit-'));
    try {
      const etcd = shared.binary('etcd');
      const process = await ManagedProcess.start({
        name: 'etcd',
        command: etcd,
        args: ['--no-such-flag'],
        logFile: join(dir, 'etcd.log'),
      });
      await process.exited;
      await assert.rejects(
        waitFor('etcd', async () => undefined, { timeoutMs: 5000, guard: () => process.assertRunning() }),
        (error: unknown) =>
          error instanceof ComponentExitedError &&
          error.component === 'etcd' &&
          /exit code 2/.test(error.message) &&
          error.lastLogLines.some((line) => line.includes('no-such-flag')),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says Go is missing when it has to build without Go', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'afterlife-nogo-'));
    try {
      await assert.rejects(
        ensureComponent('etcd', { env: { PATH: '/usr/bin:/bin', HOME: cache, AFTERLIFE_CACHE: cache } }),
        (error: unknown) => error instanceof BuildError && /Go is not installed/.test(error.message),
      );
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('surfaces a build failure with the Go error and the log path', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'afterlife-badbuild-'));
    try {
      await assert.rejects(
        ensureComponent('helm', {
          env: { ...process.env, AFTERLIFE_CACHE: cache, AFTERLIFE_BUILD_VERSION: 'v0.0.0-afterlife-does-not-exist' },
        }),
        (error: unknown) =>
          error instanceof BuildError &&
          /building helm v0\.0\.0-afterlife-does-not-exist failed/.test(error.message) &&
          /full log: /.test(error.message),
      );
      assert.equal(existsSync(join(cache, 'bin', 'helm-v0.0.0-afterlife-does-not-exist', '.complete')), false);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
