import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Socket } from 'node:net';
import { createNetnsHost, POD_GATEWAY_IP, waitFor } from '../src/index.ts';

const SERVER = `require('node:http').createServer((req, res) => res.end(JSON.stringify({ from: req.socket.localAddress, peer: req.socket.remoteAddress }))).listen(8080, process.env.POD_IP)`;

function connect(ip: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    socket.setTimeout(1000, () => socket.destroy(new Error('connect timed out')));
    socket.once('error', reject);
    socket.connect(port, ip, () => {
      socket.destroy();
      resolve();
    });
  });
}

describe('network namespace test hosts', function () {
  this.timeout(30_000);

  it('gives a process its own pod address that the root namespace reaches, and removes it all on destroy', async () => {
    const host = await createNetnsHost({ label: 'test' });
    try {
      assert.match(host.ip, /^10\.213\.\d+\.\d+$/);
      assert.ok(existsSync(`/run/netns/${host.name}`));
      const child = host.spawn(process.execPath, ['-e', SERVER], {
        env: { ...process.env, POD_IP: host.ip },
        stdio: 'ignore',
      });
      const body = await waitFor(
        'server in the namespace',
        async () => (await fetch(`http://${host.ip}:8080/`)).json() as Promise<{ from: string; peer: string }>,
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      assert.equal(body.from, host.ip);
      assert.equal(body.peer, POD_GATEWAY_IP);
      await host.destroy();
      assert.equal(existsSync(`/run/netns/${host.name}`), false);
      await waitFor(
        'process gone',
        async () => (child.exitCode !== null || child.signalCode !== null ? true : undefined),
        {
          timeoutMs: 5000,
        },
      );
      // A fresh connection (not a pooled keep-alive one) must find nothing there any more.
      await assert.rejects(connect(host.ip, 8080));
    } finally {
      await host.destroy();
    }
  });

  it('hands out distinct addresses to concurrent hosts', async () => {
    const hosts = await Promise.all([createNetnsHost(), createNetnsHost(), createNetnsHost()]);
    try {
      assert.equal(new Set(hosts.map((host) => host.ip)).size, 3);
    } finally {
      await Promise.all(hosts.map((host) => host.destroy()));
    }
  });
});
