import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { detectEnvironment, detectKedaVersion, detectKnativeVersion, releaseTag } from '../src/environment.ts';

/** What the fake API server answers: path (without query) → object; anything else is a 404. */
type Routes = Record<string, unknown>;

/** A fake kube-apiserver that answers GETs from `routes` and records label selectors asked for. */
async function fakeApiServer(routes: Routes): Promise<{ server: Server; kubeConfig: KubeConfig; asked: string[] }> {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const selector = url.searchParams.get('labelSelector');
    asked.push(`${url.pathname}${selector ? `?${selector}` : ''}`);
    const body = routes[`${url.pathname}${selector ? `?${selector}` : ''}`] ?? routes[url.pathname];
    if (body === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'fake' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  });
  return { server, kubeConfig, asked };
}

const CRD = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/scaledobjects.keda.sh';
const OPERATOR = '/apis/apps/v1/deployments?app.kubernetes.io/name=keda-operator';
const HPAS = '/apis/autoscaling/v2/horizontalpodautoscalers?scaledobject.keda.sh/name';
const scaledObject = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'keda.sh/v1alpha1',
  kind: 'ScaledObject',
  metadata: { name, namespace: 'ns', labels },
});

const crd = (labels: Record<string, string> = {}) => ({
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'scaledobjects.keda.sh', labels },
});
const list = (kind: string, items: unknown[]) => ({ apiVersion: 'v1', kind, metadata: {}, items });
const operator = (image: string, labels: Record<string, string> = {}) => ({
  metadata: { name: 'keda-operator', namespace: 'keda', labels },
  spec: {
    selector: {},
    template: { spec: { containers: [{ name: 'keda-operator', image }] } },
  },
});
/** An HPA as KEDA makes it: its own labels, then the ScaledObject's copied over (managed-by included). */
const hpa = (so: string, version: string) => ({
  metadata: {
    name: `keda-hpa-${so}`,
    namespace: 'ns',
    labels: {
      'app.kubernetes.io/version': version,
      'app.kubernetes.io/managed-by': 'afterlife-autoscaler',
      'scaledobject.keda.sh/name': so,
    },
  },
  spec: { maxReplicas: 4, scaleTargetRef: { kind: 'Deployment', name: 'x' } },
});

