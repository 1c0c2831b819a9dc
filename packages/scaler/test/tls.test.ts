import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueCertificate } from '@afterlife/devcluster';
import { issueLocalhostServerCert } from '@afterlife/devcluster/testing';
import * as grpc from '@grpc/grpc-js';
import { type RunningScaler, startScaler } from '../src/scaler.ts';
import {
  call,
  counts,
  FakeGateway,
  ref,
  scalerClientConstructor,
  silentLogger,
  testConfig,
  waitFor,
} from './helpers.ts';

const ScalerClient = scalerClientConstructor();

interface Pki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  rogueCaCert: string;
  rogueClientCert: string;
  rogueClientKey: string;
}

/** A CA, a server cert for 127.0.0.1/localhost, a client cert from that CA and one from an unrelated CA. */
async function makePki(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'scaler-tls-'));
  const ca = await createCertificateAuthority(dir, 'ca', 'ca', { days: 1 });
  const rogueCa = await createCertificateAuthority(dir, 'rogue-ca', 'rogue-ca', { days: 1 });
  const server = await issueLocalhostServerCert(ca, dir, 'server');
  const keda = await issueCertificate(ca, dir, 'keda', { commonName: 'keda', usage: 'client', days: 1 });
  const rogue = await issueCertificate(rogueCa, dir, 'rogue', { commonName: 'rogue', usage: 'client', days: 1 });
  return {
    dir,
    caCert: ca.certFile,
    serverCert: server.certFile,
    serverKey: server.keyFile,
    clientCert: keda.certFile,
    clientKey: keda.keyFile,
    rogueCaCert: rogueCa.certFile,
    rogueClientCert: rogue.certFile,
    rogueClientKey: rogue.keyFile,
  };
}

describe('TLS and mutual TLS (certificates from the devcluster PKI)', function () {
  this.timeout(20_000);
  let pki: Pki;
  let gateway: FakeGateway;
  const closers: (() => unknown)[] = [];

  before(async () => {
    pki = await makePki();
    gateway = await FakeGateway.start('gw');
    gateway.set([counts('ns', 'f', { pending: 1 })]);
  });
  after(async () => {
    await gateway?.close();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const close of closers.reverse()) await close();
    closers.length = 0;
  });

  async function start(env: Record<string, string>): Promise<RunningScaler> {
    const scaler = await startScaler(testConfig([gateway.url], env), { logger: silentLogger, defaultMetrics: false });
    closers.push(() => scaler.close());
    await waitFor('fresh counts', () => scaler.aggregator.freshGatewayCount() === 1);
    return scaler;
  }

  function client(scaler: RunningScaler, credentials: grpc.ChannelCredentials) {
    const c = new ScalerClient(`127.0.0.1:${scaler.port}`, credentials, {
      'grpc.ssl_target_name_override': 'localhost',
    });
    closers.push(() => c.close());
    return c;
  }

  const read = (file: string) => readFileSync(file);
  const isActive = (c: ReturnType<typeof client>) => call(c.IsActive, c, ref({ function: 'ns/f', enableTLS: 'true' }));
  const deadline = () => ({ deadline: Date.now() + 3000 });

  it('server TLS: a client that trusts the CA (KEDA caCert) gets answers; plaintext and untrusting clients fail', async () => {
    const scaler = await start({
      AFTERLIFE_SCALER_TLS_CERT_FILE: pki.serverCert,
      AFTERLIFE_SCALER_TLS_KEY_FILE: pki.serverKey,
    });
    assert.deepEqual(await isActive(client(scaler, grpc.credentials.createSsl(read(pki.caCert)))), { result: true });

    const plain = client(scaler, grpc.credentials.createInsecure());
    await assert.rejects(
      new Promise((resolve, reject) =>
        plain.IsActive(ref({ function: 'ns/f' }), new grpc.Metadata(), deadline(), (e, v) =>
          e ? reject(e) : resolve(v),
        ),
      ),
      (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED,
    );
    const untrusting = client(scaler, grpc.credentials.createSsl(read(pki.rogueCaCert)));
    await assert.rejects(isActive(untrusting), { code: grpc.status.UNAVAILABLE });
  });

  it('mutual TLS: only clients with a certificate signed by the configured CA get in', async () => {
    const scaler = await start({
      AFTERLIFE_SCALER_TLS_CERT_FILE: pki.serverCert,
      AFTERLIFE_SCALER_TLS_KEY_FILE: pki.serverKey,
      AFTERLIFE_SCALER_TLS_CA_FILE: pki.caCert,
    });
    // KEDA TriggerAuthentication: caCert + tlsClientCert + tlsClientKey.
    const keda = client(
      scaler,
      grpc.credentials.createSsl(read(pki.caCert), read(pki.clientKey), read(pki.clientCert)),
    );
    assert.deepEqual(await isActive(keda), { result: true });
    const stream = keda.StreamIsActive(ref({ function: 'ns/f' }));
    closers.push(() => stream.cancel());
    stream.on('error', () => undefined);
    const first = await new Promise<{ result: boolean }>((resolve) => stream.once('data', resolve));
    assert.equal(first.result, true);

    const noCert = client(scaler, grpc.credentials.createSsl(read(pki.caCert)));
    await assert.rejects(isActive(noCert), { code: grpc.status.UNAVAILABLE });
    const rogue = client(
      scaler,
      grpc.credentials.createSsl(read(pki.caCert), read(pki.rogueClientKey), read(pki.rogueClientCert)),
    );
    await assert.rejects(isActive(rogue), { code: grpc.status.UNAVAILABLE });
  });

  it('fails to start with a clear error when a TLS file is missing', async () => {
    await assert.rejects(
      startScaler(
        testConfig([gateway.url], {
          AFTERLIFE_SCALER_TLS_CERT_FILE: join(pki.dir, 'missing.crt'),
          AFTERLIFE_SCALER_TLS_KEY_FILE: pki.serverKey,
        }),
        { logger: silentLogger, defaultMetrics: false },
      ),
      { code: 'TLS_FILE_UNREADABLE', message: /cannot read the TLS certificate file .*missing\.crt/ },
    );
  });
});
