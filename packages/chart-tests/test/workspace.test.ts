/**
 * Checks of the workspace's packages that no single package can make about itself: the test
 * command type-checks every package's tests (`pnpm -r run check`, which `npm test` runs before
 * the suites), not only its `src/`.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../../..');
const PACKAGE_DIRS = [
  ...readdirSync(join(ROOT, 'packages'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(ROOT, 'packages', entry.name, 'package.json')))
    .map((entry) => `packages/${entry.name}`),
  'conformance',
].sort();
/** Packages whose owners adopt the rule in their own change (none left). */
const PENDING = new Set<string>();

interface TsConfig {
  readonly include?: readonly string[];
  readonly compilerOptions?: { readonly noEmit?: boolean };
}

describe('workspace: every package’s tests are type-checked by the test command', () => {
  it('the root test command runs every package’s check script', () => {
    const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.match(root.scripts['test:all'] ?? '', /pnpm -r [^&]*run check/);
  });

  for (const dir of PACKAGE_DIRS) {
    const test = PENDING.has(dir) ? it.skip : it;
    test(`${dir}: its check script runs tsc on a config that includes test/`, () => {
      const pkg = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as {
        scripts?: Record<string, string>;
      };
      const check = pkg.scripts?.check ?? '';
      const project = /tsc (?:--noEmit )?-p (\S+)/.exec(check)?.[1];
      assert.ok(project, `${dir}/package.json "check" must run "tsc -p <tsconfig>" (it is "${check}")`);
      const file = join(ROOT, dir, project.endsWith('.json') ? project : join(project, 'tsconfig.json'));
      const config = JSON.parse(readFileSync(file, 'utf8')) as TsConfig;
      if (existsSync(join(ROOT, dir, 'test'))) {
        assert.ok(config.include?.includes('test'), `${file} must include "test"`);
      }
      assert.equal(config.compilerOptions?.noEmit, true, `${file} must not emit`);
    });
  }
});

describe('workspace: the conformance suite a user runs carries no Afterlife component', () => {
  /** The packages that run in a cluster (the chart's images) and the local launcher. */
  const DEPLOYABLES = ['@afterlife/webhook', '@afterlife/gateway', '@afterlife/scaler', '@afterlife/autoscaler'];

  it('conformance/ depends on no deployable nor the devcluster (only as a dev dependency for its own tests)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'conformance', 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    const runtime = Object.keys(pkg.dependencies ?? {});
    assert.deepEqual(
      runtime.filter((name) => DEPLOYABLES.includes(name) || name === '@afterlife/devcluster'),
      [],
      `conformance dependencies: ${runtime.join(', ')}`,
    );
    assert.ok(!Object.keys(pkg.devDependencies ?? {}).some((name) => DEPLOYABLES.includes(name)));
  });

  it('no file under conformance/src imports a deployable or the devcluster', () => {
    const dir = join(ROOT, 'conformance', 'src');
    const offenders = readdirSync(dir)
      .filter((file) => file.endsWith('.ts'))
      .filter((file) =>
        /from '@afterlife\/(webhook|gateway|scaler|autoscaler|devcluster)/.test(readFileSync(join(dir, file), 'utf8')),
      );
    assert.deepEqual(offenders, []);
  });
});