async function withServer(routes: Routes, body: (kc: KubeConfig, asked: string[]) => Promise<void>): Promise<void> {
  const { server, kubeConfig, asked } = await fakeApiServer(routes);
  try {
    await body(kubeConfig, asked);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('KEDA and Knative version detection', () => {
  it('reads a release tag from an image reference, not a digest, `latest` or a registry port', () => {
    assert.equal(releaseTag('ghcr.io/kedacore/keda:2.20.2'), '2.20.2');
    assert.equal(
      releaseTag(
        'ghcr.io/kedacore/keda:2.19.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
      ),
      '2.19.0',
    );
    assert.equal(releaseTag('localhost:5000/keda'), undefined, 'no tag: `latest` is no version');
    assert.equal(releaseTag('ghcr.io/kedacore/keda:main'), undefined);
    assert.equal(releaseTag('not a reference'), undefined);
  });

  it('a release manifest or the Helm chart: the version label of the ScaledObject CRD', async () => {
    await withServer({ [CRD]: crd({ 'app.kubernetes.io/version': '2.20.2' }) }, async (kc) => {
      assert.deepEqual(await detectKedaVersion(kc), { version: '2.20.2', source: 'CRD scaledobjects.keda.sh label' });
    });
    await withServer({ [CRD]: crd({ 'helm.sh/chart': 'keda-2.18.1' }) }, async (kc) => {
      assert.equal((await detectKedaVersion(kc))?.version, '2.18.1');
    });
  });

  it('CRDs without labels: the keda-operator Deployment, its label or else its image tag', async () => {
    await withServer(
      { [CRD]: crd(), [OPERATOR]: list('DeploymentList', [operator('ghcr.io/kedacore/keda:2.19.0')]) },
      async (kc) => {
        assert.deepEqual(await detectKedaVersion(kc), { version: '2.19.0', source: 'keda-operator image tag' });
      },
    );
    await withServer(
      {
        [CRD]: crd(),
        [OPERATOR]: list('DeploymentList', [
          operator('ghcr.io/kedacore/keda:latest', { 'app.kubernetes.io/version': '2.17.0' }),
        ]),
      },
      async (kc) => {
        assert.equal((await detectKedaVersion(kc))?.source, 'keda-operator Deployment label');
      },
    );
  });

  it('KEDA outside the cluster (the devcluster runs it as processes): the version KEDA writes on its HPAs', async () => {
    await withServer(
      {
        [CRD]: crd(),
        [HPAS]: list('HorizontalPodAutoscalerList', [hpa('dev', 'main'), hpa('app', '1.4.0'), hpa('fn', '2.20.2')]),
        '/apis/keda.sh/v1alpha1/namespaces/ns/scaledobjects/dev': scaledObject('dev'),
        // The app labels its ScaledObject with its own version, which KEDA copies onto the HPA.
        '/apis/keda.sh/v1alpha1/namespaces/ns/scaledobjects/app': scaledObject('app', {
          'app.kubernetes.io/version': '1.4.0',
        }),
        '/apis/keda.sh/v1alpha1/namespaces/ns/scaledobjects/fn': scaledObject('fn'),
      },
      async (kc, asked) => {
        assert.deepEqual(await detectKedaVersion(kc), {
          version: '2.20.2',
          source: 'label KEDA writes on the HPAs it makes',
        });
        assert.ok(asked.includes(OPERATOR), 'looked for the operator Deployment first');
      },
    );
  });

  it('nothing in the cluster says: the fallback given, else unknown', async () => {
    await withServer({ [CRD]: crd() }, async (kc) => {
      assert.equal(await detectKedaVersion(kc), undefined);
      const fallback = { version: '2.20.2', source: 'devcluster build' };
      assert.deepEqual(await detectKedaVersion(kc, fallback), fallback);
    });
  });

  it('Knative built from source says `devel`: that is no version, so the fallback is used', async () => {
    const knativeCrd = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/services.serving.knative.dev';
    await withServer(
      { [knativeCrd]: { metadata: { labels: { 'app.kubernetes.io/version': 'devel' } } } },
      async (kc) => {
        assert.equal(await detectKnativeVersion(kc), undefined);
        assert.equal(
          (await detectKnativeVersion(kc, 'knative-serving', { version: 'v0.50.0', source: 'x' }))?.version,
          'v0.50.0',
        );
      },
    );
    await withServer(
      { [knativeCrd]: { metadata: { labels: { 'app.kubernetes.io/version': '1.23.0' } } } },
      async (kc) => {
        assert.equal((await detectKnativeVersion(kc))?.version, '1.23.0');
      },
    );
  });

  it('describes the environment, each part worded for people and none throwing', async () => {
    await withServer(
      {
        '/version': { gitVersion: 'v1.35.4', platform: 'linux/amd64' },
        [CRD]: crd({ 'app.kubernetes.io/version': '2.20.2' }),
        '/apis/node.k8s.io/v1/runtimeclasses/wasmedge': {
          metadata: { name: 'wasmedge' },
          handler: 'wasmedge',
          scheduling: { nodeSelector: { 'afterlife.dev/wasm': 'true' } },
        },
        '/api/v1/nodes': list('NodeList', [
          {
            metadata: { name: 'node-0', labels: { 'afterlife.dev/wasm': 'true' } },
            status: {
              nodeInfo: {
                containerRuntimeVersion: 'containerd://2.4.2',
                kubeletVersion: 'v1.35.4',
                osImage: 'Debian GNU/Linux 12',
                kernelVersion: '6.1.0',
                architecture: 'amd64',
              },
            },
          },
          { metadata: { name: 'kwok-0', labels: {} } },
        ]),
      },
      async (kc) => {
        const env = await detectEnvironment(kc);
        assert.equal(env.kubernetes, 'v1.35.4 (linux/amd64)');
        assert.equal(env.keda, '2.20.2 (CRD scaledobjects.keda.sh label)');
        assert.match(env.knative, /^unknown \(no release label/);
        assert.equal(
          env.wasmNodes,
          '1 node (node-0): containerd://2.4.2, kubelet v1.35.4, Debian GNU/Linux 12, kernel 6.1.0, amd64; RuntimeClass wasmedge → handler wasmedge',
        );
        assert.match(env.runner, /^Node\.js v\d+/);
      },
    );
  });
});
