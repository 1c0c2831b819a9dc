import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

async function afterlife(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [MAIN, ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

describe('afterlife (the command, no cluster needed)', function () {
  this.timeout(30_000);

  it('exits 2 with a usage error for an unknown flag or command', async () => {
    for (const args of [
      ['doctor', '--kubeconfg', 'x'],
      ['demo', '--shortt'],
      ['conformance', '--profil', 'x'],
      ['nope'],
    ]) {
      const { code, stderr } = await afterlife(...args);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.match(stderr, /^afterlife: (Unknown option '--|unknown command "nope")/, args.join(' '));
    }
  });

  it('refuses --short with --overload, and a --compare file that is not a report, before starting anything', async () => {
    const both = await afterlife('demo', '--short', '--overload');
    assert.equal(both.code, 2);
    assert.match(both.stderr, /^afterlife: --short and --overload are different profiles: pick one/);
    for (const verb of ['demo', 'conformance']) {
      const missing = await afterlife(verb, '--compare', '/nonexistent/previous.json');
      assert.equal(missing.code, 2, `${verb}: ${missing.stderr}`);
      assert.match(missing.stderr, /--compare \/nonexistent\/previous\.json: cannot read it as JSON/);
      assert.doesNotMatch(missing.stdout, /starting the local cluster/);
    }
  });

  it('prints usage: --help exits 0, no command exits 2', async () => {
    const help = await afterlife('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /afterlife doctor/);
    assert.match(
      help.stdout,
      /afterlife demo \[--short \| --overload\] \[--report-dir DIR\] \[--compare PREVIOUS\.json\]/,
    );
    assert.equal((await afterlife()).code, 2);
  });

  it('runs afterlife-devcluster for `afterlife cluster …` with the same arguments and exit code', async () => {
    const help = await afterlife('cluster', '--help');
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /afterlife-devcluster — a real local Kubernetes control plane/);
    const usage = await afterlife('cluster');
    assert.equal(usage.code, 2, 'no verb is a usage error, answered by afterlife-devcluster');
    const unknown = await afterlife('cluster', 'up', '--bogus');
    assert.equal(unknown.code, 2, 'an unknown flag exits 2 in afterlife-devcluster too (core runCli)');
    assert.match(unknown.stderr, /afterlife-devcluster: Unknown option '--bogus'/);
  });
});
