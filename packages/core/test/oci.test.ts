import assert from 'node:assert/strict';
import {
  formatImageReference,
  hasCode,
  isValidDigest,
  parseImageReference,
  WASM_VARIANT_ANNOTATION,
} from '../src/index.ts';

const SHA256 = (c: string) => `sha256:${c.repeat(64)}`;

describe('image references', () => {
  // [image, registry, repository, reference (tag or digest to fetch by)]
  const cases: Array<[string, string, string, string]> = [
    ['nginx', 'docker.io', 'library/nginx', 'latest'],
    ['nginx:1.27', 'docker.io', 'library/nginx', '1.27'],
    ['user/app:v1', 'docker.io', 'user/app', 'v1'],
    ['ghcr.io/afterlife/hello-wasm:1.0.0', 'ghcr.io', 'afterlife/hello-wasm', '1.0.0'],
    ['127.0.0.1:5000/fn/echo:v2', '127.0.0.1:5000', 'fn/echo', 'v2'],
    ['localhost/fn', 'localhost', 'fn', 'latest'],
    [`registry.local/a/b@${SHA256('a')}`, 'registry.local', 'a/b', SHA256('a')],
    [`registry.local/a:tag@${SHA256('b')}`, 'registry.local', 'a', SHA256('b')],
    // Docker's path-component separators: `.`, `_`, `__` and any run of `-`.
    ['ghcr.io/a__b/c--d/e.f_g:v1', 'ghcr.io', 'a__b/c--d/e.f_g', 'v1'],
    // A registry written as Docker Hub still gets the official-image prefix; the legacy name is Docker Hub.
    ['docker.io/nginx', 'docker.io', 'library/nginx', 'latest'],
    ['index.docker.io/nginx:1.27', 'docker.io', 'library/nginx', '1.27'],
    ['[::1]:5000/fn:v1', '[::1]:5000', 'fn', 'v1'],
    // No slash: `localhost:5000` is the image `localhost` with tag `5000`, as Docker reads it.
    ['localhost:5000', 'docker.io', 'library/localhost', '5000'],
    [`fn@sha512:${'c'.repeat(128)}`, 'docker.io', 'library/fn', `sha512:${'c'.repeat(128)}`],
  ];
  for (const [image, registry, repository, reference] of cases) {
    it(`parses ${image}`, () => {
      const { registry: r, repository: p, reference: ref } = parseImageReference(image);
      assert.deepEqual({ registry: r, repository: p, reference: ref }, { registry, repository, reference });
    });
  }

  it('keeps the tag and the digest apart; the digest is what is fetched', () => {
    assert.deepEqual(parseImageReference('127.0.0.1:5000/fn/echo'), {
      registry: '127.0.0.1:5000',
      repository: 'fn/echo',
      tag: 'latest',
      digest: undefined,
      reference: 'latest',
    });
    assert.deepEqual(parseImageReference(`registry.local/a:tag@${SHA256('b')}`), {
      registry: 'registry.local',
      repository: 'a',
      tag: 'tag',
      digest: SHA256('b'),
      reference: SHA256('b'),
    });
    assert.equal(parseImageReference(`registry.local/a@${SHA256('b')}`).tag, undefined);
  });

  const bad: Array<[string, string]> = [
    ['', 'empty'],
    ['UPPER/case', 'upper case repository'],
    ['a b', 'whitespace'],
    ['x@sha256', 'digest without an encoded part'],
    ['reg.io/repo:tag!', 'tag with a bad character'],
    ['repo@sha256:abc', 'sha256 digest that is not 64 hex digits'],
    [`repo@sha256:${'A'.repeat(64)}`, 'sha256 digest in upper case'],
    [`reg.io/a:bad!@${SHA256('b')}`, 'bad tag beside a digest'],
    ['reg.io/fn__', 'repository ending in a separator'],
    ['reg.io/-fn', 'repository starting with a separator'],
    ['nginx:1.27/foo', 'registry port that is not a number'],
    ['reg_istry.io/fn', 'registry host with an underscore'],
    ['nginx:', 'empty tag'],
    [`reg.io/${'a'.repeat(250)}`, 'name longer than 255 characters'],
  ];
  for (const [image, what] of bad) {
    it(`rejects "${image.length > 40 ? `${image.slice(0, 40)}…` : image}" (${what}) with IMAGE_REFERENCE_INVALID`, () => {
      assert.throws(
        () => parseImageReference(image),
        (error: unknown) => hasCode(error, 'IMAGE_REFERENCE_INVALID'),
      );
    });
  }

  it('names what is wrong', () => {
    assert.throws(() => parseImageReference('repo@sha256:abc'), /invalid digest in image reference "repo@sha256:abc"/);
    assert.throws(() => parseImageReference('nginx:1.27/foo'), /invalid registry/);
  });

  it('formats a parsed reference fully qualified, and parsing that gives the same reference', () => {
    for (const image of ['nginx', 'ghcr.io/a/b:v1', `localhost:5000/fn:t@${SHA256('d')}`, `fn@${SHA256('e')}`]) {
      const ref = parseImageReference(image);
      assert.deepEqual(parseImageReference(formatImageReference(ref)), ref);
    }
    assert.equal(formatImageReference(parseImageReference('nginx')), 'docker.io/library/nginx:latest');
  });

  it('validates digests as the OCI image spec does', () => {
    assert.equal(isValidDigest(SHA256('0')), true);
    assert.equal(isValidDigest(`sha512:${'f'.repeat(128)}`), true);
    assert.equal(isValidDigest(`sha512:${'f'.repeat(64)}`), false);
    assert.equal(isValidDigest('multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8'), true);
    assert.equal(isValidDigest('SHA256:abc'), false);
    assert.equal(isValidDigest(':abc'), false);
  });

  it("exports crun's variant annotation", () => assert.equal(WASM_VARIANT_ANNOTATION, 'module.wasm.image/variant'));
});
