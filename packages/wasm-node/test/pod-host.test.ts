import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@afterlife/core';
import { after, before, describe, it } from 'mocha';
import { buildEchoWasm, podHostSettings, type RunningPodHost, startPodHost, TRAP_EXIT_CODE } from '../src/index.ts';
import { trapModule } from './helpers.ts';

const logger = createLogger('wasm-pod-host-test', { level: 'silent' });

describe('pod host (HTTP listener + worker pool around the module)', function () {
  this.timeout(180_000);
  let dir: string;
  let echoPath: string;
  const hosts: RunningPodHost[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wasm-pod-host-'));
    echoPath = (await buildEchoWasm()).path;
  });
  after(async () => {
    await Promise.all(hosts.map((host) => host.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it('reads its settings from the environment and refuses bad ones', () => {
    const settings = podHostSettings({
      AFTERLIFE_WASM_POD_MODULE: '/m.wasm',
      AFTERLIFE_WASM_POD_ARGS: '["/m.wasm","x"]',
      AFTERLIFE_WASM_POD_ENV: '{"A":"1"}',
    });
    assert.equal(settings.port, 8080);
    assert.deepEqual(settings.args, ['/m.wasm', 'x']);
    assert.deepEqual(settings.env, { A: '1' });
    assert.throws(() => podHostSettings({}), /AFTERLIFE_WASM_POD_MODULE/);
    assert.throws(
      () => podHostSettings({ AFTERLIFE_WASM_POD_MODULE: '/m', AFTERLIFE_WASM_POD_ENV: '{' }),
      /not valid JSON/,
    );
    assert.throws(
      () => podHostSettings({ AFTERLIFE_WASM_POD_MODULE: '/m', AFTERLIFE_WASM_POD_PORT: '70000' }),
      /at most 65535/,
    );
  });

  it('serves the function over HTTP, concurrently, and answers /healthz', async () => {
    const host = await startPodHost(
      podHostSettings({
        AFTERLIFE_WASM_POD_MODULE: echoPath,
        AFTERLIFE_WASM_POD_PORT: '0',
        AFTERLIFE_WASM_POD_HOST: '127.0.0.1',
        AFTERLIFE_WASM_POD_CONCURRENCY: '2',
      }),
      logger,
    );
    hosts.push(host);
    const base = `http://127.0.0.1:${host.port}`;
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok');
    const send = (id: string) =>
      fetch(`${base}/?workMs=50`, {
        method: 'POST',
        headers: {
          'ce-id': id,
          'ce-source': '/t',
          'ce-type': 't',
          'ce-specversion': '1.0',
          'content-type': 'application/json',
        },
        body: JSON.stringify({ id }),
      });
    const replies = await Promise.all(['a', 'b', 'c'].map(send));
    for (const [i, reply] of replies.entries()) {
      assert.equal(reply.status, 200);
      assert.equal(reply.headers.get('ce-echoid'), ['a', 'b', 'c'][i]);
      assert.equal(reply.headers.get('ce-type'), 'dev.afterlife.echo.reply');
      assert.equal(((await reply.json()) as { workMs: number }).workMs, 50);
    }
    const tooBig = await fetch(`${base}/`, { method: 'POST', body: Buffer.alloc(9 << 20) });
    assert.equal(tooBig.status, 413);
  });

  it('answers 502 and ends with exit code 134 when the module traps', async () => {
    const trapPath = join(dir, 'trap.wasm');
    await writeFile(trapPath, trapModule());
    const host = await startPodHost(
      podHostSettings({
        AFTERLIFE_WASM_POD_MODULE: trapPath,
        AFTERLIFE_WASM_POD_PORT: '0',
        AFTERLIFE_WASM_POD_HOST: '127.0.0.1',
      }),
      logger,
    );
    hosts.push(host);
    const response = await fetch(`http://127.0.0.1:${host.port}/healthz`);
    assert.equal(response.status, 502);
    assert.match(await response.text(), /trapped/);
    assert.equal(await host.exited, TRAP_EXIT_CODE);
  });

  it('fails to start on a file that is not WebAssembly', async () => {
    const bad = join(dir, 'bad.wasm');
    await writeFile(bad, '#!/bin/sh\necho hi\n');
    await assert.rejects(
      startPodHost(
        podHostSettings({
          AFTERLIFE_WASM_POD_MODULE: bad,
          AFTERLIFE_WASM_POD_PORT: '0',
          AFTERLIFE_WASM_POD_HOST: '127.0.0.1',
        }),
        logger,
      ),
      WebAssembly.CompileError,
    );
  });
});
