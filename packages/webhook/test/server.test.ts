import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, createMetricsRegistry } from '@afterlife/core';
import { createWebhookMetrics } from '../src/metrics.ts';
import { startWebhookServer, type WebhookServer } from '../src/server.ts';
import { admissionReview, applyResult, CONFIG, FLAG_ON, knativeService } from './fixtures.ts';
import { createTestPki, httpsRequest, issueServerCert, type TestPki } from './tls.ts';

const quietLogger = () =>
  createLogger('webhook-test', {
    level: 'warn',
    destination: new Writable({ write: (_c, _e, cb) => cb() }),
  });

describe('webhook HTTPS server', function () {
  this.timeout(20_000);
  let pki: TestPki;
  let server: WebhookServer;
  let certFile: string;
  let keyFile: string;
  const registry = createMetricsRegistry('webhook-test', { defaultMetrics: false });

  before(async () => {
    pki = await createTestPki();
    ({ certFile, keyFile } = await issueServerCert(pki, 'serving-1'));
    server = await startWebhookServer({
      config: {
        ...CONFIG,
        bindAddress: '127.0.0.1',
        port: 0,
        tlsCertFile: certFile,
        tlsKeyFile: keyFile,
        tlsReloadIntervalMs: 100,
        requestTimeoutMs: 5000,
        keepAliveTimeoutMs: 5000,
        bodyLimitBytes: 64 * 1024,
      },
      features: () => FLAG_ON,
      ready: () => true,
      logger: quietLogger(),
      metrics: createWebhookMetrics(registry),
      registry,
    });
  });

  after(async () => {
    await server?.close(1000);
    await pki?.cleanup();
  });

  const post = (body: string | Buffer, path = '/mutate') => httpsRequest(server.port, { path, body, ca: pki.caPem });

  it('mutates an opted-in Service over HTTPS (HTTP/1.1 only)', async () => {
    const object = knativeService({ labels: { 'afterlife.dev/runtime': 'wasmedge' } });
    const review = admissionReview(object);
    const reply = await post(JSON.stringify(review));
    assert.equal(reply.status, 200);
    assert.equal(reply.alpn, 'http/1.1', 'never negotiates h2');
    const body = reply.json as { response: { uid: string; allowed: boolean; patch?: string } };
    assert.equal(body.response.uid, (review.request as { uid: string }).uid);
    assert.equal(body.response.allowed, true);
    const { patched } = applyResult(object, {
      httpStatus: 200,
      body: body as never,
      outcome: 'mutated',
      reason: '',
      patch: [],
    });
    assert.equal(
      (patched.spec as never as { template: { spec: { runtimeClassName: string } } }).template.spec.runtimeClassName,
      'wasmedge',
    );
  });

  it('treats /mutate/namespace as a namespace opt-in', async () => {
    const reply = await post(JSON.stringify(admissionReview(knativeService())), '/mutate/namespace');
    assert.equal((reply.json as { response: { patchType?: string } }).response.patchType, 'JSONPatch');
    const plain = await post(JSON.stringify(admissionReview(knativeService())));
    assert.equal((plain.json as { response: { patchType?: string } }).response.patchType, undefined);
  });

  const bad: Array<[string, string | Buffer, number, RegExp]> = [
    ['malformed JSON', '{"apiVersion": "admission.k8s.io/v1",', 400, /must be a JSON AdmissionReview/],
    ['an empty body', '', 400, /must be a JSON AdmissionReview/],
    ['a JSON string', '"hello"', 400, /JSON AdmissionReview object/],
    [
      'a wrong apiVersion',
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u-7' } }),
      200,
      /expected apiVersion admission.k8s.io\/v1/,
    ],
    [
      'a wrong kind',
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'ConversionReview', request: { uid: 'u-7' } }),
      200,
      /kind "ConversionReview"/,
    ],
    [
      'a missing request',
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }),
      400,
      /no request/,
    ],
    [
      'a template that is not an object',
      JSON.stringify({
        ...admissionReview(knativeService({ labels: { 'afterlife.dev/runtime': 'wasmedge' }, template: 42 }), {
          uid: 'u-7',
        }),
      }),
      200,
      /spec.template must be an object \(got 42\)/,
    ],
    ['a huge body', Buffer.alloc(200 * 1024, 'a'), 413, /larger than the limit of 65536 bytes/],
  ];
  for (const [what, body, status, message] of bad) {
    it(`answers ${what} clearly with ${status} and keeps serving`, async () => {
      const reply = await post(body);
      assert.equal(reply.status, status, reply.text);
      const json = reply.json as {
        error?: string;
        response?: { uid: string; allowed: boolean; status: { message: string } };
      };
      if (status === 200) {
        assert.equal(json.response?.uid, 'u-7');
        assert.equal(json.response?.allowed, false);
        assert.match(json.response?.status.message ?? '', message);
      } else {
        assert.match(json.error ?? '', message);
      }
      const health = await httpsRequest(server.port, { method: 'GET', path: '/healthz', ca: pki.caPem });
      assert.equal(health.status, 200);
    });
  }

  it('serves /healthz, /readyz and 404s', async () => {
    assert.equal((await httpsRequest(server.port, { method: 'GET', path: '/readyz', ca: pki.caPem })).status, 200);
    assert.equal((await httpsRequest(server.port, { method: 'GET', path: '/nope', ca: pki.caPem })).status, 404);
    assert.equal((await httpsRequest(server.port, { method: 'GET', path: '/mutate', ca: pki.caPem })).status, 404);
  });

  it('exposes admissions by result and the latency histogram on /metrics', async () => {
    const reply = await httpsRequest(server.port, { method: 'GET', path: '/metrics', ca: pki.caPem });
    assert.equal(reply.status, 200);
    assert.match(
      reply.text,
      /afterlife_webhook_admissions_total\{result="mutated",kind="Service",operation="CREATE"[^}]*\} \d/,
    );
    assert.match(reply.text, /afterlife_webhook_admissions_total\{result="invalid"[^}]*\} [1-9]/);
    assert.match(reply.text, /afterlife_webhook_admission_duration_seconds_bucket\{le="0.001"[^}]*result="mutated"\}/);
    assert.match(reply.text, /afterlife_webhook_rejected_requests_total\{reason="too-large"[^}]*\} 1/);
  });

  it('reloads the certificate when the files change, without a restart', async () => {
    const before = await httpsRequest(server.port, { method: 'GET', path: '/healthz', ca: pki.caPem });
    assert.equal(before.peerCN, 'serving-1');
    await issueServerCert(pki, 'serving-2', { certFile, keyFile });
    const deadline = Date.now() + 10_000;
    let cn: string | undefined = before.peerCN;
    while (cn !== 'serving-2' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      cn = (await httpsRequest(server.port, { method: 'GET', path: '/healthz', ca: pki.caPem })).peerCN;
    }
    assert.equal(cn, 'serving-2');
    const reply = await post(JSON.stringify(admissionReview(knativeService())));
    assert.equal(reply.status, 200);
    const metrics = await httpsRequest(server.port, { method: 'GET', path: '/metrics', ca: pki.caPem });
    assert.match(metrics.text, /afterlife_webhook_tls_reloads_total\{result="ok"[^}]*\} 1/);
  });

  it('answers within the request timeout even when image inspection hangs', async () => {
    const slowRegistry = createMetricsRegistry('webhook-test-slow', { defaultMetrics: false });
    const slow = await startWebhookServer({
      config: {
        ...CONFIG,
        bindAddress: '127.0.0.1',
        port: 0,
        tlsCertFile: certFile,
        tlsKeyFile: keyFile,
        tlsReloadIntervalMs: 10_000,
        requestTimeoutMs: 300,
        keepAliveTimeoutMs: 5000,
        bodyLimitBytes: 64 * 1024,
      },
      features: () => FLAG_ON,
      ready: () => true,
      imageInspector: { isWasmImage: () => new Promise<boolean>(() => {}) },
      logger: quietLogger(),
      metrics: createWebhookMetrics(slowRegistry),
      registry: slowRegistry,
    });
    try {
      const review = admissionReview(knativeService(), { uid: 'u-slow' });
      const started = Date.now();
      const reply = await httpsRequest(slow.port, { path: '/mutate', body: JSON.stringify(review), ca: pki.caPem });
      assert.ok(Date.now() - started < 2000);
      const json = reply.json as {
        response: { uid: string; allowed: boolean; status: { code: number; message: string } };
      };
      assert.equal(reply.status, 200);
      assert.equal(json.response.uid, 'u-slow');
      assert.equal(json.response.allowed, false);
      assert.equal(json.response.status.code, 504);
      assert.match(json.response.status.message, /timed out/);
    } finally {
      await slow.close(500);
    }
  });
});
