import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHART_DIR, helmBinary, KUBE_VERSION, run, tempDir, writeValues } from './helpers.ts';

/** `helm template` of the chart with extra arguments; returns helm's exit code and output. */
async function helmTemplate(args: readonly string[]) {
  return run(await helmBinary(), ['template', 'rel', CHART_DIR, '--kube-version', KUBE_VERSION, ...args]);
}

/** Renders with values and returns helm's stderr; fails the test when rendering succeeds. */
async function rejected(values: object): Promise<string> {
  const tmp = tempDir();
  try {
    const file = writeValues(tmp.dir, 'bad', values);
    const result = await helmTemplate(['-f', file]);
    assert.notEqual(result.code, 0, `helm template accepted ${JSON.stringify(values)}`);
    return result.stderr;
  } finally {
    tmp.cleanup();
  }
}

const SCHEMA_ERROR = /values don't meet the specifications of the schema\(s\)/;

describe('chart: values.schema.json rejects bad values', function () {
  this.timeout(60_000);

  const cases: { name: string; values: object; message: RegExp }[] = [
    {
      name: 'an unknown top-level key',
      values: { webhok: { enabled: true } },
      message: /additional properties 'webhok' not allowed/,
    },
    {
      name: 'an unknown nested key',
      values: { gateway: { image: { registry: 'x' } } },
      message: /at '\/gateway\/image': additional properties 'registry' not allowed/,
    },
    {
      name: 'an unknown key in resources',
      values: { scaler: { resources: { request: { cpu: '1' } } } },
      message: /additional properties 'request' not allowed/,
    },
    {
      name: 'replicas as a string',
      values: { webhook: { replicas: 'two' } },
      message: /at '\/webhook\/replicas': got string, want integer/,
    },
    {
      name: 'enabled as a string',
      values: { scaler: { enabled: 'sure' } },
      message: /at '\/scaler\/enabled': got string, want boolean/,
    },
    { name: 'a port out of range', values: { gateway: { eventsPort: 70000 } }, message: /at '\/gateway\/eventsPort'/ },
    {
      name: 'an unknown failurePolicy',
      values: { webhook: { failurePolicy: 'Retry' } },
      message: /at '\/webhook\/failurePolicy'/,
    },
    {
      name: 'timeoutSeconds above 30',
      values: { webhook: { timeoutSeconds: 31 } },
      message: /at '\/webhook\/timeoutSeconds'/,
    },
    {
      name: 'an objectSelector emptied with null (would send every Knative Service to the webhook)',
      values: { webhook: { objectSelector: { matchLabels: null } } },
      message: /at '\/webhook\/objectSelector/,
    },
    { name: 'an unknown log level', values: { gateway: { logLevel: 'verbose' } }, message: /at '\/gateway\/logLevel'/ },
    {
      name: 'a malformed digest',
      values: { scaler: { image: { digest: 'latest' } } },
      message: /at '\/scaler\/image\/digest'/,
    },
    {
      name: 'an env var the component does not read',
      values: { gateway: { extraEnv: { AFTERLIFE_GATEWAY_TURBO: 'on' } } },
      message: /additional properties 'AFTERLIFE_GATEWAY_TURBO' not allowed/,
    },
    {
      name: 'an env var the chart already sets',
      values: { webhook: { extraEnv: { AFTERLIFE_WEBHOOK_PORT: '1' } } },
      message: /additional properties 'AFTERLIFE_WEBHOOK_PORT' not allowed/,
    },
    {
      name: 'a toleration with an unknown field',
      values: { runtimeClass: { scheduling: { tolerations: [{ keys: 'a' }] } } },
      message: /additional properties 'keys' not allowed/,
    },
    {
      name: 'a RuntimeClass name that is not a DNS name',
      values: { runtimeClass: { name: 'Wasm_Edge' } },
      message: /at '\/runtimeClass\/name'/,
    },
    {
      name: 'the webhook enabled without any TLS source',
      values: { webhook: { tls: { autoGenerate: false } } },
      message: /at '\/webhook\/tls'/,
    },
    {
      name: 'an unknown webhook scaling route',
      values: { webhook: { scalingRoute: 'keda' } },
      message: /at '\/webhook\/scalingRoute': value must be one of 'afterlife', 'autoscaler-keda'/,
    },
    {
      name: "an unknown autoscaler default metric (Knative's rps is an annotation alias, not a default)",
      values: { autoscaler: { defaults: { metric: 'rps' } } },
      message: /at '\/autoscaler\/defaults\/metric'/,
    },
    {
      name: 'an autoscaler cooldown given as a duration string (the value is whole seconds)',
      values: { autoscaler: { defaults: { cooldownSeconds: '30s' } } },
      message: /at '\/autoscaler\/defaults\/cooldownSeconds': got string, want integer/,
    },
    {
      name: 'an autoscaler default max scale of 0 (KEDA needs a bound)',
      values: { autoscaler: { defaults: { maxScale: 0 } } },
      message: /at '\/autoscaler\/defaults\/maxScale'/,
    },
    {
      name: 'an autoscaler target below 0.01',
      values: { autoscaler: { defaults: { target: 0 } } },
      message: /at '\/autoscaler\/defaults\/target'/,
    },
    {
      name: 'an unknown key in the autoscaler defaults',
      values: { autoscaler: { defaults: { minScale: 1 } } },
      message: /additional properties 'minScale' not allowed/,
    },
    {
      name: 'a scaler address without a port',
      values: { autoscaler: { scalerAddress: 'afterlife-scaler.afterlife-system.svc' } },
      message: /at '\/autoscaler\/scalerAddress'/,
    },
    {
      name: 'a watched namespace that is not a namespace name',
      values: { autoscaler: { watchNamespaces: ['Team_A'] } },
      message: /at '\/autoscaler\/watchNamespaces\/0'/,
    },
    {
      name: 'an autoscaler env var the chart derives from values (the Lease name)',
      values: { autoscaler: { extraEnv: { AFTERLIFE_AUTOSCALER_LEASE_NAME: 'mine' } } },
      message: /additional properties 'AFTERLIFE_AUTOSCALER_LEASE_NAME' not allowed/,
    },
    {
      name: 'an autoscaler env var documented as not settable (the class)',
      values: { autoscaler: { extraEnv: { AFTERLIFE_AUTOSCALER_CLASS: 'other' } } },
      message: /additional properties 'AFTERLIFE_AUTOSCALER_CLASS' not allowed/,
    },
    {
      name: 'an existing TLS Secret without its CA',
      values: { webhook: { tls: { autoGenerate: false, existingSecret: 'my-tls' } } },
      message: /at '\/webhook\/tls\/caBundle': minLength/,
    },
  ];

  for (const c of cases) {
    it(`rejects ${c.name}`, async () => {
      const stderr = await rejected(c.values);
      assert.match(stderr, SCHEMA_ERROR);
      assert.match(stderr, c.message);
    });
  }

  it('accepts the webhook without TLS values when disabled or with cert-manager, and Helm global values', async () => {
    const tmp = tempDir();
    try {
      for (const values of [
        { webhook: { enabled: false, tls: { autoGenerate: false } } },
        { certManager: { enabled: true }, webhook: { tls: { autoGenerate: false } } },
        { global: { imageRegistry: 'set-by-a-parent-chart' } },
      ]) {
        const result = await helmTemplate(['-f', writeValues(tmp.dir, 'ok', values)]);
        assert.equal(result.code, 0, result.stderr);
      }
    } finally {
      tmp.cleanup();
    }
  });

  it('still refuses a webhook without TLS when schema validation is skipped', async () => {
    const result = await helmTemplate(['--skip-schema-validation', '--set', 'webhook.tls.autoGenerate=false']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /webhook\.enabled needs a TLS source/);
  });

  it('forbids unknown keys in every object of the schema (except passthrough affinity, label maps and Helm global values)', () => {
    const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as unknown;
    const open: string[] = [];
    const visit = (node: unknown, path: string): void => {
      if (Array.isArray(node)) {
        node.forEach((item, i) => {
          visit(item, `${path}[${i}]`);
        });
        return;
      }
      if (typeof node !== 'object' || node === null) return;
      const record = node as Record<string, unknown>;
      if (record.type === 'object' || (Array.isArray(record.type) && record.type.includes('object'))) {
        const passthrough = path.endsWith('.affinity') || path.endsWith('labelMap') || path === '$.properties.global';
        if (record.additionalProperties !== false && !passthrough) open.push(path);
      }
      for (const [key, value] of Object.entries(record)) visit(value, `${path}.${key}`);
    };
    visit(schema, '$');
    assert.deepEqual(open, []);
  });
});
