import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnNode } from '../src/testing.ts';

const MAIN = fileURLToPath(new URL('./fixtures/main.ts', import.meta.url));
const CLI = fileURLToPath(new URL('./fixtures/cli.ts', import.meta.url));

function run(script: string, args: string[], env: Record<string, string> = {}) {
  return spawnNode(script, { args, env });
}

const lines = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('runMain (the components’ process scaffold)', function () {
  this.timeout(30_000);

  it('exits 2 on a bad configuration and names the variable', async () => {
    const proc = run(MAIN, [], { FIXTURE_PORT: 'zero' });
    assert.equal(await proc.exited, 2);
    const [fatal] = lines(proc.output());
    assert.equal(fatal?.msg, 'invalid configuration');
    assert.equal(fatal?.variable, 'FIXTURE_PORT');
    assert.match(String(fatal?.err), /FIXTURE_PORT: must be a whole number, got "zero"/);
  });

  it('exits 1 when start-up fails, after logging why', async () => {
    const proc = run(MAIN, [], { FIXTURE_START: 'fail' });
    assert.equal(await proc.exited, 1);
    const fatal = lines(proc.output()).find((line) => line.msg === 'fixture failed to start');
    assert.match(String(fatal?.err), /was told to fail/);
  });

  it('drains on SIGTERM (stop() runs to its end), flushes every log line, exits 0', async () => {
    const proc = run(MAIN, [], { FIXTURE_STOP_MS: '100ms', FIXTURE_STOP_LINES: '3000' });
    await proc.waitFor('fixture started');
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    const records = lines(proc.output());
    assert.equal(records.find((line) => line.msg === 'shutting down')?.signal, 'SIGTERM');
    assert.equal(records.filter((line) => line.msg === 'stopping line').length, 3000);
    assert.equal(records.at(-1)?.msg, 'fixture stopped');
  });

  it('drains on SIGINT too', async () => {
    const proc = run(MAIN, []);
    await proc.waitFor('fixture started');
    proc.child.kill('SIGINT');
    assert.equal(await proc.exited, 0);
    assert.match(proc.output(), /"msg":"fixture stopped"/);
  });

  it('exits 0 at once on a signal during start-up (nothing to drain yet)', async () => {
    const proc = run(MAIN, [], { FIXTURE_START_MS: '20s' });
    await proc.waitFor('fixture starting');
    const signalledAt = Date.now();
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    assert.ok(Date.now() - signalledAt < 5000);
    assert.match(proc.output(), /"msg":"shutting down"/);
    assert.doesNotMatch(proc.output(), /fixture started/);
  });

  it('exits 1 at once on a second signal while draining', async () => {
    const proc = run(MAIN, [], { FIXTURE_STOP_MS: '20s' });
    await proc.waitFor('fixture started');
    proc.child.kill('SIGTERM');
    await proc.waitFor('shutting down');
    const secondAt = Date.now();
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 1);
    assert.ok(Date.now() - secondAt < 5000, 'did not wait for the drain');
    assert.match(proc.output(), /"msg":"second signal: exiting now"/);
    assert.doesNotMatch(proc.output(), /fixture stopped/);
  });
});

describe('runCli (the commands’ scaffold)', function () {
  this.timeout(30_000);

  const cases: Array<[string, string[], number, RegExp | undefined]> = [
    ['the code main returns', ['--code', '3'], 3, undefined],
    ['2 for an unknown flag, naming it', ['--cod', '3'], 2, /fixture-cli: Unknown option '--cod'/],
    ['2 for a UsageError', ['usage'], 2, /fixture-cli: say it differently/],
    ['1 for any other error, with its message', ['fail'], 1, /fixture-cli: it broke/],
  ];
  for (const [what, args, code, stderr] of cases) {
    it(`exits with ${what}`, async () => {
      const proc = run(CLI, args);
      assert.equal(await proc.exited, code, proc.output());
      if (stderr !== undefined) assert.match(proc.output(), stderr);
      else assert.equal(proc.output(), '');
    });
  }

  it('exits even when something still holds the event loop', async () => {
    const proc = run(CLI, ['hang', '--code', '0']);
    assert.equal(await proc.exited, 0);
  });

  it('exits only once a slow reader has taken all of stdout', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'big'], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Read nothing for longer than the fixture's forced exit (200 ms), as a busy consumer would.
    child.stdout.pause();
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    let bytes = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    child.stdout.resume();
    assert.equal(await exited, 0);
    assert.equal(bytes, 8192 * 1024, 'every byte written reached the reader');
  });
});
