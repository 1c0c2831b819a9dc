/**
 * Static checks of the component Dockerfiles (no container engine here to build them): a
 * multi-stage Node 24 build that deploys the single package, a final stage that runs the
 * package's dist/main.js as a non-root user, and ports that match the chart.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { COMPONENTS } from '../scripts/chart-readme.ts';
import { findObject, helmTemplate } from './helpers.ts';

const PACKAGES = resolve(import.meta.dirname, '../..');

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** Parses a Dockerfile into instructions (comments dropped, `\` continuations joined). */
function parseDockerfile(text: string): Instruction[] {
  const lines: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (current === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    lines.push(current + line);
    current = '';
  }
  if (current) lines.push(current);
  return lines.map((line) => {
    const match = /^(\S+)\s*(.*)$/.exec(line);
    return { keyword: (match?.[1] ?? '').toUpperCase(), args: match?.[2] ?? '' };
  });
}

/** Instructions of the last stage (from its FROM on). */
function finalStage(instructions: readonly Instruction[]): Instruction[] {
  const lastFrom = instructions.map((i) => i.keyword).lastIndexOf('FROM');
  return instructions.slice(lastFrom);
}

/** The command an exec-form or shell-form ENTRYPOINT/CMD runs, as words. */
function commandWords(args: string): string[] {
  if (args.trim().startsWith('[')) return JSON.parse(args) as string[];
  return args.trim().split(/\s+/);
}

describe('component Dockerfiles (static checks)', function () {
  this.timeout(30_000);

  for (const component of COMPONENTS) {
    describe(`packages/${component}/Dockerfile`, () => {
      const dir = join(PACKAGES, component);
      const path = join(dir, 'Dockerfile');
      const instructions = () => parseDockerfile(readFileSync(path, 'utf8'));

      it('is a multi-stage build on Node 24 that deploys only this package', () => {
        const all = instructions();
        const froms = all.filter((i) => i.keyword === 'FROM');
        assert.ok(froms.length >= 2, 'multi-stage');
        for (const from of froms)
          assert.match(from.args, /^(node:24[-.\w]*|gcr\.io\/distroless\/nodejs24[-\w:.]*)(\s+AS\s+\w+)?$/i);
        const packageName = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string }).name;
        const runs = all.filter((i) => i.keyword === 'RUN').map((i) => i.args);
        assert.ok(
          runs.some((r) => r.includes(`--filter ${packageName} deploy --prod`)),
          `a RUN step does pnpm --filter ${packageName} deploy --prod`,
        );
        assert.ok(
          runs.some((r) => r.includes('--frozen-lockfile')),
          'installs from the lockfile',
        );
        // The runtime stage copies only the deployed package out of the build stage.
        const copies = finalStage(all).filter((i) => i.keyword === 'COPY');
        assert.equal(copies.length, 1);
        assert.match(copies[0]?.args ?? '', /--from=build\b.*\s\/out\s+\/app$/);
      });

      it("runs the package's dist/main.js", () => {
        const stage = finalStage(instructions());
        const entry = stage.filter((i) => i.keyword === 'ENTRYPOINT' || i.keyword === 'CMD').at(-1);
        assert.ok(entry, 'ENTRYPOINT or CMD in the final stage');
        const words = commandWords(entry.args);
        assert.equal(words[0], 'node');
        const workdir = stage.filter((i) => i.keyword === 'WORKDIR').at(-1)?.args ?? '/';
        const script = words.find((w) => w.endsWith('.js')) ?? '';
        assert.equal(resolve(workdir, script), '/app/dist/main.js');
        // dist/main.js is what the package builds and declares.
        assert.ok(existsSync(join(dir, 'src/main.ts')), 'src/main.ts compiles to dist/main.js');
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
          bin?: Record<string, string>;
          files?: string[];
        };
        // The bin is a committed launcher that imports ../dist/main.js (linkable before a build).
        const launchers = Object.values(pkg.bin ?? {});
        assert.ok(launchers.length === 1, 'package.json declares one bin');
        const launcher = readFileSync(join(dir, launchers[0] ?? ''), 'utf8');
        assert.match(launcher, /^#!\/usr\/bin\/env node/);
        assert.match(launcher, /import '\.\.\/dist\/main\.js';/);
        assert.ok(pkg.files?.includes('dist'), 'package.json files include dist (pnpm deploy copies it)');
      });

      it('runs as a non-root user', () => {
        const users = finalStage(instructions()).filter((i) => i.keyword === 'USER');
        const user = users.at(-1)?.args.trim() ?? '';
        assert.ok(user !== '', 'a USER in the final stage');
        const [name = '', group = ''] = user.split(':');
        assert.ok(!['root', '0'].includes(name), `USER ${user} is root`);
        assert.ok(!['root', '0'].includes(group), `group of USER ${user} is root`);
        assert.match(name, /^\d+$/, 'numeric uid so Kubernetes runAsNonRoot can verify it');
      });

      it('exposes the ports the chart uses', async () => {
        const exposed = finalStage(instructions())
          .filter((i) => i.keyword === 'EXPOSE')
          .flatMap((i) => i.args.split(/\s+/).map((p) => Number(p.replace('/tcp', ''))));
        const objects = await helmTemplate({});
        const container = findObject(objects, 'Deployment', `rel-afterlife-${component}`).spec.template.spec
          .containers[0];
        const ports = container.ports.map((p: { containerPort: number }) => p.containerPort).sort();
        assert.deepEqual(exposed.sort(), ports);
      });
    });
  }
});
