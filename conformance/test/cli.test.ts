import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('afterlife-conformance usage', () => {
  const run = (args: string[]) => {
    const cli = spawnSync(process.execPath, ['--import', 'tsx', join(packageDir, 'src/main.ts'), ...args], {
      cwd: packageDir,
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: cli.status, output: `${cli.stdout}${cli.stderr}` };
  };

  it('--local names the command that carries the launcher (the suite itself has none) and exits 2', () => {
    const { code, output } = run(['--local']);
    assert.equal(code, 2, output);
    assert.match(
      output,
      /--local needs the local cluster launcher, which ships with the Afterlife CLI: run `afterlife conformance --local`/,
    );
  });

  it('--help lists --faults and --afterlife-namespace', () => {
    const { code, output } = run(['--help']);
    assert.equal(code, 0, output);
    assert.match(output, /--faults\s+also inject faults under load/);
    assert.match(output, /--afterlife-namespace/);
  });
});
