import { randomBytes, webcrypto } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '@afterlife/core';
import type { Extension, JsonName } from '@peculiar/x509';
import { AfterlifeClusterError } from './cluster-error.ts';

/**
 * Test and dev PKI on @peculiar/x509 (WebCrypto): every key is ECDSA P-256, quick to generate at
 * every start and accepted by Kubernetes, etcd, KEDA, kubelet and Node; certificates are signed
 * with ECDSA SHA-256. Files are PEM: `<name>.crt`, and PKCS#8 `<name>.key`.
 */

export interface KeyPair {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface CertificateRequest {
  readonly commonName: string;
  readonly organization?: string;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** Which extended key usages the certificate gets. */
  readonly usage: 'server' | 'client' | 'server-and-client';
  /** Validity in days (default 365). */
  readonly days?: number;
}

export interface CertificateAuthorityOptions {
  /** Validity in days (default 3650). */
  readonly days?: number;
}

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
// Issued a minute in the past, so a component whose clock reads it at once never sees "not yet valid".
const BACKDATE_MS = 60_000;

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const EXTENDED_USAGES: Record<CertificateRequest['usage'], string[]> = {
  server: [SERVER_AUTH],
  client: [CLIENT_AUTH],
  'server-and-client': [SERVER_AUTH, CLIENT_AUTH],
};

type X509 = typeof import('@peculiar/x509');
let x509: Promise<X509> | undefined;

/**
 * Loaded on first use: tsyringe (under @peculiar/x509) needs the Reflect metadata polyfill first,
 * and importing the devcluster should not install a global polyfill nobody asked for.
 */
function loadX509(): Promise<X509> {
  x509 ??= import('reflect-metadata').then(() => import('@peculiar/x509'));
  return x509;
}

async function pki<T>(what: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (error instanceof AfterlifeClusterError) throw error;
    throw new AfterlifeClusterError('PKI_FAILED', `${what}: ${errorMessage(error)}`, { cause: error });
  }
}

function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

async function pem(der: ArrayBuffer, label: string): Promise<string> {
  return `${(await loadX509()).PemConverter.encode(der, label)}\n`;
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  return pem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** A random positive 128-bit serial: no shared serial file, so certificates can be issued in parallel. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * DAY_MS) };
}

function subjectName(request: { commonName: string; organization?: string | undefined }): JsonName {
  return [...(request.organization ? [{ O: [request.organization] }] : []), { CN: [request.commonName] }];
}

async function writePair(dir: string, name: string, certPem: string, keyPem: string): Promise<KeyPair> {
  await mkdir(dir, { recursive: true });
  const pair = { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
  await writeFile(pair.keyFile, keyPem, { mode: 0o600 });
  await writeFile(pair.certFile, certPem);
  return pair;
}

/** Creates a self-signed certificate authority in `dir` as `<name>.crt` / `<name>.key`. */
export async function createCertificateAuthority(
  dir: string,
  name: string,
  commonName: string,
  options: CertificateAuthorityOptions = {},
): Promise<KeyPair> {
  return pki(`creating CA ${name}`, async () => {
    const {
      BasicConstraintsExtension,
      KeyUsageFlags,
      KeyUsagesExtension,
      SubjectKeyIdentifierExtension,
      X509CertificateGenerator,
    } = await loadX509();
    const keys = await generateKeys();
    const extensions: Extension[] = [
      new BasicConstraintsExtension(true, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature, true),
      await SubjectKeyIdentifierExtension.create(keys.publicKey),
    ];
    const cert = await X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: subjectName({ commonName }),
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions,
      ...validity(options.days ?? 3650),
    });
    return writePair(dir, name, `${cert.toString('pem')}\n`, await privateKeyPem(keys.privateKey));
  });
}

/** Issues a certificate signed by `ca` into `dir` as `<name>.crt` / `<name>.key`. */
export async function issueCertificate(
  ca: KeyPair,
  dir: string,
  name: string,
  request: CertificateRequest,
): Promise<KeyPair> {
  return pki(`issuing certificate ${name}`, async () => {
    const {
      AuthorityKeyIdentifierExtension,
      BasicConstraintsExtension,
      ExtendedKeyUsageExtension,
      KeyUsageFlags,
      KeyUsagesExtension,
      PemConverter,
      SubjectAlternativeNameExtension,
      SubjectKeyIdentifierExtension,
      X509Certificate,
      X509CertificateGenerator,
    } = await loadX509();
    const [caPem, caKeyPem] = await Promise.all([readFile(ca.certFile, 'utf8'), readFile(ca.keyFile, 'utf8')]);
    const caCert = new X509Certificate(caPem);
    const caKey = await webcrypto.subtle.importKey('pkcs8', PemConverter.decodeFirst(caKeyPem), KEY_ALGORITHM, false, [
      'sign',
    ]);
    const keys = await generateKeys();
    const altNames = [
      ...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(request.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    const extensions: Extension[] = [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment, true),
      new ExtendedKeyUsageExtension(EXTENDED_USAGES[request.usage]),
      await SubjectKeyIdentifierExtension.create(keys.publicKey),
      await AuthorityKeyIdentifierExtension.create(caCert.publicKey),
      ...(altNames.length > 0 ? [new SubjectAlternativeNameExtension(altNames)] : []),
    ];
    const cert = await X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: subjectName(request),
      issuer: caCert.subjectName,
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions,
      ...validity(request.days ?? 365),
    });
    return writePair(dir, name, `${cert.toString('pem')}\n`, await privateKeyPem(keys.privateKey));
  });
}

/** A bare key pair (service-account token signing). Returns the private and public key files. */
export async function createSigningKey(
  dir: string,
  name: string,
): Promise<{ privateKeyFile: string; publicKeyFile: string }> {
  return pki(`creating signing key ${name}`, async () => {
    await mkdir(dir, { recursive: true });
    const keys = await generateKeys();
    const privateKeyFile = join(dir, `${name}.key`);
    const publicKeyFile = join(dir, `${name}.pub`);
    await writeFile(privateKeyFile, await privateKeyPem(keys.privateKey), { mode: 0o600 });
    await writeFile(publicKeyFile, await pem(await webcrypto.subtle.exportKey('spki', keys.publicKey), 'PUBLIC KEY'));
    return { privateKeyFile, publicKeyFile };
  });
}
