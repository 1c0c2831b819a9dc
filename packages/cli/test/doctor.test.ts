import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { useCluster } from '@afterlife/devcluster/testing';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('afterlife doctor', function () {
  this.timeout(120_000);
  const cluster = useCluster({ namespacePrefix: 'doctor' });

  it('fails on a bare Knative + KEDA cluster and says how to fix each missing piece', async () => {
    const result = await run(process.execPath, [MAIN, 'doctor', '--kubeconfig', cluster.kubeconfigPath]).then(
      (ok) => ({ code: 0, stdout: ok.stdout }),
      (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
    );
    assert.equal(result.code, 1, result.stdout);
    // Each row in its state: Knative CRDs and KEDA are there, the Afterlife pieces are not.
    const row = (name: string, state: 'ok' | 'FAILED', detail: RegExp) =>
      assert.match(result.stdout, new RegExp(`^${name} +${state} +${detail.source}`, 'm'), result.stdout);
    row('knative-serving', 'ok', /Knative Serving .*knative-serving ConfigMaps present/);
    row('keda', 'ok', /KEDA .*v1beta1\.external\.metrics\.k8s\.io Available/);
    row('runtime-class-flag', 'FAILED', /Knative rejects runtimeClassName: .*kubernetes\.podspec-runtimeclassname/);
    row('runtime-class', 'FAILED', /RuntimeClass wasmedge not found/);
    row('webhook', 'FAILED', /no Afterlife MutatingWebhookConfiguration/);
    // …and a fix for each failed one.
    assert.match(result.stdout, /^How to fix:$/m);
    assert.match(
      result.stdout,
      /^ {2}runtime-class-flag: kubectl patch configmap\/config-features -n knative-serving /m,
    );
    assert.match(result.stdout, /^ {2}runtime-class: kubectl apply -f - <<EOF$/m);
    assert.match(result.stdout, /^ {2}webhook: install the chart with the webhook enabled/m);
  });

  it('rejects an unknown flag with a usage error (exit 2, as every Afterlife command)', async () => {
    await assert.rejects(
      run(process.execPath, [MAIN, 'doctor', '--kubeconfg', 'x']),
      (error: { code: number; stderr: string }) => {
        assert.equal(error.code, 2);
        assert.match(error.stderr, /^afterlife: Unknown option '--kubeconfg'/);
        return true;
      },
    );
  });
});
