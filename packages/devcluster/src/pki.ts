import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AfterlifeClusterError } from './cluster-error.ts';

const run = promisify(execFile);

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
  readonly days?: number;
}

// P-256 keys: quick to generate at every start, accepted by Kubernetes, etcd, KEDA and Node.
const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim() ?? String(error);
    throw new AfterlifeClusterError('PKI_FAILED', `openssl ${args[0]} failed: ${detail}`, { cause: error });
  }
}

/** Creates a self-signed certificate authority in `dir` as `<name>.crt` / `<name>.key`. */
export async function createCertificateAuthority(dir: string, name: string, commonName: string): Promise<KeyPair> {
  await mkdir(dir, { recursive: true });
  const pair = { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
  await openssl([
    'req',
    '-x509',
    ...KEY_ARGS,
    '-keyout',
    pair.keyFile,
    '-out',
    pair.certFile,
    '-days',
    '3650',
    '-subj',
    `/CN=${commonName}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
  ]);
  return pair;
}

/** Issues a certificate signed by `ca` into `dir` as `<name>.crt` / `<name>.key`. */
export async function issueCertificate(
  ca: KeyPair,
  dir: string,
  name: string,
  request: CertificateRequest,
): Promise<KeyPair> {
  await mkdir(dir, { recursive: true });
  const pair = { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const extensions = join(dir, `${name}.ext`);
  const subject = `${request.organization ? `/O=${request.organization}` : ''}/CN=${request.commonName}`;
  const usages = { server: 'serverAuth', client: 'clientAuth', 'server-and-client': 'serverAuth,clientAuth' };
  const altNames = [
    ...(request.dnsNames ?? []).map((dns) => `DNS:${dns}`),
    ...(request.ipAddresses ?? []).map((ip) => `IP:${ip}`),
  ];
  await writeFile(
    extensions,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${usages[request.usage]}`,
      ...(altNames.length > 0 ? [`subjectAltName=${altNames.join(',')}`] : []),
      '',
    ].join('\n'),
  );
  await openssl(['req', '-new', ...KEY_ARGS, '-keyout', pair.keyFile, '-out', csr, '-subj', subject]);
  await openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    // A random serial per certificate: no shared serial file, so certificates can be issued in parallel.
    '-set_serial',
    `0x${randomBytes(16).toString('hex')}`,
    '-out',
    pair.certFile,
    '-days',
    String(request.days ?? 365),
    '-extfile',
    extensions,
  ]);
  return pair;
}

/** A bare key pair (service-account token signing). Returns the private and public key files. */
export async function createSigningKey(
  dir: string,
  name: string,
): Promise<{ privateKeyFile: string; publicKeyFile: string }> {
  await mkdir(dir, { recursive: true });
  const privateKeyFile = join(dir, `${name}.key`);
  const publicKeyFile = join(dir, `${name}.pub`);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', privateKeyFile]);
  await openssl(['pkey', '-in', privateKeyFile, '-pubout', '-out', publicKeyFile]);
  return { privateKeyFile, publicKeyFile };
}
