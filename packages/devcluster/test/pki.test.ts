import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign, verify, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeServer, hasCode, listen, probeOk, probeStatus, sendAnswer } from '@afterlife/core';
import {
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  X509Certificate as PeculiarCertificate,
} from '@peculiar/x509';
import { createCertificateAuthority, createSigningKey, issueCertificate, type KeyPair } from '../src/index.ts';

const certificate = async (pair: KeyPair) => new X509Certificate(await readFile(pair.certFile));
const extensions = async (pair: KeyPair) => new PeculiarCertificate(await readFile(pair.certFile, 'utf8'));

describe('PKI (no openssl)', () => {
  let dir = '';
  let ca: KeyPair;
  let otherCa: KeyPair;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'afterlife-pki-'));
    ca = await createCertificateAuthority(dir, 'ca', 'afterlife-test-ca');
    otherCa = await createCertificateAuthority(dir, 'other-ca', 'afterlife-other-ca', { days: 1 });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('makes a self-signed P-256 CA: CA flag, critical basicConstraints, keyCertSign, ten years', async () => {
    const cert = await certificate(ca);
    assert.equal(cert.ca, true);
    assert.equal(cert.subject, 'CN=afterlife-test-ca');
    assert.equal(cert.issuer, cert.subject);
    assert.ok(cert.verify(cert.publicKey), 'self-signed');
    assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const years = (Date.parse(cert.validTo) - Date.now()) / (365 * 86_400_000);
    assert.ok(years > 9.9 && years < 10.1, `valid ${years} years`);
    const parsed = await extensions(ca);
    const constraints = parsed.getExtension(BasicConstraintsExtension);
    assert.equal(constraints?.ca, true);
    assert.equal(constraints?.critical, true);
    const usages = parsed.getExtension(KeyUsagesExtension);
    assert.equal(usages?.critical, true);
    assert.ok(((usages?.usages ?? 0) & KeyUsageFlags.keyCertSign) !== 0);
    assert.ok(((usages?.usages ?? 0) & KeyUsageFlags.cRLSign) !== 0);
    assert.equal((await stat(ca.keyFile)).mode & 0o777, 0o600);
  });

  it('issues a leaf that verifies against its CA (and not another), with SANs, usages and subject', async () => {
    const pair = await issueCertificate(ca, dir, 'apiserver', {
      commonName: 'kube-apiserver',
      organization: 'system:masters',
      dnsNames: ['localhost', 'kubernetes.default.svc'],
      ipAddresses: ['127.0.0.1', '::1'],
      usage: 'server-and-client',
      days: 2,
    });
    assert.deepEqual(pair, { certFile: join(dir, 'apiserver.crt'), keyFile: join(dir, 'apiserver.key') });
    const leaf = await certificate(pair);
    const caCert = await certificate(ca);
    assert.ok(leaf.verify(caCert.publicKey), 'signed by the CA');
    assert.ok(leaf.checkIssued(caCert));
    assert.equal(leaf.verify((await certificate(otherCa)).publicKey), false);
    assert.equal(leaf.ca, false);
    assert.equal(leaf.subject, 'O=system:masters\nCN=kube-apiserver');
    assert.equal(leaf.issuer, 'CN=afterlife-test-ca');
    assert.equal(
      leaf.subjectAltName,
      'DNS:localhost, DNS:kubernetes.default.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    assert.equal(leaf.checkHost('kubernetes.default.svc'), 'kubernetes.default.svc');
    assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
    assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const days = (Date.parse(leaf.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 1.9 && days <= 2, `valid ${days} days`);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(await readFile(pair.keyFile))), 'the key file matches');
    assert.match(
      await readFile(pair.keyFile, 'utf8'),
      /^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/,
    );
    const parsed = await extensions(pair);
    assert.equal(parsed.getExtension(BasicConstraintsExtension)?.ca, false);
    const usages = parsed.getExtension(KeyUsagesExtension)?.usages ?? 0;
    assert.equal(usages, KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment);
  });

  it('gives each leaf the extended key usage asked for, and no SAN extension when none is asked', async () => {
    const server = await certificate(await issueCertificate(ca, dir, 'server', { commonName: 's', usage: 'server' }));
    const client = await certificate(await issueCertificate(ca, dir, 'client', { commonName: 'c', usage: 'client' }));
    assert.deepEqual(server.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.deepEqual(client.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(client.subjectAltName, undefined);
  });

  it('issues in parallel with random, distinct, positive serials', async () => {
    const pairs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        issueCertificate(ca, dir, `parallel-${i}`, { commonName: `p${i}`, usage: 'client' }),
      ),
    );
    const serials = await Promise.all(pairs.map(async (pair) => (await certificate(pair)).serialNumber));
    assert.equal(new Set(serials).size, serials.length);
    for (const serial of serials) {
      assert.equal(serial.length, 32, serial);
      assert.ok(Number.parseInt(serial.slice(0, 2), 16) < 0x80, `positive: ${serial}`);
    }
  });

  it('makes a signing key pair (PKCS#8 private, SPKI public) that sign and verify', async () => {
    const { privateKeyFile, publicKeyFile } = await createSigningKey(dir, 'service-account');
    assert.equal(privateKeyFile, join(dir, 'service-account.key'));
    assert.equal(publicKeyFile, join(dir, 'service-account.pub'));
    const privateKey = createPrivateKey(await readFile(privateKeyFile));
    const publicKey = createPublicKey(await readFile(publicKeyFile));
    assert.equal(publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const signature = sign('sha256', Buffer.from('token'), privateKey);
    assert.ok(verify('sha256', Buffer.from('token'), publicKey, signature));
  });

  it('fails with PKI_FAILED when the CA files are unusable', async () => {
    const broken = { certFile: join(dir, 'broken.crt'), keyFile: ca.keyFile };
    await writeFile(broken.certFile, 'not a certificate');
    await assert.rejects(
      issueCertificate(broken, dir, 'x', { commonName: 'x', usage: 'server' }),
      (error: unknown) => hasCode(error, 'PKI_FAILED') && /issuing certificate x/.test(String(error)),
    );
  });

  describe("over TLS, through core's probe helper", () => {
    let server: Server;
    let port = 0;
    let client: KeyPair;

    before(async () => {
      const serving = await issueCertificate(ca, dir, 'serving', {
        commonName: 'serving',
        dnsNames: ['localhost'],
        ipAddresses: ['127.0.0.1'],
        usage: 'server',
      });
      client = await issueCertificate(ca, dir, 'probe-client', { commonName: 'probe', usage: 'client' });
      server = createServer(
        {
          cert: await readFile(serving.certFile),
          key: await readFile(serving.keyFile),
          ca: await readFile(ca.certFile),
          requestCert: true,
          rejectUnauthorized: false,
        },
        (req, res) => {
          const peer = (req.socket as import('node:tls').TLSSocket).authorized;
          sendAnswer(res, req.url === '/mtls' && !peer ? 401 : 200, 'ok');
        },
      );
      port = await listen(server, 0, '127.0.0.1');
    });
    after(() => closeServer(server, 0));

    it('serves HTTPS that a probe trusting the CA accepts; without the CA the probe fails', async () => {
      const ca_ = await readFile(ca.certFile);
      assert.equal(await probeOk(`https://127.0.0.1:${port}/readyz`, { ca: ca_ }), true);
      assert.equal(await probeOk(`https://localhost:${port}/readyz`, { ca: ca_ }), true);
      await assert.rejects(probeStatus(`https://127.0.0.1:${port}/readyz`), (error: unknown) =>
        hasCode(error, 'PROBE_FAILED'),
      );
      await assert.rejects(
        probeStatus(`https://127.0.0.1:${port}/readyz`, { ca: await readFile(otherCa.certFile) }),
        (error: unknown) => hasCode(error, 'PROBE_FAILED'),
      );
    });

    it('authenticates a client certificate (mutual TLS through the probe helper)', async () => {
      const ca_ = await readFile(ca.certFile);
      assert.equal(await probeStatus(`https://127.0.0.1:${port}/mtls`, { ca: ca_ }), 401);
      const mtls = { ca: ca_, cert: await readFile(client.certFile), key: await readFile(client.keyFile) };
      assert.equal(await probeOk(`https://127.0.0.1:${port}/mtls`, mtls), true);
    });
  });
});
