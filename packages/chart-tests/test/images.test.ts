/**
 * The chart and the images `afterlife-devcluster images` builds agree (without building them:
 * packages/devcluster/test/app-images.test.ts builds, runs and pushes them): each component's
 * image runs the package's dist/main.js as the chart's non-root user and exposes the ports the
 * chart's Deployment declares. There are no Dockerfiles: the builder is the one way the images
 * are made (docs/images.md says why).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { APP_ENTRYPOINT, APP_IMAGES, APP_USER, appImageRepository } from '../../devcluster/src/app-images.ts';
import { COMPONENTS } from '../scripts/chart-readme.ts';
import { CHART_DIR, findObject, helmTemplate } from './helpers.ts';

const REPO_ROOT = resolve(import.meta.dirname, '../../..');

describe('component images and the chart', function () {
  this.timeout(30_000);

  it('every chart component has an image, named as the chart expects', () => {
    const values = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<
      string,
      { image?: { repository?: string } }
    >;
    for (const component of COMPONENTS) {
      const spec = APP_IMAGES[component];
      assert.equal(spec.name, component);
      assert.equal(spec.packageDir, `packages/${component}`);
      const repository = values[component]?.image?.repository ?? '';
      assert.ok(
        repository.endsWith(`/${appImageRepository(component)}`),
        `${component}.image.repository ${repository}`,
      );
    }
  });

  it("runs as the chart's default non-root user, numeric so runAsNonRoot can verify it", () => {
    const values = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as {
      podSecurity: { runAsUser: number; runAsGroup: number };
    };
    const [uid = '', gid = ''] = APP_USER.split(':');
    assert.match(uid, /^[1-9]\d*$/);
    assert.match(gid, /^[1-9]\d*$/);
    assert.equal(Number(uid), values.podSecurity.runAsUser);
    assert.equal(Number(gid), values.podSecurity.runAsGroup);
  });

  for (const component of COMPONENTS) {
    describe(component, () => {
      const dir = join(REPO_ROOT, APP_IMAGES[component].packageDir);

      it("runs the package's dist/main.js", () => {
        assert.equal(APP_ENTRYPOINT.at(-1), '/app/dist/main.js');
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

      it('exposes the ports the chart uses', async () => {
        const objects = await helmTemplate({});
        const container = findObject(objects, 'Deployment', `rel-afterlife-${component}`).spec.template.spec
          .containers[0];
        const ports = container.ports.map((p: { containerPort: number }) => p.containerPort).sort();
        assert.deepEqual([...APP_IMAGES[component].ports].sort(), ports);
      });

      it('has no Dockerfile (the image builder is the one way the image is made)', () => {
        assert.ok(!existsSync(join(dir, 'Dockerfile')));
      });
    });
  }
});
