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
    // Knative CRDs and KEDA are there; the Afterlife pieces are not.
    assert.match(result.stdout, /knative-serving/);
    assert.match(result.stdout, /keda/);
    assert.match(result.stdout, /RuntimeClass/);
    assert.match(result.stdout, /kubernetes\.podspec-runtimeclassname/);
    assert.match(result.stdout, /webhook/i);
  });

  it('rejects an unknown flag with a usage error', async () => {
    await assert.rejects(run(process.execPath, [MAIN, 'doctor', '--kubeconfg', 'x']), (error: { code: number }) => {
      assert.equal(error.code, 1);
      return true;
    });
  });
});
